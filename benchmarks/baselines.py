"""Naive "stylizations" every real one must beat: a 50/50 mix and a style-matched EQ.

Both take waveforms at one sample rate and return a float32 waveform shaped like the
content, at the content's RMS level (scaled down further only if a sample would clip).
The quality yardstick in :mod:`benchmarks.quality_metrics` reports them on every pair:

- :func:`mix` keeps the content's timing and adds the style's texture at half weight;
  the 2016 method at its best lands about here.
- :func:`eq_match` copies only the style's *average* spectrum onto the content; a measure
  of style that rewards it as much as a real stylization measures colour, not texture.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_length", "mix", "eq_match"]

# 1/3 octave is the usual resolution of a graphic EQ and of loudness models' critical bands.
_SMOOTHING_OCTAVES = 1.0 / 3.0
# Cap on the EQ's boost or cut, so bins the content lacks (above its original Nyquist,
# say) amplify resampling noise by at most this much rather than without bound.
_MAX_GAIN_DB = 60.0
_PEAK_CEILING = 0.99


def fit_length(waveform: np.ndarray, length: int) -> np.ndarray:
    """Tile or crop a waveform along its last axis to exactly ``length`` samples.

    Parameters
    ----------
    waveform : np.ndarray [shape=(..., samples)]
    length : int > 0

    Returns
    -------
    np.ndarray [shape=(..., length)]
        ``waveform`` repeated end to end as often as needed, then cut to ``length``.

    Raises
    ------
    ValueError
        If ``waveform`` is empty or ``length`` is not positive.
    """
    if length <= 0:
        raise ValueError(f"length={length} must be > 0")
    samples = waveform.shape[-1]
    if samples == 0:
        raise ValueError("cannot tile an empty waveform")
    repeats = -(-length // samples)
    tiled = np.concatenate([waveform] * repeats, axis=-1) if repeats > 1 else waveform
    return tiled[..., :length]


def mix(content: np.ndarray, style: np.ndarray, sr: int) -> np.ndarray:
    """Equal-loudness 50/50 mix of the content and the style.

    Parameters
    ----------
    content : np.ndarray [shape=(channels, samples) or (samples,)]
    style : np.ndarray [shape=(channels, samples) or (samples,)]
        At the same rate ``sr``; tiled or cropped to the content's length, mixed to mono
        first when its channel count differs from the content's.
    sr : int
        The sample rate of both (kept for a uniform baseline signature; the mix itself
        does not depend on it).

    Returns
    -------
    np.ndarray [shape=content.shape, dtype=float32]
        ``0.5 * content / rms(content) + 0.5 * style / rms(style)``, rescaled to the
        content's RMS (and below 0 dBFS peak).

    Examples
    --------
    >>> tone = np.sin(np.linspace(0, 2000, 22050)).astype(np.float32)
    >>> mix(tone, np.random.default_rng(0).standard_normal(5000), 22050).shape
    (22050,)
    """
    _check_rate(sr)
    content_array = _as_float(content, "content")
    style_array = _match_channels(_as_float(style, "style"), content_array)
    style_array = fit_length(style_array, content_array.shape[-1])
    mixed = 0.5 * content_array / _rms(content_array, "content") + 0.5 * style_array / _rms(
        style_array, "style"
    )
    return _restore_level(mixed, _rms(content_array, "content"))


def eq_match(
    content: np.ndarray,
    style: np.ndarray,
    sr: int,
    *,
    n_fft: int = 4096,
    smoothing_octaves: float = _SMOOTHING_OCTAVES,
) -> np.ndarray:
    """The content through a static EQ that gives it the style's average spectrum.

    Each STFT bin of the content is multiplied by
    ``sqrt(mean power of style / mean power of content)`` at that frequency, both mean
    spectra smoothed over 1/3 octave first (a graphic EQ, not a per-bin filter that
    would imprint the style's harmonics), with the gain capped at +/-60 dB around its median.

    Parameters
    ----------
    content : np.ndarray [shape=(channels, samples) or (samples,)]
    style : np.ndarray [shape=(channels, samples) or (samples,)]
        At the same rate ``sr``; mixed to mono for its average spectrum.
    sr : int
        The sample rate of both.
    n_fft : int
        STFT size (hop ``n_fft // 4``).

    Returns
    -------
    np.ndarray [shape=content.shape, dtype=float32]
        The equalised content, rescaled to the content's RMS (and below 0 dBFS peak).
    """
    import librosa

    _check_rate(sr)
    content_array = _as_float(content, "content")
    style_array = _as_float(style, "style")
    style_mono = style_array if style_array.ndim == 1 else style_array.mean(axis=0)
    hop_length = n_fft // 4
    content_stft = librosa.stft(content_array, n_fft=n_fft, hop_length=hop_length)
    style_stft = librosa.stft(style_mono, n_fft=n_fft, hop_length=hop_length)
    content_power = np.abs(content_stft) ** 2
    # Average over frames (and channels): the long-term spectrum the EQ is fitted to.
    content_mean = content_power.reshape(-1, *content_power.shape[-2:]).mean(axis=(0, 2))
    style_mean = (np.abs(style_stft) ** 2).mean(axis=-1)
    ratio = _smooth_octave(style_mean, smoothing_octaves) / np.maximum(
        _smooth_octave(content_mean, smoothing_octaves), 1e-30
    )
    # Level is restored below, so only the spectral shape of the gain matters here.
    ratio /= np.median(ratio[ratio > 0]) if np.any(ratio > 0) else 1.0
    max_power_gain = 10.0 ** (_MAX_GAIN_DB / 10.0)
    gain = np.sqrt(np.clip(ratio, 1.0 / max_power_gain, max_power_gain))
    equalised = librosa.istft(
        content_stft * gain[:, None],
        hop_length=hop_length,
        n_fft=n_fft,
        length=content_array.shape[-1],
    )
    return _restore_level(equalised, _rms(content_array, "content"))


def _smooth_octave(spectrum: np.ndarray, octaves: float) -> np.ndarray:
    """Mean of a spectrum over a window ``octaves`` wide centred on every bin (at least +/-1 bin)."""
    bins = np.arange(spectrum.shape[-1])
    half_width = 2.0 ** (octaves / 2.0)
    low = np.clip(np.minimum(np.floor(bins / half_width), bins - 1), 0, None).astype(int)
    high = np.clip(np.maximum(np.ceil(bins * half_width), bins + 1), None, bins[-1]).astype(int)
    cumulative = np.concatenate([[0.0], np.cumsum(spectrum, dtype=np.float64)])
    return (cumulative[high + 1] - cumulative[low]) / (high - low + 1)


def _check_rate(sr: int) -> None:
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr={sr!r} must be a positive integer")


def _as_float(waveform: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(waveform, dtype=np.float64)
    if array.ndim not in (1, 2) or array.shape[-1] == 0:
        raise ValueError(f"{name} must be shaped (samples,) or (channels, samples), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite samples")
    return array


def _match_channels(waveform: np.ndarray, reference: np.ndarray) -> np.ndarray:
    if waveform.shape[:-1] == reference.shape[:-1]:
        return waveform
    mono = waveform if waveform.ndim == 1 else waveform.mean(axis=0)
    return mono if reference.ndim == 1 else np.broadcast_to(mono, (reference.shape[0], mono.shape[-1]))


def _rms(waveform: np.ndarray, name: str) -> float:
    rms = float(np.sqrt(np.mean(waveform**2)))
    if rms == 0.0:
        raise ValueError(f"{name} is silent (all samples are zero)")
    return rms


def _restore_level(waveform: np.ndarray, target_rms: float) -> np.ndarray:
    scaled = waveform * (target_rms / max(float(np.sqrt(np.mean(waveform**2))), 1e-30))
    peak = float(np.max(np.abs(scaled)))
    if peak > _PEAK_CEILING:
        scaled *= _PEAK_CEILING / peak
    return scaled.astype(np.float32)
