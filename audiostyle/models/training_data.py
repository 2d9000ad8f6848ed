"""The content a style model trains on: the user's clips (files or folders) and the shipped generic set.

Every file is read once (its first ``MAX_SECONDS_PER_FILE`` only), as mono at the model's working
rate and at the analysis level, and an excerpt of at most ``EXCERPT_SECONDS`` is kept (waveform and log-magnitude): training stylizes
excerpts per clip as the model's targets, then crops them. What one call may read is bounded:
at most ``MAX_FILES`` files (a seeded sample of a larger library) and ``MAX_SECONDS_PER_FILE``
of each.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..config import StyleConfig
from ..dsp.levels import normalise_level
from ..dsp.resample import resample
from ..dsp.stft import analyze
from ..errors import AudioFileError, ConfigError
from ..io import load_audio
from ..pipeline.sources import AudioSource, read_source

__all__ = [
    "AUDIO_SUFFIXES", "EXCERPT_SECONDS", "GENERIC_DIR", "MAX_FILES", "MAX_SECONDS_PER_FILE", "TrainingClip",
    "generic_files", "load_clips",
]

logger = logging.getLogger("audiostyle")

GENERIC_DIR = Path(__file__).parent / "generic"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".aifc", ".w64", ".caf")
#: Most content files read for one model (a seeded sample of a larger library).
MAX_FILES = 200
#: Most seconds read from each file (its beginning).
MAX_SECONDS_PER_FILE = 20.0
#: Most seconds of each file kept for training (a seeded excerpt of its first
#: MAX_SECONDS_PER_FILE): long enough for a phrase, short enough to stylize in about a second.
EXCERPT_SECONDS = 4.0
#: Most files a folder scan looks at before sampling, so a huge tree is not walked whole.
MAX_SCANNED = 100_000


class TrainingClip:
    """One content excerpt at the analysis level.

    Attributes
    ----------
    name : str
    waveform : np.ndarray [shape=(1, samples)]
        Mono, at the model's working rate.
    log_magnitude : torch.Tensor [shape=(1, freq, frames)]
    target : torch.Tensor or None [shape=(1, freq, frames)]
        The excerpt stylized per clip (the model's target), once made.
    """

    def __init__(self, name: str, waveform: np.ndarray, log_magnitude: torch.Tensor) -> None:
        self.name = name
        self.waveform = waveform
        self.log_magnitude = log_magnitude
        self.target: torch.Tensor | None = None

    @property
    def frames(self) -> int:
        return int(self.log_magnitude.shape[-1])


def generic_files() -> list[Path]:
    """The shipped generic content set (speech, instruments, drums, one-shots)."""
    if not GENERIC_DIR.is_dir():
        return []
    return sorted(p for p in GENERIC_DIR.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)


def _expand(sources: AudioSource | Iterable[AudioSource]) -> list[AudioSource]:
    """Files as they are, folders as the audio files under them (sorted), arrays as they are.

    One path or one ``(waveform, rate)`` given alone is one source, not a sequence of them.
    A folder is read for at most :data:`MAX_SCANNED` entries, cut before sorting, so that a
    folder such as ``/`` costs no more than that.
    """
    one_array = isinstance(sources, tuple) and len(sources) == 2 and hasattr(sources[0], "shape")
    if isinstance(sources, (str, os.PathLike)) or one_array:
        sources = [sources]
    found: list[AudioSource] = []
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
            try:
                entries = sorted(itertools.islice(Path(source).rglob("*"), MAX_SCANNED))
            except OSError as error:  # a folder that changes or vanishes while it is read
                raise AudioFileError(source, f"cannot be searched: {error.strerror or error}") from error
            found.extend(
                path for path in entries
                if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file() and not path.name.startswith(".")
            )
        else:
            found.append(source)
    return found


def _read_clip(source: AudioSource, config: StyleConfig, rng: random.Random) -> tuple[str, np.ndarray]:
    if isinstance(source, (str, os.PathLike)):
        # Only the head is decoded: a long file costs what a 20 s one does, and is not refused.
        name = os.fspath(source)
        audio, rate = load_audio(name, max_seconds=MAX_SECONDS_PER_FILE)
    else:
        limited = config.replace(max_duration=max(config.max_duration, MAX_SECONDS_PER_FILE))
        name, audio, rate, _ = read_source(source, limited, "content")
    audio = audio[:, : int(MAX_SECONDS_PER_FILE * rate)]
    spare = audio.shape[-1] - int(EXCERPT_SECONDS * rate)
    begin = rng.randrange(spare + 1) if spare > 0 else 0
    audio = audio[:, begin : begin + int(EXCERPT_SECONDS * rate)].mean(axis=0, keepdims=True)
    working = resample(np.ascontiguousarray(audio, dtype=np.float32), rate, config.sample_rate)
    if working.shape[-1] < config.n_fft:
        working = np.pad(working, ((0, 0), (0, config.n_fft - working.shape[-1])))
    return name, normalise_level(working)


def load_clips(
    sources: Sequence[AudioSource], config: StyleConfig, *, generic: bool = True, seed: int = 0
) -> list[TrainingClip]:
    """Read the training contents as log-magnitude clips; a file that cannot be read is skipped (logged).

    Raises
    ------
    ConfigError
        Nothing usable: no contents given and ``generic=False``, or every file failed.
    """
    given = _expand(sources)
    if len(given) > MAX_FILES:
        given = random.Random(seed).sample(given, MAX_FILES)
    everything = list(given) + (generic_files() if generic else [])
    if not everything:
        raise ConfigError("no training contents: give files or folders, or keep the generic set (generic=True)")
    clips, failed = [], []
    rng = random.Random(seed)
    for source in everything:
        try:
            name, audio = _read_clip(source, config, rng)
        except AudioFileError as error:
            logger.warning("training: skipped %s", error)
            failed.append(str(error))
            continue
        if not np.any(audio):
            logger.warning("training: skipped %s (silent)", name)
            continue
        spec = analyze(audio, config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length)
        clips.append(TrainingClip(name, audio, spec.log_magnitude))
    if not clips:
        detail = f" (first: {failed[0]})" if failed else ""
        raise ConfigError(f"no usable training contents among {len(everything)} given{detail}")
    return clips
