"""Does a sound play notes? The test behind ``style_view="auto"``.

A note is a set of partials that stays put for a while: its fine structure (the log
spectrum without its smooth envelope) looks the same a few frames later, and its pitch
classes are few. Speech glides, so its partials move between frames; noise, rain, wind and
most drums have no lasting partials; a cymbal's partials last but spread over every pitch
class. Two figures, each over the sounding frames:

* ``persistence``: the median correlation, over 80 Hz - 5 kHz, of the fine structure of a
  frame and of the frame two hops later;
* ``concentration``: how far each frame's chroma is from spread evenly over the twelve
  pitch classes (``log 12`` minus its entropy, in nats), averaged.

A sound plays notes when both are at least their thresholds. Only a bounded excerpt is
read (:data:`MAX_SECONDS`, in evenly spaced blocks), so the test costs the same for an
hour of audio as for half a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft

from .levels import EXCERPT_SECONDS, excerpt_blocks
from .resample import resample

__all__ = [
    "CONCENTRATION_THRESHOLD",
    "MAX_SECONDS",
    "PERSISTENCE_THRESHOLD",
    "NoteEvidence",
    "blend_evidence",
    "note_evidence",
]

#: Fine structure correlated at least this much two hops apart: partials that last.
PERSISTENCE_THRESHOLD = 0.5
#: Chroma at least this far (nats) from even: few pitch classes at a time.
CONCENTRATION_THRESHOLD = 0.8
#: The longest excerpt read, in seconds (:func:`audiostyle.dsp.levels.excerpt_blocks`).
MAX_SECONDS = EXCERPT_SECONDS
# Spectral detail finer than this (Hz) is fine structure: the partials of notes above
# about 300 Hz, and the ripple between the partials of lower ones.
_ENVELOPE_RESOLUTION_HZ = 600.0
_BAND_HZ = (80.0, 5000.0)
# From where the analysis' bins are closer than a semitone (at 22.05 kHz and n_fft 2048).
_CHROMA_HZ = (250.0, 5000.0)
# Frames more than this below the loudest are pauses; valleys deeper than this below the
# envelope are clipped, so the silence between partials does not dominate the correlation.
_SOUNDING_DB = 40.0
_VALLEY_DB = 20.0
# A frame's loudest bin under this (dB, full scale 0) is digital silence.
_SILENCE_DB = -100.0
_LAG = 2


@dataclass(frozen=True)
class NoteEvidence:
    """How much a sound sounds like notes (see the module's description).

    Attributes
    ----------
    persistence : float
        Median correlation of the fine structure two hops apart, in [-1, 1].
    concentration : float
        Mean distance of the chroma from even, in nats, in [0, log 12].
    """

    persistence: float
    concentration: float

    @property
    def plays_notes(self) -> bool:
        """Both figures at or above their thresholds."""
        return self.persistence >= PERSISTENCE_THRESHOLD and self.concentration >= CONCENTRATION_THRESHOLD


def note_evidence(
    waveform: np.ndarray,
    sample_rate: int,
    *,
    analysis_rate: int | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> NoteEvidence:
    """Measure how much ``waveform`` plays notes.

    Parameters
    ----------
    waveform : np.ndarray, shape (samples,) or (channels, samples)
        Mixed to mono; at most :data:`MAX_SECONDS` of it are read.
    sample_rate : int
        Its rate.
    analysis_rate : int, optional
        The rate it is analysed at (default ``sample_rate``); only the excerpt read is
        resampled.
    n_fft, hop_length : int
        The analysis at ``analysis_rate`` (the engine's own, so a frame here is one the
        solve sees).

    Returns
    -------
    NoteEvidence
        Zero figures for a clip with fewer than three sounding frames.
    """
    waveform = np.atleast_2d(waveform)
    rate = sample_rate if analysis_rate is None else analysis_rate
    # Only the excerpt is mixed down and resampled: an hour-long input costs what 30 s does.
    blocks = [
        resample(block.mean(axis=0, dtype=np.float32), sample_rate, rate)
        for block in excerpt_blocks(waveform, sample_rate)
    ]
    power = np.concatenate([_power(block, n_fft, hop_length) for block in blocks], axis=1)
    level = 10.0 * np.log10(power + 1e-12)
    loudest = level.max(axis=0)
    sounding = loudest > max(loudest.max() - _SOUNDING_DB, _SILENCE_DB)
    if sounding.sum() < _LAG + 1:
        return NoteEvidence(0.0, 0.0)
    return NoteEvidence(_persistence(level, sounding, rate, n_fft), _concentration(power[:, sounding], rate, n_fft))


def blend_evidence(evidence: Sequence[NoteEvidence], weights: Sequence[float]) -> NoteEvidence:
    """The weighted mean of several sounds' evidence: a blend of styles plays notes as a whole."""
    share = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    return NoteEvidence(
        float(sum(w * e.persistence for w, e in zip(share, evidence))),
        float(sum(w * e.concentration for w, e in zip(share, evidence))),
    )


def _power(block: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Power spectrogram ``(n_fft // 2 + 1, frames)`` of a block (at least one frame), Hann window.

    Plain numpy: librosa's STFT costs a second of numba start-up in every new process.
    """
    block = np.pad(block, (0, max(0, n_fft - block.shape[-1])))
    frames = np.lib.stride_tricks.sliding_window_view(block, n_fft)[::hop_length]
    # In float64: a float32 spectrum overflows on samples a float file may hold (up to 3e38).
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=1).T) ** 2


def _persistence(level: np.ndarray, sounding: np.ndarray, sample_rate: int, n_fft: int) -> float:
    """Median correlation of each sounding frame's fine structure with the one :data:`_LAG` hops on."""
    kept = max(2, round(sample_rate / _ENVELOPE_RESOLUTION_HZ))
    coefficients = scipy.fft.dct(level, axis=0, norm="ortho")
    coefficients[kept:] = 0.0
    fine = level - scipy.fft.idct(coefficients, axis=0, norm="ortho")
    frequencies = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (frequencies >= _BAND_HZ[0]) & (frequencies <= _BAND_HZ[1])
    fine = np.maximum(fine[band], -_VALLEY_DB)
    fine = fine - fine.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(fine, axis=0) + 1e-9
    pairs = np.flatnonzero(sounding[:-_LAG] & sounding[_LAG:])
    if pairs.size == 0:
        return 0.0
    correlation = (fine[:, pairs] * fine[:, pairs + _LAG]).sum(axis=0) / (norms[pairs] * norms[pairs + _LAG])
    return float(np.median(correlation))


def _concentration(power: np.ndarray, sample_rate: int, n_fft: int) -> float:
    """Mean of ``log 12`` minus the entropy of each frame's chroma, in nats.

    Each bin in :data:`_CHROMA_HZ` adds its power to the pitch class nearest its frequency.
    """
    frequencies = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = np.flatnonzero((frequencies >= _CHROMA_HZ[0]) & (frequencies <= _CHROMA_HZ[1]))
    pitch_class = np.round(12.0 * np.log2(frequencies[band] / 440.0)).astype(int) % 12
    chroma = np.zeros((12, power.shape[1]))
    np.add.at(chroma, pitch_class, power[band])
    share = chroma / (chroma.sum(axis=0, keepdims=True) + 1e-12)
    entropy = -(share * np.log(share + 1e-12)).sum(axis=0)
    return float(np.mean(np.log(12.0) - entropy))
