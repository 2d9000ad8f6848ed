"""The loudness contour: the content's level over time, kept while the style moves the spectrum."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..dsp.stft import linear_magnitude, magnitude_of
from .features import EPS, scaled_gradient

__all__ = ["LoudnessContour"]


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
    def from_log_magnitude(cls, log_magnitude: torch.Tensor) -> LoudnessContour:
        """The contour of a content log-magnitude [shape=(batch, freq, frames)]."""
        power = linear_magnitude(log_magnitude).square().mean(-2)
        floor = 1e-3 * power.mean(-1, keepdim=True) + EPS
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
    def forward(ctx, magnitude: torch.Tensor, contour: LoudnessContour) -> torch.Tensor:
        batch, n_freq, frames = magnitude.shape
        # square().sum() rather than vector_norm(dim=-2).square(): one reduction, no sqrt.
        power = magnitude.square().sum(-2).div_(n_freq) + contour.floor
        difference = torch.log(power) - contour.level
        value = (difference.square().mean(-1) / contour.scale).mean()
        coefficient = difference.mul_(4 / (batch * frames * n_freq)).div_(power * contour.scale[:, None])
        ctx.save_for_backward(magnitude * coefficient[:, None, :])
        return value

    @staticmethod
    def backward(ctx, grad_value: torch.Tensor):
        (gradient,) = ctx.saved_tensors
        return scaled_gradient(gradient, grad_value), None
