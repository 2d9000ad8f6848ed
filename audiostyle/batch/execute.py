"""Running one job, in whatever process an executor picks: stylize, then save and record."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import AudioStyleError, PreparedStyle, Result, stylize
from .jobs import Job, record

logger = logging.getLogger("audiostyle")

#: Times a job is run again, alone, after a worker process died while it may have been running it.
WORKER_RETRIES = 2


def execute(job: Job, prepared: PreparedStyle) -> dict:
    """Stylize and save one job; every failure but an interrupt becomes a ``failed`` record."""
    started = time.perf_counter()
    return save_job(job, stylize_job(job, prepared, started), started)


def stylize_job(job: Job, prepared: PreparedStyle, started: float) -> Result | dict:
    """The job's result, or its ``failed`` record; writes nothing, so it may be interrupted anywhere."""

    def run() -> Result:
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        return stylize(job.input, None, job.config, prepared=prepared)

    return _attempt(job, started, run)


def save_job(job: Job, outcome: Result | dict, started: float) -> dict:
    """Write the result atomically and return the ``done`` record (or a ``failed`` one)."""
    if isinstance(outcome, dict):
        return outcome
    result = outcome
    saved = _attempt(job, started, lambda: result.save(job.output, overwrite=True))
    if isinstance(saved, dict):
        return saved
    first, last = result.history[0], result.history[-1]
    return record(
        job,
        "done",
        duration=result.duration,
        sample_rate=result.sample_rate,
        channels=int(result.audio.shape[0]),
        losses={"first": first, "last": last, "steps": len(result.history) - 1},
        timings={stage: round(seconds, 4) for stage, seconds in result.timings.items()},
        seconds=time.perf_counter() - started,
    )


def _attempt(job: Job, started: float, action: Callable[[], Any]) -> Any:
    """``action()``, or the job's ``failed`` record when it raises anything but an interrupt."""
    try:
        return action()
    except AudioStyleError as error:
        return record(job, "failed", error=str(error), seconds=time.perf_counter() - started)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # one bad file must not stop the others
        logger.debug("job %s failed", job.input, exc_info=True)
        message = f"unexpected {type(error).__name__}: {error}"
        return record(job, "failed", error=message, seconds=time.perf_counter() - started)


def remove_partial_files(jobs: Iterable[Job]) -> None:
    """Remove temporary files a killed worker may have left beside the outputs."""
    for job in jobs:
        output = Path(job.output)
        pattern = f".{glob.escape(output.name)}.*.part{glob.escape(output.suffix)}"
        for leftover in output.parent.glob(pattern):
            with contextlib.suppress(OSError):
                leftover.unlink()


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of ``workers`` processes: the CPUs this process may use, shared."""
    # A container's or taskset's share of the CPUs, not the host's.
    if hasattr(os, "sched_getaffinity"):
        usable = len(os.sched_getaffinity(0)) or 1
    else:
        usable = os.cpu_count() or 1
    return max(1, usable // workers)
