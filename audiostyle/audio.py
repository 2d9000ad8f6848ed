"""The file boundary: read and write audio files, resample, convert channel layouts.

Everything above this module sees waveforms as float32 numpy arrays shaped
``(channels, samples)``; soundfile's ``(samples, channels)`` layout never leaves this file.
Every problem with a file becomes an :class:`~audiostyle.errors.AudioFileError` that names
the file, and every bad parameter a :class:`~audiostyle.errors.ConfigError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audiostyle.errors import AudioFileError, AudioStyleError, ConfigError

__all__ = [
    "AudioInfo",
    "audio_info",
    "load_audio",
    "resample",
    "to_channels",
    "save_audio",
    "atomic_write",
    "check_output_path",
    "output_format",
]

logger = logging.getLogger("audiostyle")

PathLike = str | os.PathLike[str]

# A (samples, channels) array passed by mistake would otherwise become a file with
# thousands of channels; no real recording here has more than this many.
MAX_CHANNELS = 64

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


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _decode_reason(exc: Exception) -> str:
    # LibsndfileError's str() repeats the path; its error_string is just the reason.
    reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
    return reason.strip().rstrip(".")


def _check_readable_path(path: Path) -> None:
    if not path.exists():
        raise AudioFileError(path, "file does not exist")
    if path.is_dir():
        raise AudioFileError(path, "is a folder, not an audio file")


def audio_info(path: PathLike) -> AudioInfo:
    """Read an audio file's header: sample rate, channels, length, format.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile reads (WAV, FLAC, OGG, MP3, AIFF, ...).

    Returns
    -------
    AudioInfo
        The header's fields; ``info.duration`` is the length in seconds.

    Raises
    ------
    AudioFileError
        If the path does not exist, is a folder, cannot be decoded as audio, or holds
        no samples.

    Examples
    --------
    >>> audio_info("violin.wav").duration  # doctest: +SKIP
    4.5
    """
    path = Path(path)
    _check_readable_path(path)
    try:
        header = sf.info(str(path))
    except Exception as exc:  # libsndfile and its codecs fail in many ways; all mean "unreadable"
        raise AudioFileError(
            path,
            f"is not a readable audio file ({_decode_reason(exc)}); "
            f"readable formats: {READABLE_FORMATS}",
        ) from exc
    info = AudioInfo(
        path=str(path),
        sample_rate=int(header.samplerate),
        channels=int(header.channels),
        frames=int(header.frames),
        format=str(header.format),
        subtype=header.subtype or None,
    )
    if info.frames <= 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    return info


def load_audio(
    path: PathLike,
    sample_rate: int | None = None,
    *,
    mono: bool = False,
    max_duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as a float32 ``(channels, samples)`` waveform.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile reads (WAV, FLAC, OGG, MP3, AIFF, ...).
    sample_rate : int or None
        Resample to this rate (soxr high quality) if it differs from the file's;
        None keeps the file's rate.
    mono : bool
        Average all channels into one.
    max_duration : float or None
        Refuse files longer than this many seconds (checked from the header, before
        decoding); None for no limit.

    Returns
    -------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
        The samples, nominally in [-1, 1].
    sample_rate : int
        The rate of ``audio``: ``sample_rate`` if given, else the file's.

    Raises
    ------
    AudioFileError
        If the path does not exist, is a folder, cannot be decoded, holds no samples,
        holds NaN or Inf, is longer than ``max_duration`` or has more than 64 channels.
    ConfigError
        If ``sample_rate`` is not a positive integer or ``max_duration`` not a positive
        number.

    See Also
    --------
    audio_info : the header alone.
    save_audio : the inverse.

    Examples
    --------
    >>> audio, rate = load_audio("violin.wav", 22050, mono=True)  # doctest: +SKIP
    >>> audio.shape, rate  # doctest: +SKIP
    ((1, 99225), 22050)
    """
    if sample_rate is not None:
        sample_rate = _check_positive_int("sample_rate", sample_rate)
    if max_duration is not None and not (
        isinstance(max_duration, numbers.Real) and 0 < max_duration < float("inf")
    ):
        raise ConfigError(f"max_duration={max_duration!r} must be a positive number of seconds")

    info = audio_info(path)
    if max_duration is not None and info.duration > max_duration:
        raise AudioFileError(
            path,
            f"is {info.duration:.1f} s long, over the {max_duration:g} s limit; "
            "raise the limit with --max-duration",
        )
    if info.channels > MAX_CHANNELS:
        # Checked before the work, not when the result cannot be written.
        raise AudioFileError(path, f"has {info.channels} channels; at most {MAX_CHANNELS} are supported")
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # a header can parse while the data behind it does not decode
        raise AudioFileError(
            path, f"could not be decoded ({_decode_reason(exc)})"
        ) from exc

    audio = np.ascontiguousarray(samples.T, dtype=np.float32)
    if audio.shape[1] == 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    if not np.isfinite(audio).all():
        raise AudioFileError(path, "contains non-finite samples (NaN or Inf)")
    if mono:
        audio = to_channels(audio, 1)
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, int(file_rate), sample_rate)
        return audio, sample_rate
    return audio, int(file_rate)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Change the sample rate along the last axis with soxr's high-quality filter.

    Parameters
    ----------
    audio : np.ndarray [shape=(..., samples)]
        Real waveform(s).
    orig_sr : int
        Rate of ``audio`` in Hz (e.g. 8000 to 192000).
    target_sr : int
        Rate wanted, in Hz.

    Returns
    -------
    np.ndarray [shape=(..., ceil(samples * target_sr / orig_sr)), dtype=float32]
        The resampled waveform; ``audio`` as float32 when the rates are equal.

    Raises
    ------
    ConfigError
        If either rate is not a positive integer.

    Examples
    --------
    >>> resample(np.zeros((2, 44100), np.float32), 44100, 22050).shape
    (2, 22050)
    """
    orig_sr = _check_positive_int("orig_sr", orig_sr)
    target_sr = _check_positive_int("target_sr", target_sr)
    if orig_sr == target_sr:
        return np.asarray(audio, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float32)
    length = math.ceil(audio.shape[-1] * target_sr / orig_sr)
    # soxr directly, not through librosa.resample (the same filter): librosa's resample module
    # pulls in scipy and numba, ~190 MB of resident memory and seconds of start-up per process.
    frames = audio.reshape(-1, audio.shape[-1]).T
    resampled = soxr.resample(frames, orig_sr, target_sr, quality="HQ").T
    resampled = resampled[:, :length]
    if resampled.shape[-1] < length:
        resampled = np.pad(resampled, ((0, 0), (0, length - resampled.shape[-1])))
    return np.ascontiguousarray(resampled.reshape(*audio.shape[:-1], length), dtype=np.float32)


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert a waveform to ``channels`` channels.

    Mono becomes N channels by repetition, N channels become mono by averaging, and any
    other change averages to mono and repeats. The same count is returned unchanged.

    Parameters
    ----------
    audio : np.ndarray [shape=(in_channels, samples)]
        The waveform.
    channels : int
        Channel count wanted.

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]

    Raises
    ------
    ConfigError
        If ``channels`` is not a positive integer or ``audio`` is not 2-D.

    Examples
    --------
    >>> to_channels(np.ones((1, 4), np.float32), 2).shape
    (2, 4)
    """
    channels = _check_positive_int("channels", channels)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ConfigError(f"audio has shape {audio.shape}; expected (channels, samples)")
    if audio.shape[0] == channels:
        return audio
    downmix = audio.mean(axis=0, keepdims=True, dtype=np.float32)
    return np.repeat(downmix, channels, axis=0)


