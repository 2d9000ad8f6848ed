"""How much of the content an output kept and how much of the style it took: two figures in [0, 1].

:func:`score_output` rates a finished run with measures the optimiser does not target: it
matches feature-network activations and their Gram statistics on the engine's STFT, while
these are read from a 16 kHz STFT of their own through mel bands, a chroma filterbank and a
cosine transform of mel levels, and are time-aligned agreements or time-averaged means and
deviations. So a figure says what a listener would check, not how well a loss was minimised.

**content** (1 = the content itself, 0 = no more like the content than the style clip is):
the mean of three agreements between the output and the content, each chosen to survive a
change of instrument:

=============  ================================================================================
``chroma``     the notes: Pearson correlation of the two chromagrams (12 pitch classes per frame,
               each frame scaled by its own peak) over all frames
``onsets``     the rhythm: Pearson correlation of the onset-strength envelopes (the mean over
               64 mel bands of each band's rise in dB from one frame to the next)
``structure``  the form: Pearson correlation of the frame self-similarity matrices (cosine
               similarity of every two 64 ms frames of mel dB levels, each band's mean removed,
               so a fixed change of colour moves nothing), pairs of distinct frames only
=============  ================================================================================

Each agreement ``a`` is put on the figure's scale with the style as the unrelated reference,
``(a(output, content) - r) / (1 - r)`` with ``r = max(0, a(style, content))``, the style
repeated or cut to the content's length, and clipped to [0, 1].

**style** (0 = the content itself, 1 = the style itself): how far the output moved from the
content to the style in two timbre spaces, each ``1 - d(output, style) / d(content, style)``
clipped to [0, 1], and their mean:

=============  ================================================================================
``timbre``     Euclidean distance between the means and standard deviations over frames of
               MFCC 1-19 (64 mel bands, dB, floored 80 dB below the clip's peak)
``spectrum``   mean absolute difference in dB of the long-term average spectra (64 mel bands,
               each band's share of the clip's power, floored 80 dB below the largest band)
=============  ================================================================================

A blend of styles is one style here: its statistics are the weighted mean of each style's
(the long-term spectrum averaged as power shares) and its agreement with the content the
weighted mean of each style's. A part whose reference is degenerate (the content and the
style agree perfectly on it) is None and left out of its figure's mean. Figures and parts
are rounded to four decimals.

Every clip is mixed to mono, resampled to 16 kHz and scaled to one RMS level, so neither its
rate nor its level enters a figure; only its first :data:`MAX_SECONDS` seconds are analysed,
which bounds the work for any input (of a file, only that head is decoded). Read the style figure as "matches this very clip": a
run that took the instrument but kept the notes sits below 1 on it, and the content figure
cannot tell a melody carried well from one played by another instrument.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch

from .dsp.levels import normalise_level
from .dsp.mel import mel_filters
from .dsp.resample import resample
from .dsp.stft import stft
from .errors import ConfigError
from .io import load_audio
from .validation import is_number, positive_int, positive_seconds

__all__ = ["MAX_SECONDS", "RATE", "CONTENT_PARTS", "STYLE_PARTS", "Scores", "score_output"]

#: Seconds of each clip analysed, from its start: bounds the cost whatever the input's length.
MAX_SECONDS = 30.0
#: Analysis rate in Hz: every clip is resampled to it.
RATE = 16000
CONTENT_PARTS = ("chroma", "onsets", "structure")
STYLE_PARTS = ("timbre", "spectrum")

#: A clip given as a file path or as ``(waveform (channels, samples) or (samples,), sample_rate)``.
Source = Union[str, "os.PathLike[str]", tuple]

# Frame view (mel, MFCC, onsets, structure): 64 ms window, 16 ms hop.
_N_FFT = 1024
_HOP = 256
_MEL_BANDS = 64
_MFCC = 20
_DB_RANGE = 80.0
# The self-similarity matrix pools four frames (64 ms): structure, not frame jitter.
_STRUCTURE_POOL = 4
# Pitch view: 128 ms windows resolve semitones down to about 130 Hz at 16 kHz.
_CHROMA_N_FFT = 2048
_CHROMA_HOP = 512
_CHROMA_FMIN = 80.0
_CHROMA_FMAX = 5000.0
# Pitch classes weigh the octaves around C5 most, as librosa's chroma filters do by default.
_CHROMA_CENTRE_HZ = 523.25
_CHROMA_OCTAVE_WIDTH = 2.0
# Frames quieter than this share of the loudest are scaled as if at that level, so near
# silence keeps small values instead of amplified noise.
_CHROMA_FLOOR = 1e-2
_REFERENCE_EPSILON = 1e-9
_DECIMALS = 4


@dataclass(frozen=True)
class Scores:
    """The two figures of a run and the parts they are the mean of.

    Attributes
    ----------
    content : float or None
        In [0, 1]: 1 = the content itself, 0 = no more like the content than the style is.
        None when no part could be measured.
    style : float or None
        In [0, 1]: 0 = the content itself, 1 = the style itself. None when no part could be
        measured (the content and the style have the same statistics).
    content_parts : dict
        ``chroma``, ``onsets``, ``structure``: each in [0, 1], or None.
    style_parts : dict
        ``timbre``, ``spectrum``: each in [0, 1], or None.
    seconds : float
        How much of the content was analysed, from its start.
    """

    content: float | None
    style: float | None
    content_parts: dict[str, float | None] = field(default_factory=dict)
    style_parts: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: ``content``, ``style``, ``content_parts``, ``style_parts``, ``seconds``."""
        return {
            "content": self.content,
            "style": self.style,
            "content_parts": dict(self.content_parts),
            "style_parts": dict(self.style_parts),
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class _Analysis:
    """What the figures need of one clip."""

    chroma: np.ndarray  # (12, frames)
    onsets: np.ndarray  # (frames,)
    similarity: np.ndarray  # (pooled frames, pooled frames)
    timbre: np.ndarray  # (38,)
    shares: np.ndarray  # (64,): long-term mel power, shares of the total


def score_output(
    output: Source,
    content: Source,
    styles: Sequence[tuple[Source, float]],
    *,
    max_seconds: float = MAX_SECONDS,
) -> Scores:
    """How much of ``content`` the ``output`` kept, and how far it moved towards the style.

    Parameters
    ----------
    output, content : path or (np.ndarray, int)
        A file, or a waveform [shape=(channels, samples) or (samples,)] with its sample rate.
        The output is compared with the content frame by frame, from their starts.
    styles : sequence of (path or (np.ndarray, int), float)
        The style clip(s) and their blend weights (normalised to sum to 1).
    max_seconds : float
        Analyse at most this many seconds of each clip, from its start.

    Returns
    -------
    Scores
        ``content`` and ``style`` in [0, 1] and their parts; see the module's description.

    Raises
    ------
    AudioFileError
        A file cannot be read (as :func:`audiostyle.io.load_audio`).
    ConfigError
        No style, a weight that is not a finite number >= 0, weights summing to 0, a
        waveform that is empty or holds NaN or Inf, a sample rate that is not a positive
        integer, or ``max_seconds`` not positive.
    TypeError
        A source is neither a path nor an ``(array, sample_rate)`` pair.

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> melody = (np.sin(2 * np.pi * 220 * t) * (t % 0.25 < 0.2), 16000)
    >>> noise = (np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    >>> scores = score_output(melody, melody, [(noise, 1.0)])
    >>> scores.content, scores.style
    (1.0, 0.0)
    """
    max_seconds = positive_seconds("max_seconds", max_seconds)
    weights = _weights(styles)
    content_wave = _mono(content, max_seconds)
    length = content_wave.shape[-1]
    output_view = _analyse(_mono(output, max_seconds))
    content_view = _analyse(content_wave)
    style_waves = [_mono(source, max_seconds) for source, _ in styles]
    style_views = [_analyse(wave) for wave in style_waves]
    aligned_views = [_analyse(_tile(wave, length)) for wave in style_waves]

    content_parts = {
        part: _rounded(_content_part(part, output_view, content_view, aligned_views, weights)) for part in CONTENT_PARTS
    }
    timbre_target = sum(w * view.timbre for w, view in zip(weights, style_views))
    spectrum_target = _decibels(sum(w * view.shares for w, view in zip(weights, style_views)))
    style_parts = {
        "timbre": _rounded(_towards(
            _euclidean(output_view.timbre, timbre_target), _euclidean(content_view.timbre, timbre_target)
        )),
        "spectrum": _rounded(_towards(
            _mean_abs(_decibels(output_view.shares), spectrum_target),
            _mean_abs(_decibels(content_view.shares), spectrum_target),
        )),
    }
    return Scores(
        content=_rounded(_mean(content_parts)),
        style=_rounded(_mean(style_parts)),
        content_parts=content_parts,
        style_parts=style_parts,
        seconds=length / RATE,
    )


# -- inputs ---------------------------------------------------------------------------------------
def _weights(styles: Sequence[tuple[Source, float]]) -> list[float]:
    if not styles:
        raise ConfigError("styles=[] must name at least one style")
    weights = [weight for _, weight in styles]
    for weight in weights:
        if not is_number(weight) or weight < 0:
            raise ConfigError(f"style weight={weight!r} must be a finite number >= 0")
    total = float(sum(weights))
    if total <= 0:
        raise ConfigError(f"style weights={weights!r} must not sum to 0")
    return [float(weight) / total for weight in weights]


def _mono(source: Source, max_seconds: float) -> np.ndarray:
    """The clip's first ``max_seconds`` as mono float32 at :data:`RATE`, at the analysis level."""
    if isinstance(source, tuple):
        if len(source) != 2:
            raise ConfigError(f"an audio tuple must be (waveform, sample_rate), got {len(source)} items")
        audio, rate = np.asarray(source[0], dtype=np.float32), positive_int("sample_rate", source[1])
        if audio.ndim not in (1, 2) or audio.shape[-1] == 0:
            raise ConfigError(f"waveform shape={audio.shape} must be (samples,) or (channels, samples), not empty")
        audio = audio.reshape(-1, audio.shape[-1])
    elif isinstance(source, (str, os.PathLike)):
        audio, rate = load_audio(source, mono=True, max_seconds=max_seconds)
    else:
        raise ConfigError(f"a clip must be a path or a (waveform, sample_rate) pair, not {type(source).__name__}")
    # Cut before anything else, so the work never depends on the input's length.
    head = audio[:, : max(1, math.ceil(min(max_seconds, audio.shape[-1] / rate + 1.0) * rate))]
    if not np.isfinite(head).all():
        raise ConfigError("a waveform holds NaN or Inf samples")
    # The measures ignore level: a float file's samples near 3e38 are brought under 1 first, in
    # float64, so that no square or resampling filter overflows float32.
    mono = head.mean(axis=0, keepdims=True, dtype=np.float64)
    peak = float(np.abs(mono).max())
    if peak > 1.0:
        mono /= peak
    return normalise_level(resample(mono.astype(np.float32), rate, RATE))[0]


def _tile(wave: np.ndarray, length: int) -> np.ndarray:
    """``wave`` repeated or cut to ``length`` samples."""
    return np.resize(wave, length) if wave.shape[-1] != length else wave


# -- analysis -------------------------------------------------------------------------------------
def _analyse(wave: np.ndarray) -> _Analysis:
    power = _power(wave, _N_FFT, _HOP)
    mel_power = _filters("mel") @ power
    mel_db = 10.0 * np.log10(np.maximum(mel_power, 1e-12))
    mel_db = np.maximum(mel_db, mel_db.max() - _DB_RANGE)
    mfcc = (_filters("dct") @ mel_db)[1:]
    long_term = mel_power.mean(axis=1)
    return _Analysis(
        chroma=_chroma(_power(wave, _CHROMA_N_FFT, _CHROMA_HOP)),
        onsets=np.maximum(np.diff(mel_db, axis=1), 0.0).mean(axis=0),
        similarity=_self_similarity(mel_db),
        timbre=np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]),
        shares=long_term / max(float(long_term.sum()), 1e-30),
    )


