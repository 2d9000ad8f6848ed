"""The onset contour: when the content's notes start, kept while the spectrum takes the style."""

from __future__ import annotations

import torch

from ..dsp.stft import magnitude_of
from .features import EPS

__all__ = ["OnsetContour", "onset_strength"]

#: Band magnitudes this far under the content's mean band magnitude count as silence
#: (-40 dB), so a rise out of a pause's noise floor is no onset.
SILENCE_FLOOR = 1e-2


def onset_strength(band_magnitude: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Spectral flux: the mean over bands of each band's rise in log level [shape=(batch, frames - 1)].

    Parameters
    ----------
    band_magnitude : torch.Tensor [shape=(batch, bands, frames)]
    floor : torch.Tensor [shape=(batch, 1, 1)] or float
        Added before the log.
    """
    levels = torch.log(band_magnitude + floor)
    return torch.relu(levels[..., 1:] - levels[..., :-1]).mean(-2)


class OnsetContour(torch.nn.Module):
    """The content's onset strength over time, kept by the ``onset`` loss.

    The envelope and the loudness contour say how loud each frame is, not where a note
    begins: a slow swell and a struck note can share a level curve. Spectral flux (the rise
    of each band's log level from one frame to the next, summed over bands) peaks at onsets
    whatever the instrument, so keeping the content's flux keeps its rhythm while the style
    changes the spectrum. The loss is the mean squared flux difference relative to the
    content flux's variance, so its weight means the same for any clip.

    Parameters
    ----------
    bands : torch.Tensor [shape=(bands, n_freq)]
        Band filters over the linear bins (e.g. :func:`audiostyle.objective.texture.band_filters`).
    target : torch.Tensor [shape=(batch, frames - 1)]
    floor : torch.Tensor [shape=(batch, 1, 1)]
    scale : torch.Tensor [shape=(batch,)]
    """

    bands: torch.Tensor
    target: torch.Tensor
    floor: torch.Tensor
    scale: torch.Tensor

    def __init__(self, bands: torch.Tensor, target: torch.Tensor, floor: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        for name, tensor in (("bands", bands), ("target", target), ("floor", floor), ("scale", scale)):
            self.register_buffer(name, tensor)

    @classmethod
    @torch.no_grad()
    def from_log_magnitude(cls, log_magnitude: torch.Tensor, bands: torch.Tensor) -> OnsetContour:
        """The contour of a content ``log1p`` magnitude [shape=(batch, n_freq, frames)]."""
        bands = bands.to(log_magnitude)
        band_magnitude = bands @ magnitude_of(log_magnitude)
        floor = SILENCE_FLOOR * band_magnitude.mean((-2, -1), keepdim=True) + EPS
        target = onset_strength(band_magnitude, floor)
        return cls(bands, target, floor, target.var(-1, unbiased=False).clamp_min(1e-6))

    def loss_of_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the relative squared flux difference, from the linear magnitude."""
        flux = onset_strength(self.bands.to(magnitude) @ magnitude, self.floor)
        return ((flux - self.target).square().mean(-1) / self.scale).mean()
