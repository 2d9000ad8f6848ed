"""Running one job, in whatever process an executor picks: render, then save and record.

A job's output is made by its *renderer*, one per config hash, made once per run and
shipped to every worker: a :class:`StyleRenderer` (per-clip optimisation with a prepared
style) or a :class:`ModelRenderer` (one pass of a trained style model).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .. import AudioStyleError, PreparedStyle, Result, StyleConfig, stylize
from ..io import audio_info, check_encodable
from .jobs import Job, record

if TYPE_CHECKING:
    from ..models import StyleModel

logger = logging.getLogger("audiostyle")

#: Times a job is run again, alone, after a worker process died while it may have been running it.
WORKER_RETRIES = 2


@dataclass(frozen=True)
class StyleRenderer:
    """Stylizes each content with one prepared style: an optimisation per file."""

    prepared: PreparedStyle
    config: StyleConfig

    def render(self, content: Any) -> Result:
        """``content`` (a path or ``(array, rate)``) stylized; see :func:`audiostyle.stylize`."""
        return stylize(content, None, self.config, prepared=self.prepared)


@dataclass(frozen=True)
class ModelRenderer:
    """Applies one trained style model: one forward pass per file."""

    model: "StyleModel"

    def render(self, content: Any) -> Result:
        """``content`` (a path or ``(array, rate)``) through the model; see ``StyleModel.apply``."""
        return self.model.apply(content)


#: What makes a job's output, by config hash.
Renderer = Union[StyleRenderer, ModelRenderer]


def execute(job: Job, renderer: Renderer) -> dict:
    """Render and save one job; every failure but an interrupt becomes a ``failed`` record."""
    started = time.perf_counter()
    return save_job(job, render_job(job, renderer, started), started)


def render_job(job: Job, renderer: Renderer, started: float) -> Result | dict:
    """The job's result, or its ``failed`` record; writes nothing, so it may be interrupted anywhere."""

    def run() -> Result:
        # The output keeps the input's rate and channels: refuse a format that cannot hold
        # them before the work, not after it.
        info = audio_info(job.input)
        check_encodable(job.output, info.sample_rate, info.channels)
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        return renderer.render(job.input)

    return _attempt(job, started, run)


def save_job(job: Job, outcome: Result | dict, started: float) -> dict:
    """Write the result atomically and return the ``done`` record (or a ``failed`` one)."""
    if isinstance(outcome, dict):
        return outcome
    result = outcome
    # Only what the plan chose to replace: a file that appeared since (another run's) is kept.
    saved = _attempt(job, started, lambda: result.save(job.output, overwrite=job.replace))
    if isinstance(saved, dict):
        return saved
    # A model's output has no solver history: its record has no losses.
    losses = (
        {"losses": {"first": result.history[0], "last": result.history[-1], "steps": len(result.history) - 1}}
        if result.history
        else {}
    )
    return record(
        job,
        "done",
        duration=result.duration,
        sample_rate=result.sample_rate,
        channels=int(result.audio.shape[0]),
        **losses,
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
