"""Full-band output: the band above the working rate's Nyquist frequency, rebuilt in the style's shape.

The engine solves spectrograms at ``StyleConfig.sample_rate`` (22.05 kHz by default), so an
output resampled to 44.1 or 48 kHz would be empty above ~11 kHz. :func:`extend_bandwidth`
fills that band the way spectral band replication does in HE-AAC: each STFT frame's band
above the crossover is a copy of the band below it, moved up by a whole number of hops' worth
of bins (so the copy's phase advances stay consistent from frame to frame), whitened by the
output's own long-term spectrum there and shaped by the style's long-term spectrum. The new
band therefore has the style's level relative to the body of the sound (1 kHz up to the
crossover), and the output's own timing: its transients, pauses and loudness contour.

Everything here runs chunk by chunk with a bounded STFT, so memory does not grow with the
length of the audio beyond the output itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .resample import resample
from .stft import hann_window, istft, stft

__all__ = [
    "band_stft_size",
    "crossover_hz",
    "edit_spectrum_in_place",
    "extend_bandwidth",
    "long_term_power",
    "style_band_power",
]

#: Where the copied band starts, as a share of the working Nyquist frequency: below the
#: resampler's transition band, so the copy starts where the solved band is still whole.
CROSSOVER = 0.9
#: Width of the linear crossfade between the solved band and the copy, as a share of the crossover.
FADE = 0.08
#: Frequency smoothing of the long-term spectra in the rebuild (bins on each side): shapes,
#: not partials.
SMOOTHING_BINS = 8
#: Lower edge of the band whose level anchors the rebuilt band's level, in Hz.
BODY_LOW_HZ = 1000.0
#: Gain limit of the whitening: a near-silent source bin must not be amplified into noise.
MAX_GAIN = 100.0
#: Samples per chunk of the streaming STFT passes; a whole number of hops, so that every
#: chunk's frames fall on the same grid as one pass over the whole signal would.
CHUNK = 1 << 18


def crossover_hz(working_rate: int) -> float:
    """The frequency above which :func:`extend_bandwidth` replaces the solved band, in Hz."""
    return CROSSOVER * working_rate / 2


def band_stft_size(sample_rate: int) -> int:
    """STFT size for the band rebuild at ``sample_rate``: about 23 ms, a power of two."""
    return 2 ** max(8, round(math.log2(0.023 * sample_rate)))


def long_term_power(audio: np.ndarray, n_fft: int) -> np.ndarray:
    """Mean power per STFT bin over all whole frames and channels.

    Only frames that lie wholly inside the audio count: a frame padded with zeros past an
    edge sees a cut, whose broadband click would pass for the top band of a dark style.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)]
        Waveform.
    n_fft : int
        STFT size (Hann window, hop ``n_fft // 4``).

    Returns
    -------
    np.ndarray [shape=(n_fft // 2 + 1,), dtype=float64]
    """
    hop = n_fft // 4
    total = np.zeros(n_fft // 2 + 1)
    frames = 0
    window = hann_window(n_fft, torch.device("cpu"), torch.float64)
    per_chunk = max(1, CHUNK // hop)
    for first in range(0, max(0, audio.shape[-1] - n_fft) // hop + 1, per_chunk):
        begin = first * hop
        # float64: a float32 FFT's rounding floor would show in the top band of a dark style.
        piece = torch.from_numpy(np.asarray(audio[:, begin : begin + (per_chunk - 1) * hop + n_fft], dtype=np.float64))
        if piece.shape[-1] < n_fft:
            break
        spectrum = torch.fft.rfft(piece.unfold(-1, n_fft, hop) * window, dim=-1)
        power = spectrum.real.square() + spectrum.imag.square()  # (channels, frames, bins)
        total += power.sum(dim=(0, 1)).numpy()
        frames += power.shape[0] * power.shape[1]
        del piece, spectrum, power  # one chunk's buffers alive at a time
    return total / max(frames, 1)


def _smooth(power: np.ndarray) -> np.ndarray:
    kernel = np.ones(2 * SMOOTHING_BINS + 1) / (2 * SMOOTHING_BINS + 1)
    padded = np.pad(power, SMOOTHING_BINS, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def style_band_power(
    styles: Sequence[tuple[np.ndarray, int]], weights: Sequence[float], sample_rate: int
) -> np.ndarray:
    """The styles' blended long-term power spectrum at ``sample_rate``.

    Each style is first brought to ``sample_rate`` (a style recorded at a lower rate has no
    power above its own Nyquist frequency, and the rebuilt band stays empty there) and to a
    common level, so that the blend weights mean shares of spectral shape.

    Parameters
    ----------
    styles : sequence of (np.ndarray [shape=(channels, samples)], int)
        Each style's waveform at its own rate.
    weights : sequence of float
        Blend weights, one per style (>= 0, not all 0).
    sample_rate : int
        The output's rate.

    Returns
    -------
    np.ndarray [shape=(band_stft_size(sample_rate) // 2 + 1,), dtype=float64]
    """
    n_fft = band_stft_size(sample_rate)
    blended = np.zeros(n_fft // 2 + 1)
    for (audio, rate), weight in zip(styles, weights):
        if weight <= 0:
            continue
        power = long_term_power(resample(audio, rate, sample_rate), n_fft)
        level = power.sum()
        if level > 0:
            blended += weight * power / level
    return blended / max(sum(weights), 1e-12)


def _copy_sources(n_bins: int, begin: int, shift: int) -> np.ndarray:
    """For every bin from ``begin`` up, the bin ``k - m * shift`` (m >= 1) in ``[begin - shift, begin)``."""
    targets = np.arange(begin, n_bins)
    return begin - shift + (targets - begin) % shift


def extend_bandwidth(
    audio: np.ndarray,
    sample_rate: int,
    working_rate: int,
    style_power: np.ndarray,
    *,
    circular: bool = False,
) -> np.ndarray:
    """Rebuild the band above ``crossover_hz(working_rate)`` in the style's spectral shape.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
        The output at ``sample_rate``, band-limited by the working rate.
    sample_rate : int
        Its rate. Nothing changes unless its Nyquist frequency is above the crossover.
    working_rate : int
        The rate the spectrogram was solved at.
    style_power : np.ndarray [shape=(band_stft_size(sample_rate) // 2 + 1,)]
        From :func:`style_band_power` at ``sample_rate``.
    circular : bool
        The audio is a loop: the rebuild wraps around its ends.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]
        ``audio`` itself, with the upper band rebuilt in place (unchanged where there is
        nothing to rebuild).
    """
    if sample_rate <= working_rate:
        return audio
    n_fft = band_stft_size(sample_rate)
    hop = n_fft // 4
    n_bins = n_fft // 2 + 1
    bin_hz = sample_rate / n_fft
    # A shift by a multiple of n_fft / hop bins turns each bin's phase by a whole number of
    # turns per hop, so the copied frames stay consistent with each other.
    step = n_fft // hop
    begin = int(crossover_hz(working_rate) / bin_hz) // step * step
    shift = begin // 2 // step * step
    if begin >= n_bins - 1 or shift < step or audio.shape[-1] < n_fft or style_power.shape != (n_bins,):
        return audio

    sources = _copy_sources(n_bins, begin, shift)
    style_power = _smooth(style_power)
    output_power = _smooth(long_term_power(audio, n_fft))
    # The level comes from the whole solved band, not the octave just below the crossover:
    # where the solve left that octave louder or quieter than the style has it, the new band
    # still keeps the style's balance against the body of the sound.
    body = slice(int(BODY_LOW_HZ / bin_hz), begin)
    style_body, output_body = style_power[body].mean(), output_power[body].mean()
    floor = output_power[begin - shift : begin].mean() / MAX_GAIN**2
    if style_body <= 0 or output_body <= 0 or floor <= 0:
        return audio
    gain = np.sqrt(style_power[begin:] * (output_body / style_body) / np.maximum(output_power[sources], floor))
    fade_bins = max(1, int(FADE * begin))
    fade = np.clip((np.arange(begin, n_bins) - begin + 1) / fade_bins, 0.0, 1.0)
    gain_t = torch.from_numpy((gain * fade).astype(np.float32))[:, None]
    keep_t = torch.from_numpy((1.0 - fade).astype(np.float32))[:, None]
    sources_t = torch.from_numpy(sources)

    def rebuild(spec: torch.Tensor) -> torch.Tensor:
        spec[:, begin:, :] = spec[:, begin:, :] * keep_t + spec[:, sources_t, :] * gain_t
        return spec

    return edit_spectrum_in_place(audio, n_fft, rebuild, circular=circular)


def edit_spectrum_in_place(
    audio: np.ndarray, n_fft: int, edit: Callable[[torch.Tensor], torch.Tensor], *, circular: bool = False
) -> np.ndarray:
    """Apply ``edit`` to the STFT of ``audio`` chunk by chunk and write the result back in place.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
        Changed in place and returned.
    n_fft : int
        STFT size (Hann window, hop ``n_fft // 4``).
    edit : callable
        ``edit(spec)`` takes a chunk's complex STFT [shape=(channels, bins, frames)] and
        returns the edited one (it may edit in place). It must act on each frame alone
        (a gain per bin, a copy across bins), so that chunks join seamlessly.
    circular : bool
        The audio is a loop: the chunks at the ends read their context across the seam.

    Returns
    -------
    np.ndarray
        ``audio``.
    """
    hop = n_fft // 4
    if audio.shape[-1] < n_fft:
        return audio
    # Each chunk reads its context from the unchanged samples ahead of it and from a saved
    # copy of the ones just behind it.
    length = audio.shape[-1]
    head = audio[:, :n_fft].copy()
    behind = audio[:, length - n_fft :].copy() if circular else audio[:, :0].copy()
    for keep_begin in range(0, length, CHUNK):
        keep_end = min(length, keep_begin + CHUNK)
        ahead = audio[:, keep_begin : min(length, keep_end + n_fft)]
        if circular and keep_end + n_fft > length:
            ahead = np.concatenate([ahead, head[:, : keep_end + n_fft - length]], axis=1)
        piece = torch.from_numpy(np.concatenate([behind, ahead], axis=1).astype(np.float32, copy=False))
        spec = edit(stft(piece, n_fft=n_fft, hop_length=hop))
        wave = istft(spec, n_fft=n_fft, hop_length=hop, length=piece.shape[-1]).numpy()
        offset = behind.shape[-1]
        behind = audio[:, max(0, keep_end - n_fft) : keep_end].copy()
        audio[:, keep_begin:keep_end] = wave[:, offset : offset + keep_end - keep_begin]
        del piece, spec, wave  # one chunk's buffers alive at a time
    return audio
