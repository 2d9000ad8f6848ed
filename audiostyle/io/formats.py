"""What the file boundary reads and writes: formats, limits, and a file header's fields."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from ..errors import AudioFileError, ConfigError

__all__ = ["MAX_CHANNELS", "MAX_DECODED_BYTES", "MAX_SAMPLE_RATE", "READABLE_FORMATS", "WRITABLE_EXTENSIONS"]
__all__ += ["AudioInfo", "as_path", "check_encodable", "output_format"]

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


def as_path(path: object) -> Path:
    """A file argument as a :class:`~pathlib.Path` (str, bytes or os.PathLike).

    Raises
    ------
    ConfigError
        Anything else (None, a number...).
    """
    if isinstance(path, bytes):
        return Path(os.fsdecode(path))
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    raise ConfigError(f"a file path must be a str or os.PathLike, not {type(path).__name__} ({path!r:.60})")


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
    path = as_path(path)
    if format is not None:
        if not isinstance(format, str):
            raise ConfigError(f"format={format!r:.40} must be a libsndfile format name such as 'WAV'")
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


#: The most channels each format's encoder takes, where it is fewer than :data:`MAX_CHANNELS`.
_MAX_FORMAT_CHANNELS = {"FLAC": 8, "MP3": 2}
#: The highest rate libvorbis encodes: above about 200 kHz it crashes the process.
_MAX_OGG_RATE = 192_000
#: The rates MPEG layer III has.
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def check_encodable(path: PathLike, sample_rate: int, channels: int, format: str | None = None) -> None:
    """Check that ``path``'s format can hold audio of ``sample_rate`` and ``channels``.

    Before the work (the output's rate and channels are its source's), and again before
    every write: an encoder refuses some of what is read (FLAC more than 8 channels, MP3 most
    rates) and libvorbis crashes on rates above about 200 kHz instead of refusing them.

    Raises
    ------
    AudioFileError
        The format cannot hold it; the message says what it can hold.
    """
    fmt = output_format(path, format)
    most = _MAX_FORMAT_CHANNELS.get(fmt)
    if most is not None and channels > most:
        raise AudioFileError(path, f"{fmt} holds at most {most} channels, not {channels}; write .wav instead")
    if fmt == "OGG" and sample_rate > _MAX_OGG_RATE:
        raise AudioFileError(path, f"OGG Vorbis is written up to {_MAX_OGG_RATE} Hz, not {sample_rate}; write .flac or .wav instead")
    if fmt == "MP3" and sample_rate not in _MP3_RATES:
        rates = ", ".join(str(rate) for rate in _MP3_RATES)
        raise AudioFileError(path, f"MP3 has only the rates {rates} Hz, not {sample_rate}; write .flac or .wav instead")


def output_subtype(fmt: str, subtype: str | None) -> str:
    if subtype is None:
        return sf.default_subtype(fmt)
    if not isinstance(subtype, str):
        raise ConfigError(f"subtype={subtype!r:.40} must be a libsndfile subtype name such as 'PCM_16'")
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
