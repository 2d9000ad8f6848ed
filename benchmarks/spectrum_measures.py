"""Level, spectrum and envelope measures of a waveform at its own sample rate.

Shared by the texture benchmark (:mod:`benchmarks.texture`) and the bandwidth figure of the
quality benchmark (:mod:`benchmarks.quality`). Unlike the quality yardstick
(:mod:`benchmarks.quality_metrics`), nothing here resamples or normalises the level: these
measures exist to see what the rate, the bandwidth and the loudness of an output are.

Every function takes a ``(channels, samples)`` or ``(samples,)`` array, removes each
channel's mean (DC offset) and combines channels by averaging their *power*, so a stereo
copy of a mono signal measures the same as the mono signal.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

__all__ = [
    "FRAME_SECONDS",
    "HOLE_DEPTH_DB",
    "MODULATION_EDGES",
    "THIRD_OCTAVE_CENTRES",
    "bandwidth_db",
    "frame_levels_db",
    "hole_share",
    "long_term_spectrum",
    "modulation_depths",
    "rms_db",
    "spectrum_difference_db",
    "third_octave_levels_db",
]

FRAME_SECONDS = 0.1
#: A frame this far under the source's median frame level is a hole.
HOLE_DEPTH_DB = 20.0
#: Nominal 1/3-octave centres, 50 Hz to 16 kHz (IEC 61260 base-2: 1 kHz * 2^(n/3)).
THIRD_OCTAVE_CENTRES = 1000.0 * 2.0 ** (np.arange(-13, 13) / 3.0)
#: Octave bands (Hz) whose envelopes' modulation depth is measured.
MODULATION_EDGES = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
#: Bands more than this far under the loudest band are treated as empty.
SPECTRUM_RANGE_DB = 60.0
#: The bandwidth figure: level of this band relative to the reference band (mean power density).
BANDWIDTH_BAND = (11000.0, 16000.0)
BANDWIDTH_REFERENCE = (1000.0, 8000.0)
#: The measured part of the high band must be at least this wide (Hz), else there is no figure.
_MIN_BAND_WIDTH = 1000.0
_SILENCE_DB = -120.0
_TINY = 1e-30
# Envelopes: 32 ms windows every 8 ms, at any rate (sizes in seconds, not samples), so two
# files at different rates are analysed alike.
_ENVELOPE_WINDOW_SECONDS = 0.032
_ENVELOPE_HOP_SECONDS = 0.008
# Long-term spectrum: about 2.7 Hz bins at 44.1 kHz resolve the 50 Hz third-octave band (12 Hz wide).
_SPECTRUM_RESOLUTION_HZ = 4.0


def _channels_first(audio: np.ndarray) -> np.ndarray:
    array = np.asarray(audio, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[-1] == 0:
        raise ValueError(f"audio must be shaped (samples,) or (channels, samples) and non-empty, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("audio holds non-finite samples")
    # A DC offset is inaudible, yet it would dominate the level of a quiet recording.
    return array - array.mean(axis=-1, keepdims=True)


def _db(power: np.ndarray | float) -> np.ndarray | float:
    return 10.0 * np.log10(np.maximum(power, _TINY))


def rms_db(audio: np.ndarray) -> float:
    """Overall RMS level in dBFS (RMS 1 = 0 dB), floored at -120 dB.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)]

    Returns
    -------
    float
    """
    power = float(np.mean(_channels_first(audio) ** 2))
    return float(max(_db(power), _SILENCE_DB))


def frame_levels_db(audio: np.ndarray, sample_rate: int, *, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """RMS level of consecutive, non-overlapping frames in dBFS, floored at -120 dB.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)]
    sample_rate : int
    frame_seconds : float
        Frame length; a last partial frame is dropped unless it is the only one.

    Returns
    -------
    np.ndarray [shape=(frames,)]
    """
    power = (_channels_first(audio) ** 2).mean(axis=0)
    frame = max(1, round(frame_seconds * sample_rate))
    frames = max(1, power.shape[-1] // frame)
    power = power[: frames * frame] if power.shape[-1] >= frame else power
    levels = _db(power.reshape(frames, -1).mean(axis=1))
    return np.maximum(levels, _SILENCE_DB)


def hole_share(levels_db: np.ndarray, reference_median_db: float, *, depth_db: float = HOLE_DEPTH_DB) -> float:
    """Share (0..1) of frames more than ``depth_db`` under ``reference_median_db``.

    Parameters
    ----------
    levels_db : np.ndarray [shape=(frames,)]
        From :func:`frame_levels_db`.
    reference_median_db : float
        The median frame level of the source the frames are judged against.
    depth_db : float
        How far under the median a frame must be to count.
    """
    levels = np.asarray(levels_db, dtype=np.float64)
    return float(np.mean(levels < reference_median_db - depth_db)) if levels.size else 0.0


def long_term_spectrum(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term power spectral density (Welch, Hann, half overlap), channels averaged.

    Returns
    -------
    frequencies : np.ndarray [shape=(bins,)]
        Hz, 0 to the Nyquist frequency.
    density : np.ndarray [shape=(bins,)]
        Power per Hz.
    """
    from scipy.signal import welch

    waveform = _channels_first(audio)
    wanted = int(2 ** np.ceil(np.log2(sample_rate / _SPECTRUM_RESOLUTION_HZ)))
    segment = min(wanted, waveform.shape[-1])
    frequencies, density = welch(waveform, fs=sample_rate, nperseg=segment, window="hann", axis=-1)
    return frequencies, density.mean(axis=0)


