"""The last stages: a working-rate waveform brought to the output's rate, band and level."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..config import StyleConfig
from ..dsp.bandwidth import extend_bandwidth, style_band_power
from ..dsp.colour import match_colour
from ..dsp.levels import all_finite, fit_length, match_loudness
from ..dsp.loop import resample_loop
from ..dsp.resample import resample
from ..errors import NumericalError
from .sources import Audio

__all__ = ["finish_output", "full_band", "match_style_colour", "texture_at_rate"]


def texture_at_rate(audio: np.ndarray, config: StyleConfig, rate: int) -> np.ndarray:
    """A texture solved at the working rate, brought to ``rate`` (a loop stays a loop)."""
    if rate == config.sample_rate:
        return audio
    if config.loop:
        return resample_loop(audio, config.sample_rate, rate)
    length = max(1, round(audio.shape[-1] * rate / config.sample_rate))
    return np.ascontiguousarray(fit_length(resample(audio, config.sample_rate, rate), length))


#: ``band_power(rate)``: the styles' blended long-term power spectrum at ``rate``.
BandPower = Callable[[int], np.ndarray]


def styles_band_power(styles: Sequence[Audio], blend: Sequence[float], rate: int) -> np.ndarray:
    """The styles' blended long-term power spectrum at ``rate`` (see :func:`style_band_power`)."""
    return style_band_power([(style.original, style.original_rate) for style in styles], blend, rate)


def full_band(audio: np.ndarray, rate: int, band_power: BandPower, config: StyleConfig) -> np.ndarray:
    """The output with its band above the working rate rebuilt in the styles' shape (if asked and needed)."""
    if not config.full_band or rate <= config.sample_rate:
        return audio
    return extend_bandwidth(audio, rate, config.sample_rate, band_power(rate), circular=config.loop)


def match_style_colour(audio: np.ndarray, rate: int, band_power: BandPower, config: StyleConfig) -> np.ndarray:
    """The output with its long-term colour moved ``config.colour_match`` of the way to the styles'."""
    if not config.colour_match:
        return audio
    return match_colour(audio, rate, band_power(rate), config.colour_match, circular=config.loop)


def finish_output(
    audio: np.ndarray,
    content: Audio | None,
    styles: Sequence[Audio],
    band_power: BandPower,
    config: StyleConfig,
    lap: Callable[[str], None],
) -> tuple[np.ndarray, int]:
    """The output audio and its rate: at the content's rate and level (a texture: the first
    style's), full band and colour-matched when asked, peaks at most -1 dBFS.

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
    audio = full_band(audio, rate, band_power, config)
    lap("full_band")
    audio = match_style_colour(audio, rate, band_power, config)
    lap("colour")
    audio = match_loudness(audio, reference, config.loudness)
    if not all_finite(audio):
        raise NumericalError("the reconstructed audio holds NaN or Inf; nothing was written")
    lap("finish")
    return audio, rate
