"""Levels of ``(channels, samples)`` waveforms: RMS, peak, analysis gain, loudness matching.

Every measurement reads the audio a chunk at a time, so no full-length temporary is made
however long the audio is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = [
    "ANALYSIS_RMS",
    "EXCERPT_BLOCKS",
    "EXCERPT_SECONDS",
    "LEVEL_CHUNK",
    "MAX_ANALYSIS_GAIN",
    "PEAK_CEILING",
    "all_finite",
    "analysis_gain",
    "excerpt_blocks",
    "fit_length",
    "level_chunks",
    "match_loudness",
    "normalise_level",
    "peak",
    "rms",
]

#: -1 dBFS: the output's peak ceiling.
PEAK_CEILING = 10 ** (-1 / 20)

#: Inputs are analysed at -20 dBFS RMS: log1p is not scale-invariant, so without this a quiet
#: recording would weigh its content loss differently from a loud one.
ANALYSIS_RMS = 0.1
#: At most +80 dB of gain, so that dither in an almost silent file is not blown up further.
MAX_ANALYSIS_GAIN = 1e4
#: The longest excerpt :func:`excerpt_blocks` takes, in seconds, and in how many blocks.
EXCERPT_SECONDS = 30.0
EXCERPT_BLOCKS = 6
#: Samples per row read at a time by the level helpers: their float64 temporaries stay
#: small however long the audio is.
LEVEL_CHUNK = 1 << 18


def level_chunks(audio: np.ndarray) -> Iterator[np.ndarray]:
    """Views of ``audio`` (channels, samples), one row and ``LEVEL_CHUNK`` samples at a time."""
    for row in audio.reshape(-1, audio.shape[-1]):
        for begin in range(0, row.shape[-1], LEVEL_CHUNK):
            yield row[begin : begin + LEVEL_CHUNK]


def rms(audio: np.ndarray) -> float:
    """Root mean square about each channel's mean, in float64 chunk by chunk (no full-length copy).

    A DC offset is no sound: counted, it would set a recording with one far too loud.
    """
    if audio.size == 0:
        return 0.0
    total = 0.0
    for row in audio.reshape(-1, audio.shape[-1]):
        squares = sums = 0.0
        for begin in range(0, row.shape[-1], LEVEL_CHUNK):
            chunk = row[begin : begin + LEVEL_CHUNK]
            squares += float(np.square(chunk, dtype=np.float64).sum())
            sums += float(chunk.sum(dtype=np.float64))
        total += max(squares - sums * sums / row.shape[-1], 0.0)
    return math.sqrt(total / audio.size)


def peak(audio: np.ndarray) -> float:
    """Largest absolute sample, chunk by chunk (``np.abs`` would copy the whole array)."""
    return max((max(float(chunk.max()), -float(chunk.min())) for chunk in level_chunks(audio)), default=0.0)


def all_finite(audio: np.ndarray) -> bool:
    """No NaN or Inf, checked chunk by chunk (``np.isfinite`` would make a full bool array)."""
    return all(np.isfinite(chunk).all() for chunk in level_chunks(audio))


def analysis_gain(audio: np.ndarray) -> float:
    """The gain that brings ``audio`` to ANALYSIS_RMS, at most MAX_ANALYSIS_GAIN (1 if silent)."""
    level = rms(audio)
    return 1.0 if level == 0 else min(ANALYSIS_RMS / level, MAX_ANALYSIS_GAIN)


def normalise_level(audio: np.ndarray) -> np.ndarray:
    """``audio`` scaled by :func:`analysis_gain` (the same array when the gain is 1)."""
    gain = analysis_gain(audio)
    return audio if gain == 1.0 else np.multiply(audio, gain, dtype=np.float32)


def match_loudness(audio: np.ndarray, reference: np.ndarray | None, mode: str) -> np.ndarray:
    """Scale ``audio`` in place to the reference's RMS (when asked), then bring peaks down to -1 dBFS.

    ``audio`` must be a float32 array the caller owns (it is modified and returned); the
    level measurements read it chunk by chunk, so no full-length copy is made.
    """
    if mode == "rms" and reference is not None:
        target, current = rms(reference), rms(audio)
        if current > 0:
            audio *= target / current
    highest = peak(audio)
    if highest > PEAK_CEILING:
        audio *= PEAK_CEILING / highest
    return audio


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio`` cut or zero-padded at the end to ``length`` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, ((0, 0), (0, length - audio.shape[-1])))


def excerpt_blocks(audio: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    """A bounded excerpt of ``audio`` (channels, samples) for analyses whose cost must not
    grow with its length: the whole of it when at most :data:`EXCERPT_SECONDS` long, else
    :data:`EXCERPT_BLOCKS` evenly spaced blocks of that length in all (views, not copies)."""
    limit = int(EXCERPT_SECONDS * sample_rate)
    if audio.shape[-1] <= limit:
        return [audio]
    block = limit // EXCERPT_BLOCKS
    starts = np.linspace(0, audio.shape[-1] - block, EXCERPT_BLOCKS).astype(int)
    return [audio[..., start : start + block] for start in starts]
