"""Measures of a timbre transfer against its ground truth: the content's notes on the style's instrument.

Where :mod:`benchmarks.quality_metrics` must judge an output against two different sounds,
a rendered benchmark (:mod:`benchmarks.groundtruth`) knows what the answer should be, so
each measure here compares the output with that *truth*, frame by frame where timing
matters and as time-averaged statistics where it does not:

====================  =====================================================  ===========
measure               what                                                   best
====================  =====================================================  ===========
``log_mel_db``        RMS difference of 80-band log-mel spectra, dB, frame   0
                      by frame (both floored 80 dB below the truth's peak)
``timbre``            Euclidean distance of MFCC 1-19 means and standard     0
                      deviations over frames
``ltas_db``           mean absolute difference of the long-term average      0
                      mel spectra, dB (each as shares of its total power)
``chroma``            Pearson correlation of the flattened chromagrams       1
                      (``chroma_cqt``, each frame scaled by its own peak)
``pitch``             share of the truth's voiced frames where the output's  1
                      pYIN f0 lies within 50 cents of the truth's
``pitch_class``       as ``pitch``, octave errors forgiven                   1
``onset_f1``          F1 of detected onsets (backtracked to the start of     1
                      the rise), matched one to one within +/-50 ms
``onset_f1_score``    the output's detected onsets against the score's note  1
                      starts instead of the truth's detected onsets (which
                      miss or double some: a flute's chiff, a synth voice's
                      swell); None without a score
``histogram_truth``   Pearson correlation of 12-bin pitch-class histograms   1
                      (chroma energy summed over time), output and truth
``histogram_style``   the same, output and style clip: a high value means    low
                      the style's notes leaked into the output
====================  =====================================================  ===========

Every waveform is mixed to mono, resampled to 22050 Hz and scaled to one RMS level
first, so level and rate enter no measure. Analyse each clip once with :func:`analyze`
(pYIN dominates the cost, about half a second per 4 s clip) and compare the analyses with
:func:`compare`; :func:`score` does both for one output. Everything is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "RATE",
    "MEASURES",
    "Analysis",
    "analyze",
    "compare",
    "score",
    "log_mel_distance",
    "timbre_distance",
    "ltas_distance",
    "chroma_correlation",
    "pitch_accuracy",
    "match_onsets",
    "onset_f1",
    "histogram_correlation",
]

RATE = 22050
#: Measures :func:`compare` returns, in table order.
MEASURES = (
    "log_mel_db", "timbre", "ltas_db", "chroma", "pitch", "pitch_class", "onset_f1", "onset_f1_score",
    "histogram_truth", "histogram_style",
)

_LEVEL_RMS = 0.1
_N_FFT = 2048
_HOP = 512
_MEL_BANDS = 80
_MEL_FMIN = 30.0
_DB_RANGE = 80.0
_MFCC = 20
# pYIN's search range: C2 to C7 covers every melody the benchmark renders, with an octave to spare.
_F0_MIN = 65.41
_F0_MAX = 2093.0
_PITCH_TOLERANCE_CENTS = 50.0
_ONSET_TOLERANCE_SECONDS = 0.05
# A 12 ms onset grid leaves room within the 50 ms tolerance for the detector's own spread.
_ONSET_HOP = 256
# Chroma frames quieter than this fraction of the loudest frame are scaled as if they had
# its peak, so near-silent frames keep their small values instead of amplified noise.
_CHROMA_FLOOR = 1e-2


@dataclass(frozen=True)
class Analysis:
    """What :func:`compare` needs of one clip; computed once by :func:`analyze`.

    Attributes
    ----------
    mel_db : np.ndarray [shape=(80, frames)]
        Mel power in dB of the level-normalised clip (not floored; :func:`compare` floors it).
    timbre : np.ndarray [shape=(38,)]
        Means then standard deviations over frames of MFCC 1-19.
    ltas_db : np.ndarray [shape=(80,)]
        Long-term average mel spectrum, dB of each band's share of the total power, floored
        80 dB below its peak.
    chroma : np.ndarray [shape=(12, frames)]
        Chromagram, each frame scaled by its own peak (quiet frames by a floor).
    histogram : np.ndarray [shape=(12,)]
        Chroma energy summed over time: the clip's pitch-class histogram.
    f0 : np.ndarray [shape=(frames,)]
        pYIN fundamental frequency in Hz, NaN where unvoiced.
    onsets : np.ndarray [shape=(onsets,)]
        Detected onset times in seconds.
    """

    mel_db: np.ndarray
    timbre: np.ndarray
    ltas_db: np.ndarray
    chroma: np.ndarray
    histogram: np.ndarray
    f0: np.ndarray
    onsets: np.ndarray


def analyze(waveform: np.ndarray, sample_rate: int = RATE) -> Analysis:
    """Analyse one clip for :func:`compare`.

    Parameters
    ----------
    waveform : np.ndarray [shape=(channels, samples) or (samples,)]
        Any level; channels are averaged.
    sample_rate : int
        Its rate; other rates than 22050 Hz are resampled (soxr_hq).

    Returns
    -------
    Analysis

    Raises
    ------
    ValueError
        If the waveform is empty, non-finite, or shaped otherwise, or the rate is not a
        positive integer.
    """
    import librosa

    mono = _normalised_mono(waveform, sample_rate)
    mel_power = librosa.feature.melspectrogram(
        y=mono, sr=RATE, n_fft=_N_FFT, hop_length=_HOP, n_mels=_MEL_BANDS, fmin=_MEL_FMIN, power=2.0
    )
    mel_db = librosa.power_to_db(mel_power, ref=1.0, amin=1e-10, top_db=None)
    mfcc = librosa.feature.mfcc(S=np.maximum(mel_db, mel_db.max() - _DB_RANGE), n_mfcc=_MFCC)[1:]
    long_term = mel_power.mean(axis=1)
    long_term_db = 10.0 * np.log10(np.maximum(long_term / max(float(long_term.sum()), 1e-30), 1e-30))
    # Tuned to A440 for every clip: an estimated tuning would move each clip's bins by its own amount.
    chroma_energy = librosa.feature.chroma_cqt(y=mono, sr=RATE, hop_length=_HOP, norm=None, tuning=0.0)
    frame_peak = chroma_energy.max(axis=0)
    floor = _CHROMA_FLOOR * max(float(frame_peak.max()), 1e-30)
    f0, _, _ = librosa.pyin(
        mono, fmin=_F0_MIN, fmax=_F0_MAX, sr=RATE, frame_length=_N_FFT, hop_length=_HOP
    )
    # Backtracked to the preceding minimum of the onset strength: slow attacks (bowed
    # strings, pads) otherwise report their onset at the steepest point of the swell.
    onsets = librosa.onset.onset_detect(
        y=mono, sr=RATE, hop_length=_ONSET_HOP, units="time", backtrack=True
    )
    return Analysis(
        mel_db=mel_db,
        timbre=np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]),
        ltas_db=np.maximum(long_term_db, long_term_db.max() - _DB_RANGE),
        chroma=chroma_energy / np.maximum(frame_peak, floor),
        histogram=chroma_energy.sum(axis=1),
        f0=f0,
        onsets=np.asarray(onsets, dtype=np.float64),
    )


def compare(
    output: Analysis, truth: Analysis, style: Analysis | None = None, *, score_onsets: np.ndarray | None = None
) -> dict[str, float | None]:
    """Every measure of ``output`` against ``truth`` (and the style clip, for the leak detector).

    Parameters
    ----------
    output, truth : Analysis
    style : Analysis or None
        The style clip; without it ``histogram_style`` and ``closer_to`` are None.
    score_onsets : np.ndarray [shape=(notes,)] or None
        When the truth's notes start, in seconds, from its score; without it
        ``onset_f1_score`` is None.

    Returns
    -------
    dict
        One value per name in :data:`MEASURES` (``pitch`` and ``pitch_class`` are None when
        the truth has no voiced frame), and ``closer_to``: ``"truth"`` when the output's
        pitch-class histogram correlates more with the truth's than with the style's,
        ``"style"`` otherwise.
    """
    pitch = pitch_accuracy(output.f0, truth.f0)
    pitch_class = pitch_accuracy(output.f0, truth.f0, octave_invariant=True)
    histogram_truth = histogram_correlation(output.histogram, truth.histogram)
    histogram_style = None if style is None else histogram_correlation(output.histogram, style.histogram)
    return {
        "log_mel_db": log_mel_distance(output.mel_db, truth.mel_db),
        "timbre": timbre_distance(output.timbre, truth.timbre),
        "ltas_db": ltas_distance(output.ltas_db, truth.ltas_db),
        "chroma": chroma_correlation(output.chroma, truth.chroma),
        "pitch": pitch,
        "pitch_class": pitch_class,
        "onset_f1": onset_f1(output.onsets, truth.onsets),
        "onset_f1_score": None if score_onsets is None else onset_f1(output.onsets, score_onsets),
        "histogram_truth": histogram_truth,
        "histogram_style": histogram_style,
        "closer_to": None if histogram_style is None else ("truth" if histogram_truth > histogram_style else "style"),
    }


def score(
    output: np.ndarray, truth: np.ndarray, style: np.ndarray | None = None, sample_rate: int = RATE
) -> dict[str, float | None]:
    """:func:`compare` on waveforms: analyse each (all at ``sample_rate``) and compare.

    Examples
    --------
    >>> t = np.arange(2 * RATE) / RATE
    >>> tone = np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.3)
    >>> result = score(tone, tone)
    >>> result["log_mel_db"], round(result["chroma"], 6), result["onset_f1"]
    (0.0, 1.0, 1.0)
    """
    style_analysis = None if style is None else analyze(style, sample_rate)
    return compare(analyze(output, sample_rate), analyze(truth, sample_rate), style_analysis)


def log_mel_distance(output_db: np.ndarray, truth_db: np.ndarray) -> float:
    """RMS difference in dB of two mel spectrograms, frame by frame.

    Both are floored 80 dB below the truth's peak (so silence compares as silence, not as
    numerical noise) and cropped to the shorter one's frames.
    """
    floor = float(truth_db.max()) - _DB_RANGE
    frames = min(output_db.shape[-1], truth_db.shape[-1])
    difference = np.maximum(output_db[:, :frames], floor) - np.maximum(truth_db[:, :frames], floor)
    return float(np.sqrt(np.mean(difference**2)))


def timbre_distance(output_timbre: np.ndarray, truth_timbre: np.ndarray) -> float:
    """Euclidean distance between two clips' MFCC statistics (:attr:`Analysis.timbre`)."""
    return float(np.linalg.norm(output_timbre - truth_timbre))


