"""The file boundary: read and write audio files, resample, convert channel layouts.

Everything above this module sees waveforms as float32 numpy arrays shaped
``(channels, samples)``; soundfile's ``(samples, channels)`` layout never leaves this file.
Every problem with a file becomes an :class:`~audiostyle.errors.AudioFileError` that names
the file, and every bad parameter a :class:`~audiostyle.errors.ConfigError`.
"""

from __future__ import annotations

import contextlib
import io
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
from audiostyle.system import available_cpu_memory, format_gib

__all__ = [
    "AudioInfo",
    "audio_info",
    "probe_audio",
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
#: The highest sample rate read. Studio masters stop at 384 kHz; a header claiming more
#: (FLAC allows 655 350 Hz) is damage or a decompression bomb.
MAX_SAMPLE_RATE = 384_000
#: The most memory one :func:`load_audio` may take: float32 samples as decoded, plus the
#: resampled copy when resampling. 20 minutes (the default max_duration) of 8 channels at
#: 48 kHz, or of stereo at 192 kHz, fit; a header promising more is refused before decoding.
MAX_DECODED_BYTES = 2 * 2**30
FLOAT_BYTES = 4
# Samples (all channels) per decoded block: a few hundred kB, small enough to stay in cache
# while it is checked and copied into place.
_BLOCK_SAMPLES = 2**17

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


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 < value < float("inf")):
        raise ConfigError(f"{name}={value!r} must be a positive number of seconds")
    return float(value)


def _decode_reason(exc: Exception) -> str:
    # LibsndfileError's str() repeats the path; its error_string is just the reason.
    reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
    return reason.strip().rstrip(".")


def _check_readable_path(path: Path) -> None:
    if not path.exists():
        raise AudioFileError(path, "file does not exist")
    if path.is_dir():
        raise AudioFileError(path, "is a folder, not an audio file")


class _ForwardReader(sf.SoundFile):
    """A sound file read front to back, without soundfile's seek after every read.

    libsndfile advances its own position as it decodes; the seek soundfile adds to a
    seekable file fails at the end of a FLAC whose header overstates its length, and the
    frames that did decode are lost with it.
    """

    def seekable(self) -> bool:
        return False


def _open_for_reading(path: Path) -> sf.SoundFile:
    _check_readable_path(path)
    try:
        return _ForwardReader(str(path))
    except Exception as exc:  # libsndfile and its codecs fail in many ways; all mean "unreadable"
        raise AudioFileError(
            path,
            f"is not a readable audio file ({_decode_reason(exc)}); "
            f"readable formats: {READABLE_FORMATS}",
        ) from exc


def _header(path: Path, handle: sf.SoundFile) -> AudioInfo:
    info = AudioInfo(
        path=str(path),
        sample_rate=int(handle.samplerate),
        channels=int(handle.channels),
        frames=int(handle.frames),
        format=str(handle.format),
        subtype=handle.subtype or None,
    )
    if info.frames <= 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    return info


