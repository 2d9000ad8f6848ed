"""An independent quality yardstick for style transfer: how much style, how much content.

:func:`score` rates an output against its content and style with measures the optimiser
never sees: different STFTs (16 kHz, n_fft 1024/4096, against the engine's 22.05 kHz
2048/512 linear log1p STFT), mel views instead of linear bins, a random network of a
different seed and shape, cepstral (MFCC) timbre statistics and spectral-shape descriptors.
The optimiser matches Gram statistics and band-envelope texture statistics (the envelopes'
moments, modulation spectra and cross-band correlations), so no family here is one of those:
a yardstick that contains the objective's own terms rewards them by construction.

Style: six families of time-averaged statistics (so clips of any length compare). Half the
weight is timbre as a listener's descriptors see it (MFCC and spectral shape), a sixth is
average colour; one family is invariant to a fixed gain per band and three nearly, so no
static EQ can move them much:

==================  ============================================================  ==========
family              statistic                                                     EQ-proof
==================  ============================================================  ==========
``colour``          long-term mean power in 1/3-octave bands (50 Hz - 8 kHz), dB   no
``random_net``      Gram matrices of a 2-layer random 1-D CNN (seed 2018, widths   partly
                    5 and 3 dilated x2, 256 filters) over log1p 96-band mel
``tonality``        spectral contrast of 6 octave bands, mean and std over time    mostly
``mfcc``            MFCC 1-19 (64 mel bands, dB): std over sounding frames (the     mostly
                    means are the average envelope, i.e. ``colour``)
``mfcc_motion``     mean absolute frame-to-frame change of MFCC 1-19: how fast     yes
                    the timbre moves (a static EQ adds a constant to each)
``shape``           spectral centroid, spread, flatness and 85 % roll-off of        mostly
                    sounding frames: std over time, and the mean flatness
==================  ============================================================  ==========

Sounding frames are those within 60 dB of the loudest, so pauses do not count as timbre.
Each family's distance ``d``
is normalised per pair: ``s = 1 - d(output, style) / d(content, style)``, so the content
scores 0 and the style 1; each ``s`` is clipped to [-0.5, 1.5] (a family where content and
style happen to be close would otherwise swing the mean) and ``style`` is their mean.
Statistics of a few seconds of music vary with the notes played: another excerpt of the
same recording scores about 0.5-0.8, not 1, so read 1 as "matches this very clip".

Content: three time-aligned similarities, chosen to survive a change of timbre: the
onset-strength envelope and the frame energy envelope (the mean of 64 mel bands' dB
levels), both by Pearson correlation, and the MFCC trajectory without c0 and with each
coefficient's mean removed, by cosine; a static EQ changes none of them much. Each is
normalised with the style as the unrelated reference,
``c = (sim(output, content) - sim(style, content)) / (1 - sim(style, content))``, with the
style tiled or cropped to the content's length; ``content`` is their mean (at most 1,
left unclipped below 0).

``combined`` is the harmonic mean of ``style`` and ``content``, each clipped to [0, 1].

All inputs are mixed to mono, resampled to 16 kHz (the lowest rate in the corpus; an output
inherits its content's rate, so bands above 8 kHz could never be judged fairly) and
normalised to one RMS level, so level and rate do not enter any score. Everything is
deterministic.

Run ``python -m benchmarks.quality_metrics OUTPUT CONTENT STYLE [--baselines]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Union

import numpy as np

from .baselines import eq_match, fit_length, mix

__all__ = [
    "ANALYSIS_RATE",
    "CONTENT_MEASURES",
    "STYLE_FAMILIES",
    "content_features",
    "content_similarity",
    "load_mono",
    "score",
    "style_distance",
    "style_statistics",
]

Source = Union[str, "os.PathLike[str]", np.ndarray, tuple]

ANALYSIS_RATE = 16000
STYLE_FAMILIES = ("colour", "random_net", "tonality", "mfcc", "mfcc_motion", "shape")
CONTENT_MEASURES = ("onset", "energy", "mfcc")

_LEVEL_RMS = 0.1
# Frame view for the network, tonality and content measures: 64 ms window, 16 ms hop.
_FRAME_N_FFT = 1024
_FRAME_HOP = 256
_CONTENT_BANDS = 64
# Colour is judged at 1/3-octave resolution, the resolution of the EQ baseline: finer
# detail (which harmonics sound) belongs to tonality and texture, not to colour.
_COLOUR_FMIN = 50.0
# A long window resolves the low third-octave bands (4 Hz bins) without leakage between them.
_COLOUR_N_FFT = 4096
_DB_RANGE = 80.0
_NET_BANDS = 96
_NET_SEED = 2018
_NET_LAYERS = ((5, 1, 256), (3, 2, 256))  # (width, dilation, filters)
_CONTRAST_BANDS = 5
_CONTRAST_FMIN = 200.0
_MFCC = 20
#: Frames more than this under the loudest frame are pauses, not timbre.
_SOUNDING_DB = 60.0
#: Share of a frame's power under its roll-off frequency.
_ROLLOFF = 0.85
_FAMILY_CLIP = (-0.5, 1.5)


def load_mono(source: Source, *, sample_rate: int = 22050, rate: int = ANALYSIS_RATE) -> np.ndarray:
    """Read any accepted input as a mono float64 waveform at ``rate``, at a fixed RMS level.

    Parameters
    ----------
    source : path, ``(array, sample_rate)`` or array
        A file path (any format soundfile reads); an ``(array, rate)`` pair; or a bare
        numpy array / CPU torch tensor shaped ``(channels, samples)`` or ``(samples,)``,
        taken to be at ``sample_rate``.
    sample_rate : int
        The rate of a bare array.
    rate : int
        The rate to return (resampled with soxr_hq).

    Returns
    -------
    np.ndarray [shape=(samples,)]
        Channels averaged, resampled, scaled to RMS 0.1.

    Raises
    ------
    TypeError
        If ``source`` is none of the accepted kinds.
    ValueError
        If the audio is empty, non-finite or silent.
    """
    import librosa

    name = "array"
    if isinstance(source, (str, os.PathLike)):
        import soundfile

        name = os.fspath(source)
        data, source_rate = soundfile.read(name, dtype="float64", always_2d=True)
        waveform = data.T
    elif isinstance(source, tuple):
        if len(source) != 2:
            raise TypeError(f"an audio tuple must be (array, sample_rate), got {len(source)} items")
        waveform, source_rate = _to_numpy(source[0]), source[1]
    else:
        waveform, source_rate = _to_numpy(source), sample_rate
    if not isinstance(source_rate, (int, np.integer)) or source_rate <= 0:
        raise ValueError(f"{name}: sample_rate={source_rate!r} must be a positive integer")
    if waveform.ndim not in (1, 2) or waveform.shape[-1] == 0:
        raise ValueError(f"{name}: audio must be shaped (samples,) or (channels, samples), got {waveform.shape}")
    if not np.all(np.isfinite(waveform)):
        raise ValueError(f"{name}: audio holds non-finite samples")
    mono = waveform if waveform.ndim == 1 else waveform.mean(axis=0)
    if source_rate != rate:
        mono = librosa.resample(mono, orig_sr=int(source_rate), target_sr=rate, res_type="soxr_hq")
    rms = float(np.sqrt(np.mean(mono**2)))
    if rms == 0.0:
        raise ValueError(f"{name}: audio is silent (all samples are zero)")
    return mono * (_LEVEL_RMS / rms)


def style_statistics(waveform: np.ndarray) -> dict[str, Any]:
    """The time-averaged statistics of every style family, for one mono 16 kHz waveform.

    Parameters
    ----------
    waveform : np.ndarray [shape=(samples,)]
        As returned by :func:`load_mono`.

    Returns
    -------
    dict
        One entry per name in :data:`STYLE_FAMILIES`; compare two with :func:`style_distance`.
    """
    import librosa

    frame_magnitude = _magnitude(waveform, _FRAME_N_FFT, _FRAME_HOP)
    colour_power = (_magnitude(waveform, _COLOUR_N_FFT, _COLOUR_N_FFT // 4) ** 2).mean(axis=1)
    # As shares of the total, so zero padding or level cannot shift the whole curve.
    colour_power = _third_octave_power(colour_power) / max(float(colour_power.sum()), 1e-30)
    colour_db = 10.0 * np.log10(np.maximum(colour_power, 1e-30))
    net_input = np.log1p(_mel(frame_magnitude, _FRAME_N_FFT, _NET_BANDS, 0.0))
    contrast = librosa.feature.spectral_contrast(
        S=frame_magnitude, sr=ANALYSIS_RATE, n_fft=_FRAME_N_FFT, hop_length=_FRAME_HOP,
        n_bands=_CONTRAST_BANDS, fmin=_CONTRAST_FMIN,
    )

    mel_db = librosa.power_to_db(
        _mel(frame_magnitude**2, _FRAME_N_FFT, _CONTENT_BANDS, 0.0), ref=np.max, top_db=_DB_RANGE
    )
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=_MFCC)[1:]
    sounding = _sounding_frames(frame_magnitude)
    return {
        "colour": np.maximum(colour_db, colour_db.max() - _DB_RANGE),
        "random_net": _random_net_grams(net_input),
        "tonality": np.concatenate([contrast.mean(axis=1), contrast.std(axis=1)]),
        # Their means are the average spectral envelope, which ``colour`` already judges.
        "mfcc": mfcc[:, sounding].std(axis=1),
        "mfcc_motion": np.abs(np.diff(mfcc, axis=1)).mean(axis=1) if mfcc.shape[1] > 1 else np.zeros(_MFCC - 1),
        "shape": _spectral_shape(frame_magnitude[:, sounding]),
    }


def style_distance(family: str, first: Any, second: Any) -> float:
    """The distance between two clips' statistics of one family (0 for identical ones).

    ``random_net`` is the mean over layers of the Frobenius distance between Gram matrices
    relative to the second's norm; every other family is the RMS difference of its vector
    (dB for ``colour`` and ``tonality``, cepstral units for the MFCC families, octaves and
    tens of dB for ``shape``).
    """
    if family == "random_net":
        return float(np.mean([
            np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30) for a, b in zip(first, second)
        ]))
    if family in STYLE_FAMILIES:
        difference = np.asarray(first) - np.asarray(second)
        return float(np.sqrt(np.mean(difference**2)))
    raise ValueError(f"family={family!r} must be one of {STYLE_FAMILIES}")


def content_features(waveform: np.ndarray) -> dict[str, np.ndarray]:
    """The time series behind each content measure, for one mono 16 kHz waveform.

    Returns
    -------
    dict
        ``onset`` [shape=(frames,)], ``energy`` (mean dB level of 64 mel bands, each
        floored 80 dB below the clip's peak) [shape=(frames,)] and ``mfcc`` (c1..c19, mean-removed) [shape=(19, frames)];
        compare two with :func:`content_similarity`.
    """
    import librosa

    magnitude = _magnitude(waveform, _FRAME_N_FFT, _FRAME_HOP)
    mel_db = librosa.power_to_db(
        _mel(magnitude**2, _FRAME_N_FFT, _CONTENT_BANDS, 0.0), ref=np.max, top_db=_DB_RANGE
    )
    onset = librosa.onset.onset_strength(S=mel_db, sr=ANALYSIS_RATE, hop_length=_FRAME_HOP)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=_MFCC)[1:]
    return {
        "onset": onset,
        # The mean of the bands' dB levels (MFCC c0, up to scale), not the dB of their sum:
        # a static EQ shifts it by a constant, where it would reweight a plain energy sum.
        "energy": mel_db.mean(axis=0),
        "mfcc": mfcc - mfcc.mean(axis=1, keepdims=True),
    }


def content_similarity(measure: str, first: np.ndarray, second: np.ndarray) -> float:
    """Similarity in [-1, 1] of two clips' time series of one content measure (1 = same).

    Pearson correlation for ``onset`` and ``energy``, cosine of the mean-removed
    trajectories for ``mfcc``; the longer series is cropped to the shorter.
    """
    if measure not in CONTENT_MEASURES:
        raise ValueError(f"measure={measure!r} must be one of {CONTENT_MEASURES}")
    frames = min(first.shape[-1], second.shape[-1])
    a = np.asarray(first[..., :frames], dtype=np.float64).ravel()
    b = np.asarray(second[..., :frames], dtype=np.float64).ravel()
    if measure != "mfcc":
        a, b = a - a.mean(), b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0.0 else 0.0


def score(output: Source, content: Source, style: Source, sample_rate: int = 22050) -> dict[str, float]:
    """Score a stylization: how much of the style it has, how much of the content it keeps.

    Parameters
    ----------
    output, content, style : path, ``(array, sample_rate)`` or array
        Any rate, mono or ``(channels, samples)``; see :func:`load_mono`.
    sample_rate : int
        The rate of any bare array among the three.

    Returns
    -------
    dict[str, float]
        ``style`` (0 = the content itself, 1 = the style itself; mean of the per-family
        scores, each clipped to [-0.5, 1.5]); ``content`` (1 = the content itself, 0 = as
        related to the content as the style is; at most 1); ``combined`` (harmonic mean of
        both clipped to [0, 1]); and for diagnosis, per family ``style_<family>`` (score),
        ``style_<family>_distance`` (output to style) and ``style_<family>_reference``
        (content to style), and per measure ``content_<measure>`` (score),
        ``content_<measure>_similarity`` (output to content) and
        ``content_<measure>_reference`` (style to content).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.standard_normal(32000) * np.repeat(rng.random(20), 1600)
    >>> tone = np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)
    >>> result = score(noise, noise, tone, sample_rate=16000)
    >>> round(result["style"], 6), round(result["content"], 6)
    (0.0, 1.0)
    """
    output_wave = load_mono(output, sample_rate=sample_rate)
    content_wave = load_mono(content, sample_rate=sample_rate)
    style_wave = load_mono(style, sample_rate=sample_rate)
    length = content_wave.shape[-1]
    if length < _FRAME_N_FFT:
        raise ValueError(f"content is {length} samples at {ANALYSIS_RATE} Hz; at least {_FRAME_N_FFT} are needed")

    output_stats = style_statistics(output_wave)
    content_stats = style_statistics(content_wave)
    style_stats = style_statistics(style_wave)
    result: dict[str, float] = {}
    family_scores = []
    for family in STYLE_FAMILIES:
        distance = style_distance(family, output_stats[family], style_stats[family])
        reference = style_distance(family, content_stats[family], style_stats[family])
        family_score = float(np.clip(1.0 - distance / max(reference, 1e-12), *_FAMILY_CLIP))
        family_scores.append(family_score)
        result[f"style_{family}"] = family_score
        result[f"style_{family}_distance"] = distance
        result[f"style_{family}_reference"] = reference

    # The output is fitted like the style reference, so the style itself scores exactly 0.
    output_series = content_features(fit_length(output_wave, length))
    content_series = content_features(content_wave)
    style_series = content_features(fit_length(style_wave, length))
    measure_scores = []
    for measure in CONTENT_MEASURES:
        similarity = content_similarity(measure, output_series[measure], content_series[measure])
        reference = content_similarity(measure, style_series[measure], content_series[measure])
        measure_score = (similarity - reference) / max(1.0 - reference, 1e-6)
        measure_scores.append(measure_score)
        result[f"content_{measure}"] = measure_score
        result[f"content_{measure}_similarity"] = similarity
        result[f"content_{measure}_reference"] = reference

    style_score = float(np.mean(family_scores))
    content_score = float(np.mean(measure_scores))
    clipped_style, clipped_content = np.clip(style_score, 0.0, 1.0), np.clip(content_score, 0.0, 1.0)
    total = clipped_style + clipped_content
    combined = float(2.0 * clipped_style * clipped_content / total) if total > 0.0 else 0.0
    return {"style": style_score, "content": content_score, "combined": combined, **result}


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"audio must be a path, an (array, sample_rate) pair or an array, got {type(array).__name__}")
    return array.astype(np.float64, copy=False)


def _magnitude(waveform: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    import librosa

    # Clips shorter than one window are zero-padded to it rather than analysed with a
    # window of another size, so every clip's statistics mean the same thing.
    padded = np.pad(waveform, (0, max(0, n_fft - waveform.shape[-1])))
    return np.abs(librosa.stft(padded, n_fft=n_fft, hop_length=hop_length, window="hann"))


def _mel(spectrum: np.ndarray, n_fft: int, n_mels: int, fmin: float) -> np.ndarray:
    """Sum of bins under unit-peak (not area-normalised) mel triangles, so values keep the STFT's scale."""
    import librosa

    filters = librosa.filters.mel(
        sr=ANALYSIS_RATE, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=ANALYSIS_RATE / 2, norm=None
    )
    return filters @ spectrum


