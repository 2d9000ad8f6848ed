"""Content and style losses on feature maps, with their targets computed once.

Both losses are relative: the content loss is the features' mean squared error divided by the
content features' mean square, the style loss is the squared Frobenius distance of Gram
matrices divided by the target Gram's squared norm. Grams are normalised by frame count.
So the same weights behave alike for a 2 s and a 60 s clip, for 512 or 4096 filters, and for
quiet or loud inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .dsp.mel import band_views
from .dsp.stft import magnitude_of
from .errors import ConfigError
from .networks.base import (
    BandFrontEnd,
    FeatureNetwork,
    band_front_end,
    content_layer_indices,
    style_layer_indices,
)
from .texture import TextureStatistics

__all__ = ["gram", "StyleStatistics", "ContentTargets", "LoudnessContour", "Objective"]

# Keeps relative losses finite when a target is (numerically) all zeros, e.g. silent content.
_EPS = 1e-12


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix over time normalised by frame count.

    Parameters
    ----------
    features : torch.Tensor [shape=(..., channels, frames)]

    Returns
    -------
    torch.Tensor [shape=(..., channels, channels)]
    """
    return features @ features.transpose(-1, -2) / features.shape[-1]


def _pooled(features: torch.Tensor) -> torch.Tensor:
    """(batch, channels, frames) -> (channels, batch * frames): all of a style's channels pooled."""
    return features.transpose(0, 1).reshape(features.shape[1], -1)


@dataclass
class _LayerStyle:
    gram: torch.Tensor  # (K, K), blend of the styles' pooled Grams
    rows: torch.Tensor  # (N, K): every style's pooled feature maps, frames as rows, styles stacked
    row_weights: torch.Tensor  # (N,): each row's style weight over that style's frame count
    norm2: torch.Tensor  # ||gram||^2

    def to(self, device: torch.device | str) -> "_LayerStyle":
        return _LayerStyle(*(tensor.to(device) for tensor in (self.gram, self.rows, self.row_weights, self.norm2)))


