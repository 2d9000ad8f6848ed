"""Seamless loops: a circular STFT and Griffin-Lim on it.

A loop of ``length`` samples is treated as one period of a periodic signal: frame ``t`` is
centred on sample ``t * hop_length`` and wraps around the ends, so the signal has exactly
``length // hop_length`` frames and nothing marks where it starts. Reconstructing with this
transform (and optimising with a circularly padded network) gives a waveform whose end runs
into its start as smoothly as any two neighbouring samples inside it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..validation import is_int, validate_stft_params
from .phase import check_griffin_lim_settings, iterate_phase, random_phase
from .stft import hann_window

__all__ = ["loop_frames", "circular_stft", "circular_istft", "circular_griffin_lim", "resample_loop"]


def loop_frames(length: int, hop_length: int) -> int:
    """Frames of a loop of ``length`` samples (a multiple of ``hop_length``)."""
    if not is_int(length) or length < hop_length or length % hop_length:
        raise ConfigError(f"loop length={length!r} must be a positive multiple of hop_length={hop_length}")
    return length // hop_length


def _frame_indices(frames: int, n_fft: int, hop_length: int, length: int, device: torch.device) -> torch.Tensor:
    """(frames, n_fft) sample indices of each frame, wrapped around the period."""
    starts = torch.arange(frames, device=device) * hop_length - n_fft // 2
    return (starts[:, None] + torch.arange(n_fft, device=device)[None, :]) % length


def circular_stft(waveform: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT of one period [shape=(..., length)] -> [shape=(..., n_fft // 2 + 1, length // hop)].

    Hann window; frame ``t`` is centred on sample ``t * hop_length`` and wraps around.
    """
    validate_stft_params(n_fft, hop_length)
    length = waveform.shape[-1]
    frames = loop_frames(int(length), hop_length)
    index = _frame_indices(frames, n_fft, hop_length, length, waveform.device)
    window = hann_window(n_fft, waveform.device, waveform.dtype)
    segments = waveform[..., index] * window  # (..., frames, n_fft)
    return torch.fft.rfft(segments, n=n_fft).transpose(-1, -2)


def circular_istft(spec: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """Least-squares inverse of :func:`circular_stft` [shape=(..., freq, frames)] -> (..., frames * hop)."""
    validate_stft_params(n_fft, hop_length)
    frames = spec.shape[-1]
    length = frames * hop_length
    real_dtype = spec.real.dtype
    window = hann_window(n_fft, spec.device, real_dtype)
    segments = torch.fft.irfft(spec.transpose(-1, -2), n=n_fft) * window  # (..., frames, n_fft)
    index = _frame_indices(frames, n_fft, hop_length, length, spec.device).reshape(-1)
    lead = segments.shape[:-2]
    flat = segments.reshape(-1, frames * n_fft)
    waveform = torch.zeros(flat.shape[0], length, dtype=real_dtype, device=spec.device)
    waveform.index_add_(1, index, flat)
    envelope = torch.zeros(length, dtype=real_dtype, device=spec.device)
    envelope.index_add_(0, index, window.square().repeat(frames))
    return (waveform / envelope.clamp_min(1e-8)).reshape(*lead, length)


def circular_griffin_lim(
    magnitude: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    n_iter: int = 32,
    momentum: float = 0.99,
    seed: int = 0,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim on the circular STFT: one seamless period of a waveform.

    Parameters
    ----------
    magnitude : torch.Tensor [shape=(..., n_fft // 2 + 1, frames)]
        Non-negative linear magnitude of one period.
    n_fft, hop_length : int
    n_iter : int
        Iterations (>= 0).
    momentum : float
        In [0, 1.5), as in :func:`audiostyle.dsp.phase.griffin_lim`.
    seed : int
        Seed of the random initial phase.
    callback : callable, optional
        ``callback(iteration, n_iter)`` after each iteration.

    Returns
    -------
    torch.Tensor [shape=(..., frames * hop_length)]
        One period; tiled end to end it has no seam.

    Examples
    --------
    >>> import torch
    >>> mag = torch.rand(257, 40)
    >>> circular_griffin_lim(mag, n_fft=512, hop_length=128, n_iter=2).shape
    torch.Size([5120])
    """
    check_griffin_lim_settings(magnitude, n_fft=n_fft, hop_length=hop_length, n_iter=n_iter, momentum=momentum)
    phase = iterate_phase(
        magnitude,
        random_phase(magnitude, seed),
        lambda spec: circular_stft(circular_istft(spec, n_fft=n_fft, hop_length=hop_length), n_fft=n_fft, hop_length=hop_length),
        n_iter=n_iter,
        momentum=momentum,
        callback=callback,
    )
    return circular_istft(magnitude * phase, n_fft=n_fft, hop_length=hop_length)


def resample_loop(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample one period of a loop so that it still loops: band-limited and periodic.

    The period's spectrum is cut or zero-padded (an exact resampler for periodic signals),
    so the result has ``round(samples * target_sr / orig_sr)`` samples and its end runs
    into its start; where that rounding changes the ratio, pitch moves by under a sample
    per period.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)]
        One period at ``orig_sr``.
    orig_sr, target_sr : int
        Rates in Hz.

    Returns
    -------
    np.ndarray [shape=(channels, round(samples * target_sr / orig_sr)), dtype=float32]

    Examples
    --------
    >>> resample_loop(np.zeros((2, 1000), np.float32), 22050, 44100).shape
    (2, 2000)
    """
    samples = audio.shape[-1]
    length = max(1, round(samples * target_sr / orig_sr))
    if length == samples:
        return np.asarray(audio, dtype=np.float32)
    spectrum = torch.fft.rfft(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), dim=-1)
    keep = min(spectrum.shape[-1], length // 2 + 1)
    resized = torch.zeros(*spectrum.shape[:-1], length // 2 + 1, dtype=spectrum.dtype)
    resized[..., :keep] = spectrum[..., :keep]
    return (torch.fft.irfft(resized, n=length, dim=-1) * (length / samples)).numpy().astype(np.float32)
