"""The studio's job queue: one worker thread per device runs ``audiostyle.stylize``.

Jobs on the same device run one at a time, in order; the others wait and know their place.
Progress (step, losses, ETA) is recorded from the solver's callback, which also checks the
job's cancel flag: cancelling a running job raises a private exception from that callback,
which unwinds ``stylize`` between two solver steps.

The manager owns each job's folder: a cancelled job's files are deleted as soon as it stops,
a forgotten or expired job's with it, and at most ``max_pending`` jobs wait or run at once.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import audiostyle
from audiostyle import resolve_device

logger = logging.getLogger("audiostyle.studio")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class _Cancelled(Exception):
    """Raised from the progress callback to stop a cancelled job between solver steps."""


class QueueFull(Exception):
    """:meth:`JobManager.submit` refused a job: ``max_pending`` jobs already wait or run."""


class ShuttingDown(Exception):
    """:meth:`JobManager.submit` refused a job: the studio is stopping."""


@dataclass
class Job:
    """One request: inputs on disk (server-chosen names), settings, and its progress.

    ``content`` is None for a texture; ``labels`` are the client's file names, for display only.
    """

    id: str
    content: Path | None
    style: Path
    config: audiostyle.StyleConfig
    preset: str
    labels: dict[str, str]
    folder: Path
    duration: float | None = None
    #: The most its result files can take, held against the storage limit until it finishes.
    result_bytes: int = 0
    status: str = QUEUED
    #: What the steps count: "solve" (the spectrogram), or a later stage the library reports ("refine").
    stage: str = "solve"
    #: When the current stage began, and when the last step was reported (the next stage's start).
    stage_started: float | None = None
    reported: float | None = None
    step: int = 0
    total: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    eta: float | None = None
    error: dict[str, str] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def mode(self) -> str:
        return "texture" if self.content is None else "transfer"

    @property
    def device(self) -> str:
        return str(resolve_device(self.config.device))


#: Called in the worker after a successful run, with the job and its Result (e.g. to draw plots).
Finisher = Callable[[Job, audiostyle.Result], None]


class JobManager:
    """Queues jobs per device and runs each device's queue on its own thread.

    Parameters
    ----------
    finisher : callable, optional
        Called in the worker after a successful run (e.g. to draw the figure).
    max_pending : int
        Most jobs queued or running at once, all devices together; more are refused.
    """

    def __init__(self, *, finisher: Finisher | None = None, max_pending: int = 8) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending={max_pending!r} must be at least 1")
        self.max_pending = max_pending
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, collections.deque[Job]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Condition()
        self._closed = False
        self._finisher = finisher

    # -- queries -----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda job: job.created, reverse=True)

    def check_room(self) -> None:
        """Raise :class:`QueueFull` when ``max_pending`` jobs are queued or running."""
        with self._lock:
            self._check_room()

    def _check_room(self) -> None:
        if sum(job.status not in FINISHED for job in self._jobs.values()) >= self.max_pending:
            raise QueueFull(f"{self.max_pending} jobs are already queued or running; try again when one has finished")

    def position(self, job: Job) -> int:
        """Jobs ahead of ``job`` on its device (0 when it runs or has finished)."""
        with self._lock:
            if job.status != QUEUED:
                return 0
            queue = self._queues.get(job.device, ())
            running = any(j.status == RUNNING and j.device == job.device for j in self._jobs.values())
            return list(queue).index(job) + int(running) if job in queue else 0

    # -- changes -----------------------------------------------------------------------------
    def submit(self, job: Job) -> Job:
        device = job.device  # resolve now: an unavailable device fails the request, not the job
        with self._lock:
            if self._closed:
                raise ShuttingDown("the studio is shutting down")
            self._check_room()
            self._jobs[job.id] = job
            self._queues.setdefault(device, collections.deque()).append(job)
            if device not in self._workers:
                worker = threading.Thread(target=self._work, args=(device,), name=f"studio-{device}", daemon=True)
                self._workers[device] = worker
                worker.start()
            self._lock.notify_all()
        return job

    def cancel(self, job: Job) -> None:
        """Cancel a queued job at once, a running one at its next solver step; its files go then."""
        with self._lock:
            job.cancel_requested.set()
            queue = self._queues.get(job.device)
            dequeued = job.status == QUEUED
            if dequeued:
                if queue is not None and job in queue:
                    queue.remove(job)
                self._finish(job, CANCELLED)
            self._lock.notify_all()
        if dequeued:
            _delete_files(job)

    def forget(self, job: Job) -> None:
        """Drop a finished job from the list and delete its files."""
        with self._lock:
            if job.status not in FINISHED:
                return
            self._jobs.pop(job.id, None)
        _delete_files(job)

    def expire(self, max_age: float) -> list[Job]:
        """Forget the jobs that finished more than ``max_age`` seconds ago; returns them."""
        cutoff = time.time() - max_age
        with self._lock:
            old = [job for job in self._jobs.values() if job.status in FINISHED and (job.finished or 0.0) <= cutoff]
        for job in old:
            self.forget(job)
        return old

    def stop(self) -> None:
        """Refuse new jobs and cancel every queued and running one, without waiting."""
        with self._lock:
            self._closed = True
            jobs = [job for job in self._jobs.values() if job.status not in FINISHED]
        for job in jobs:
            self.cancel(job)
        with self._lock:
            self._lock.notify_all()

    def busy(self) -> bool:
        """True while a worker thread is still running (after :meth:`close`: stuck in a job)."""
        with self._lock:
            return any(worker.is_alive() for worker in self._workers.values())

    def close(self, timeout: float = 3.0) -> None:
        """:meth:`stop`, then wait up to ``timeout`` seconds for the workers to end."""
        self.stop()
        with self._lock:
            workers = list(self._workers.values())
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    # -- the worker --------------------------------------------------------------------------
    def _finish(self, job: Job, status: str, error: BaseException | None = None) -> None:
        job.status = status
        job.finished = time.time()
        job.eta = None if status != DONE else 0.0
        if error is not None:
            # The studio's private folder is no business of the page's: name the file alone.
            message = str(error).replace(f"{job.folder}{os.sep}", "")
            job.error = {"type": type(error).__name__, "message": message}
        job.version += 1

    def _work(self, device: str) -> None:
        queue = self._queues[device]
        while True:
            with self._lock:
                while not queue and not self._closed:
                    self._lock.wait()
                if not queue:
                    return
                job = queue.popleft()
                job.status, job.started = RUNNING, time.time()
                job.version += 1
            self._run(job)

    def _run(self, job: Job) -> None:
        def progress(step: int, total: int, losses: Mapping[str, Any]) -> None:
            if job.cancel_requested.is_set():
                raise _Cancelled
            with self._lock:
                _record_step(job, step, total, losses)

        try:
            result = audiostyle.stylize(
                str(job.content) if job.content is not None else None,
                str(job.style),
                job.config,
                duration=job.duration,
                progress=progress,
            )
            if job.cancel_requested.is_set():
                raise _Cancelled
            target = job.folder / "result.wav"
            result.save(target)
            if self._finisher is not None:
                self._finisher(job, result)
            scores = _scores(job, result)
        except _Cancelled:
            with self._lock:
                self._finish(job, CANCELLED)
            _delete_files(job)
            return
        except Exception as error:  # noqa: BLE001 - a failed job reports its error, the server lives on
            logger.warning("job %s failed: %s", job.id, error, exc_info=not isinstance(error, audiostyle.AudioStyleError))
            with self._lock:
                self._finish(job, FAILED, error)
            return
        with self._lock:
            job.result = target
            job.step = job.total = max(job.total, len(result.history) - 1)
            job.history = [dict(entry) for entry in result.history]
            job.summary = {
                "duration": result.duration,
                "sample_rate": result.sample_rate,
                "channels": int(result.audio.shape[0]),
                "seconds": result.timings.get("total"),
                "losses_first": result.history[0],
                "losses_last": result.history[-1],
                "stopped": result.metrics.get("stopped"),
                "style_view": result.metrics.get("style_view"),
                "scores": scores,
            }
            self._finish(job, DONE)


def _scores(job: Job, result: audiostyle.Result) -> dict[str, Any] | None:
    """The run's content and style figures (None for a texture, or when they cannot be measured).

    A figure is a comment on a finished result: if it cannot be measured the job still succeeds.
    """
    if job.content is None:
        return None
    from audiostyle.scores import score_output

    try:
        return score_output((result.audio, result.sample_rate), job.content, [(job.style, 1.0)]).to_dict()
    except audiostyle.AudioStyleError as error:
        logger.warning("job %s: no scores (%s)", job.id, error)
        return None


def _record_step(job: Job, step: int, total: int, losses: Mapping[str, Any]) -> None:
    """A step of the job's current stage: count, losses, and an ETA from this stage's pace."""
    now = time.time()
    stage = losses.get("stage")
    stage = stage if isinstance(stage, str) else "solve"
    if stage != job.stage or job.stage_started is None:
        job.stage, job.stage_started = stage, job.reported or job.started or now
    job.reported = now
    job.step, job.total = step, total
    job.losses = {name: float(value) for name, value in losses.items() if not isinstance(value, str)}
    if stage == "solve":
        job.history.append(job.losses)
    job.eta = (now - job.stage_started) / step * (total - step) if step else None
    job.version += 1


def _delete_files(job: Job) -> None:
    shutil.rmtree(job.folder, ignore_errors=True)


def new_job_id() -> str:
    return secrets.token_hex(8)