@dataclass
class StyleStatistics:
    """Style targets: the (blended) Gram matrix of each style layer.

    Build with :meth:`from_log_magnitudes`; compute once per style and reuse for every content
    (the batch runner caches them). Each layer also keeps the style's own feature maps
    (``rows``) so that the loss can use the frame-product form when that is cheaper (see
    :class:`_FeatureLoss`).
    """

    layers: list[_LayerStyle]
    layer_indices: tuple[int, ...]
    n_freq: int

    @classmethod
    @torch.no_grad()
    def from_log_magnitudes(
        cls,
        network: FeatureNetwork,
        log_magnitudes: Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
    ) -> "StyleStatistics":
        """Style statistics of one style or a weighted blend of several.

        Parameters
        ----------
        network : FeatureNetwork
        log_magnitudes : sequence of torch.Tensor [shape=(channels, freq, frames)]
            One log-magnitude per style; a style's channels are pooled into one Gram.
        weights : sequence of float, optional
            Blend weights (non-negative, normalised to sum to 1); default equal.
        """
        if not log_magnitudes:
            raise ConfigError("at least one style is needed")
        weights = [1.0] * len(log_magnitudes) if weights is None else [float(w) for w in weights]
        if len(weights) != len(log_magnitudes) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"style weights {weights} must be non-negative, one per style, not all 0")
        total = sum(weights)
        weights = [w / total for w in weights]
        per_style = [network(log_mag) for log_mag in log_magnitudes]
        indices = style_layer_indices(network, len(per_style[0]))
        layers = []
        for index in indices:
            pooled = [_pooled(maps[index]) for maps in per_style]
            blend = sum(w * gram(p) for w, p in zip(weights, pooled))
            kept = [(w, p) for w, p in zip(weights, pooled) if w > 0]
            layers.append(
                _LayerStyle(
                    gram=blend,
                    rows=torch.cat([p.T for _, p in kept]).contiguous(),
                    row_weights=torch.cat([p.new_full((p.shape[-1],), w / p.shape[-1]) for w, p in kept]),
                    norm2=blend.square().sum(),
                )
            )
        return cls(layers=layers, layer_indices=tuple(indices), n_freq=int(log_magnitudes[0].shape[-2]))

    def to(self, device: torch.device | str) -> "StyleStatistics":
        layers = [layer.to(device) for layer in self.layers]
        return StyleStatistics(layers=layers, layer_indices=self.layer_indices, n_freq=self.n_freq)

    def loss(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean over the batch of the summed relative Gram distances of the style layers.

        Each layer's distance and its gradient come from :class:`_FeatureLoss`, which picks
        the cheaper of the Gram and the frame-product forms.
        """
        return _feature_losses(maps, self, None, style_weight=1.0, content_weight=0.0)[0]


def _feature_losses(
    maps: Sequence[torch.Tensor],
    style: StyleStatistics | None,
    content: "ContentTargets | None",
    *,
    style_weight: float,
    content_weight: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``style_weight * style + content_weight * content`` over the maps, and both parts.

    A map that is both a style and a content layer gets one :class:`_FeatureLoss`, which
    adds the content gradient inside the style gradient's matrix product. Returns the
    weighted total (differentiable) and the style and content losses (detached; 0 when that
    side is None).
    """
    style_layers = dict(zip(style.layer_indices, style.layers)) if style is not None else {}
    content_layers = (
        {i: (t, s) for i, t, s in zip(content.layer_indices, content.features, content.scales)}
        if content is not None
        else {}
    )
    total = maps[0].new_zeros(())
    style_total = maps[0].new_zeros(())
    content_total = maps[0].new_zeros(())
    for index in sorted(set(style_layers) | set(content_layers)):
        target, scale = content_layers.get(index, (None, None))
        weighted, style_part, content_part = _FeatureLoss.apply(
            maps[index], style_layers.get(index), style_weight, target, scale, content_weight
        )
        total = total + weighted
        style_total = style_total + style_part
        content_total = content_total + content_part
    return total, style_total, content_total


def _scaled_gradient(gradient: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """``gradient * grad_output``, without the pass over ``gradient`` when ``grad_output`` is 1.

    The losses fold their weights in, so a plain ``total.backward()`` seeds them with exactly
    1. Reading that on the host is free on the CPU only; elsewhere the product is cheap.
    """
    if grad_output.device.type == "cpu" and float(grad_output) == 1.0:
        return gradient
    return gradient * grad_output


class _FeatureLoss(torch.autograd.Function):
    """One feature map's weighted style and content losses, their gradient made in the same pass.

    Returns ``style_weight * style + content_weight * content`` (differentiable), then the two
    losses alone (not differentiable). ``style`` is the mean over the batch of
    ``||gram(F) - G_s||^2 / ||G_s||^2``; ``content`` is ``mean((F - target)^2) / scale``.
    Either side may be None.

    The style gradient is ``4 / T * (gram(F) - G_s) @ F``. When the clip has fewer frames ``T``
    (plus the styles' ``N``) than the layer has channels ``K``, both are expanded into
    frame-by-frame products, ``T x T`` and ``T x N`` instead of ``K x K`` matrices. With the
    styles' frames ``S_i`` (weights ``w_i``, ``N_i`` frames each):

    - ``||G_x - G_s||^2 = ||F^T F||^2 / T^2 - 2 sum_i w_i / N_i ||S_i^T F||^2 / T + ||G_s||^2``;
    - ``(G_x - G_s) F = F (F^T F) / T - sum_i w_i / N_i S_i (S_i^T F)``,

    several times cheaper for thousands of filters and a 10 s clip. ``F^T F`` and ``F^T S``
    are written side by side into one ``T x (T + N)`` matrix, whose blocks are scaled in one
    pass (weights included) before the gradient's two products read them. The content
    gradient ``c (F - target)`` rides along: ``c`` on the diagonal of the ``F^T F`` block (or
    of ``G_x - G_s``) gives ``c F``, and ``-c target`` is the product's additive input. Written
    by hand, the backward pass costs one product per term where autograd needs two (it does
    not know that ``F^T F`` is symmetric), and nothing is kept for it but the gradient.
    """

    @staticmethod
    def forward(ctx, features, style, style_weight, target, scale, content_weight):
        batch, channels, frames = features.shape
        rows_all = features.transpose(-1, -2)  # (batch, T, K), the random network's memory layout
        grad_rows = torch.empty_like(rows_all)
        style_values = features.new_empty(batch)
        content_value = features.new_zeros(())
        diagonal = 0.0  # the content gradient's coefficient c
        if target is not None:
            denominator = scale * target.numel()
            content_value = torch.dist(features, target).square() / denominator
            diagonal = 2 * content_weight / denominator
            target_rows = target.transpose(-1, -2)
        if style is not None:
            # Each item's share of the weighted batch mean.
            weight = style_weight / (batch * style.norm2.clamp_min(_EPS))
            products_form = frames + style.rows.shape[0] < channels
            if products_form:
                # The blocks' scales in the gradient: 4 / T^2 on F^T F, -4 w_i / (N_i T) on F^T S_i.
                scales = torch.cat((style.row_weights.new_full((frames,), 4 / frames**2), style.row_weights * (-4 / frames)))
                scales.mul_(weight)
        for item, rows in enumerate(rows_all):
            gradient = grad_rows[item]
            addend = target_rows[item] if target is not None else None
            if style is None:
                torch.sub(rows, addend, out=gradient).mul_(diagonal)
                continue
            if products_form:
                stack = torch.cat((rows, style.rows))  # F and S as rows: one product each way
                products = rows @ stack.T
                own = products[:, :frames]
                squares = products.square().sum(0)  # per column (3x faster than vector_norm(dim=0))
                value = squares[:frames].sum() / frames**2 - 2 / frames * torch.dot(squares[frames:], style.row_weights)
                value = (value + style.norm2).clamp_min(0)
                products.mul_(scales)
                own.diagonal().add_(diagonal)
                if addend is None:
                    torch.mm(products, stack, out=gradient)
                else:
                    torch.addmm(addend, products, stack, beta=-diagonal, out=gradient)
            else:
                difference = torch.addmm(style.gram, rows.T, rows, beta=-1, alpha=1 / frames)
                flat = difference.view(-1)
                value = torch.dot(flat, flat)  # 2-3x faster than vector_norm(...).square() here
                difference.mul_(weight * 4 / frames).diagonal().add_(diagonal)
                if addend is None:
                    torch.mm(rows, difference, out=gradient)
                else:
                    torch.addmm(addend, rows, difference, beta=-diagonal, out=gradient)
            style_values[item] = value
        style_value = (style_values / style.norm2.clamp_min(_EPS)).mean() if style is not None else content_value.new_zeros(())
        weighted = style_weight * style_value + content_weight * content_value
        ctx.save_for_backward(grad_rows)
        ctx.mark_non_differentiable(style_value, content_value)
        return weighted, style_value, content_value

    @staticmethod
    def backward(ctx, grad_weighted, _grad_style, _grad_content):
        (grad_rows,) = ctx.saved_tensors
        return _scaled_gradient(grad_rows, grad_weighted).transpose(-1, -2), None, None, None, None, None


@dataclass
class ContentTargets:
    """The content's feature maps on the content layers, one per batch item (channel)."""

    features: list[torch.Tensor]
    scales: list[torch.Tensor]
    layer_indices: tuple[int, ...]

    @classmethod
    @torch.no_grad()
    def from_log_magnitude(cls, network: FeatureNetwork, log_magnitude: torch.Tensor) -> "ContentTargets":
        maps = network(log_magnitude)
        indices = content_layer_indices(network, len(maps))
        features = [maps[i] for i in indices]
        return cls(
            features=features,
            scales=[f.square().mean().clamp_min(_EPS) for f in features],
            layer_indices=tuple(indices),
        )

    def loss(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Summed relative mean squared error of the content layers."""
        return _feature_losses(maps, None, self, style_weight=0.0, content_weight=1.0)[0]


@dataclass
class LoudnessContour:
    """The content's level over time (log power per frame), kept by the ``envelope`` loss.

    The style's Gram statistics are the same at every frame, so matching them alone fills the
    content's pauses and flattens its dynamics with the style's steady texture: a spoken
    phrase turns into one continuous bowed note. This term keeps each frame's overall level
    where the content had it and leaves the spectrum inside the frame to the style. Its loss
    is the mean squared log-level difference relative to the content's level variance, so its
    weight means the same for any clip. Levels within 30 dB of silence count as that floor,
    so the exact depth of a pause never dominates.
    """

    level: torch.Tensor  # (batch, frames)
    floor: torch.Tensor  # (batch, 1): power 30 dB under the clip's mean frame power
    scale: torch.Tensor  # (batch,): variance of ``level`` over time

    @classmethod
    @torch.no_grad()
    def from_log_magnitude(cls, log_magnitude: torch.Tensor) -> "LoudnessContour":
        """The contour of a content log-magnitude [shape=(batch, freq, frames)]."""
        power = torch.expm1(log_magnitude.clamp_min(0)).square().mean(-2)
        floor = 1e-3 * power.mean(-1, keepdim=True) + _EPS
        level = torch.log(power + floor)
        return cls(level=level, floor=floor, scale=level.var(-1, unbiased=False).clamp_min(1e-6))

    def loss(self, log_magnitude: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the relative squared level difference per frame."""
        return self.loss_of_magnitude(magnitude_of(log_magnitude))

    def loss_of_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """:meth:`loss` from the linear magnitude ``expm1(max(X, 0))`` (see :func:`magnitude_of`)."""
        return _ContourDistance.apply(magnitude, self)


class _ContourDistance(torch.autograd.Function):
    """:meth:`LoudnessContour.loss_of_magnitude` with its gradient computed in the forward pass.

    With ``p_t = mean_f e^2`` of the magnitude ``e`` and ``d_t = log(p_t + floor) - level_t``,
    the loss is ``mean_b mean_t d^2 / scale`` and its gradient
    ``e * 4 d_t / (B T F scale (p_t + floor))``: two passes over the spectrogram where
    autograd took a dozen.
    """

    @staticmethod
    def forward(ctx, magnitude: torch.Tensor, contour: "LoudnessContour") -> torch.Tensor:
        batch, n_freq, frames = magnitude.shape
        # square().sum() ran in half the time of vector_norm(dim=-2).square() on a 10 s clip.
        power = magnitude.square().sum(-2).div_(n_freq) + contour.floor
        difference = torch.log(power) - contour.level
        value = (difference.square().mean(-1) / contour.scale).mean()
        coefficient = difference.mul_(4 / (batch * frames * n_freq)).div_(power * contour.scale[:, None])
        ctx.save_for_backward(magnitude * coefficient[:, None, :])
        return value

    @staticmethod
    def backward(ctx, grad_value: torch.Tensor):
        (gradient,) = ctx.saved_tensors
        return _scaled_gradient(gradient, grad_value), None


class _NonNegative(torch.autograd.Function):
    """``clamp_min(X, 0)`` whose backward is one pass (autograd's compares, then selects)."""

    @staticmethod
    def forward(ctx, log_magnitude: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(log_magnitude)
        return log_magnitude.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (log_magnitude,) = ctx.saved_tensors
        # Kept where X > -tiny, i.e. X >= 0 for every normal float: at 0 the clamp passes it.
        return torch.ops.aten.threshold_backward(grad, log_magnitude, -torch.finfo(grad.dtype).tiny)


class Objective:
    """``content_weight * content + envelope_weight * envelope + style_weight * style + texture_weight * texture``.

    Parameters
    ----------
    network : FeatureNetwork
    style : StyleStatistics
    content : ContentTargets, optional
        None for texture synthesis (style only).
    content_weight, style_weight : float
        Non-negative weights of the relative losses.
    texture : TextureStatistics, optional
        Band-envelope statistics of the style (see :mod:`audiostyle.texture`).
    texture_weight : float
        Weight of the texture loss.
    envelope : LoudnessContour, optional
        The content's level per frame, kept with ``envelope_weight``.
    envelope_weight : float
        Weight of the loudness-contour loss.
    """

    def __init__(
        self,
        network: FeatureNetwork,
        style: StyleStatistics,
        content: ContentTargets | None,
        *,
        content_weight: float,
        style_weight: float,
        texture: "TextureStatistics | None" = None,
        texture_weight: float = 0.0,
        envelope: LoudnessContour | None = None,
        envelope_weight: float = 0.0,
    ) -> None:
        self.network = network
        self.envelope = envelope
        self.envelope_weight = float(envelope_weight)
        self.texture = texture
        self.texture_weight = float(texture_weight)
        self.style = style
        self.content = content
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        # ((front-end bands, texture bands) it was stacked from, the stacked rows); see _band_rows.
        self._stacked: tuple[tuple[torch.Tensor | None, torch.Tensor | None], torch.Tensor | None] | None = None

    @property
    def _front_end(self) -> BandFrontEnd | None:
        return band_front_end(self.network)

    @property
    def _with_texture(self) -> bool:
        return self.texture is not None and self.texture_weight > 0

    @property
    def _with_envelope(self) -> bool:
        return self.envelope is not None and self.envelope_weight > 0

    def _band_rows(self) -> torch.Tensor | None:
        """The network's input bands, then the texture's when that term is on: one product's rows.

        Every magnitude-domain term reads one expanded magnitude, and the front end and texture
        bands share one product (see :func:`band_views`), rather than an expansion and a product
        each. Stacked on first use, and again only when the network, the texture or whether it
        is on changes.
        """
        front_end = self._front_end
        sources = (front_end.input_bands if front_end is not None else None, self.texture.filters if self._with_texture else None)
        if self._stacked is None or any(old is not new for old, new in zip(self._stacked[0], sources)):
            rows = [source for source in sources if source is not None]
            stacked = torch.cat([row.to(rows[0]) for row in rows]).contiguous() if rows else None
            self._stacked = (sources, stacked)
        return self._stacked[1]

    def __call__(self, log_magnitude: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss (differentiable) and its parts, detached (``content``, ``style``).

        Negative entries count as 0 (a log1p magnitude is >= 0). Clamping here instead of
        projecting the solver's iterate keeps L-BFGS's curvature pairs consistent.
        """
        front_end, bands = self._front_end, self._band_rows()
        magnitude = levels = band_magnitude = None
        if bands is not None or self._with_envelope:
            magnitude = magnitude_of(log_magnitude)  # clamps negative entries too
        if bands is not None:
            log_rows = front_end.input_bands.shape[0] if front_end is not None else 0
            levels, band_magnitude = band_views(magnitude, bands.to(log_magnitude), log_rows)
        if front_end is not None:
            maps = front_end.features(levels)
        else:
            maps = self.network(_NonNegative.apply(log_magnitude))
        with_content = self.content is not None and self.content_weight > 0
        total, style_loss, content_loss = _feature_losses(
            maps,
            self.style,
            self.content if with_content else None,
            style_weight=self.style_weight,
            content_weight=self.content_weight,
        )
        parts = {"style": style_loss}
        if self._with_texture:
            texture_loss = self.texture.loss_of_bands(band_magnitude)
            total = total + self.texture_weight * texture_loss
            parts["texture"] = texture_loss.detach()
        if with_content:
            parts["content"] = content_loss
        if self._with_envelope:
            envelope_loss = self.envelope.loss_of_magnitude(magnitude)
            total = total + self.envelope_weight * envelope_loss
            parts["envelope"] = envelope_loss.detach()
        return total, parts
