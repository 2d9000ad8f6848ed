"""Griffin-Lim phase reconstruction: a waveform whose STFT magnitude approximates a target."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError
from ..validation import is_int, positive_int, validate_stft_params
from .stft import istft, stft

__all__ = ["griffin_lim"]


def griffin_lim(
    magnitude: torch.Tensor,
    *,
    n_fft: int | None = None,
    hop_length: int | None = None,
    length: int | None = None,
    n_iter: int = 32,
    momentum: float = 0.99,
    init_phase: torch.Tensor | None = None,
    seed: int = 0,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Reconstruct a waveform from an STFT magnitude with the fast Griffin-Lim algorithm.

    Alternates projections between the consistent spectrograms (STFT of some signal) and the
    spectrograms with the target magnitude, accelerated by momentum as in Perraudin, Balazs &
    Sondergaard (2013), "A fast Griffin-Lim algorithm". ``momentum=0`` is the classic
    algorithm of Griffin & Lim (1984).

    Parameters
    ----------
    magnitude : torch.Tensor [shape=(..., n_fft // 2 + 1, frames)]
        Non-negative linear magnitude; leading dimensions are a batch.
    n_fft : int, optional
        FFT size the magnitude was made with; default ``2 * (n_freq - 1)``, as librosa's.
    hop_length : int, optional
        Hop in samples; default ``n_fft // 4``, as librosa's.
    length : int, optional
        Length of the returned waveform in samples; default ``hop_length * (frames - 1)``,
        the length a centred STFT of that many frames covers.
    n_iter : int
        Number of iterations (>= 0; 0 returns the initial phase's inverse).
    momentum : float
        In [0, 1.5); 0.99 converges much faster than 0 for the same ``n_iter``.
    init_phase : torch.Tensor, optional [shape=magnitude.shape, complex]
        Starting phase (unit modulus), e.g. the content's. Default: uniform random phase
        from ``seed``.
    seed : int
        Seed of the random initial phase.
    callback : callable, optional
        Called as ``callback(iteration, n_iter)`` after each iteration.

    Returns
    -------
    torch.Tensor [shape=(..., length)]
        The waveform, on the magnitude's device.

    Raises
    ------
    ConfigError
        Bad iteration count, momentum, or phase shape.

    Examples
    --------
    >>> import torch
    >>> from audiostyle.dsp.stft import stft
    >>> wave = torch.sin(torch.arange(22050) * 0.05)
    >>> mag = stft(wave, n_fft=1024, hop_length=256).abs()
    >>> griffin_lim(mag, n_fft=1024, hop_length=256, length=22050).shape
    torch.Size([22050])
    >>> griffin_lim(mag).shape  # n_fft=1024 from the bins, hop 256, 87 frames
    torch.Size([22016])
    """
    magnitude = _real_magnitude(magnitude)
    if magnitude.ndim < 2:
        raise ConfigError(f"magnitude has shape {tuple(magnitude.shape)}; expected (..., n_fft // 2 + 1, frames)")
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback={callback!r:.40} must be a callable or None")
    if not is_int(seed) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed={seed!r:.40} must be an integer in [0, 2**63)")
    n_fft = 2 * (magnitude.shape[-2] - 1) if n_fft is None else n_fft
    hop_length = n_fft // 4 if hop_length is None else hop_length
    length = hop_length * (magnitude.shape[-1] - 1) if length is None else length
    check_griffin_lim_settings(magnitude, n_fft=n_fft, hop_length=hop_length, n_iter=n_iter, momentum=momentum)
    length = positive_int("length", length)
    if magnitude.shape[-1] != 1 + length // hop_length:
        raise ConfigError(
            f"length={length} gives {1 + length // hop_length} frames at hop_length={hop_length}, "
            f"but the magnitude has {magnitude.shape[-1]}"
        )
    if init_phase is None:
        phase = random_phase(magnitude, seed)
    else:
        if init_phase.shape != magnitude.shape:
            raise ConfigError(
                f"init_phase shape {tuple(init_phase.shape)} must equal magnitude shape "
                f"{tuple(magnitude.shape)}"
            )
        phase = init_phase.to(magnitude.device)

    phase = iterate_phase(
        magnitude,
        phase,
        lambda spec: stft(
            istft(spec, n_fft=n_fft, hop_length=hop_length, length=length), n_fft=n_fft, hop_length=hop_length
        ),
        n_iter=n_iter,
        momentum=momentum,
        callback=callback,
    )
    return istft(magnitude * phase, n_fft=n_fft, hop_length=hop_length, length=length)


def _real_magnitude(magnitude: object) -> torch.Tensor:
    """``magnitude`` as a finite, non-negative floating-point tensor (a numpy array or ints are taken)."""
    try:
        tensor = torch.as_tensor(magnitude)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"magnitude must be a real tensor or array; got {type(magnitude).__name__}") from None
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise ConfigError(f"magnitude must be real and non-negative (take .abs() of a spectrum); got {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    if not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ConfigError("magnitude must be finite and non-negative (it holds NaN, Inf or negative values)")
    return tensor


def check_griffin_lim_settings(
    magnitude: torch.Tensor, *, n_fft: int, hop_length: int, n_iter: int, momentum: float
) -> None:
    """Raise ConfigError unless the settings shared by every Griffin-Lim variant are valid."""
    validate_stft_params(n_fft, hop_length)
    if not is_int(n_iter) or n_iter < 0:
        raise ConfigError(f"n_iter={n_iter!r} must be an integer >= 0")
    if not 0.0 <= momentum < 1.5:
        raise ConfigError(f"momentum={momentum!r} must be in [0, 1.5)")
    if magnitude.shape[-2] != n_fft // 2 + 1:
        raise ConfigError(
            f"magnitude has {magnitude.shape[-2]} frequency bins; n_fft={n_fft} needs {n_fft // 2 + 1}"
        )


def random_phase(magnitude: torch.Tensor, seed: int) -> torch.Tensor:
    """Seeded uniform random unit-modulus phase shaped like ``magnitude``, on its device."""
    generator = torch.Generator().manual_seed(seed)
    angles = torch.rand(magnitude.shape, generator=generator, dtype=magnitude.dtype)
    return torch.polar(torch.ones_like(angles), 2 * torch.pi * angles).to(magnitude.device)


def iterate_phase(
    magnitude: torch.Tensor,
    phase: torch.Tensor,
    project: Callable[[torch.Tensor], torch.Tensor],
    *,
    n_iter: int,
    momentum: float,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim iterations; ``project(spec)`` is STFT(iSTFT(spec)) of the variant used."""
    previous = torch.zeros((), dtype=phase.dtype, device=magnitude.device)
    # Fast Griffin-Lim's extrapolation factor, alpha / (1 + alpha) in Perraudin et al.
    blend = momentum / (1 + momentum)
    for iteration in range(n_iter):
        rebuilt = project(magnitude * phase)
        phase = rebuilt - blend * previous if momentum else rebuilt
        phase = phase / phase.abs().clamp_min(1e-16)
        previous = rebuilt
        if callback is not None:
            callback(iteration + 1, n_iter)
    return phase