def ltas_distance(output_ltas_db: np.ndarray, truth_ltas_db: np.ndarray) -> float:
    """Mean absolute difference in dB of two long-term average spectra (:attr:`Analysis.ltas_db`)."""
    return float(np.mean(np.abs(output_ltas_db - truth_ltas_db)))


def chroma_correlation(output_chroma: np.ndarray, truth_chroma: np.ndarray) -> float:
    """Pearson correlation of two chromagrams flattened, cropped to the shorter (0 if either is constant)."""
    frames = min(output_chroma.shape[-1], truth_chroma.shape[-1])
    return _pearson(output_chroma[:, :frames].ravel(), truth_chroma[:, :frames].ravel())


def pitch_accuracy(output_f0: np.ndarray, truth_f0: np.ndarray, *, octave_invariant: bool = False) -> float | None:
    """Share of the truth's voiced frames where the output's f0 is within 50 cents of it.

    Parameters
    ----------
    output_f0, truth_f0 : np.ndarray [shape=(frames,)]
        Hz, NaN where unvoiced; cropped to the shorter. An unvoiced output frame is a miss.
    octave_invariant : bool
        Compare pitch classes: an error of a whole number of octaves counts as a hit.

    Returns
    -------
    float or None
        In [0, 1]; None if the truth has no voiced frame.
    """
    frames = min(output_f0.shape[-1], truth_f0.shape[-1])
    output_f0, truth_f0 = output_f0[:frames], truth_f0[:frames]
    voiced = np.isfinite(truth_f0) & (truth_f0 > 0)
    if not voiced.any():
        return None
    estimate = output_f0[voiced]
    found = np.isfinite(estimate) & (estimate > 0)
    cents = np.full(estimate.shape, np.inf)
    cents[found] = 1200.0 * np.log2(estimate[found] / truth_f0[voiced][found])
    if octave_invariant:
        cents[found] = (cents[found] + 600.0) % 1200.0 - 600.0
    return float(np.mean(np.abs(cents) <= _PITCH_TOLERANCE_CENTS))


