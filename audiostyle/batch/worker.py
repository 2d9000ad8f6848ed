"""Inside a local worker process: its renderers, its signal handlers, and the watch on the batch process.

The pool starts each worker with :func:`init_worker` and runs each job through
:func:`execute_in_worker`; both are module functions so that they pickle by name.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from .execute import Renderer, remove_partial_files, render_job, save_job
from .jobs import Job

#: Seconds a worker outlives a SIGTERM at most.
WORKER_TERMINATE_GRACE = 30
#: Seconds between a worker's checks that the batch process is still there.
PARENT_CHECK_INTERVAL = 0.25


class WorkerState:
    """What one worker process holds: its renderers and the job it is running, if any.

    The renderers (prepared styles or loaded models, by config hash) arrive once, when the
    worker starts, not with each job. ``phase`` is ``"idle"``, ``"stylizing"`` (nothing on
    disk yet) or ``"saving"``;
    ``began`` is shared with the batch process: for each job of the pool, the pid of the
    worker that began it (0: none).
    """

    def __init__(self) -> None:
        self.renderers: dict[str, Renderer] = {}
        self.phase = "idle"
        self.interrupted = False
        self.job: Job | None = None
        self.began: Any = None
        self.stopping: Any = None

    def on_interrupt(self, signum: int, frame: Any) -> None:
        """Interrupt the running optimisation once and refuse queued jobs.

        A job that is saving finishes, so that its record reaches the manifest; an idle
        worker or one already unwinding is not disturbed.
        """
        if self.interrupted:
            return
        self.interrupted = True
        if self.phase == "stylizing":
            raise KeyboardInterrupt

    def on_terminate(self, signum: int, frame: Any) -> None:
        """Unwind as for Ctrl-C, and end by :data:`WORKER_TERMINATE_GRACE` seconds at the latest.

        Workers get SIGTERM when a whole process group is stopped (systemd, Slurm), and the
        parent, which got it too, records what finished and shuts the pool down; dying on the
        spot would break the pool while the parent cancels its jobs, or cut a save short.
        The pool's own terminate() also sends SIGTERM and waits for the worker, which ends
        at the pool's sentinel or at this alarm (SIGALRM's default action; POSIX only).
        """
        if hasattr(signal, "alarm"):
            signal.alarm(WORKER_TERMINATE_GRACE)
        self.on_interrupt(signum, frame)

    def execute(self, index: int, job: Job) -> dict:
        """Run ``job`` (the pool's ``index``-th) and return its record; refused once the batch stops."""
        if self.interrupted or (self.stopping is not None and self.stopping.value):
            raise KeyboardInterrupt
        self.began[index] = os.getpid()
        self.job = job
        started = time.perf_counter()
        self.phase = "stylizing"
        try:
            outcome = render_job(job, self.renderers[job.config_hash], started)
            self.phase = "saving"
            return save_job(job, outcome, started)
        finally:
            self.phase = "idle"
            self.job = None

    def watch_batch_process(self, pid: int, identity: str | None) -> None:
        """End this worker soon after the batch process ``pid`` is gone.

        A batch process killed with SIGKILL cannot stop its workers, and a forkserver's
        workers are not even its children: left alone they would go on with their queued
        jobs and write outputs that no manifest records. (The forkserver is no witness: a
        SIGTERM to the whole process group ends it while the batch process winds down.)
        """
        while process_identity(pid) == identity:
            time.sleep(PARENT_CHECK_INTERVAL)
        job = self.job
        if job is not None:
            remove_partial_files([job])
        os._exit(1)


#: This process's state, when it is a worker.
_worker = WorkerState()


def report_start_error(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    """``sys.excepthook`` of the forkserver's workers: silent for a worker that the server forks
    after its batch stopped (Ctrl-C while the server was still loading), whose pool's semaphores
    are gone by then; Python's own report for anything else."""
    semaphores = os.path.join("multiprocessing", "synchronize.py")
    orphan = isinstance(error, FileNotFoundError) and any(
        frame.filename.endswith(semaphores) for frame in traceback.extract_tb(trace)
    )
    if not orphan:
        sys.__excepthook__(kind, error, trace)


def init_worker(
    threads: int, renderers: dict[str, Renderer], batch_process: tuple[int, str | None], began: Any, stopping: Any = None
) -> None:
    """Set up a worker process: torch threads, the renderers, signal handlers, the watch.

    ``began`` (a job's index -> the pid of the worker that began it) and ``stopping`` (set
    when the batch stops) are shared with the batch process.
    """
    torch.set_num_threads(threads)
    _worker.renderers.update(renderers)
    _worker.began = began
    _worker.stopping = stopping
    signal.signal(signal.SIGINT, _worker.on_interrupt)
    signal.signal(signal.SIGTERM, _worker.on_terminate)
    if hasattr(signal, "pthread_sigmask"):
        # A forkserver's workers start with them blocked (see batch/forkserver.py): one that
        # came while this worker started is handled now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    watch = threading.Thread(target=_worker.watch_batch_process, args=batch_process, name="audiostyle-watch", daemon=True)
    watch.start()


def execute_in_worker(index: int, job: Job) -> dict:
    """The pool's task: run ``job`` in this worker."""
    return _worker.execute(index, job)


def process_identity(pid: int) -> str | None:
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
