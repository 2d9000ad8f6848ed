"""Band ceiling: keep the output out of the bands the style leaves empty.

The spectrum view matches the style's statistics of ``log1p`` magnitudes through a network,
and ``log1p`` all but hides what lies 30-40 dB under the loudest partials. Where the style
is silent (a bird recorded above a high-pass at 2 kHz, a whale below 4 kHz) the solved
spectrogram therefore keeps broken-up remains of the content's partials: scattered points
that come and go from frame to frame, which a listener hears as a flicker under the style's
sound and which make the output's timbre move far faster than the style's.

The ceiling is the style's level per frequency: in each STFT bin, the level that only
:data:`QUANTILE` of the style's sounding frames exceed, the highest within a third of an
octave (:data:`SMOOTHING_OCTAVES`), relative to the style's loudest bin. The output's own
profile, taken the same way, anchors it: no bin of any output frame may stand more than
``margin_db`` above the style's relative level there, counted from the output's loudest bin.
A bin over it is turned down to it, frame by frame; everything under it is left alone, so
where the style sounds at all nothing changes.

Only a bounded excerpt of each sound is profiled (:func:`audiostyle.dsp.levels.excerpt_blocks`),
and the output is edited chunk by chunk, so memory does not grow with its length.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .bandwidth import edit_spectrum_in_place
from .colour import octave_windows
from .levels import excerpt_blocks
from .resample import resample
from .stft import stft

__all__ = [
    "QUANTILE",
    "RANGE_DB",
    "SMOOTHING_OCTAVES",
    "apply_band_ceiling",
    "ceiling_stft_size",
    "level_profile",
    "style_level_profile",
]

#: A bin's level is the one this share of the sounding frames stays under: the style's
#: loud moments, not a single click.
QUANTILE = 0.99
#: Width of the frequency smoothing, in octaves: a style's partials move a little from note
#: to note, and the ceiling must not fall between them.
SMOOTHING_OCTAVES = 1.0 / 3.0
#: A style's bin this far under its loudest is empty; deeper still changes nothing audible.
RANGE_DB = 80.0
# Frames more than this under the loudest frame are pauses, not the sound's level.
_SOUNDING_DB = 60.0
# Keeps the logarithm finite at digital silence.
_TINY = 1e-20


def ceiling_stft_size(sample_rate: int) -> int:
    """STFT size of the ceiling at ``sample_rate``: about 93 ms, a power of two, so that the
    partials of low notes fall in bins of their own."""
    return 2 ** max(8, round(math.log2(0.093 * sample_rate)))


def level_profile(audio: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """Each bin's loud level over the sounding frames, smoothed over a third of an octave.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)]
        Waveform; the channels' powers are averaged, and only an excerpt is read.
    sample_rate : int
        Its rate.

    Returns
    -------
    np.ndarray [shape=(ceiling_stft_size(sample_rate) // 2 + 1,), dtype=float64] or None
        Levels in dB (power of the unnormalised Hann STFT), or None when nothing sounds
        (digital silence, or audio shorter than a frame).
    """
    loud = _loud_levels(excerpt_blocks(audio, sample_rate), sample_rate)
    return None if loud is None else _smoothed(loud, sample_rate)


def _loud_levels(blocks: Iterable[np.ndarray], sample_rate: int) -> np.ndarray | None:
    """Each bin's :data:`QUANTILE` level (dB) over the sounding frames of the blocks
    (channels, samples) taken as one sound, unsmoothed; each block is read once and one
    channel at a time, so that a many-channel input costs one channel's STFT."""
    n_fft = ceiling_stft_size(sample_rate)
    powers = []
    for block in blocks:
        if block.shape[-1] < n_fft:
            continue
        power = 0.0
        for channel in block:
            # float64: a float32 spectrum overflows on samples a float file may hold (up to 3e38).
            spectrum = stft(torch.from_numpy(np.asarray(channel, dtype=np.float64)), n_fft=n_fft, hop_length=n_fft // 4)
            power = power + (spectrum.real.square() + spectrum.imag.square()).numpy() / block.shape[0]
        powers.append(power)
    if not powers:
        return None
    power = np.concatenate(powers, axis=1)  # (bins, frames)
    loudness = power.sum(axis=0)
    if not loudness.max() > 0:
        return None
    sounding = loudness >= loudness.max() * 10.0 ** (-_SOUNDING_DB / 10.0)
    return np.quantile(10.0 * np.log10(power[:, sounding] + _TINY), QUANTILE, axis=1)


def _smoothed(levels: np.ndarray, sample_rate: int) -> np.ndarray:
    """The highest of ``levels`` within a third of an octave of each bin."""
    first, stop = octave_windows(np.linspace(0.0, sample_rate / 2, levels.shape[0]), SMOOTHING_OCTAVES)
    return np.array([levels[begin:end].max() for begin, end in zip(first, stop)])


def style_level_profile(
    styles: Sequence[tuple[np.ndarray, int]], weights: Sequence[float], sample_rate: int
) -> np.ndarray | None:
    """The styles' levels per bin at ``sample_rate``, in dB relative to their loudest bin.

    A blend sounds wherever one of its styles does, so each bin takes the highest of the
    styles' relative levels (those with a weight above 0). Each style's excerpt is brought
    to ``sample_rate`` first: a style recorded at a lower rate is empty above its own
    Nyquist frequency.

    Parameters
    ----------
    styles : sequence of (np.ndarray [shape=(channels, samples)], int)
        Each style's waveform at its own rate.
    weights : sequence of float
        Blend weights, one per style.
    sample_rate : int
        The output's rate.

    Returns
    -------
    np.ndarray [shape=(ceiling_stft_size(sample_rate) // 2 + 1,), dtype=float64] or None
        In [-:data:`RANGE_DB`, 0]; None when no style sounds.
    """
    profiles = []
    for (audio, rate), weight in zip(styles, weights):
        if weight <= 0:
            continue
        # Only the excerpt is resampled, a block at a time.
        blocks = (resample(block, rate, sample_rate) for block in excerpt_blocks(audio, rate))
        loud = _loud_levels(blocks, sample_rate)
        if loud is not None:
            profile = _smoothed(loud, sample_rate)
            profiles.append(np.maximum(profile - profile.max(), -RANGE_DB))
    return np.max(profiles, axis=0) if profiles else None


def apply_band_ceiling(
    audio: np.ndarray, sample_rate: int, style_levels: np.ndarray | None, margin_db: float, *, circular: bool = False
) -> np.ndarray:
    """Turn down, frame by frame, every bin of ``audio`` that stands above the style's ceiling.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
        Changed in place and returned.
    sample_rate : int
        Its rate.
    style_levels : np.ndarray [shape=(ceiling_stft_size(sample_rate) // 2 + 1,)] or None
        From :func:`style_level_profile` at ``sample_rate``; None leaves the audio alone.
    margin_db : float
        How far above the style's relative level a bin may stand (dB, >= 0).
    circular : bool
        The audio is a loop.

    Returns
    -------
    np.ndarray
        ``audio``.
    """
    n_fft = ceiling_stft_size(sample_rate)
    if style_levels is None or style_levels.shape != (n_fft // 2 + 1,):
        return audio
    # Only the output's loudest bin anchors the ceiling (smoothing by a maximum leaves it as it is).
    ours = _loud_levels(excerpt_blocks(audio, sample_rate), sample_rate)
    if ours is None:
        return audio
    # As a power per bin, in the units of the STFT below.
    ceiling = 10.0 ** ((style_levels + ours.max() + margin_db) / 10.0)
    limit = torch.from_numpy(ceiling.astype(np.float32))[:, None]

    def cap(spec: torch.Tensor) -> torch.Tensor:
        power = spec.real.square() + spec.imag.square()
        return spec.mul_(torch.sqrt(limit / power.clamp_min(_TINY)).clamp_max_(1.0))

    return edit_spectrum_in_place(audio, n_fft, cap, circular=circular)
