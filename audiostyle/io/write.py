"""Writing files: path checks before any work, atomic writes, and audio encoding."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioFileError, AudioStyleError, ConfigError
from ..validation import positive_int
from .formats import (
    MAX_CHANNELS,
    PathLike,
    as_path,
    check_encodable,
    decode_reason,
    output_format,
    output_subtype,
)

__all__ = ["atomic_write", "check_output_path", "save_audio"]


def _same_file(a: str, b: str) -> bool:
    real_a, real_b = os.path.realpath(a), os.path.realpath(b)
    if real_a == real_b:
        return True
    if os.path.exists(real_a) and os.path.exists(real_b) and os.path.samefile(real_a, real_b):
        return True
    # Case-insensitive file systems (macOS, Windows) name one file many ways.
    return os.path.normcase(real_a).casefold() == os.path.normcase(real_b).casefold()


#: The most bytes of the target's name a temporary name beside it repeats: a name the file
#: system takes (255 bytes) must still take the ``.<name>.<random>.part<ext>`` around it.
_NAME_BYTES_KEPT = 96


def _hidden_sibling(path: Path, kind: str) -> Path:
    """``.<name, cut short>.<random>.<kind>`` in ``path``'s folder."""
    name = path.name.encode("utf-8", "surrogateescape")[:_NAME_BYTES_KEPT].decode("utf-8", "ignore")
    return path.parent / f".{name}.{secrets.token_hex(4)}.{kind}"


def _check_writable_folder(path: Path) -> None:
    """Create and remove a probe file beside ``path``: the only test that also holds for root,
    read-only mounts and network shares, where permission bits do not tell."""
    probe = _hidden_sibling(path, "probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise AudioFileError(path, f"cannot write to its folder: {exc.strerror or exc}") from exc
    with contextlib.suppress(OSError):
        os.remove(probe)


def _protected(protect: Iterable[PathLike] | PathLike | None) -> list[str]:
    """``protect`` as a list of paths: one path given alone is one path, not its characters."""
    if protect is None:
        return []
    if isinstance(protect, (str, bytes, os.PathLike)):
        protect = [protect]
    try:
        return [os.fsdecode(item) for item in protect]
    except TypeError:
        raise ConfigError(f"protect={protect!r} must be a path or paths") from None


def check_output_path(
    path: PathLike, *, protect: Iterable[PathLike] = (), overwrite: bool = True
) -> Path:
    """Check that ``path`` may be written, before any work is done.

    Raises
    ------
    AudioFileError
        If the folder does not exist or cannot be written to, ``path`` is a folder, a device,
        pipe or socket, or one of ``protect`` (resolving links, case-insensitively), or
        exists while ``overwrite`` is False.
    """
    path = as_path(path)
    folder = path.parent
    if not folder.is_dir():
        raise AudioFileError(path, f"folder does not exist: {folder}")
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system
        raise AudioFileError(path, f"cannot be written: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise AudioFileError(path, "is a folder; give a file name to write")
    if exists and not path.is_file():
        # A rename onto a device or a pipe would replace it with a plain file.
        raise AudioFileError(path, "exists and is not a regular file (a device, pipe or socket); choose another output path")
    _check_writable_folder(path)
    if any(_same_file(str(path), input_path) for input_path in _protected(protect)):
        raise AudioFileError(
            path, "refusing to overwrite an input file; choose another output path"
        )
    if not overwrite and path.exists():
        raise AudioFileError(path, "already exists; pass overwrite=True to replace it")
    return path


@contextlib.contextmanager
def atomic_write(
    path: PathLike,
    *,
    protect: Iterable[PathLike] = (),
    overwrite: bool = True,
) -> Iterator[Path]:
    """Write a file all at once or not at all.

    Yields a temporary path in the target's folder (named ``.<name>.<random>.part<ext>``, the
    name cut to its first 96 bytes)
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
        tmp_path = _hidden_sibling(path, f"part{path.suffix[:16]}")
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
        the format cannot hold its rate or channels (:func:`check_encodable`), or
        encoding/writing fails. Nothing is left behind on failure.
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
    path = as_path(path)
    sample_rate = positive_int("sample_rate", sample_rate)
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
    encoding = output_subtype(fmt, subtype)
    if audio.shape[1] == 0:
        raise AudioFileError(path, "audio to write is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise AudioFileError(path, "audio to write contains NaN or Inf")
    check_encodable(path, sample_rate, audio.shape[0], fmt)

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
                    path, f"could not write {fmt}/{encoding}: {decode_reason(exc)}"
                ) from exc
            target.raise_error()
    return path
