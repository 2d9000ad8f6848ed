"""The last stages: a working-rate waveform brought to the output's rate, band and level."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..config import StyleConfig
from ..dsp.bandwidth import extend_bandwidth, style_band_power
from ..dsp.ceiling import apply_band_ceiling, style_level_profile
from ..dsp.colour import match_colour
from ..dsp.levels import all_finite, fit_length, match_loudness
from ..dsp.loop import resample_loop
from ..dsp.resample import resample
from ..errors import NumericalError
from .sources import Audio

__all__ = ["StyleSpectra", "band_ceiling", "finish_output", "full_band", "match_style_colour", "texture_at_rate"]


def texture_at_rate(audio: np.ndarray, config: StyleConfig, rate: int) -> np.ndarray:
    """A texture solved at the working rate, brought to ``rate`` (a loop stays a loop)."""
    if rate == config.sample_rate:
        return audio
    if config.loop:
        return resample_loop(audio, config.sample_rate, rate)
    length = max(1, round(audio.shape[-1] * rate / config.sample_rate))
    return np.ascontiguousarray(fit_length(resample(audio, config.sample_rate, rate), length))


class StyleSpectra:
    """The styles' spectra that the last stages read, each made once per output rate.

    Every content of a library at one rate reuses them (a :class:`PreparedStyle` holds one).

    Parameters
    ----------
    styles : sequence of Audio
        The styles, at their own rates.
    blend : sequence of float
        Their blend weights.
    """

    def __init__(self, styles: Sequence[Audio], blend: Sequence[float]) -> None:
        self._sources = [(style.original, style.original_rate) for style in styles]
        self._blend = list(blend)
        self._powers: dict[int, np.ndarray] = {}
        self._levels: dict[int, np.ndarray | None] = {}

    def power(self, rate: int) -> np.ndarray:
        """The blended long-term power spectrum at ``rate`` (:func:`audiostyle.dsp.bandwidth.style_band_power`)."""
        if rate not in self._powers:
            self._powers[rate] = style_band_power(self._sources, self._blend, rate)
        return self._powers[rate]

    def levels(self, rate: int) -> np.ndarray | None:
        """The level per bin at ``rate`` (:func:`audiostyle.dsp.ceiling.style_level_profile`)."""
        if rate not in self._levels:
            self._levels[rate] = style_level_profile(self._sources, self._blend, rate)
        return self._levels[rate]


def full_band(audio: np.ndarray, rate: int, spectra: StyleSpectra, config: StyleConfig) -> np.ndarray:
    """The output with its band above the working rate rebuilt in the styles' shape (if asked and needed)."""
    if not config.full_band or rate <= config.sample_rate:
        return audio
    return extend_bandwidth(audio, rate, config.sample_rate, spectra.power(rate), circular=config.loop)


def band_ceiling(audio: np.ndarray, rate: int, spectra: StyleSpectra, config: StyleConfig, view: str) -> np.ndarray:
    """The output kept under the styles' level per band (the spectrum view, if asked)."""
    if config.band_ceiling_db is None or view != "spectrum":
        return audio
    return apply_band_ceiling(audio, rate, spectra.levels(rate), config.band_ceiling_db, circular=config.loop)


def match_style_colour(audio: np.ndarray, rate: int, spectra: StyleSpectra, config: StyleConfig) -> np.ndarray:
    """The output with its long-term colour moved ``config.colour_match`` of the way to the styles'."""
    if not config.colour_match:
        return audio
    return match_colour(audio, rate, spectra.power(rate), config.colour_match, circular=config.loop)


def finish_output(
    audio: np.ndarray,
    content: Audio | None,
    styles: Sequence[Audio],
    spectra: StyleSpectra,
    config: StyleConfig,
    view: str,
    lap: Callable[[str], None],
) -> tuple[np.ndarray, int]:
    """The output audio and its rate: at the content's rate and level (a texture: the first
    style's), full band, under the styles' band ceiling and colour-matched when asked, peaks
    at most -1 dBFS. ``view`` is the style view that ran.

    ``audio`` is at the content's rate already for a content, at the working rate for a
    texture; it must be a float32 array the caller owns (levels are matched in place).

    Raises
    ------
    NumericalError
        The audio holds NaN or Inf.
    """
    if content is not None:
        rate, reference = content.original_rate, content.original
    else:
        # A texture takes the first style's rate and channels, and its level.
        rate, reference = styles[0].original_rate, styles[0].original
        audio = texture_at_rate(audio, config, rate)
    audio = full_band(audio, rate, spectra, config)
    lap("full_band")
    # Before the colour match, whose long-term estimate the stray energy would skew.
    audio = band_ceiling(audio, rate, spectra, config, view)
    lap("ceiling")
    audio = match_style_colour(audio, rate, spectra, config)
    lap("colour")
    audio = match_loudness(audio, reference, config.loudness)
    if not all_finite(audio):
        raise NumericalError("the reconstructed audio holds NaN or Inf; nothing was written")
    lap("finish")
    return audio, rate
