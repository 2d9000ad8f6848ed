"""A model's frequency grid at any sample rate: the STFT to use, and bins to and from the grid.

A model is trained on spectra of ``n_fft`` bins at its working rate. At another rate the same
window *duration* is used (``n_fft`` and hop scaled with the rate), so a bin spans the same
Hertz and frames come at the same rate; magnitudes are scaled by the window ratio so a sound
has the same grid magnitude at every rate, and the content is never resampled. Bins above the
grid's top frequency (a 44.1 kHz content's band above 11.025 kHz) take the mean gain of the
grid's top octave, so the full band follows the model's change of the highest band it knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RateGrid"]


@dataclass(frozen=True)
class RateGrid:
    """The STFT and grid mapping of a model at ``sample_rate``.

    Attributes
    ----------
    sample_rate : int
        The audio's rate.
    n_fft, hop_length : int
        The STFT at that rate (the model's window duration and hop).
    scale : float
        Magnitude factor that brings this STFT's magnitudes to the model's.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    scale: float
    grid_rate: int
    grid_n_fft: int

    @classmethod
    def at(cls, sample_rate: int, *, grid_rate: int, grid_n_fft: int, grid_hop: int) -> RateGrid:
        hop = max(1, round(grid_hop * sample_rate / grid_rate))
        n_fft = max(2, round(grid_n_fft / grid_hop) * hop)
        return cls(sample_rate, n_fft, hop, grid_n_fft / n_fft, grid_rate, grid_n_fft)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def grid_bins(self) -> int:
        return self.grid_n_fft // 2 + 1

    def _positions(self, frequencies: torch.Tensor, n_bins: int, n_fft: int, rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        position = frequencies * (n_fft / rate)
        low = position.floor().clamp(0, n_bins - 1)
        return low.long(), (position - low).clamp(0, 1)

    def to_grid_weights(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(low, high, weight)`` indices into this STFT's bins for every grid bin (and a validity mask in weight)."""
        grid_hz = torch.arange(self.grid_bins, device=device, dtype=torch.float64) * (self.grid_rate / self.grid_n_fft)
        low, frac = self._positions(grid_hz, self.n_bins, self.n_fft, self.sample_rate)
        high = (low + 1).clamp(max=self.n_bins - 1)
        inside = grid_hz <= self.sample_rate / 2
        return low, high, torch.stack((1 - frac, frac)).float() * inside.float()

    def from_grid_weights(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(low, high, weight, above)``: grid indices for every bin here, and the bins above the grid."""
        bin_hz = torch.arange(self.n_bins, device=device, dtype=torch.float64) * (self.sample_rate / self.n_fft)
        low, frac = self._positions(bin_hz, self.grid_bins, self.grid_n_fft, self.grid_rate)
        high = (low + 1).clamp(max=self.grid_bins - 1)
        above = bin_hz > self.grid_rate / 2
        return low, high, torch.stack((1 - frac, frac)).float(), above

    def to_grid(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(..., n_bins, frames) magnitude here -> (..., grid_bins, frames) on the grid (0 above this Nyquist)."""
        if self.n_fft == self.grid_n_fft and self.sample_rate == self.grid_rate:
            return magnitude
        low, high, weight = self.to_grid_weights(magnitude.device)
        scaled = magnitude * self.scale
        return scaled[..., low, :] * weight[0][:, None] + scaled[..., high, :] * weight[1][:, None]

    def reading(self, bands: torch.Tensor) -> torch.Tensor:
        """(rows, grid_bins) weights on the grid -> (rows, n_bins) weights on this STFT's bins.

        ``reading(W) @ magnitude`` equals ``W @ to_grid(magnitude)``, made without the dense
        interpolation matrix.
        """
        if self.n_fft == self.grid_n_fft and self.sample_rate == self.grid_rate:
            return bands
        low, high, weight = self.to_grid_weights(bands.device)
        matrix = bands.new_zeros(bands.shape[0], self.n_bins)
        scaled = bands * self.scale
        matrix.index_add_(1, low, scaled * weight[0])
        matrix.index_add_(1, high, scaled * weight[1])
        return matrix

    def from_grid(self, gains: torch.Tensor) -> torch.Tensor:
        """(..., grid_bins, frames) log-gains -> (..., n_bins, frames) here; above the grid, its top octave's mean."""
        if self.n_fft == self.grid_n_fft and self.sample_rate == self.grid_rate:
            return gains
        low, high, weight, above = self.from_grid_weights(gains.device)
        spread = gains[..., low, :] * weight[0][:, None] + gains[..., high, :] * weight[1][:, None]
        if bool(above.any()):
            top = gains[..., self.grid_bins // 2 :, :].mean(dim=-2, keepdim=True)
            spread = torch.where(above[:, None], top, spread)
        return spread
