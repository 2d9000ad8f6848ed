"""The inputs of a run: paths or arrays read, checked and brought to the working rate."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from ..config import StyleConfig
from ..dsp.levels import all_finite, normalise_level
from ..dsp.resample import resample
from ..errors import AudioFileError, ConfigError
from ..io import MAX_CHANNELS, MAX_DECODED_BYTES, AudioInfo, audio_info, load_audio
from ..io.formats import FLOAT_BYTES
from ..system import format_gib
from ..validation import is_int
from .segments import segment_frames, working_length

__all__ = ["Audio", "AudioSource", "is_segmented", "load_source", "load_styles", "normalise_styles", "read_source"]

#: A path to an audio file, or ``(waveform (channels, samples), sample_rate)``.
AudioSource = Union[str, os.PathLike, tuple[np.ndarray, int]]


@dataclass
class Audio:
    """A waveform at the working rate with where it came from.

    ``waveform`` is float32 ``(channels, samples)`` at the working rate, level-normalised for
    analysis, or None for content stylized in segments (which is resampled one segment at a
    time); ``samples`` is its length at the working rate either way. ``original`` is the same
    audio at its own rate, float32 (an array passed in as float32 is used, not copied),
    ``info`` the file's facts when it came from a file.
    """

    name: str
    waveform: np.ndarray | None
    original: np.ndarray
    original_rate: int
    info: AudioInfo | None
    samples: int

    @property
    def channels(self) -> int:
        return int(self.original.shape[0])


def is_segmented(working_samples: int, config: StyleConfig) -> bool:
    """Whether content this long (at the working rate) is stylized segment by segment."""
    frames = 1 + working_samples // config.hop_length
    return frames > segment_frames(config.segment_seconds, config.sample_rate, config.hop_length)


def load_source(source: AudioSource, config: StyleConfig, role: str, *, may_segment: bool = False) -> Audio:
    """Read and check an input; resample it to the working rate unless it will be segmented.

    ``may_segment`` (the content) leaves ``waveform`` None when the input is longer than a
    segment: a full-length working-rate copy is then never made.
    """
    name, original, rate, info = read_source(source, config, role)
    samples = working_length(original.shape[-1], rate, config.sample_rate)
    if samples < config.n_fft:
        raise AudioFileError(
            name,
            f"too short: {original.shape[-1] / rate:.3f} s; at least one FFT frame "
            f"(n_fft={config.n_fft} samples at {config.sample_rate} Hz = {config.n_fft / config.sample_rate:.3f} s) is needed",
        )
    segmented = may_segment and is_segmented(samples, config)
    if not segmented and original.shape[0] * samples * FLOAT_BYTES > MAX_DECODED_BYTES:
        # An array at a low rate grows when resampled: bounded as a file's decode is, before it is made.
        raise AudioFileError(
            name,
            f"would take {format_gib(original.shape[0] * samples * FLOAT_BYTES)} at the working rate "
            f"({original.shape[0]} ch × {samples:,} samples), over the {format_gib(MAX_DECODED_BYTES)} limit",
        )
    working = None if segmented else normalise_level(resample(original, rate, config.sample_rate))
    return Audio(name=name, waveform=working, original=original, original_rate=rate, info=info, samples=samples)


def read_source(source: AudioSource, config: StyleConfig, role: str) -> tuple[str, np.ndarray, int, AudioInfo | None]:
    """``(name, float32 (channels, samples) waveform, rate, file info or None)`` of an input."""
    if isinstance(source, tuple):
        if len(source) != 2:
            raise ConfigError(f"{role} must be a path or (waveform, sample_rate); got a tuple of {len(source)}")
        waveform, rate = source
        if not is_int(rate) or not 1000 <= rate <= 768000:
            raise ConfigError(f"{role} sample_rate={rate!r} must be an integer in [1000, 768000] Hz")
        audio = np.asarray(waveform.detach().cpu() if torch.is_tensor(waveform) else waveform)
        if audio.ndim == 1:
            audio = audio[np.newaxis]
        name = f"<{role} array>"
        real = np.issubdtype(audio.dtype, np.number) and not np.issubdtype(audio.dtype, np.complexfloating)
        if audio.ndim != 2 or not real or audio.shape[0] > MAX_CHANNELS:
            raise ConfigError(
                f"{role} waveform must be real numbers, shaped (channels, samples) with at most "
                f"{MAX_CHANNELS} channels; got {audio.shape} (transpose a (samples, channels) array)"
            )
        if audio.shape[-1] == 0 or audio.shape[0] == 0:
            raise AudioFileError(name, "is empty (0 samples)")
        # No copy of a float32 array: a long content is read in place, never duplicated whole.
        audio = np.asarray(audio, dtype=np.float32)
        if not all_finite(audio):
            raise AudioFileError(name, "contains non-finite samples (NaN or Inf)")
        if audio.shape[-1] / rate > config.max_duration:
            raise AudioFileError(
                name, f"lasts {audio.shape[-1] / rate:.1f} s, over max_duration={config.max_duration:g} s"
            )
        info, original, rate = None, audio, int(rate)
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        info = audio_info(name)
        original, rate = load_audio(name, max_duration=config.max_duration)
    else:
        raise ConfigError(f"{role} must be a path or (waveform, sample_rate); got {type(source).__name__}")
    return name, original, rate, info


def normalise_styles(style: AudioSource | Sequence, weights: Sequence[float] | None) -> tuple[list, list[float]]:
    """A style, a list of styles, or a list of (style, weight) pairs -> (sources, weights),
    the weights scaled so that the largest is 1."""
    if isinstance(style, (str, os.PathLike, tuple)):
        sources, pair_weights = [style], [1.0]
    elif isinstance(style, Sequence) and len(style) > 0:
        sources, pair_weights = [], []
        for item in style:
            # (source, weight) has a path or a (waveform, rate) first; (waveform, rate) an array.
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (str, os.PathLike, tuple)):
                sources.append(item[0])
                pair_weights.append(_weight(item[1]))
            else:
                sources.append(item)
                pair_weights.append(1.0)
    else:
        raise ConfigError("style must be a path, (waveform, sample_rate), or a non-empty list of them")
    if weights is not None:
        if isinstance(weights, (str, bytes)) or not isinstance(weights, (Sequence, np.ndarray)) or np.ndim(weights) != 1:
            raise ConfigError(f"style_weights={weights!r:.80} must be a sequence of numbers, one per style")
        if len(weights) != len(sources):
            raise ConfigError(f"style_weights has {len(weights)} entries for {len(sources)} styles")
        pair_weights = [_weight(w) for w in weights]
    if any(not math.isfinite(w) or w < 0 for w in pair_weights) or max(pair_weights) <= 0:
        raise ConfigError(f"style weights {pair_weights} must be finite, >= 0 and not all 0")
    # Only the shares matter; scaled to a largest of 1, no sum or product downstream overflows.
    largest = max(pair_weights)
    return sources, [w / largest for w in pair_weights]


def _weight(value: object) -> float:
    """A style weight as a float (inf for an int past float's range, refused with the rest by the caller)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"a style weight must be a number; got {value!r:.40}")
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return math.inf


def load_styles(sources: Sequence[AudioSource], config: StyleConfig) -> list[Audio]:
    style_audio = [load_source(source, config, "style") for source in sources]
    for audio in style_audio:
        if not np.any(audio.waveform):
            raise AudioFileError(audio.name, "is silent (all samples are 0): a style needs sound")
    return style_audio