def _power(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    spectrum = stft(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), n_fft=n_fft, hop_length=hop)
    return spectrum.abs().square().double().numpy()


def _chroma(power: np.ndarray) -> np.ndarray:
    energy = _filters("chroma") @ power
    frame_peak = energy.max(axis=0)
    floor = _CHROMA_FLOOR * max(float(frame_peak.max()), 1e-30)
    return energy / np.maximum(frame_peak, floor)


def _self_similarity(mel_db: np.ndarray) -> np.ndarray:
    centred = mel_db - mel_db.mean(axis=1, keepdims=True)
    frames = centred.shape[1] // _STRUCTURE_POOL * _STRUCTURE_POOL
    if frames == 0:
        return np.zeros((0, 0))
    pooled = centred[:, :frames].reshape(centred.shape[0], -1, _STRUCTURE_POOL).mean(axis=2)
    norms = np.linalg.norm(pooled, axis=0)
    unit = pooled / np.where(norms > 0, norms, 1.0)
    return unit.T @ unit


_FILTER_CACHE: dict[str, np.ndarray] = {}


def _filters(name: str) -> np.ndarray:
    """The mel, DCT and chroma matrices, made once per process."""
    if name not in _FILTER_CACHE:
        if name == "mel":
            _FILTER_CACHE[name] = mel_filters(RATE, _N_FFT, _MEL_BANDS).astype(np.float64)
        elif name == "dct":
            _FILTER_CACHE[name] = _dct_matrix(_MFCC, _MEL_BANDS)
        else:
            _FILTER_CACHE[name] = _chroma_matrix()
    return _FILTER_CACHE[name]


