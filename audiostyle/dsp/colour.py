"""Colour match: move a sound's long-term spectral colour part of the way to a target's.

The objective matches the style's statistics frame by frame through a network; it does not
pin the clip's long-term balance of low, middle and high frequencies (its *colour*), and
with the envelope view the content's fine structure changes that balance again (a sparse
set of partials carries less power per band than a dense one with the same envelope). A
fixed equaliser over the whole clip can: both long-term spectra are smoothed over
:data:`SMOOTHING_OCTAVES` (the balance of bass, middle and treble, not anything a melody's
notes can make), taken as shares of their totals (so level does not count), and each bin is
raised or lowered by ``strength`` times the difference in dB, within :data:`MAX_COLOUR_DB`.
The total power stays as it was.

The style models match colour causally, frame by frame, with the same limit
(:mod:`audiostyle.models.stream`).
"""

from __future__ import annotations

import numpy as np
import torch

from .bandwidth import band_stft_size, edit_spectrum_in_place, long_term_power

__all__ = ["MAX_COLOUR_DB", "SMOOTHING_OCTAVES", "colour_gains", "match_colour", "octave_windows"]

#: Width of the frequency smoothing, in octaves. A sparse, pitched style (a vibraphone, say)
#: has long-term peaks where its melody's notes sit, still visible over one octave; matching
#: them would print the style's notes on the output as a fixed comb.
SMOOTHING_OCTAVES = 2.0
#: Most a bin may be raised or lowered (dB).
MAX_COLOUR_DB = 12.0
# Below this the smoothing's octaves are measured from here: the lowest bins are one band.
_LOWEST_HZ = 30.0
# A target bin this far under the target's strongest holds no colour to match (a style
# recorded at a lower rate, say): it keeps its level.
_TARGET_RANGE_DB = 90.0
# Keeps divisions and logs finite where a window or a share is exactly zero.
_TINY = 1e-300


def octave_windows(frequencies: np.ndarray, octaves: float = SMOOTHING_OCTAVES) -> tuple[np.ndarray, np.ndarray]:
    """For each frequency, the range ``[first, stop)`` of those within ``octaves / 2`` of it.

    Parameters
    ----------
    frequencies : np.ndarray [shape=(n,)]
        Frequencies in Hz, ascending.
    octaves : float
        Full width of the window in octaves.

    Returns
    -------
    first, stop : np.ndarray [shape=(n,), dtype=int64]
        Index bounds: a window sum is ``cumsum[stop] - cumsum[first]`` (one pass, where a
        dense averaging matrix would grow with the square of the bins).
    """
    position = np.log2(np.maximum(np.asarray(frequencies, dtype=np.float64), _LOWEST_HZ))
    first = np.searchsorted(position, position - octaves / 2, side="left")
    stop = np.searchsorted(position, position + octaves / 2, side="right")
    return first, stop


def _window_sums(values: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    running = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    return running[stop] - running[first]


def colour_gains(power: np.ndarray, target: np.ndarray, sample_rate: int, strength: float) -> np.ndarray:
    """Per-bin amplitude gains that move ``power``'s colour ``strength`` of the way to ``target``'s.

    Parameters
    ----------
    power, target : np.ndarray [shape=(bins,)]
        Long-term power spectra on the same STFT grid (``bins = n_fft // 2 + 1``).
    sample_rate : int
        Their rate.
    strength : float
        Share of the way in dB, in [0, 1].

    Returns
    -------
    np.ndarray [shape=(bins,), dtype=float64]
        Gains whose application leaves ``power``'s total unchanged; all ones where there is
        nothing to match (silence on either side, or ``strength`` 0).
    """
    bins = power.shape[-1]
    if strength <= 0 or power.sum() <= 0 or target.sum() <= 0:
        return np.ones(bins)
    # Only bins where the target has something to say take part, in the smoothing too.
    valid = (target > target.max() * 10.0 ** (-_TARGET_RANGE_DB / 10.0)).astype(np.float64)
    first, stop = octave_windows(np.linspace(0.0, sample_rate / 2, bins))
    coverage = np.maximum(_window_sums(valid, first, stop), _TINY)
    ours = _window_sums(power * valid, first, stop) / coverage
    theirs = _window_sums(target * valid, first, stop) / coverage
    ours, theirs = ours / max((ours * valid).sum(), _TINY), theirs / (theirs * valid).sum()
    decibels = 10.0 * (np.log10(theirs + _TINY) - np.log10(ours + _TINY))
    decibels = np.clip(strength * decibels, -MAX_COLOUR_DB, MAX_COLOUR_DB)
    decibels[(valid == 0) | (ours <= 0)] = 0.0
    gains = 10.0 ** (decibels / 20.0)
    return gains / np.sqrt((gains**2 * power).sum() / power.sum())


def match_colour(
    audio: np.ndarray, sample_rate: int, target: np.ndarray, strength: float, *, circular: bool = False
) -> np.ndarray:
    """Equalise ``audio`` in place so that its colour moves ``strength`` of the way to ``target``'s.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
        Changed in place and returned.
    sample_rate : int
        Its rate.
    target : np.ndarray [shape=(band_stft_size(sample_rate) // 2 + 1,)]
        The target's long-term power spectrum at ``sample_rate``
        (:func:`audiostyle.dsp.bandwidth.style_band_power`).
    strength : float
        Share of the way in dB, in [0, 1]; 0 leaves the audio alone.
    circular : bool
        The audio is a loop.

    Returns
    -------
    np.ndarray
        ``audio``.
    """
    n_fft = band_stft_size(sample_rate)
    if strength <= 0 or audio.shape[-1] < n_fft or target.shape != (n_fft // 2 + 1,):
        return audio
    gains = colour_gains(long_term_power(audio, n_fft), target, sample_rate, strength)
    if np.allclose(gains, 1.0):
        return audio
    column = torch.from_numpy(gains.astype(np.float32))[:, None]
    return edit_spectrum_in_place(audio, n_fft, lambda spec: spec.mul_(column), circular=circular)
