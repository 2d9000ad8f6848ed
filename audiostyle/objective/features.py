"""Feature-map losses: Gram matrices, the style and content terms and their hand-written gradient.

Both losses are relative: the content loss is the features' mean squared error divided by the
content features' mean square, the style loss is the squared Frobenius distance of Gram
matrices divided by the target Gram's squared norm. Grams are normalised by frame count.
So the same weights behave alike for a 2 s and a 60 s clip, for 512 or 4096 filters, and for
quiet or loud inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..networks.base import FeatureNetwork, content_layer_indices

if TYPE_CHECKING:
    from .source_filter import FineStructureTargets
    from .style import StyleStatistics

__all__ = ["EPS", "ContentTargets", "LayerStyle", "feature_losses", "gram", "pooled", "scaled_gradient"]

# Keeps relative losses finite when a target is (numerically) all zeros, e.g. silent content.
EPS = 1e-12


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


def pooled(features: torch.Tensor) -> torch.Tensor:
    """(batch, channels, frames) -> (channels, batch * frames): all of a style's channels pooled."""
    return features.transpose(0, 1).reshape(features.shape[1], -1)


class LayerStyle(torch.nn.Module):
    """One style layer's targets, held as buffers so that ``.to(device)`` moves them.

    Attributes
    ----------
    gram : torch.Tensor [shape=(K, K)]
        Blend of the styles' pooled Grams.
    rows : torch.Tensor [shape=(N, K)]
        Every style's pooled feature maps, frames as rows, styles stacked.
    row_weights : torch.Tensor [shape=(N,)]
        Each row's style weight over that style's frame count.
    norm2 : torch.Tensor [shape=()]
        ``||gram||^2``.
    """

    gram: torch.Tensor
    rows: torch.Tensor
    row_weights: torch.Tensor
    norm2: torch.Tensor

    def __init__(self, gram: torch.Tensor, rows: torch.Tensor, row_weights: torch.Tensor, norm2: torch.Tensor) -> None:
        super().__init__()
        for name, tensor in (("gram", gram), ("rows", rows), ("row_weights", row_weights), ("norm2", norm2)):
            self.register_buffer(name, tensor)


def feature_losses(
    maps: Sequence[torch.Tensor],
    style: StyleStatistics | None,
    content: ContentTargets | None,
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


def scaled_gradient(gradient: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
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
            weight = style_weight / (batch * style.norm2.clamp_min(EPS))
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
                squares = products.square().sum(0)  # per column; no sqrt to undo, as vector_norm has
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
                value = torch.dot(flat, flat)  # one fused pass, no sqrt to undo
                difference.mul_(weight * 4 / frames).diagonal().add_(diagonal)
                if addend is None:
                    torch.mm(rows, difference, out=gradient)
                else:
                    torch.addmm(addend, rows, difference, beta=-diagonal, out=gradient)
            style_values[item] = value
        style_value = (style_values / style.norm2.clamp_min(EPS)).mean() if style is not None else content_value.new_zeros(())
        weighted = style_weight * style_value + content_weight * content_value
        ctx.save_for_backward(grad_rows)
        ctx.mark_non_differentiable(style_value, content_value)
        return weighted, style_value, content_value

    @staticmethod
    def backward(ctx, grad_weighted, _grad_style, _grad_content):
        (grad_rows,) = ctx.saved_tensors
        return scaled_gradient(grad_rows, grad_weighted).transpose(-1, -2), None, None, None, None, None


@dataclass
class ContentTargets:
    """The content's feature maps on the content layers, one per batch item (channel)."""

    features: list[torch.Tensor]
    scales: list[torch.Tensor]
    layer_indices: tuple[int, ...]

    @classmethod
    @torch.no_grad()
    def from_log_magnitude(
        cls, network: FeatureNetwork, log_magnitude: torch.Tensor
    ) -> ContentTargets | FineStructureTargets:
        """The content's targets under ``network``.

        A network that defines its own content term (``content_targets(log_magnitude)``, as
        :class:`~audiostyle.objective.source_filter.EnvelopeNetwork` does) gives that instead.
        """
        own_targets = getattr(network, "content_targets", None)
        if callable(own_targets):
            return own_targets(log_magnitude)
        maps = network(log_magnitude)
        indices = content_layer_indices(network, len(maps))
        features = [maps[i] for i in indices]
        return cls(
            features=features,
            scales=[f.square().mean().clamp_min(EPS) for f in features],
            layer_indices=tuple(indices),
        )

    def loss(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Summed relative mean squared error of the content layers."""
        return feature_losses(maps, None, self, style_weight=0.0, content_weight=1.0)[0]
