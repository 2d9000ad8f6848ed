"""run_batch: prepare each style or load each model once, run the jobs, record each in the manifest."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

from .. import ConfigError, WeightsError, prepare_style
from .dask import run_dask
from .execute import ModelRenderer, Renderer, StyleRenderer, remove_partial_files
from .jobs import BatchProgress, BatchReport, Emit, Job, record
from .local import run_here, run_processes
from .manifest import Manifest
from .signals import hold_signals

logger = logging.getLogger("audiostyle")

EXECUTORS = ("local", "dask")
#: The most worker processes a run may ask for.
MAX_WORKERS = 1024


def check_executor(executor: str = "local", *, workers: int = 1, scheduler: str | None = None) -> None:
    """Check the executor settings of :func:`run_batch` before any work starts.

    Raises
    ------
    ConfigError
        An executor not in :data:`EXECUTORS`, ``workers`` not an integer in [1, 1024], or a
        ``scheduler`` without ``executor="dask"``.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r} must be one of {EXECUTORS}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers={workers!r} must be an integer in [1, {MAX_WORKERS}]")
    if scheduler is not None and executor != "dask":
        raise ConfigError("a scheduler address needs executor='dask'")


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

    Each style is prepared once here (network and statistics), each style model loaded once,
    and shared by all workers.
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
        Bad executor, workers or scheduler (see :func:`check_executor`), or Dask not installed.
    AudioFileError
        A style file is unusable (nothing is run).
    WeightsError
        A model file is unusable, or is no longer the model the jobs were planned with
        (retrained since): nothing is run.
    AudioStyleError
        The manifest cannot be written (disk full...): the run stops; the message keeps the
        system's reason, and the manifest is left as it was before the failed line.
    """
    check_executor(executor, workers=workers, scheduler=scheduler)
    report = BatchReport(total=len(jobs))
    started = time.perf_counter()
    runnable = [job for job in jobs if job.skip_reason is None]
    renderers = _renderers(runnable, shipped=executor == "dask" or workers > 1)
    with Manifest(manifest) as log:
        emit = _recorder(log, report, progress)
        for job in jobs:
            if job.skip_reason is not None:
                emit(record(job, "skipped", reason=job.skip_reason))
        with hold_signals:
            # Before any output can appear: a rerun after a kill then knows whose outputs they are.
            log.write([record(job, "started") for job in runnable], f"the start of {len(runnable)} job(s)")
        try:
            _execute(runnable, renderers, emit, executor, workers, scheduler)
        except KeyboardInterrupt as interrupt:
            report.interrupted, report.interrupt = True, interrupt
        finally:
            # A worker killed mid-write cannot remove its own temporary file, and its job was
            # retried under another temporary name: sweep them all up here.
            remove_partial_files(runnable)
    report.elapsed = time.perf_counter() - started
    return report


def _execute(
    jobs: list[Job], renderers: dict[str, Renderer], emit: Emit, executor: str, workers: int, scheduler: str | None
) -> None:
    """Run ``jobs`` on the executor asked for: Dask, worker processes, or this process."""
    if executor == "dask" and jobs:
        run_dask(jobs, renderers, emit, workers, scheduler)
    elif workers > 1 and len(jobs) > 1:
        run_processes(jobs, renderers, emit, min(workers, len(jobs)))
    else:
        run_here(jobs, renderers, emit)


def _renderers(jobs: list[Job], *, shipped: bool) -> dict[str, Renderer]:
    """One renderer per config hash of ``jobs``: a style file prepared under one config, or a model."""
    renderers: dict[str, Renderer] = {}
    for job in jobs:
        if job.config_hash not in renderers:
            renderers[job.config_hash] = make_renderer(job, shipped=shipped)
    return renderers


def make_renderer(job: Job, *, shipped: bool = False) -> Renderer:
    """What makes ``job``'s output: its style prepared, or its model loaded.

    ``shipped``: the renderer goes to other processes, from the CPU; each worker moves a
    prepared style to its device, and applies a model where it was loaded.

    Raises
    ------
    WeightsError
        A model job whose model file is unusable, or whose digest is no longer the job's
        ``config_hash`` (the model was retrained after planning).
    """
    if job.kind == "model":
        from ..models import StyleModel

        model = StyleModel.load(job.style, device="cpu" if shipped else job.config.device)
        if model.digest != job.config_hash:
            raise WeightsError(
                f"{job.style}: the model changed after the batch was planned "
                f"(digest {model.digest}, planned {job.config_hash}); plan the batch again"
            )
        return ModelRenderer(model)
    prepared = prepare_style(job.style, job.config)
    return StyleRenderer(prepared.to("cpu") if shipped else prepared, job.config)


def _recorder(log: Manifest, report: BatchReport, progress: BatchProgress | None) -> Emit:
    """What records each job's outcome: the manifest line and the report together, then progress."""

    def emit(outcome: dict) -> None:
        with hold_signals:
            log.write([outcome], f"job {outcome['input']} ({outcome['status']})")
            report.records.append(outcome)
        if outcome["status"] == "failed":
            logger.info("failed: %s", outcome["error"])
        if progress is not None:
            progress(outcome, report)

    return emit