def _third_octave_power(power: np.ndarray) -> np.ndarray:
    """Mean power per 1/3-octave band from 50 Hz to Nyquist of an STFT power spectrum [shape=(bands,)]."""
    frequencies = np.fft.rfftfreq(_COLOUR_N_FFT, d=1.0 / ANALYSIS_RATE)
    bands = int(np.floor(3.0 * np.log2((ANALYSIS_RATE / 2) / _COLOUR_FMIN)))
    centres = _COLOUR_FMIN * 2.0 ** (np.arange(bands) / 3.0)
    levels = []
    for centre in centres:
        inside = (frequencies >= centre * 2.0 ** (-1.0 / 6.0)) & (frequencies < centre * 2.0 ** (1.0 / 6.0))
        # Low bands narrower than a bin take the nearest bin.
        levels.append(power[inside].mean() if inside.any() else power[np.argmin(np.abs(frequencies - centre))])
    return np.asarray(levels)


def _sounding_frames(magnitude: np.ndarray) -> np.ndarray:
    """Boolean mask of the frames within 60 dB of the loudest [shape=(frames,)] (never empty)."""
    power = (magnitude**2).sum(axis=0)
    return power >= power.max() * 10.0 ** (-_SOUNDING_DB / 10.0)


def _spectral_shape(magnitude: np.ndarray) -> np.ndarray:
    """Std over frames of centroid, spread (octaves), flatness (tens of dB) and roll-off, and mean flatness [shape=(5,)].

    How much the spectral shape moves, and how noise-like it is: an EQ shifts the
    centroid and roll-off by about a constant and leaves these nearly alone (their means
    are colour, which ``colour`` already judges). Frequencies are in octaves above 62.5 Hz.
    """
    frequencies = np.fft.rfftfreq(_FRAME_N_FFT, d=1.0 / ANALYSIS_RATE)[1:]
    octaves = np.log2(frequencies / 62.5)
    power = magnitude[1:] ** 2 + 1e-20
    weights = power / power.sum(axis=0, keepdims=True)
    centroid = (weights * octaves[:, None]).sum(axis=0)
    spread = np.sqrt((weights * (octaves[:, None] - centroid) ** 2).sum(axis=0))
    flatness = np.log10(np.exp(np.log(power).mean(axis=0)) / power.mean(axis=0))
    rolloff = octaves[np.minimum((np.cumsum(weights, axis=0) < _ROLLOFF).sum(axis=0), octaves.size - 1)]
    descriptors = np.stack([centroid, spread, flatness, rolloff])
    return np.concatenate([descriptors.std(axis=1), flatness.mean(keepdims=True)])


