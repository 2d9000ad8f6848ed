"""The manifest: one JSON line per job as it starts and as it ends, from which a rerun resumes."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import AudioStyleError

MANIFEST_NAME = "manifest.jsonl"


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The records of a manifest, oldest first; a missing file is empty.

    Besides one ``done``, ``failed`` or ``skipped`` record per finished job, a run writes a
    ``started`` record for each job it is about to run, before any output can appear; a job
    whose last record is ``started`` was cut short (its run was killed). Lines that are not
    JSON objects (a partial last line after a crash) are ignored.

    Parameters
    ----------
    path : path
        The manifest, usually ``OUTDIR/manifest.jsonl`` (:data:`MANIFEST_NAME`).

    Returns
    -------
    list of dict
        Each record has at least the string fields ``output`` and ``status``.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict) and all(isinstance(record.get(key), str) for key in ("output", "status")):
                    records.append(record)
    return records


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
    With no path it records nothing.
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
            self._fd = os.open(self.path, flags, 0o666)
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


def _os_reason(error: OSError) -> str:
    """The system's words for an OSError ("No space left on device"), without the errno number."""
    return error.strerror or str(error)