def third_octave_levels_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Long-term level of each 1/3-octave band of :data:`THIRD_OCTAVE_CENTRES` (dB, power per band).

    Returns
    -------
    np.ndarray [shape=(26,)]
        NaN for a band whose upper edge lies above the Nyquist frequency: the rate cannot hold it.
    """
    frequencies, density = long_term_spectrum(audio, sample_rate)
    step = frequencies[1] - frequencies[0] if frequencies.size > 1 else float(sample_rate)
    levels = np.full(THIRD_OCTAVE_CENTRES.shape, np.nan)
    for index, centre in enumerate(THIRD_OCTAVE_CENTRES):
        low, high = centre * 2.0 ** (-1.0 / 6.0), centre * 2.0 ** (1.0 / 6.0)
        if high > sample_rate / 2.0:
            continue
        inside = (frequencies >= low) & (frequencies < high)
        # A band narrower than a bin takes the nearest bin's density over its own width.
        power = density[inside].sum() * step if inside.any() else density[np.argmin(np.abs(frequencies - centre))] * (high - low)
        levels[index] = _db(power)
    return levels


def spectrum_difference_db(output_levels: np.ndarray, source_levels: np.ndarray, *, range_db: float = SPECTRUM_RANGE_DB) -> float:
    """Mean absolute difference (dB) of two 1/3-octave spectra's shapes.

    Both spectra are first brought to the same total power over the bands both rates hold,
    so the overall level (judged separately by :func:`rms_db`) does not enter. A band counts
    where either spectrum is within ``range_db`` of the loudest band; levels are floored there.
    A band only the source's rate holds counts where the source has energy there, against
    the floor (the output lacks it); a band only the output's rate holds does not count.

    Parameters
    ----------
    output_levels, source_levels : np.ndarray [shape=(bands,)]
        From :func:`third_octave_levels_db` (NaN above each one's Nyquist frequency).

    Returns
    -------
    float
        NaN when no band counts.
    """
    output = np.asarray(output_levels, dtype=np.float64)
    source = np.asarray(source_levels, dtype=np.float64)
    common = np.isfinite(output) & np.isfinite(source)
    if not common.any():
        return float("nan")

    def total_db(levels: np.ndarray) -> float:
        return float(_db(np.sum(10.0 ** (levels[common] / 10.0))))

    output = output + (total_db(source) - total_db(output))
    floor = float(np.nanmax(np.concatenate([output, source]))) - range_db
    source_only = np.isfinite(source) & ~np.isfinite(output)
    output = np.where(source_only, floor, output)
    output, source = np.maximum(output, floor), np.maximum(source, floor)
    counted = (common & ((output > floor) | (source > floor))) | (source_only & (source > floor))
    if not counted.any():
        return float("nan")
    return float(np.mean(np.abs(output[counted] - source[counted])))


def modulation_depths(audio: np.ndarray, sample_rate: int, *, edges: tuple[float, ...] = MODULATION_EDGES) -> np.ndarray:
    """Modulation depth (std / mean of the amplitude envelope) of each band between ``edges``.

    Envelopes are the square root of the STFT power summed over the band (32 ms Hann
    windows every 8 ms, channels' power averaged). A steady noise has a small depth that
    shrinks as the band widens (more bins averaged); a sound that comes and goes, much more.

    Returns
    -------
    np.ndarray [shape=(len(edges) - 1,)]
        NaN for a band whose upper edge lies above the Nyquist frequency, or that is silent.
    """
    from scipy.signal import stft

    waveform = _channels_first(audio)
    window = max(16, round(_ENVELOPE_WINDOW_SECONDS * sample_rate))
    hop = max(1, round(_ENVELOPE_HOP_SECONDS * sample_rate))
    frequencies, _, spectrum = stft(
        waveform, fs=sample_rate, window="hann", nperseg=window, noverlap=window - hop, boundary=None, padded=True
    )
    power = (np.abs(spectrum) ** 2).mean(axis=0)
    depths = np.full(len(edges) - 1, np.nan)
    for index, (low, high) in enumerate(pairwise(edges)):
        inside = (frequencies >= low) & (frequencies < high)
        if high > sample_rate / 2.0 or not inside.any():
            continue
        envelope = np.sqrt(power[inside].sum(axis=0))
        mean = float(envelope.mean())
        if mean > 0.0:
            depths[index] = float(envelope.std() / mean)
    return depths


def bandwidth_db(
    audio: np.ndarray,
    sample_rate: int,
    *,
    band: tuple[float, float] = BANDWIDTH_BAND,
    reference: tuple[float, float] = BANDWIDTH_REFERENCE,
) -> float | None:
    """The bandwidth figure: level of ``band`` relative to ``reference`` (dB, mean power per Hz).

    White noise scores 0 dB; a signal with nothing above 11 kHz scores very low (the depth
    of its filter's stop band). The long-term spectrum is read at the audio's own rate.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)]
    sample_rate : int
    band, reference : (float, float)
        Hz; the part of ``band`` below the Nyquist frequency is measured.

    Returns
    -------
    float or None
        None when less than 1 kHz of ``band`` lies below the Nyquist frequency (the rate
        cannot hold it) or the reference band is silent; floored at -200 dB.
    """
    frequencies, density = long_term_spectrum(audio, sample_rate)
    top = min(band[1], sample_rate / 2.0)
    if top - band[0] < _MIN_BAND_WIDTH:
        return None
    high = density[(frequencies >= band[0]) & (frequencies < top)]
    low = density[(frequencies >= reference[0]) & (frequencies < reference[1])]
    if not high.size or not low.size or float(low.mean()) <= 0.0:
        return None
    return float(max(10.0 * np.log10(max(float(high.mean()), _TINY) / float(low.mean())), -200.0))
