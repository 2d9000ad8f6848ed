"""What the file boundary reads and writes: formats, limits, and a file header's fields."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from ..errors import AudioFileError, ConfigError

__all__ = ["MAX_CHANNELS", "MAX_DECODED_BYTES", "MAX_SAMPLE_RATE", "READABLE_FORMATS", "WRITABLE_EXTENSIONS"]
__all__ += ["AudioInfo", "output_format"]

logger = logging.getLogger("audiostyle")

PathLike = str | os.PathLike[str]

# A (samples, channels) array passed by mistake would otherwise become a file with
# thousands of channels; no real recording here has more than this many.
MAX_CHANNELS = 64
#: The highest sample rate read. Studio masters stop at 384 kHz; a header claiming more
#: (FLAC allows 655 350 Hz) is damage or a decompression bomb.
MAX_SAMPLE_RATE = 384_000
#: The most memory one :func:`load_audio` may take: float32 samples as decoded, plus the
#: resampled copy when resampling. 20 minutes (the default max_duration) of 8 channels at
#: 48 kHz, or of stereo at 192 kHz, fit; a header promising more is refused before decoding.
MAX_DECODED_BYTES = 2 * 2**30
FLOAT_BYTES = 4

READABLE_FORMATS = "WAV, FLAC, OGG, MP3, AIFF and the other formats libsndfile reads"

_EXTENSION_FORMATS = {
    ".wav": "WAV",
    ".flac": "FLAC",
    ".ogg": "OGG",
    ".aiff": "AIFF",
    ".aif": "AIFF",
    ".mp3": "MP3",
}
# Only the extensions whose format this libsndfile build can write (MP3 needs >= 1.1).
WRITABLE_EXTENSIONS = {
    ext: fmt for ext, fmt in _EXTENSION_FORMATS.items() if fmt in sf.available_formats()
}


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says, read without decoding the samples.

    Attributes
    ----------
    path : str
        The file, as given.
    sample_rate : int
        Samples per second per channel.
    channels : int
        Number of channels.
    frames : int
        Samples per channel (approximate for some compressed formats).
    format : str
        libsndfile's container name, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``.
    subtype : str or None
        libsndfile's encoding name, e.g. ``"PCM_16"``, ``"VORBIS"``; None if unknown.
    """

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str | None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def decode_reason(exc: Exception) -> str:
    # LibsndfileError's str() repeats the path; its error_string is just the reason.
    reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
    return reason.strip().rstrip(".")


def output_format(path: PathLike, format: str | None = None) -> str:
    """The libsndfile format to write: ``format`` if given, else the one ``path``'s extension names.

    Raises
    ------
    AudioFileError
        The extension names no writable format.
    ConfigError
        ``format`` is not a libsndfile format.
    """
    path = Path(path)
    if format is not None:
        fmt = format.upper()
        if fmt not in sf.available_formats():
            raise ConfigError(
                f"format={format!r} is not supported; valid: "
                + ", ".join(sorted(sf.available_formats()))
            )
        return fmt
    fmt = WRITABLE_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise AudioFileError(
            path,
            f"unsupported output extension {path.suffix or '(none)'!r}; valid: "
            + ", ".join(WRITABLE_EXTENSIONS),
        )
    return fmt


def output_subtype(fmt: str, subtype: str | None) -> str:
    if subtype is None:
        return sf.default_subtype(fmt)
    wanted = subtype.upper()
    if wanted not in sf.available_subtypes():
        raise ConfigError(
            f"subtype={subtype!r} is not supported; valid for {fmt}: "
            + ", ".join(sorted(sf.available_subtypes(fmt)))
        )
    if not sf.check_format(fmt, wanted):
        # e.g. a PCM_24 FLAC content written as .ogg: keep the container, use its default.
        fallback = sf.default_subtype(fmt)
        logger.info("subtype %s is not valid for %s; writing %s", wanted, fmt, fallback)
        return fallback
    return wanted