def _random_net_grams(log_mel: np.ndarray) -> list[np.ndarray]:
    """Gram matrices (over time, per frame) of each ReLU layer of a fixed random 1-D CNN."""
    generator = np.random.default_rng(_NET_SEED)
    features = log_mel
    grams = []
    for width, dilation, filters in _NET_LAYERS:
        channels = features.shape[0]
        weights = generator.standard_normal((filters, channels * width)) / np.sqrt(channels * width)
        span = (width - 1) * dilation
        padded = np.pad(features, ((0, 0), (span // 2, span - span // 2)), mode="edge")
        windows = np.stack([padded[:, k * dilation: k * dilation + features.shape[1]] for k in range(width)], axis=1)
        features = np.maximum(weights @ windows.reshape(channels * width, -1), 0.0)
        grams.append(features @ features.T / features.shape[1])
    return grams


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality_metrics",
        description="Score OUTPUT against CONTENT and STYLE with the independent quality yardstick.",
    )
    parser.add_argument("output", nargs="?", help="the stylized file (omit with --baselines)")
    parser.add_argument("content")
    parser.add_argument("style")
    parser.add_argument("--baselines", action="store_true",
                        help="also score the content, the style, a 50/50 mix and an EQ match")
    parser.add_argument("--seconds", type=float, default=None, help="use only the first SECONDS of each file")
    parser.add_argument("--details", action="store_true", help="print every component, not just the totals")
    arguments = parser.parse_args(argv)
    if arguments.output is None and not arguments.baselines:
        parser.error("give OUTPUT, or --baselines")

    def read(path: str) -> tuple[np.ndarray, int]:
        import soundfile

        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if arguments.seconds is not None:
            data = data[: int(round(arguments.seconds * rate))]
        return data.T, rate

    content, content_rate = read(arguments.content)
    style, style_rate = read(arguments.style)
    import librosa

    style_at_content_rate = librosa.resample(style, orig_sr=style_rate, target_sr=content_rate, res_type="soxr_hq")
    rows: list[tuple[str, dict[str, float]]] = []
    pair = ((content, content_rate), (style, style_rate))
    if arguments.baselines:
        rows.append(("content", score((content, content_rate), *pair)))
        rows.append(("style", score((style, style_rate), *pair)))
        rows.append(("mix", score((mix(content, style_at_content_rate, content_rate), content_rate), *pair)))
        rows.append(("eq_match", score((eq_match(content, style_at_content_rate, content_rate), content_rate), *pair)))
    if arguments.output is not None:
        rows.append((os.path.basename(arguments.output), score(read(arguments.output), *pair)))

    columns = ["style", "content", "combined"]
    if arguments.details:
        columns += [f"style_{family}" for family in STYLE_FAMILIES] + [f"content_{m}" for m in CONTENT_MEASURES]
    label_width = max(len(label) for label, _ in rows)
    print(f"{'':{label_width}}  " + "  ".join(f"{c:>10}" if len(c) <= 10 else c for c in columns))
    for label, result in rows:
        cells = [f"{result[c]:>{max(10, len(c))}.3f}" for c in columns]
        print(f"{label:{label_width}}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