def audio_info(path: PathLike) -> AudioInfo:
    """Read an audio file's header: sample rate, channels, length, format.

    Nothing is decoded and no limit is applied: :func:`probe_audio` and :func:`load_audio`
    check what the header promises before they decode.

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
    with _open_for_reading(path) as handle:
        return _header(path, handle)


@dataclass(frozen=True)
class _Budget:
    """How many frames a decode may yield, and the limit that sets it (for messages)."""

    frames: int
    limit: str


def _frame_count(frames: int) -> str:
    return f"{frames / 1e6:,.0f} M frames" if frames >= 10**6 else f"{frames:,} frames"


def _decode_budget(
    path: Path,
    info: AudioInfo,
    *,
    out_channels: int,
    sample_rate: int | None,
    max_duration: float | None,
    max_bytes: int,
) -> _Budget:
    """Refuse a file whose header promises more than the limits allow, before decoding it.

    The memory counted is the float32 output (``out_channels`` of them: one for a mono
    downmix), plus the resampled copy when ``sample_rate`` differs from the file's.
    """
    if info.sample_rate <= 0:
        raise AudioFileError(path, f"has an invalid sample rate ({info.sample_rate} Hz)")
    if info.sample_rate > MAX_SAMPLE_RATE:
        raise AudioFileError(
            path, f"sample rate {info.sample_rate} Hz is over the {MAX_SAMPLE_RATE} Hz limit"
        )
    if max_duration is not None and info.duration > max_duration:
        raise AudioFileError(
            path,
            f"is {info.duration:.1f} s long, over the {max_duration:g} s limit; "
            "raise the limit with --max-duration",
        )
    if info.channels > MAX_CHANNELS:
        raise AudioFileError(path, f"has {info.channels} channels; at most {MAX_CHANNELS} are supported")
    resampled = sample_rate is not None and sample_rate != info.sample_rate
    bytes_per_frame = out_channels * FLOAT_BYTES * (1 + (sample_rate / info.sample_rate if resampled else 0))
    needed = math.ceil(info.frames * bytes_per_frame)
    shape = f"{out_channels} ch × {_frame_count(info.frames)}"
    if resampled:
        shape += f", resampled to {sample_rate} Hz"
    if needed > max_bytes:
        raise AudioFileError(
            path, f"would decode to {format_gib(needed)} ({shape}), over the {format_gib(max_bytes)} limit"
        )
    free = available_cpu_memory()
    if free is not None and needed > free:
        raise AudioFileError(
            path, f"would decode to {format_gib(needed)} ({shape}) but only {format_gib(free)} of memory is free"
        )
    # The header may understate the length (compressed formats estimate it): these bound
    # what the decoder is allowed to yield beyond it.
    limits = [(max_bytes / bytes_per_frame, format_gib(max_bytes))]
    if free is not None:
        limits.append((free / bytes_per_frame, f"{format_gib(free)} free memory"))
    if max_duration is not None:
        limits.append((max_duration * info.sample_rate, f"{max_duration:g} s"))
    frames, limit = min(limits)
    return _Budget(max(int(frames), info.frames), limit)


def _allocate(path: Path, channels: int, frames: int) -> np.ndarray:
    try:
        return np.empty((channels, frames), np.float32)
    except MemoryError:
        raise AudioFileError(
            path,
            f"would decode to {format_gib(channels * frames * FLOAT_BYTES)} "
            f"({channels} ch × {_frame_count(frames)}), more memory than this process can allocate",
        ) from None


def _blocks(handle: sf.SoundFile, path: Path, stop: int) -> Iterator[np.ndarray]:
    """Decode up to ``stop`` frames as ``(frames, channels)`` float32 blocks, each checked finite.

    The blocks share one buffer: use each before asking for the next.
    """
    block = np.empty((max(1, _BLOCK_SAMPLES // handle.channels), handle.channels), np.float32)
    done = 0
    while done < stop:
        wanted = min(len(block), stop - done)
        try:
            chunk = handle.read(wanted, dtype="float32", always_2d=True, out=block[:wanted])
        except Exception as exc:  # a header can parse while the data behind it does not decode
            raise AudioFileError(path, f"could not be decoded ({_decode_reason(exc)})") from exc
        if len(chunk) == 0:
            return
        if not np.isfinite(chunk).all():
            raise AudioFileError(path, "contains non-finite samples (NaN or Inf)")
        done += len(chunk)
        yield chunk


def _downmix(block: np.ndarray, *, out: np.ndarray) -> None:
    """The mean of a ``(frames, channels)`` block's channels, written into ``out``.

    Channel by channel, in order, then divided: the same float32 sums as
    :func:`to_channels`, and much faster than a mean over the short channel axis.
    """
    np.copyto(out, block[:, 0])
    for channel in range(1, block.shape[1]):
        out += block[:, channel]
    out /= block.shape[1]


def _decode(handle: sf.SoundFile, path: Path, info: AudioInfo, *, mono: bool, budget: _Budget) -> np.ndarray:
    """The whole file as ``(channels, frames)`` float32, never more than ``budget.frames`` long."""
    out_channels = 1 if mono else info.channels
    audio = _allocate(path, out_channels, min(info.frames, budget.frames))
    filled = 0
    for chunk in _blocks(handle, path, budget.frames + 1):
        end = filled + len(chunk)
        if end > audio.shape[1]:
            if end > budget.frames:
                raise AudioFileError(
                    path,
                    f"decodes to more than the {info.frames:,} frames its header declares, "
                    f"past the {budget.limit} limit",
                )
            grown = _allocate(path, out_channels, min(budget.frames, max(end, 2 * audio.shape[1])))
            grown[:, :filled] = audio[:, :filled]
            audio = grown
        if out_channels < info.channels:
            _downmix(chunk, out=audio[0, filled:end])
        else:
            audio[:, filled:end] = chunk.T
        filled = end
    if filled == 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    # A header that overstated the length: keep only what decoded, without the spare room.
    return audio if filled == audio.shape[1] else audio[:, :filled].copy()


def probe_audio(
    path: PathLike,
    *,
    max_duration: float | None = None,
    seconds: float = 2.0,
    max_bytes: int = MAX_DECODED_BYTES,
) -> AudioInfo:
    """Check that a file would load, decoding only its first ``seconds``.

    Applies every check :func:`load_audio` makes from the header (sample rate, channels,
    duration, decoded size against ``max_bytes`` and free memory), then decodes a bounded
    slice to prove that the data behind the header decodes to finite samples. A file that
    passes can still fail later in its remaining data; :func:`load_audio` checks it all.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile reads (WAV, FLAC, OGG, MP3, AIFF, ...).
    max_duration : float or None
        Refuse files longer than this many seconds; None for no limit.
    seconds : float
        How much of the start to decode, in seconds.
    max_bytes : int
        Refuse files that would decode to more than this many bytes of float32 samples.

    Returns
    -------
    AudioInfo
        The header's fields.

    Raises
    ------
    AudioFileError
        As :func:`load_audio`: missing, unreadable, empty, over a limit, or NaN/Inf in the
        decoded slice.
    ConfigError
        If ``max_duration`` or ``seconds`` is not a positive number, or ``max_bytes`` not a
        positive integer.

    Examples
    --------
    >>> probe_audio("upload.flac", max_duration=1200).duration  # doctest: +SKIP
    4.5
    """
    if max_duration is not None:
        max_duration = _check_seconds("max_duration", max_duration)
    seconds = _check_seconds("seconds", seconds)
    max_bytes = _check_positive_int("max_bytes", max_bytes)
    path = Path(path)
    with _open_for_reading(path) as handle:
        info = _header(path, handle)
        _decode_budget(
            path, info, out_channels=info.channels, sample_rate=None, max_duration=max_duration, max_bytes=max_bytes
        )
        stop = min(info.frames, max(1, math.ceil(seconds * info.sample_rate)))
        decoded = sum(len(chunk) for chunk in _blocks(handle, path, stop))
    if decoded == 0:
        raise AudioFileError(path, "contains no audio samples (0 frames)")
    return info


def load_audio(
    path: PathLike,
    sample_rate: int | None = None,
    *,
    mono: bool = False,
    max_duration: float | None = None,
    max_bytes: int = MAX_DECODED_BYTES,
) -> tuple[np.ndarray, int]:
    """Read an audio file as a float32 ``(channels, samples)`` waveform.

    What the header promises is checked before anything is decoded: the sample rate (at
    most ``MAX_SAMPLE_RATE``), the channels (at most ``MAX_CHANNELS``), the duration, and
    the memory the result takes (float32 samples, of one channel when ``mono``, plus the
    resampled copy) against ``max_bytes`` and the memory free. The data is then decoded
    block by block into one array, and never past those limits, whatever the header said.

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
    max_bytes : int
        Refuse files that would take more than this many bytes once decoded (and
        resampled); default ``MAX_DECODED_BYTES`` (2 GiB).

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
        holds NaN or Inf, is longer than ``max_duration``, has more than 64 channels, a
        sample rate over 384 kHz, or would decode to more than ``max_bytes`` or than the
        memory free.
    ConfigError
        If ``sample_rate`` or ``max_bytes`` is not a positive integer or ``max_duration``
        not a positive number.

    See Also
    --------
    audio_info : the header alone.
    probe_audio : the header's checks and the first seconds.
    save_audio : the inverse.

    Examples
    --------
    >>> audio, rate = load_audio("violin.wav", 22050, mono=True)  # doctest: +SKIP
    >>> audio.shape, rate  # doctest: +SKIP
    ((1, 99225), 22050)
    """
    if sample_rate is not None:
        sample_rate = _check_positive_int("sample_rate", sample_rate)
    if max_duration is not None:
        max_duration = _check_seconds("max_duration", max_duration)
    max_bytes = _check_positive_int("max_bytes", max_bytes)
    path = Path(path)
    with _open_for_reading(path) as handle:
        info = _header(path, handle)
        budget = _decode_budget(
            path,
            info,
            out_channels=1 if mono else info.channels,
            sample_rate=sample_rate,
            max_duration=max_duration,
            max_bytes=max_bytes,
        )
        audio = _decode(handle, path, info, mono=mono, budget=budget)
    if sample_rate is not None and sample_rate != info.sample_rate:
        return resample(audio, info.sample_rate, sample_rate), sample_rate
    return audio, info.sample_rate


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
    rows = audio.reshape(-1, audio.shape[-1])
    out = np.zeros((rows.shape[0], length), np.float32)
    for row, target in zip(rows, out):
        # soxr directly, not through librosa.resample (the same filter): librosa's resample
        # module pulls in scipy and numba, ~190 MB of resident memory and seconds of start-up
        # per process. One channel at a time (soxr filters channels independently): the peak
        # is the input, the output and one channel, not two copies of each.
        resampled = soxr.resample(row, orig_sr, target_sr, quality="HQ")[:length]
        target[: len(resampled)] = resampled
    return out.reshape(*audio.shape[:-1], length)


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


class _ErrorKeepingFile:
    """A file for libsndfile's virtual I/O that keeps the operating system's error.

    libsndfile turns a failed write into "System error" and loses the reason (a full disk,
    a file size limit, an I/O error); this wrapper records the first ``OSError`` of the file
    it wraps, reports the failure to libsndfile as a short write, and lets
    :meth:`raise_error` raise it afterwards, where atomic_write turns it into a message.
    """

    def __init__(self, handle: io.BufferedRandom) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def _keep(self, error: OSError) -> None:
        if self.error is None:
            self.error = error

    def write(self, data: bytes) -> int:
        if self.error is not None:
            return 0
        try:
            return self._handle.write(data)
        except OSError as error:
            self._keep(error)
            return 0

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(size)
        except OSError as error:
            self._keep(error)
            return b""

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            return self._handle.seek(offset, whence)
        except OSError as error:  # a buffered file writes what it holds before it seeks
            self._keep(error)
            return -1

    def tell(self) -> int:
        try:
            return self._handle.tell()
        except OSError as error:
            self._keep(error)
            return -1

    def raise_error(self) -> None:
        """Raise the first ``OSError`` the file met, if any."""
        if self.error is not None:
            raise self.error


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
        with open(tmp_path, "r+b") as handle:
            target = _ErrorKeepingFile(handle)
            try:
                sf.write(target, audio.T, sample_rate, subtype=encoding, format=fmt)
            except (OSError, AudioStyleError):
                raise
            except Exception as exc:  # libsndfile refuses e.g. MP3 at 192 kHz, >2-channel MP3
                target.raise_error()
                raise AudioFileError(
                    path, f"could not write {fmt}/{encoding}: {_decode_reason(exc)}"
                ) from exc
            target.raise_error()
    return path
