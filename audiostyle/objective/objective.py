"""The objective: the weighted sum of the style, content, texture and loudness-contour terms."""

from __future__ import annotations

import torch

from ..dsp.mel import band_views
from ..dsp.stft import magnitude_of
from ..networks.base import BandFrontEnd, FeatureNetwork, band_front_end
from .contour import LoudnessContour
from .features import ContentTargets, feature_losses
from .onsets import OnsetContour
from .source_filter import (
    EnvelopeNetwork,
    FineStructureTargets,
    envelope_band_magnitude,
)
from .style import StyleStatistics
from .texture import TextureStatistics

__all__ = ["Objective"]


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
    content : ContentTargets or FineStructureTargets, optional
        None for texture synthesis (style only). With an
        :class:`~audiostyle.objective.source_filter.EnvelopeNetwork` the style terms read the
        spectral envelope and the content is its :class:`FineStructureTargets`.
    content_weight, style_weight : float
        Non-negative weights of the relative losses.
    texture : TextureStatistics, optional
        Band-envelope statistics of the style (see :mod:`audiostyle.objective.texture`).
    texture_weight : float
        Weight of the texture loss.
    envelope : LoudnessContour, optional
        The content's level per frame, kept with ``envelope_weight``.
    envelope_weight : float
        Weight of the loudness-contour loss.
    onsets : OnsetContour, optional
        The content's onset strength per frame, kept with ``onset_weight``.
    onset_weight : float
        Weight of the onset-contour loss.
    """

    def __init__(
        self,
        network: FeatureNetwork,
        style: StyleStatistics,
        content: ContentTargets | FineStructureTargets | None,
        *,
        content_weight: float,
        style_weight: float,
        texture: TextureStatistics | None = None,
        texture_weight: float = 0.0,
        envelope: LoudnessContour | None = None,
        envelope_weight: float = 0.0,
        onsets: OnsetContour | None = None,
        onset_weight: float = 0.0,
    ) -> None:
        self.network = network
        self.envelope = envelope
        self.envelope_weight = float(envelope_weight)
        self.onsets = onsets
        self.onset_weight = float(onset_weight)
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

    @property
    def _with_onsets(self) -> bool:
        return self.onsets is not None and self.onset_weight > 0

    def _contour_terms(
        self, magnitude: torch.Tensor, total: torch.Tensor, parts: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """``total`` plus the loudness and onset contours of the linear magnitude (each when on); parts recorded."""
        if self._with_envelope:
            envelope_loss = self.envelope.loss_of_magnitude(magnitude)
            total = total + self.envelope_weight * envelope_loss
            parts["envelope"] = envelope_loss.detach()
        if self._with_onsets:
            onset_loss = self.onsets.loss_of_magnitude(magnitude)
            total = total + self.onset_weight * onset_loss
            parts["onsets"] = onset_loss.detach()
        return total

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
        if isinstance(self.network, EnvelopeNetwork):
            return self._source_filter_terms(log_magnitude)
        front_end, bands = self._front_end, self._band_rows()
        magnitude = levels = band_magnitude = None
        if bands is not None or self._with_envelope or self._with_onsets:
            magnitude = magnitude_of(log_magnitude)  # clamps negative entries too
        if bands is not None:
            log_rows = front_end.input_bands.shape[0] if front_end is not None else 0
            levels, band_magnitude = band_views(magnitude, bands.to(log_magnitude), log_rows)
        if front_end is not None:
            maps = front_end.features(levels)
        else:
            maps = self.network(_NonNegative.apply(log_magnitude))
        with_content = self.content is not None and self.content_weight > 0
        total, style_loss, content_loss = feature_losses(
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
        return self._contour_terms(magnitude, total, parts), parts

    def _source_filter_terms(self, log_magnitude: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`__call__` in the source-filter view: style and texture on the envelope, content on the fine structure."""
        network: EnvelopeNetwork = self.network  # type: ignore[assignment]
        split = network.split
        magnitude = magnitude_of(log_magnitude)
        log_spectrum = split.log_spectrum(magnitude)
        coefficients = split.coefficients(log_spectrum)
        total, style_loss, _ = feature_losses(
            network.features_of(coefficients), self.style, None, style_weight=self.style_weight, content_weight=0.0
        )
        parts = {"style": style_loss}
        envelope = split.envelope(coefficients)  # once, for the texture and the fine structure
        if self._with_texture:
            texture_loss = self.texture.loss_of_bands(envelope_band_magnitude(envelope, self.texture.filters))
            total = total + self.texture_weight * texture_loss
            parts["texture"] = texture_loss.detach()
        fine = split.fine(log_spectrum, envelope)
        statistics = network.fine_statistics
        if statistics is not None and statistics.weight > 0:
            fine_loss = statistics.loss(fine)
            total = total + statistics.weight * fine_loss
            parts["fine"] = fine_loss.detach()
        if self.content is not None and self.content_weight > 0:
            content_loss = self.content.loss(fine)
            total = total + self.content_weight * content_loss
            parts["content"] = content_loss.detach()
        return self._contour_terms(magnitude, total, parts), parts
