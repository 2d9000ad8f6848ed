"""STFT analysis and synthesis: waveform <-> (log-magnitude, phase).

The engine works on ``log1p(|STFT|)`` because it compresses the dynamic range the way hearing
does while staying exactly invertible (``expm1``) and finite at silence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import AudioFileError, ConfigError
from ..validation import validate_stft_params

__all__ = [
    "Spectrogram",
    "analyze",
    "convergence_db",
    "synthesize",
    "stft",
    "istft",
    "log_magnitude",
    "spectral_convergence",
    "expanded_magnitude",
    "hann_window",
    "linear_magnitude",
    "magnitude_of",
]

_window_cache: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}


def hann_window(n_fft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The periodic Hann window every STFT here uses, made once per size, device and dtype."""
    key = (n_fft, device, dtype)
    if key not in _window_cache:
        _window_cache[key] = torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)
    return _window_cache[key]


def stft(waveform: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT of ``waveform`` [shape=(..., samples)] -> [shape=(..., n_fft // 2 + 1, frames)].

    Hann window, centred frames (``frames = 1 + samples // hop_length``), no normalisation,
    so that it matches ``librosa.stft`` with its defaults.
    """
    lead = waveform.shape[:-1]
    flat = waveform.reshape(-1, waveform.shape[-1])
    spec = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        window=hann_window(n_fft, flat.device, flat.dtype),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: torch.Tensor, *, n_fft: int, hop_length: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` [shape=(..., freq, frames)] -> [shape=(..., length)]."""
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, *spec.shape[-2:])
    real_dtype = flat.real.dtype
    wave = torch.istft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        window=hann_window(n_fft, flat.device, real_dtype),
        center=True,
        length=length,
    )
    return wave.reshape(*lead, length)


def log_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    """``log1p`` compression of a non-negative magnitude."""
    return torch.log1p(magnitude.clamp_min(0))


def linear_magnitude(log_magnitude: torch.Tensor) -> torch.Tensor:
    """``expm1(max(X, 0))`` exactly: the linear magnitude a log1p spectrogram stands for.

    See :func:`expanded_magnitude` for a faster approximation inside loss evaluations and
    :func:`magnitude_of` for the differentiable form.
    """
    return torch.expm1(log_magnitude).clamp_min(0)


def expanded_magnitude(log_magnitude: torch.Tensor) -> torch.Tensor:
    """``expm1(max(X, 0))``, the magnitude a log1p spectrogram stands for (not differentiable).

    Computed as ``max(exp(X) - 1, 0)`` because torch's CPU ``exp`` is vectorised and its
    ``expm1`` is not. For ``X >= 0`` the
    difference is at most one rounding of ``exp(X)``, 1.2e-7 in float32, orders of magnitude
    under the floors every consumer adds. See :func:`magnitude_of` for the differentiable form.
    """
    return torch.exp(log_magnitude).sub_(1).clamp_min_(0)


def magnitude_of(log_magnitude: torch.Tensor) -> torch.Tensor:
    """Differentiable :func:`expanded_magnitude`: ``expm1(max(X, 0))``.

    A loss evaluation computes it once and every magnitude-domain term (mel bands, texture
    bands, loudness contour) reads it, so the expansion and its masked gradient are one pass
    each, not one per term. The gradient is ``grad * exp(X)`` where ``X >= 0`` and 0 below;
    at exactly 0 it passes, as ``clamp_min``'s does.
    """
    return _ExpandedMagnitude.apply(log_magnitude)


class _ExpandedMagnitude(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_magnitude: torch.Tensor) -> torch.Tensor:
        magnitude = expanded_magnitude(log_magnitude)
        ctx.save_for_backward(log_magnitude, magnitude)
        return magnitude

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        log_magnitude, magnitude = ctx.saved_tensors
        # exp(X) = magnitude + 1 where X >= 0. Out of place: in place, with grad aliased as a
        # factor, torch takes a slow path.
        scaled = torch.addcmul(grad, grad, magnitude)
        # threshold_backward keeps it where X > -tiny, i.e. X >= 0 for every normal float.
        return torch.ops.aten.threshold_backward(scaled, log_magnitude, -torch.finfo(log_magnitude.dtype).tiny)


@dataclass(frozen=True)
class Spectrogram:
    """A log-magnitude spectrogram with the phase and the facts needed to invert it.

    Attributes
    ----------
    log_magnitude : torch.Tensor [shape=(channels, n_fft // 2 + 1, frames)]
        ``log1p(|STFT|)``.
    phase : torch.Tensor [shape=(channels, n_fft // 2 + 1, frames)]
        Unit-modulus complex phase ``STFT / |STFT|`` (1 where the magnitude is 0).
    sample_rate, n_fft, hop_length, length : int
        Analysis settings and the waveform's length in samples.
    """

    log_magnitude: torch.Tensor
    phase: torch.Tensor
    sample_rate: int
    n_fft: int
    hop_length: int
    length: int

    @property
    def magnitude(self) -> torch.Tensor:
        """Linear magnitude ``expm1(log_magnitude)``."""
        return linear_magnitude(self.log_magnitude)

    def with_log_magnitude(self, log_magnitude: torch.Tensor) -> "Spectrogram":
        """The same analysis with another log-magnitude (shape must match)."""
        if log_magnitude.shape != self.log_magnitude.shape:
            raise ConfigError(
                f"log_magnitude shape {tuple(log_magnitude.shape)} must equal "
                f"{tuple(self.log_magnitude.shape)}"
            )
        return replace(self, log_magnitude=log_magnitude)

    def to(self, device: torch.device | str) -> "Spectrogram":
        """Move the tensors to ``device``."""
        return replace(
            self, log_magnitude=self.log_magnitude.to(device), phase=self.phase.to(device)
        )


# A spectrum bin sums up to n_fft windowed samples, and its square must stay in float32's range.
_MAX_SPECTRUM = 1e18


def analyze(
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    device: torch.device | str | None = None,
) -> Spectrogram:
    """Analyse a waveform into log-magnitude and phase.

    Parameters
    ----------
    waveform : np.ndarray or torch.Tensor [shape=(channels, samples) or (samples,)]
        Float audio.
    sample_rate : int
        Its sample rate in Hz (carried along, not used for the transform).
    n_fft, hop_length : int
        FFT size and hop in samples (``hop_length <= n_fft // 2``).
    device : torch.device or str, optional
        Where the tensors live (default: the waveform's device, CPU for numpy).

    Returns
    -------
    Spectrogram
        ``log_magnitude`` and ``phase`` shaped ``(channels, n_fft // 2 + 1, 1 + samples // hop)``.

    Raises
    ------
    ConfigError
        Bad ``n_fft``/``hop_length``.
    AudioFileError
        Fewer samples than one FFT frame, or non-finite samples.

    Examples
    --------
    >>> import numpy as np
    >>> spec = analyze(np.zeros((1, 22050), np.float32), 22050)
    >>> tuple(spec.log_magnitude.shape)
    (1, 1025, 44)
    """
    validate_stft_params(n_fft, hop_length)
    try:
        wave = torch.as_tensor(np.asarray(waveform) if not torch.is_tensor(waveform) else waveform)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"waveform must be a real array or tensor of samples; got {type(waveform).__name__}") from None
    if wave.is_complex() or wave.dtype == torch.bool:
        raise ConfigError(f"waveform must hold real samples; got {wave.dtype}")
    wave = wave.to(device=device, dtype=torch.float32) if device is not None else wave.float()
    if wave.ndim == 1:
        wave = wave.unsqueeze(0)
    if wave.ndim != 2:
        raise ConfigError(f"waveform must be shaped (channels, samples); got {tuple(wave.shape)}")
    if wave.shape[-1] < n_fft:
        raise AudioFileError(
            "<waveform>",
            f"too short: {wave.shape[-1]} samples, need at least n_fft={n_fft} "
            f"({n_fft / sample_rate:.3f} s at {sample_rate} Hz)",
        )
    if not torch.isfinite(wave).all():
        raise AudioFileError("<waveform>", "contains non-finite samples (NaN or Inf)")
    if float(wave.abs().max()) * n_fft > _MAX_SPECTRUM:
        raise ConfigError(
            f"waveform peaks at {float(wave.abs().max()):.3g}: its float32 spectrum would overflow; scale it down first"
        )
    spec = stft(wave, n_fft=n_fft, hop_length=hop_length)
    magnitude = spec.abs()
    phase = torch.where(magnitude > 0, spec / magnitude.clamp_min(1e-30), torch.ones_like(spec))
    return Spectrogram(
        log_magnitude=log_magnitude(magnitude),
        phase=phase,
        sample_rate=int(sample_rate),
        n_fft=n_fft,
        hop_length=hop_length,
        length=int(wave.shape[-1]),
    )


def synthesize(spectrogram: Spectrogram) -> torch.Tensor:
    """Waveform [shape=(channels, length)] from a spectrogram's magnitude and stored phase.

    See Also
    --------
    audiostyle.dsp.phase.griffin_lim : when the phase does not belong to the magnitude.
    """
    return istft(
        spectrogram.magnitude * spectrogram.phase,
        n_fft=spectrogram.n_fft,
        hop_length=spectrogram.hop_length,
        length=spectrogram.length,
    )


def spectral_convergence(
    waveform: torch.Tensor, magnitude: torch.Tensor, *, n_fft: int, hop_length: int
) -> float:
    """Spectral convergence in dB: ``20 log10(|| |STFT(waveform)| - magnitude || / ||magnitude||)``.

    Lower is better; -35 dB is typical of clean speech re-synthesised by Griffin-Lim, while an
    inconsistent target magnitude stalls much higher.
    """
    return convergence_db(stft(waveform, n_fft=n_fft, hop_length=hop_length).abs(), magnitude)


def convergence_db(rebuilt: torch.Tensor, magnitude: torch.Tensor) -> float:
    """``20 log10(||rebuilt - magnitude|| / ||magnitude||)``: :func:`spectral_convergence` of a
    magnitude already measured, by whichever STFT (plain or circular) made the waveform."""
    error = torch.linalg.vector_norm(rebuilt - magnitude)
    reference = torch.linalg.vector_norm(magnitude).clamp_min(1e-12)
    return float(20 * torch.log10((error / reference).clamp_min(1e-12)))
