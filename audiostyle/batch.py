"""Many jobs: plan a sample library's stylization, prepare each style once, run on an executor.

:func:`plan_batch` turns input files and folders plus one or more styles into a list of
:class:`Job` (one content x one style -> one output file, mirroring the input tree), already
marking what an earlier run finished. :func:`run_batch` runs them in this process, in local
worker processes, or on a Dask cluster, and appends JSON lines to the manifest (one per job
as it starts, one as it ends), from which a later run resumes.

Every style's network and statistics are made once (:func:`~audiostyle.transfer.prepare_style`)
in the calling process and shipped to the workers, so each worker builds nothing per job.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .audio import WRITABLE_EXTENSIONS, audio_info
from .config import PRESETS, StyleConfig
from .errors import AudioStyleError, ConfigError
from .transfer import PreparedStyle, Result, prepare_style, stylize

__all__ = [
    "Job",
    "BatchReport",
    "plan_batch",
    "run_batch",
    "read_manifest",
    "estimate_rate",
    "summarize_plan",
    "MANIFEST_NAME",
    "DEFAULT_PATTERNS",
    "EXECUTORS",
]

logger = logging.getLogger("audiostyle")

MANIFEST_NAME = "manifest.jsonl"
#: The audio files a folder is searched for when no pattern is given (case-insensitive).
DEFAULT_PATTERNS = ("*.wav", "*.flac", "*.ogg", "*.oga", "*.aiff", "*.aif", "*.mp3")
EXECUTORS = ("local", "dask")

#: ``progress(record, report)`` after each job's record is written.
BatchProgress = Callable[[dict, "BatchReport"], None]


@dataclass(frozen=True)
class Job:
    """One content file stylized with one style into one output file.

    Attributes
    ----------
    input, output, style : str
        Paths of the content, the file to write and the style.
    config : StyleConfig
    config_hash : str
        Identity of the settings and the style file; a finished output with the same hash is
        not redone.
    duration : float or None
        The input's length in seconds from its header (None if the header is unreadable).
    skip_reason : str or None
        Set when the job is not to run (finished earlier, link out of the tree, ...).
    relative : str
        ``output`` relative to the output folder (how the manifest matches it on a rerun).
    """

    input: str
    output: str
    style: str
    config: StyleConfig
    config_hash: str
    duration: float | None = None
    skip_reason: str | None = None
    relative: str = ""


@dataclass
class BatchReport:
    """What :func:`run_batch` did: one record per job (as in the manifest), in finishing order."""

    records: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    interrupted: bool = False
    total: int = 0
    #: What stopped the run when ``interrupted``: the ``KeyboardInterrupt`` (or subclass, such
    #: as the CLI's SIGTERM exception) that arrived, so that a caller can tell the signals apart.
    interrupt: BaseException | None = None

    def _with(self, status: str) -> list[dict]:
        return [r for r in self.records if r["status"] == status]

    @property
    def done(self) -> list[dict]:
        return self._with("done")

    @property
    def failed(self) -> list[dict]:
        return self._with("failed")

    @property
    def skipped(self) -> list[dict]:
        return self._with("skipped")

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio stylized (finished jobs only)."""
        return sum(r.get("duration") or 0.0 for r in self.done)

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing was left unfinished."""
        return not self.failed and not self.interrupted


# ---------------------------------------------------------------------------------------
# Manifest


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The records of a manifest, oldest first; a missing file is empty.

    Besides one ``done``, ``failed`` or ``skipped`` record per finished job, a run writes a
    ``started`` record for each job it is about to run, before any output can appear; a job
    whose last record is ``started`` was cut short (its run was killed). Lines that are not
    JSON objects (a partial last line after a crash) are ignored.
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


class _Manifest:
    """Appends JSON lines, each write fsynced, so that a crash loses at most the line being written.

    Every append is one ``os.write`` of complete lines on an ``O_APPEND`` descriptor; one that
    fails (disk full, file size limit) is cut back to where it began, so the file never holds
    half a line of ours, and raises an :class:`AudioStyleError` that keeps the system's reason.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fd: int | None = None

    def __enter__(self) -> "_Manifest":
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