def _same_file(a: str, b: str) -> bool:
    real_a, real_b = os.path.realpath(a), os.path.realpath(b)
    if real_a == real_b:
        return True
    if os.path.exists(real_a) and os.path.exists(real_b) and os.path.samefile(real_a, real_b):
        return True
    # Case-insensitive file systems (macOS, Windows) name one file many ways.
    return os.path.normcase(real_a).casefold() == os.path.normcase(real_b).casefold()


def check_output_path(
    path: PathLike, *, protect: Iterable[PathLike] = (), overwrite: bool = True
) -> Path:
    """Check that ``path`` may be written, before any work is done.

    Raises
    ------
    AudioFileError
        If the folder does not exist, ``path`` is a folder or one of ``protect`` (resolving
        links, case-insensitively), or exists while ``overwrite`` is False.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise AudioFileError(path, f"folder does not exist: {folder}")
    if path.is_dir():
        raise AudioFileError(path, "is a folder; give a file name to write")
    if any(_same_file(str(path), os.fspath(input_path)) for input_path in protect):
        raise AudioFileError(
            path, "refusing to overwrite an input file; choose another output path"
        )
    if not overwrite and path.exists():
        raise AudioFileError(path, "already exists; pass --overwrite to replace it")
    return path


@contextlib.contextmanager
def atomic_write(
    path: PathLike,
    *,
    protect: Iterable[PathLike] = (),
    overwrite: bool = True,
) -> Iterator[Path]:
    """Write a file all at once or not at all.

    Yields a temporary path in the target's folder (named ``.<name>.<random>.part<ext>``)
    for the caller to write; when the block ends it is flushed to disk with ``fsync`` and
    moved onto ``path`` with ``os.replace``. If the block raises anything, including
    ``KeyboardInterrupt``, the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    protect : iterable of str or os.PathLike
        Files that must never be written over (the inputs); compared after resolving
        links, and case-insensitively.
    overwrite : bool
        Replace ``path`` if it exists; if False an existing file is an error.

    Yields
    ------
    pathlib.Path
        The temporary file to write (it exists, empty).

    Raises
    ------
    AudioFileError
        If the folder does not exist, ``path`` is a folder or a protected file, exists
        while ``overwrite`` is False, or writing fails (disk full, permissions).

    Examples
    --------
    >>> with atomic_write("report.json") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    path = check_output_path(path, protect=protect, overwrite=overwrite)
    folder = path.parent

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        # Not tempfile.mkstemp: its 0600 mode would survive the rename; 0666 honours umask.
        tmp_path = folder / f".{path.name}.{secrets.token_hex(4)}.part{path.suffix}"
        try:
            os.close(os.open(tmp_path, flags, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise AudioFileError(path, f"could not write: {exc.strerror or exc}") from exc
    try:
        yield tmp_path
        fd = os.open(tmp_path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp_path)
        if isinstance(exc, OSError):
            raise AudioFileError(path, f"could not write: {exc.strerror or exc}") from exc
        raise
    if hasattr(os, "O_DIRECTORY"):
        # Make the rename itself durable; best effort, some file systems refuse.
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


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


def _output_subtype(fmt: str, subtype: str | None) -> str:
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


def save_audio(
    path: PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    format: str | None = None,
    subtype: str | None = None,
    protect: Iterable[PathLike] = (),
    overwrite: bool = True,
) -> Path:
    """Write a ``(channels, samples)`` waveform to an audio file, atomically.

    Nothing is clipped here (integer subtypes clip at ±1 when encoded); limit peaks first.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its folder must exist.
    audio : np.ndarray [shape=(channels, samples) or (samples,)]
        Floating-point samples, nominally in [-1, 1]; 1-D means one channel.
    sample_rate : int
        Samples per second.
    format : str or None
        libsndfile container (``"WAV"``, ``"FLAC"``, ...); None picks it from the extension
        (``.wav``, ``.flac``, ``.ogg``, ``.aiff``/``.aif``, ``.mp3`` where supported).
    subtype : str or None
        libsndfile encoding (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...); None, or one the
        format cannot hold, gives the format's default.
    protect : iterable of str or os.PathLike
        Input files that must never be written over.
    overwrite : bool
        Replace an existing ``path``; if False that is an error.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    AudioFileError
        If the extension is unsupported, the folder does not exist, ``path`` is an input
        or exists while ``overwrite`` is False, ``audio`` holds NaN or Inf or no samples,
        or encoding/writing fails. Nothing is left behind on failure.
    ConfigError
        If ``audio`` is not floating point of shape (channels, samples), ``sample_rate`` is
        not a positive integer, or ``format``/``subtype`` is unknown.

    See Also
    --------
    load_audio : the inverse.
    atomic_write : the temporary-file-and-rename step.

    Examples
    --------
    >>> save_audio("out.flac", np.zeros((2, 44100), np.float32), 44100)  # doctest: +SKIP
    PosixPath('out.flac')
    """
    path = Path(path)
    sample_rate = _check_positive_int("sample_rate", sample_rate)
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[np.newaxis, :]
    if audio.ndim != 2 or audio.shape[0] > MAX_CHANNELS:
        raise ConfigError(
            f"audio has shape {audio.shape}; expected (channels, samples) with at most "
            f"{MAX_CHANNELS} channels (transpose a (samples, channels) array)"
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise ConfigError(f"audio has dtype {audio.dtype}; expected floating point in [-1, 1]")
    fmt = output_format(path, format)
    encoding = _output_subtype(fmt, subtype)
    if audio.shape[1] == 0:
        raise AudioFileError(path, "audio to write is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise AudioFileError(path, "audio to write contains NaN or Inf")

    with atomic_write(path, protect=protect, overwrite=overwrite) as tmp_path:
        try:
            sf.write(str(tmp_path), audio.T, sample_rate, subtype=encoding, format=fmt)
        except (OSError, AudioStyleError):
            raise
        except Exception as exc:  # libsndfile refuses e.g. MP3 at 192 kHz, >2-channel MP3
            raise AudioFileError(
                path, f"could not write {fmt}/{encoding}: {_decode_reason(exc)}"
            ) from exc
    return path