def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II [shape=(n_out, n_in)]: MFCCs from mel dB, as ``scipy.fft.dct(norm="ortho")``."""
    k = np.arange(n_out)[:, np.newaxis]
    n = np.arange(n_in)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def _chroma_matrix() -> np.ndarray:
    """STFT bins -> 12 pitch classes (A first) [shape=(12, n_fft // 2 + 1)].

    Each bin between 80 Hz and 5 kHz is shared between its two nearest pitch classes, in
    proportion to its closeness in semitones (A440 tuning); it is weighted by ``1 / f`` so
    every semitone counts alike whatever its number of bins, and by a Gaussian over octaves
    centred on C5.
    """
    frequencies = np.arange(_CHROMA_N_FFT // 2 + 1) * RATE / _CHROMA_N_FFT
    inside = (frequencies >= _CHROMA_FMIN) & (frequencies <= _CHROMA_FMAX)
    safe = np.where(inside, frequencies, _CHROMA_CENTRE_HZ)
    semitones = 12.0 * np.log2(safe / 440.0)
    distance = (semitones[np.newaxis, :] - np.arange(12)[:, np.newaxis] + 6.0) % 12.0 - 6.0
    octave_weight = np.exp(-0.5 * (np.log2(safe / _CHROMA_CENTRE_HZ) / _CHROMA_OCTAVE_WIDTH) ** 2)
    return np.maximum(0.0, 1.0 - np.abs(distance)) * (inside * octave_weight / safe)[np.newaxis, :]


# -- comparison -----------------------------------------------------------------------------------
def _content_part(
    part: str, output: _Analysis, content: _Analysis, aligned_styles: list[_Analysis], weights: list[float]
) -> float | None:
    agreement = _AGREEMENTS[part]
    # An unrelated clip agrees about 0: a style that happens to disagree more sets no lower anchor.
    reference = max(0.0, sum(w * agreement(view, content) for w, view in zip(weights, aligned_styles)))
    if 1.0 - reference < _REFERENCE_EPSILON:
        return None
    return float(np.clip((agreement(output, content) - reference) / (1.0 - reference), 0.0, 1.0))


def _towards(distance: float, reference: float) -> float | None:
    """``1 - distance / reference`` in [0, 1]; None when the reference distance is ~0."""
    if reference < _REFERENCE_EPSILON:
        return None
    return float(np.clip(1.0 - distance / reference, 0.0, 1.0))


def _pearson(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson correlation of two series cropped to the shorter (0 if either is constant)."""
    length = min(first.shape[-1], second.shape[-1])
    a = first[..., :length].ravel() - first[..., :length].mean()
    b = second[..., :length].ravel() - second[..., :length].mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.clip(np.dot(a, b) / norm, -1.0, 1.0)) if norm > 0.0 else 0.0


def _structure_agreement(first: _Analysis, second: _Analysis) -> float:
    frames = min(first.similarity.shape[0], second.similarity.shape[0])
    upper = np.triu_indices(frames, k=1)
    return _pearson(first.similarity[:frames, :frames][upper], second.similarity[:frames, :frames][upper])


_AGREEMENTS = {
    "chroma": lambda a, b: _pearson(a.chroma, b.chroma),
    "onsets": lambda a, b: _pearson(a.onsets, b.onsets),
    "structure": _structure_agreement,
}


def _decibels(shares: np.ndarray) -> np.ndarray:
    level = 10.0 * np.log10(np.maximum(shares, 1e-30))
    return np.maximum(level, level.max() - _DB_RANGE)


def _euclidean(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.linalg.norm(first - second))


def _mean_abs(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.mean(np.abs(first - second)))


def _rounded(value: float | None) -> float | None:
    # Four decimals: the figures are read by eye, and a copy scores exactly 1 (or 0), not 0.9999999999999999.
    return None if value is None else round(value, _DECIMALS)


def _mean(parts: Mapping[str, float | None]) -> float | None:
    values = [value for value in parts.values() if value is not None]
    return float(np.mean(values)) if values else None
