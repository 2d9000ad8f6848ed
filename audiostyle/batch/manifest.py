"""The manifest: one JSON line per job as it starts and as it ends, from which a rerun resumes."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import AudioStyleError, ConfigError

MANIFEST_NAME = "manifest.jsonl"

#: Makes an open refuse a symbolic link as the last component of the path (0 where the
#: platform has no such flag, and a check beforehand stands in for it).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Keeps an open from waiting on a FIFO put where the manifest belongs (0 where unknown).
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The records of a manifest, oldest first; a missing file is empty.

    Besides one ``done``, ``failed`` or ``skipped`` record per finished job, a run writes a
    ``started`` record for each job it is about to run, before any output can appear; a job
    whose last record is ``started`` was cut short (its run was killed). Lines that are not
    JSON objects (a partial last line after a crash, or any line json cannot read) are ignored.

    Parameters
    ----------
    path : path
        The manifest, usually ``OUTDIR/manifest.jsonl`` (:data:`MANIFEST_NAME`).

    Returns
    -------
    list of dict
        Each record has at least the string fields ``output`` and ``status``; a record whose
        path, hash or status fields are not text, or whose ``duration`` is not a number or
        null, is ignored like an unreadable line.

    Raises
    ------
    ConfigError
        ``path`` is a symbolic link or not a regular file: it is never followed or read.
    """
    path = Path(path)
    try:
        fd = _open_regular(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        # No manifest yet (nor perhaps its folder): nothing ran there. A folder that cannot
        # be made is reported when the run opens the manifest to write.
        return []
    records = []
    with open(fd, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            # Beyond JSONDecodeError (a ValueError), json raises ValueError for an integer past
            # int()'s digit limit and RecursionError for deep nesting: one hostile line is
            # skipped like any unreadable one rather than stopping the whole batch.
            with contextlib.suppress(ValueError, RecursionError):
                record = json.loads(line)
                if _well_formed(record):
                    records.append(record)
    return records


#: Fields a record may carry as text (``output`` and ``status`` it must).
_TEXT_FIELDS = ("input", "output", "relative", "style", "kind", "config_hash", "status")


def _well_formed(record: Any) -> bool:
    """A dict whose known fields have the types the planner reads them as: no list where a
    path goes, no NUL in one (which every path call refuses), a number or null for a duration."""
    if not isinstance(record, dict) or not all(isinstance(record.get(key), str) for key in ("output", "status")):
        return False
    for key in _TEXT_FIELDS:
        value = record.get(key)
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            return False
    duration = record.get("duration")
    return duration is None or (isinstance(duration, (int, float)) and not isinstance(duration, bool))


def earlier_runs(output_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Config hashes by output (path relative to ``output_dir``) of the jobs earlier runs
    finished, and of those they started but never finished (their run was killed)."""
    finished: dict[str, Any] = {}
    unfinished: dict[str, Any] = {}
    for record in read_manifest(output_dir / MANIFEST_NAME):
        relative = record.get("relative") or Path(os.path.relpath(record["output"], output_dir)).as_posix()
        status = record.get("status")
        if status == "started":
            unfinished[relative] = record.get("config_hash")
        elif status in ("done", "failed"):
            unfinished.pop(relative, None)
            if status == "done":
                finished[relative] = record.get("config_hash")
    return finished, unfinished


class Manifest:
    """Appends JSON lines, each write fsynced, so that a crash loses at most the line being written.

    Every append is one ``os.write`` of complete lines on an ``O_APPEND`` descriptor; one that
    fails (disk full, file size limit) is cut back to where it began, so the file never holds
    half a line of ours, and raises an :class:`AudioStyleError` that keeps the system's reason.
    With no path it records nothing. A symbolic link or anything but a regular file at the path
    is refused with a :class:`ConfigError` before anything is written: appending through a link
    could write into any file, an input included.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fd: int | None = None

    def __enter__(self) -> Manifest:
        if self.path is None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
            self._fd = _open_regular(self.path, flags)
            if os.lseek(self._fd, 0, os.SEEK_END) > 0:
                os.lseek(self._fd, -1, os.SEEK_END)
                if os.read(self._fd, 1) != b"\n":
                    # A partial line from an interrupted run: end it so ours start clean.
                    self._append(b"\n", "the end of a partial line")
        except OSError as error:
            self.__exit__()
            raise AudioStyleError(f"{self.path}: could not open the manifest: {_os_reason(error)}") from error
        return self

    def write(self, records: Sequence[dict], what: str) -> None:
        """Append ``records``, one line each; ``what`` names them in an error message."""
        if self._fd is not None and records:
            lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            self._append(lines.encode("utf-8"), what)

    def _append(self, data: bytes, what: str) -> None:
        if self._fd is None:
            return
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, data)
            # A short write (the disk filled up mid-line): the next one says why.
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise AudioStyleError(f"{self.path}: could not record {what}: {_os_reason(error)}") from error

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _open_regular(path: Path, flags: int) -> int:
    """A blocking descriptor opened with ``flags`` on ``path``, which must be a regular file itself.

    ``O_NOFOLLOW`` makes the open itself refuse a link, so that no link put there between a
    check and the open can redirect the manifest; only where the platform lacks the flag does
    a check beforehand stand in. ``O_NONBLOCK`` keeps a FIFO from stalling the open until the
    descriptor's type is known.

    Raises
    ------
    ConfigError
        ``path`` is a symbolic link or not a regular file.
    OSError
        It cannot be opened otherwise (missing, permission denied...).
    """
    if not _NOFOLLOW:
        with contextlib.suppress(OSError):  # os.open reports a missing path
            _refuse(path, os.lstat(path).st_mode)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK, 0o666)
    except OSError as error:
        # O_NOFOLLOW on a link fails with ELOOP (Linux, macOS) or EMLINK (FreeBSD), a folder
        # opened for writing with EISDIR; each can mean something else too, so look first.
        if error.errno in (errno.ELOOP, errno.EMLINK, errno.EISDIR):
            mode = None
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
            if mode is not None:
                _refuse(path, mode)
        raise
    try:
        _refuse(path, os.fstat(fd).st_mode)
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse(path: Path, mode: int) -> None:
    """Raise a :class:`ConfigError` unless ``mode`` (from lstat or fstat) is a regular file's."""
    if stat.S_ISLNK(mode):
        raise _not_regular(path, "is a symbolic link, which is never followed")
    if not stat.S_ISREG(mode):
        raise _not_regular(path, "is not a regular file")


def _not_regular(path: Path, what: str) -> ConfigError:
    """The error for a manifest path that is not ours to read or append to."""
    return ConfigError(f"{path}: the manifest {what}; remove it or choose another output folder")


def _os_reason(error: OSError) -> str:
    """The system's words for an OSError ("No space left on device"), without the errno number."""
    return error.strerror or str(error)
