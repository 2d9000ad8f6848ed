"""Sample-rate and channel-layout conversion of ``(channels, samples)`` float32 waveforms."""

from __future__ import annotations

import math

import numpy as np
import soxr

from ..errors import ConfigError
from ..validation import positive_int

__all__ = ["resample", "to_channels"]


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Change the sample rate along the last axis with soxr's high-quality filter.

    Parameters
    ----------
    audio : np.ndarray [shape=(..., samples)]
        Real waveform(s).
    orig_sr : int
        Rate of ``audio`` in Hz (e.g. 8000 to 192000).
    target_sr : int
        Rate wanted, in Hz.

    Returns
    -------
    np.ndarray [shape=(..., ceil(samples * target_sr / orig_sr)), dtype=float32]
        The resampled waveform; ``audio`` as float32 when the rates are equal.

    Raises
    ------
    ConfigError
        If either rate is not a positive integer.

    Examples
    --------
    >>> resample(np.zeros((2, 44100), np.float32), 44100, 22050).shape
    (2, 22050)
    """
    orig_sr = positive_int("orig_sr", orig_sr)
    target_sr = positive_int("target_sr", target_sr)
    if orig_sr == target_sr:
        return np.asarray(audio, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float32)
    length = math.ceil(audio.shape[-1] * target_sr / orig_sr)
    rows = audio.reshape(-1, audio.shape[-1])
    out = np.zeros((rows.shape[0], length), np.float32)
    for row, target in zip(rows, out):
        # soxr directly, not through librosa.resample (the same filter): librosa's resample
        # module pulls in scipy and numba, memory and start-up time in every process. One channel at a time (soxr filters channels independently): the peak
        # is the input, the output and one channel, not two copies of each.
        resampled = soxr.resample(row, orig_sr, target_sr, quality="HQ")[:length]
        target[: len(resampled)] = resampled
    return out.reshape(*audio.shape[:-1], length)


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert a waveform to ``channels`` channels.

    Mono becomes N channels by repetition, N channels become mono by averaging, and any
    other change averages to mono and repeats. The same count is returned unchanged.

    Parameters
    ----------
    audio : np.ndarray [shape=(in_channels, samples)]
        The waveform.
    channels : int
        Channel count wanted.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]

    Raises
    ------
    ConfigError
        If ``channels`` is not a positive integer or ``audio`` is not 2-D.

    Examples
    --------
    >>> to_channels(np.ones((1, 4), np.float32), 2).shape
    (2, 4)
    """
    channels = positive_int("channels", channels)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ConfigError(f"audio has shape {audio.shape}; expected (channels, samples)")
    if audio.shape[0] == channels:
        return audio
    downmix = audio.mean(axis=0, keepdims=True, dtype=np.float32)
    return np.repeat(downmix, channels, axis=0)