# ---------------------------------------------------------------------------------------
# Planning


def _style_identity(style: Path) -> dict[str, Any]:
    stat = style.stat()
    return {"path": str(style.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _config_hash(config: StyleConfig, style: Path) -> str:
    identity = json.dumps({"config": config.digest(), "style": _style_identity(style)}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _scan_folder(
    root: Path, patterns: Sequence[str], recursive: bool, exclude: Path
) -> Iterable[tuple[Path, Path, str | None]]:
    """(file, path relative to root, skip reason) for each matching file under root.

    Hidden files and folders, the output folder and links to folders are not entered; a
    file link whose target lies outside ``root`` is reported with a skip reason.
    """
    real_root = root.resolve()
    for folder, subfolders, files in os.walk(root, followlinks=False):
        here = Path(folder)
        kept = []
        for name in sorted(subfolders):
            sub = here / name
            if name.startswith(".") or sub.resolve() == exclude:
                continue
            if sub.is_symlink():
                logger.warning("%s: linked folder not followed", sub)
                continue
            kept.append(name)
        subfolders[:] = kept if recursive else []
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or not _matches(name, patterns):
                continue
            reason = None
            if path.is_symlink():
                target = path.resolve()
                if not target.exists():
                    reason = f"broken link (to {target})"
                elif not _inside(target, real_root):
                    reason = f"link outside the input folder (to {target})"
            if reason is not None:
                logger.warning("%s: skipped, %s", path, reason)
            yield path, path.relative_to(root), reason


def _output_suffix(path: Path, format: str | None) -> str:
    if format is not None:
        suffix = "." + format.lower().lstrip(".")
        if suffix not in WRITABLE_EXTENSIONS:
            raise ConfigError(f"format={format!r} must be one of {[e[1:] for e in WRITABLE_EXTENSIONS]}")
        return suffix
    return path.suffix if path.suffix.lower() in WRITABLE_EXTENSIONS else ".wav"


def plan_batch(
    inputs: Sequence[str | os.PathLike],
    styles: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    config: StyleConfig | None = None,
    *,
    patterns: Sequence[str] | None = None,
    recursive: bool = True,
    overwrite: bool = False,
    format: str | None = None,
) -> list[Job]:
    """The jobs that stylize every matching input file with every style.

    Outputs mirror the input tree under ``output_dir`` (under ``output_dir/<style stem>/`` when
    there are several styles). With one input folder its contents are mirrored directly;
    with several inputs each folder keeps its own name and each file lands at the top.
    Each output keeps its input's format (``.wav`` when that cannot be written) unless
    ``format`` is given; sample rate and channels follow the input.

    Parameters
    ----------
    inputs : sequence of path
        Audio files and folders.
    styles : sequence of path
        Style files; each makes its own set of outputs.
    output_dir : path
        Where outputs and ``manifest.jsonl`` go; it may lie inside an input folder (it is
        then not searched). It need not exist.
    config : StyleConfig, optional
        Settings (default: ``PRESETS["default"]``).
    patterns : sequence of str, optional
        Shell patterns for file names in folders, case-insensitive (default: the audio
        extensions, :data:`DEFAULT_PATTERNS`). Files named directly are always taken.
    recursive : bool
        Search sub-folders.
    overwrite : bool
        Redo outputs that exist, even when an earlier run finished them with these settings.
        Without it an existing output is skipped, unless the manifest shows that a run with
        these settings started its job and stopped before recording it (killed): that
        output is made again, with a warning that names it.
    format : str, optional
        Output extension for every job (``"wav"``, ``"flac"``, ...).

    Returns
    -------
    list of Job
        In input order, styles innermost; jobs not to run carry a ``skip_reason``.

    Raises
    ------
    ConfigError
        No inputs or styles, an input or style that does not exist, nothing matched, two
        jobs writing the same file, or styles with the same name.
    """
    config = PRESETS["default"] if config is None else config
    if not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig; got {type(config).__name__}")
    if not inputs:
        raise ConfigError("no inputs: give at least one audio file or folder")
    if not styles:
        raise ConfigError("no style: give at least one --style file")
    patterns = tuple(patterns) if patterns else DEFAULT_PATTERNS
    output_dir = Path(output_dir)
    real_output = output_dir.resolve()
    style_paths = [Path(s) for s in styles]
    for style in style_paths:
        if not style.is_file():
            raise ConfigError(f"style {style}: no such file")
    stems = [s.stem for s in style_paths]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"styles must have different names (outputs go to OUTDIR/<style name>/); got {stems}")

    contents: list[tuple[Path, Path, str | None]] = []
    single_folder = len(inputs) == 1 and Path(inputs[0]).is_dir()
    for given in map(Path, inputs):
        if given.is_dir():
            found = list(_scan_folder(given, patterns, recursive, real_output))
            if not found:
                raise ConfigError(
                    f"{given}: no files match {', '.join(patterns)}"
                    + ("" if recursive else " (sub-folders not searched: --recursive)")
                )
            prefix = Path() if single_folder else Path(given.resolve().name)
            contents.extend((path, prefix / rel, reason) for path, rel, reason in found)
        elif given.exists():
            contents.append((given, Path(given.name), None))
        else:
            raise ConfigError(f"input {given}: no such file or folder")

    hashes = {style: _config_hash(config, style) for style in style_paths}
    finished, unfinished = _earlier_runs(output_dir)
    jobs, seen, redone = [], {}, []
    for path, rel, reason in contents:
        duration = None
        if reason is None:
            with contextlib.suppress(AudioStyleError):
                duration = audio_info(path).duration
        for style in style_paths:
            base = output_dir / style.stem if len(style_paths) > 1 else output_dir
            output = base / rel.with_suffix(_output_suffix(rel, format))
            if not _inside(output.resolve(), real_output):
                raise ConfigError(f"{path}: its output {output} would lie outside {output_dir}")
            if str(output) in seen:
                raise ConfigError(f"{path} and {seen[str(output)]} would both be written to {output}")
            seen[str(output)] = path
            relative = output.relative_to(output_dir).as_posix()
            skip = reason
            if skip is None and not overwrite and output.exists():
                if unfinished.get(relative) == hashes[style]:
                    # A killed run of this plan may have written it without recording it.
                    redone.append(relative)
                elif finished.get(relative) == hashes[style]:
                    skip = "finished earlier with the same settings"
                else:
                    skip = "output exists, made otherwise; --overwrite replaces it"
            jobs.append(Job(str(path), str(output), str(style), config, hashes[style], duration, skip, relative))
    if redone:
        shown = ", ".join(redone[:REDONE_SHOWN])
        if len(redone) > REDONE_SHOWN:
            shown += f" and {len(redone) - REDONE_SHOWN} more"
        logger.warning(
            "%d output(s) of an earlier run that stopped before recording them will be made again: %s",
            len(redone),
            shown,
        )
    return jobs


#: How many redone outputs the planning warning names.
REDONE_SHOWN = 10


def _earlier_runs(output_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Config hashes by output (relative path): of jobs finished earlier, and of jobs started
    but never finished (their run was killed)."""
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


# ---------------------------------------------------------------------------------------
# Signals: an output and its manifest record go together


#: Signals held while an output is written and recorded.
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_holding = False


def _deliver(signum: int, handler: Any) -> None:
    """Run the handler a held signal would have run (SIG_DFL: the default action)."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver the first that came.

    Around writing an output and appending its record: an interrupt between the two would
    leave a finished file that the manifest does not know, which a rerun then refuses to
    overwrite. Writing one short output takes milliseconds, so nobody waits on it. Re-entrant;
    a no-op outside the main thread (only it may set handlers).
    """
    global _holding
    if _holding or threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in _HELD_SIGNALS}
    _holding = True
    try:
        yield
    finally:
        _holding = False
        for signum, handler in previous.items():
            # None: a handler not set from Python, which cannot be put back; the default is closest.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if received:
            _deliver(received[0], previous[received[0]])


# ---------------------------------------------------------------------------------------
# Running one job (in whatever process the executor picks)

_worker_styles: dict[str, PreparedStyle] = {}
#: What a worker process is doing: "idle", "stylizing" (nothing on disk yet) or "saving".
_worker_phase = "idle"
_worker_interrupted = False
#: The job a worker process is running, None between jobs.
_worker_job: Job | None = None
#: Shared with the batch process: for each job of the pool, the pid of the worker that began it (0: none).
_worker_began: Any = None


def _record(job: Job, status: str, **fields: Any) -> dict:
    return {
        "input": job.input,
        "output": job.output,
        "relative": job.relative,
        "style": job.style,
        "config_hash": job.config_hash,
        "status": status,
        "duration": job.duration,
        **fields,
        # A started record says when the job began; the others when it ended.
        "started" if status == "started" else "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _attempt(job: Job, started: float, action: Callable[[], Any]) -> Any:
    """``action()``, or the job's ``failed`` record when it raises anything but an interrupt."""
    try:
        return action()
    except AudioStyleError as error:
        return _record(job, "failed", error=str(error), seconds=time.perf_counter() - started)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
        logger.debug("job %s failed", job.input, exc_info=True)
        message = f"unexpected {type(error).__name__}: {error}"
        return _record(job, "failed", error=message, seconds=time.perf_counter() - started)


def _stylize_job(job: Job, prepared: PreparedStyle, started: float) -> Result | dict:
    """The job's result, or its ``failed`` record; writes nothing, so it may be interrupted anywhere."""

    def run() -> Result:
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        return stylize(job.input, None, job.config, prepared=prepared)

    return _attempt(job, started, run)


def _save_job(job: Job, outcome: Result | dict, started: float) -> dict:
    """Write the result atomically and return the ``done`` record (or a ``failed`` one)."""
    if isinstance(outcome, dict):
        return outcome
    result = outcome
    saved = _attempt(job, started, lambda: result.save(job.output, overwrite=True))
    if isinstance(saved, dict):
        return saved
    first, last = result.history[0], result.history[-1]
    return _record(
        job,
        "done",
        duration=result.duration,
        sample_rate=result.sample_rate,
        channels=int(result.audio.shape[0]),
        losses={"first": first, "last": last, "steps": len(result.history) - 1},
        timings={stage: round(seconds, 4) for stage, seconds in result.timings.items()},
        seconds=time.perf_counter() - started,
    )


def _execute(job: Job, prepared: PreparedStyle) -> dict:
    """Stylize and save one job; every failure but an interrupt becomes a ``failed`` record."""
    started = time.perf_counter()
    return _save_job(job, _stylize_job(job, prepared, started), started)


def _on_worker_interrupt(signum: int, frame: Any) -> None:
    # Interrupt the running optimisation once and refuse queued jobs. A job that is saving
    # finishes, so that its record reaches the manifest; an idle worker or one already
    # unwinding is not disturbed.
    global _worker_interrupted
    if _worker_interrupted:
        return
    _worker_interrupted = True
    if _worker_phase == "stylizing":
        raise KeyboardInterrupt


#: Seconds a worker outlives a SIGTERM at most.
WORKER_TERMINATE_GRACE = 30


def _on_worker_terminate(signum: int, frame: Any) -> None:
    # Workers get SIGTERM when a whole process group is stopped (systemd, Slurm, kill --
    # -PGID): unwind as for Ctrl-C and let the parent, which got it too, record what finished
    # and shut the pool down. Dying on the spot instead would break the pool while the
    # parent cancels its jobs (and could cut a save short). The pool's own terminate(), after
    # another worker died, also sends SIGTERM and then waits for the worker: it ends at the
    # pool's sentinel, or at the latest by this alarm (SIGALRM's default action; POSIX only).
    if hasattr(signal, "alarm"):
        signal.alarm(WORKER_TERMINATE_GRACE)
    _on_worker_interrupt(signum, frame)


#: Seconds between a worker's checks that the batch process is still there.
PARENT_CHECK_INTERVAL = 0.25


def _process_identity(pid: int) -> str | None:
    """What tells process ``pid`` from a later one that reuses its pid, or None if it is gone.

    Its start time where ``/proc`` says it (an exited process that is not yet reaped counts
    as gone); elsewhere ``""`` while a process with that pid exists.
    """
    if Path("/proc/self/stat").exists():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # fields[0]: the state (Z and X: exited); fields[19]: the start time in clock ticks.
        if not fields or fields[0] in ("Z", "X"):
            return None
        return fields[19] if len(fields) > 19 else ""
    if os.name == "nt":
        return ""  # os.kill(pid, 0) would terminate the process there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def _watch_batch_process(pid: int, identity: str | None) -> None:
    """End this worker soon after the batch process ``pid`` is gone.

    A batch process killed with SIGKILL cannot stop its workers, and a forkserver's workers
    are not even its children: left alone they would go on with their queued jobs and write
    outputs that no manifest records. (The forkserver is no witness: a SIGTERM sent to the
    whole process group ends it at once while the batch process winds down in order.)
    """
    while _process_identity(pid) == identity:
        time.sleep(PARENT_CHECK_INTERVAL)
    job = _worker_job
    if job is not None:
        _remove_partial_files([job])
    os._exit(1)


def _init_worker(
    threads: int, styles: dict[str, PreparedStyle], batch_process: tuple[int, str | None], began: Any
) -> None:
    global _worker_began
    torch.set_num_threads(threads)
    _worker_styles.update(styles)
    _worker_began = began
    signal.signal(signal.SIGINT, _on_worker_interrupt)
    signal.signal(signal.SIGTERM, _on_worker_terminate)
    threading.Thread(target=_watch_batch_process, args=batch_process, name="audiostyle-watch", daemon=True).start()


def _execute_in_worker(index: int, job: Job) -> dict:
    global _worker_phase, _worker_job
    if _worker_interrupted:
        raise KeyboardInterrupt
    _worker_began[index] = os.getpid()
    _worker_job = job
    started = time.perf_counter()
    _worker_phase = "stylizing"
    try:
        outcome = _stylize_job(job, _worker_styles[job.config_hash], started)
        _worker_phase = "saving"
        return _save_job(job, outcome, started)
    finally:
        _worker_phase = "idle"
        _worker_job = None


def _execute_on_dask(job: Job, prepared: PreparedStyle, threads: int | None) -> dict:
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return _execute(job, prepared)


# ---------------------------------------------------------------------------------------
# Executors


#: Times a job is run again, alone, after a worker process died while it may have been running it.
WORKER_RETRIES = 2


def _usable_cpus() -> int:
    # The CPUs this process may run on (a container's or taskset's share), not the host's.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _threads_per_worker(workers: int) -> int:
    return max(1, _usable_cpus() // workers)


def _run_here(jobs: list[Job], styles: dict[str, PreparedStyle], emit: Callable[[dict], None]) -> None:
    for job in jobs:
        started = time.perf_counter()
        outcome = _stylize_job(job, styles[job.config_hash], started)
        with _signals_held():
            emit(_save_job(job, outcome, started))


def _worker_context() -> Any:
    """The multiprocessing context of the worker processes, its forkserver started if it has one."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The workers fork from a server that has torch imported already: seconds saved per
    # worker. But the server runs as `python -c`, which puts the current folder first on
    # sys.path, where a folder named audiostyle would be imported instead of this package.
    # PYTHONSAFEPATH (Python 3.11+) leaves it out; before 3.11, nothing is preloaded and each
    # worker imports with the batch process's sys.path.
    if sys.version_info >= (3, 11):
        from multiprocessing import forkserver

        context.set_forkserver_preload(["audiostyle.batch"])
        previous = os.environ.get("PYTHONSAFEPATH")
        os.environ["PYTHONSAFEPATH"] = "1"
        try:
            forkserver.ensure_running()
        finally:
            if previous is None:
                del os.environ["PYTHONSAFEPATH"]
            else:
                os.environ["PYTHONSAFEPATH"] = previous
    return context


def _run_processes(
    jobs: list[Job], styles: dict[str, PreparedStyle], emit: Callable[[dict], None], workers: int
) -> None:
    context = _worker_context()
    remaining, failed_starts = list(jobs), 0
    while remaining:
        given = len(remaining)
        suspects, remaining = _run_pool(remaining, styles, emit, workers, context)
        if suspects:
            # A worker that dies (killed, out of memory, a crashing decoder) breaks the pool
            # and every job in it. The jobs it may have been running are run again alone, so
            # that only the culprit is recorded as failed; the others go on in parallel.
            logger.warning(
                "a worker process died (killed, or out of memory?) while running %s; running %s again alone",
                ", ".join(job.input for job in suspects),
                "it" if len(suspects) == 1 else "each",
            )
            for job in suspects:
                _run_alone(job, styles, emit, context)
        elif len(remaining) == given:
            failed_starts += 1
            if failed_starts > WORKER_RETRIES:
                error = "worker processes died before running any job (see the errors above)"
                for job in remaining:
                    emit(_record(job, "failed", error=error))
                return
            logger.warning("worker processes died before running any job; starting them again")
        elif remaining:
            logger.warning("a worker process died between jobs; running the %d queued job(s) again", len(remaining))


def _run_alone(job: Job, styles: dict[str, PreparedStyle], emit: Callable[[dict], None], context: Any) -> None:
    for _ in range(WORKER_RETRIES):
        suspects, others = _run_pool([job], styles, emit, 1, context)
        if not suspects and not others:
            return
    error = f"its worker process died {WORKER_RETRIES + 1} times (killed, or out of memory?)"
    emit(_record(job, "failed", error=error))


def _run_pool(
    jobs: list[Job],
    styles: dict[str, PreparedStyle],
    emit: Callable[[dict], None],
    workers: int,
    context: Any,
) -> tuple[list[Job], list[Job]]:
    """Run ``jobs`` on one pool, recording each.

    Returns the jobs lost when a worker died: those a dead worker may have been running
    (suspects), and the others (queued, or running on a worker the pool then stopped).
    """
    began = context.RawArray("i", len(jobs))
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(_threads_per_worker(workers), styles, (os.getpid(), _process_identity(os.getpid())), began),
    )
    pending: dict[Any, int] = {}
    lost: list[int] = []
    processes: dict[int, Any] = {}
    try:
        for index, job in enumerate(jobs):
            try:
                pending[pool.submit(_execute_in_worker, index, job)] = index
            except (BrokenProcessPool, OSError) as error:
                # Broken while the jobs were handed over: a worker died as it started.
                logger.debug("worker pool broken at job %d: %r", index, error)
                lost.extend(range(index, len(jobs)))
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    processes.update(getattr(pool, "_processes", None) or {})
                    lost.append(index)
                else:
                    emit(_future_record(jobs[index], error, future))
    except BaseException as stop:
        # Ctrl-C, or a manifest that cannot be written: stop the workers' optimisations.
        for future in pending:
            future.cancel()
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGINT)
        if isinstance(stop, KeyboardInterrupt):
            # Jobs that finished in the meantime still get their record.
            for future, index in pending.items():
                if future.cancelled():
                    continue
                with contextlib.suppress(BaseException):
                    failure = future.exception(timeout=60)
                    if failure is None:
                        emit(future.result())
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return _sort_lost(jobs, lost, began, processes)


def _sort_lost(jobs: list[Job], lost: list[int], began: Any, processes: dict[int, Any]) -> tuple[list[Job], list[Job]]:
    """Split the lost jobs (indices) into suspects and others; see :func:`_run_pool`."""
    running = {index: began[index] for index in lost if began[index]}
    # After one worker died the pool stops the others with SIGTERM: one that ended otherwise
    # (SIGKILL, the out-of-memory killer, a crash) is one that died. Where none can be told
    # apart, every job that had begun is suspect.
    died = {pid for pid, process in processes.items() if process.exitcode not in (None, 0, -signal.SIGTERM)}
    blamed = {index for index, pid in running.items() if pid in died} or set(running)
    lost = sorted(lost)  # in plan order
    return [jobs[i] for i in lost if i in blamed], [jobs[i] for i in lost if i not in blamed]


def _future_record(job: Job, error: BaseException | None, future: Any) -> dict:
    if error is None:
        return future.result()
    if isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt
    return _record(job, "failed", error=f"worker failed: {type(error).__name__}: {error}")


def _run_dask(
    jobs: list[Job],
    styles: dict[str, PreparedStyle],
    emit: Callable[[dict], None],
    workers: int,
    scheduler: str | None,
) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("executor='dask' needs Dask distributed: pip install 'audiostyle[dask]'") from None
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            client = stack.enter_context(Client(cluster))
            threads = _threads_per_worker(workers)
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout="30s"))
            except (OSError, TimeoutError) as error:
                raise ConfigError(f"scheduler={scheduler!r}: cannot connect ({error})") from None
            threads = None
        shipped = client.scatter(styles, broadcast=True)
        futures = {
            client.submit(_execute_on_dask, job, shipped[job.config_hash], threads, pure=False): job for job in jobs
        }
        retries: dict[int, int] = {}
        completed = as_completed(futures)
        try:
            for future in completed:
                job = futures.pop(future)
                if future.status == "error":
                    emit(_record(job, "failed", error=f"worker failed: {future.exception()}"))
                    continue
                try:
                    emit(future.result())
                    continue
                except Exception as error:  # noqa: BLE001 - cancelled or lost with its worker
                    lost = f"{type(error).__name__}: {error}"
                # A worker died with the job (or with data it needed): run it again, with its
                # style sent along rather than the scattered copy, which may be gone too.
                tries = retries.get(id(job), 0)
                if tries >= WORKER_RETRIES:
                    emit(_record(job, "failed", error=f"worker lost {tries + 1} times: {lost}"))
                    continue
                retries[id(job)] = tries + 1
                again = client.submit(_execute_on_dask, job, styles[job.config_hash], threads, pure=False)
                futures[again] = job
                completed.add(again)
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise


def _remove_partial_files(jobs: Iterable[Job]) -> None:
    """Remove temporary files a killed worker may have left beside the outputs."""
    for job in jobs:
        output = Path(job.output)
        pattern = f".{glob.escape(output.name)}.*.part{glob.escape(output.suffix)}"
        for leftover in output.parent.glob(pattern):
            with contextlib.suppress(OSError):
                leftover.unlink()


def run_batch(
    jobs: Sequence[Job],
    executor: str = "local",
    progress: BatchProgress | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    manifest: str | os.PathLike | None = None,
) -> BatchReport:
    """Run planned jobs and record each in the manifest as it finishes.

    Each style is prepared once here (network and statistics) and shared by all workers.
    A job that fails (unreadable, too short, vanished file...) is recorded with its error and
    the others go on. Outputs are written atomically: an interrupt leaves finished files
    complete and no partial ones.

    Parameters
    ----------
    jobs : sequence of Job
        From :func:`plan_batch`; jobs with a ``skip_reason`` are recorded as skipped.
    executor : {"local", "dask"}
        ``"local"``: this process (``workers=1``) or ``workers`` processes; ``"dask"``: a Dask
        cluster at ``scheduler``, or a ``LocalCluster`` of ``workers`` processes. Workers
        must see the input, style and output paths at the same names (a shared file system).
    progress : callable, optional
        ``progress(record, report)`` after each job.
    workers : int
        Local processes (torch threads are divided among them).
    scheduler : str, optional
        Dask scheduler address such as ``tcp://host:8786``.
    manifest : path, optional
        JSON-lines file to append the records to: a ``started`` record for each job to run
        before any runs, then one record per job as it ends.

    Returns
    -------
    BatchReport
        ``interrupted`` is True after Ctrl-C, or after SIGTERM where the caller turns it into
        a ``KeyboardInterrupt`` (as the CLI does); ``interrupt`` is the exception. The
        remaining jobs are not recorded. Outputs and their records are written together: an
        interrupt waits for a save in progress (milliseconds) and its record.

    Raises
    ------
    ConfigError
        Bad executor, workers or scheduler, or Dask not installed.
    AudioFileError
        A style file is unusable (nothing is run).
    AudioStyleError
        The manifest cannot be written (disk full...): the run stops; the message keeps the
        system's reason, and the manifest is left as it was before the failed line.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r} must be one of {EXECUTORS}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024:
        raise ConfigError(f"workers={workers!r} must be an integer in [1, 1024]")
    if scheduler is not None and executor != "dask":
        raise ConfigError("a scheduler address needs executor='dask'")
    report = BatchReport(total=len(jobs))
    started = time.perf_counter()
    runnable = [job for job in jobs if job.skip_reason is None]
    styles: dict[str, PreparedStyle] = {}
    for job in runnable:
        # config_hash names one style file under one config: what a PreparedStyle holds.
        if job.config_hash not in styles:
            prepared = prepare_style(job.style, job.config)
            # Shipped to other processes from the CPU; each worker moves it to its device.
            styles[job.config_hash] = prepared.to("cpu") if executor == "dask" or workers > 1 else prepared

    with _Manifest(manifest) as log:

        def emit(record: dict) -> None:
            with _signals_held():
                log.write([record], f"job {record['input']} ({record['status']})")
                report.records.append(record)
            if record["status"] == "failed":
                logger.info("failed: %s", record["error"])
            if progress is not None:
                progress(record, report)

        for job in jobs:
            if job.skip_reason is not None:
                emit(_record(job, "skipped", reason=job.skip_reason))
        with _signals_held():
            # Before any output can appear: a rerun after a kill then knows whose outputs they are.
            log.write([_record(job, "started") for job in runnable], f"the start of {len(runnable)} job(s)")
        try:
            if executor == "dask" and runnable:
                _run_dask(runnable, styles, emit, workers, scheduler)
            elif workers > 1 and len(runnable) > 1:
                _run_processes(runnable, styles, emit, min(workers, len(runnable)))
            else:
                _run_here(runnable, styles, emit)
        except KeyboardInterrupt as interrupt:
            report.interrupted, report.interrupt = True, interrupt
        finally:
            # A worker killed mid-write (SIGKILL, OOM) cannot remove its own temporary file;
            # its job was retried under another temporary name, so sweep them all up here.
            _remove_partial_files(runnable)
    report.elapsed = time.perf_counter() - started
    return report


def estimate_rate(jobs: Sequence[Job], manifest: str | os.PathLike | None = None) -> tuple[float, str]:
    """Audio seconds stylized per second of one worker, and where the figure comes from.

    From the manifest's finished jobs with the same settings when there are some; otherwise
    measured by stylizing two seconds of noise with the first job's style.
    """
    hashes = {job.config_hash for job in jobs}
    history = [
        r for r in (read_manifest(manifest) if manifest is not None else [])
        if r.get("status") == "done" and r.get("config_hash") in hashes and r.get("seconds")
    ]
    if history:
        rate = sum(r["duration"] for r in history) / sum(r["seconds"] for r in history)
        return rate, f"from {len(history)} earlier jobs"
    job = jobs[0]
    prepared = prepare_style(job.style, job.config)
    rate = job.config.sample_rate
    noise = (0.1 * np.random.default_rng(0).standard_normal(2 * rate)).astype(np.float32)
    # The first run pays one-off costs (lazy imports, allocator warm-up): time the second.
    stylize((noise[: rate // 4], rate), None, job.config, prepared=prepared)
    started = time.perf_counter()
    stylize((noise, rate), None, job.config, prepared=prepared)
    return 2.0 / (time.perf_counter() - started), "measured on 2 s of noise"


def summarize_plan(jobs: Sequence[Job]) -> dict[str, Any]:
    """Counts and durations of a plan, for a dry run."""
    runnable = [job for job in jobs if job.skip_reason is None]
    reasons: dict[str, int] = {}
    for job in jobs:
        if job.skip_reason is not None:
            key = job.skip_reason.split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "jobs": len(jobs),
        "inputs": len({job.input for job in jobs}),
        "styles": len({job.style for job in jobs}),
        "to_run": len(runnable),
        "skipped": reasons,
        "unreadable_headers": sum(1 for job in runnable if job.duration is None),
        "audio_seconds": sum(job.duration or 0.0 for job in runnable),
    }
