"""Band filters over STFT bins: Slaney mel filterbanks and band views of a magnitude."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["band_views", "mel_filters"]


def band_views(
    magnitude: torch.Tensor, bands: torch.Tensor, log_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two band views of a magnitude in one matrix product: ``bands @ magnitude``, split.

    Parameters
    ----------
    magnitude : torch.Tensor [shape=(batch, n_freq, frames)]
        Linear magnitude, e.g. from :func:`magnitude_of`.
    bands : torch.Tensor [shape=(rows, n_freq)]
        Band weights; the first ``log_rows`` rows feed the first view.
    log_rows : int
        How many rows are compressed with ``log1p``.

    Returns
    -------
    levels : torch.Tensor [shape=(batch, frames, log_rows)]
        ``log1p`` of the first rows' band magnitudes, frames first (a feature network's layout).
    linear : torch.Tensor [shape=(batch, rows - log_rows, frames)]
        The other rows' band magnitudes.

    Notes
    -----
    One product for both views (forward and backward) because a thin band matrix alone runs
    far below the machine's matrix-product rate.
    """
    return _BandViews.apply(magnitude, bands, log_rows)


class _BandViews(torch.autograd.Function):
    @staticmethod
    def forward(ctx, magnitude: torch.Tensor, bands: torch.Tensor, log_rows: int):
        out = magnitude.new_empty(magnitude.shape[0], magnitude.shape[-1], bands.shape[0])
        for item, target in zip(magnitude, out):
            torch.mm(item.T, bands.T, out=target)
        levels = out[..., :log_rows].log1p_()
        ctx.log_rows = log_rows
        ctx.save_for_backward(bands, out)
        return levels, out[..., log_rows:].transpose(1, 2)

    @staticmethod
    def backward(ctx, grad_levels: torch.Tensor | None, grad_linear: torch.Tensor | None):
        bands, out = ctx.saved_tensors
        log_rows = ctx.log_rows
        grad = torch.empty_like(out)
        if grad_levels is None:
            grad[..., :log_rows].zero_()
        else:
            # d log1p(u) / du = 1 / (1 + u) = exp(-levels)
            torch.mul(grad_levels, torch.exp(-out[..., :log_rows]), out=grad[..., :log_rows])
        if grad_linear is None:
            grad[..., log_rows:].zero_()
        else:
            grad[..., log_rows:] = grad_linear.transpose(1, 2)
        grad_magnitude = grad.new_empty(grad.shape[0], bands.shape[1], grad.shape[1])
        for item, target in zip(grad, grad_magnitude):
            torch.mm(bands.T, item.T, out=target)
        return grad_magnitude, None, None


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (as librosa's default)."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    linear = frequencies / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(frequencies, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(frequencies >= 1000.0, log_part, linear)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    return np.where(mels >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0)), mels * (200.0 / 3))


def mel_filters(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    *,
    fmin: float = 0.0,
    fmax: float | None = None,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filterbank [shape=(n_mels, n_fft // 2 + 1)], float32.

    The same filters as ``librosa.filters.mel`` (Slaney's mel scale), computed here because
    importing librosa's filter module loads numba and scipy in every process.

    Parameters
    ----------
    sample_rate, n_fft : int
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Band edges in Hz (``fmax`` defaults to ``sample_rate / 2``); bands above the Nyquist
        frequency come out empty.
    norm : {"slaney", None}
        ``"slaney"`` divides each triangle by its width in Hz (constant energy per band);
        None keeps peaks at 1.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, np.newaxis] - bins[np.newaxis, :]
    lower = -ramps[:-2] / widths[:-1, np.newaxis]
    upper = ramps[2:] / widths[1:, np.newaxis]
    filters = np.maximum(0, np.minimum(lower, upper))
    if norm == "slaney":
        filters *= (2.0 / (edges[2:] - edges[:-2]))[:, np.newaxis]
    elif norm is not None:
        raise ConfigError(f"norm={norm!r} must be 'slaney' or None")
    return filters.astype(np.float32)