def match_onsets(reference: np.ndarray, estimate: np.ndarray, *, tolerance: float = _ONSET_TOLERANCE_SECONDS) -> int:
    """How many onsets pair up one to one within ``tolerance`` seconds, closest pairs first.

    Parameters
    ----------
    reference, estimate : np.ndarray [shape=(onsets,)]
        Onset times in seconds.
    tolerance : float
        The largest time difference of a match.

    Returns
    -------
    int
        The number of matched pairs (greedy: every pair within the tolerance, by increasing
        distance, is taken if neither onset is taken yet).
    """
    distance = np.abs(np.asarray(reference, dtype=np.float64)[:, None] - np.asarray(estimate, dtype=np.float64)[None, :])
    candidates = np.argwhere(distance <= tolerance)
    order = np.argsort(distance[candidates[:, 0], candidates[:, 1]], kind="stable")
    used_reference, used_estimate, matches = set(), set(), 0
    for i, j in candidates[order]:
        if i not in used_reference and j not in used_estimate:
            used_reference.add(i)
            used_estimate.add(j)
            matches += 1
    return matches


def onset_f1(output_onsets: np.ndarray, truth_onsets: np.ndarray, *, tolerance: float = _ONSET_TOLERANCE_SECONDS) -> float:
    """F1 of the output's onsets against the truth's, matched by :func:`match_onsets` (1 if both have none)."""
    total = len(output_onsets) + len(truth_onsets)
    if total == 0:
        return 1.0
    return 2.0 * match_onsets(truth_onsets, output_onsets, tolerance=tolerance) / total


def histogram_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson correlation of two 12-bin pitch-class histograms (0 if either is flat)."""
    return _pearson(np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64))


def _pearson(first: np.ndarray, second: np.ndarray) -> float:
    a, b = first - first.mean(), second - second.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.clip(np.dot(a, b) / norm, -1.0, 1.0)) if norm > 0.0 else 0.0


def _normalised_mono(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate={sample_rate!r} must be a positive integer")
    array = np.asarray(waveform, dtype=np.float64)
    if array.ndim not in (1, 2) or array.shape[-1] == 0:
        raise ValueError(f"audio must be shaped (samples,) or (channels, samples), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("audio holds non-finite samples")
    mono = array if array.ndim == 1 else array.mean(axis=0)
    if sample_rate != RATE:
        mono = librosa.resample(mono, orig_sr=int(sample_rate), target_sr=RATE, res_type="soxr_hq")
    rms = float(np.sqrt(np.mean(mono**2)))
    # A silent output stays silent: it should score badly, not raise.
    return mono * (_LEVEL_RMS / rms) if rms > 0.0 else mono
