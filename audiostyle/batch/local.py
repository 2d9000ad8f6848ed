"""The local executors: jobs in this process, or in worker processes that may die."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .execute import WORKER_RETRIES, Renderer, render_job, save_job, threads_per_worker
from .jobs import Emit, Job, record
from .signals import hold_signals
from .worker import execute_in_worker, init_worker, process_identity

logger = logging.getLogger("audiostyle")


def run_here(jobs: list[Job], renderers: dict[str, Renderer], emit: Emit) -> None:
    """Run ``jobs`` one after the other in this process."""
    for job in jobs:
        started = time.perf_counter()
        outcome = render_job(job, renderers[job.config_hash], started)
        with hold_signals:
            emit(save_job(job, outcome, started))


def run_processes(jobs: list[Job], renderers: dict[str, Renderer], emit: Emit, workers: int) -> None:
    """Run ``jobs`` on ``workers`` processes; the jobs of a worker that dies run again alone."""
    context = worker_context()
    remaining, failed_starts = list(jobs), 0
    while remaining:
        given = len(remaining)
        suspects, remaining = run_pool(remaining, renderers, emit, workers, context)
        if suspects:
            # A dead worker breaks the pool and every job in it: the jobs it may have been
            # running are run again alone, so that only the culprit is recorded as failed.
            logger.warning(
                "a worker process died (killed, or out of memory?) while running %s; running %s again alone",
                ", ".join(job.input for job in suspects),
                "it" if len(suspects) == 1 else "each",
            )
            for job in suspects:
                _run_alone(job, renderers, emit, context)
        elif len(remaining) == given:
            failed_starts += 1
            if failed_starts > WORKER_RETRIES:
                error = "worker processes died before running any job (see the errors above)"
                for job in remaining:
                    emit(record(job, "failed", error=error))
                return
            logger.warning("worker processes died before running any job; starting them again")
        elif remaining:
            logger.warning("a worker process died between jobs; running the %d queued job(s) again", len(remaining))


def worker_context() -> Any:
    """The multiprocessing context of the worker processes, its forkserver started if it has one."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Workers fork from a server that has torch imported already, and start with SIGINT and
    # SIGTERM blocked until their handlers are set (batch/forkserver.py). The server runs as
    # `python -c`, which puts the current folder first on sys.path, where a folder named
    # audiostyle would shadow this package: PYTHONSAFEPATH (3.11+) leaves it out, and before
    # 3.11 nothing is preloaded, so each worker imports with the batch process's sys.path.
    if sys.version_info >= (3, 11):
        from multiprocessing import forkserver

        context.set_forkserver_preload(["audiostyle.batch.forkserver"])
        previous = os.environ.get("PYTHONSAFEPATH")
        os.environ["PYTHONSAFEPATH"] = "1"
        try:
            with _server_ignores_stop_signals():
                forkserver.ensure_running()
        finally:
            if previous is None:
                del os.environ["PYTHONSAFEPATH"]
            else:
                os.environ["PYTHONSAFEPATH"] = previous
    return context


@contextlib.contextmanager
def _server_ignores_stop_signals() -> Iterator[None]:
    """Start the forkserver with SIGINT and SIGTERM ignored, which it inherits (a signal mask it
    would not): a Ctrl-C while it imports torch then does not print its traceback. Meanwhile
    they are blocked here, so that one arriving in the window is delivered to this process
    afterwards instead of being lost. The workers set their own handlers.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    stops = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    handlers = {number: signal.signal(number, signal.SIG_IGN) for number in stops}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _run_alone(job: Job, renderers: dict[str, Renderer], emit: Emit, context: Any) -> None:
    for _ in range(WORKER_RETRIES):
        suspects, others = run_pool([job], renderers, emit, 1, context)
        if not suspects and not others:
            return
    error = f"its worker process died {WORKER_RETRIES + 1} times (killed, or out of memory?)"
    emit(record(job, "failed", error=error))


def run_pool(
    jobs: list[Job], renderers: dict[str, Renderer], emit: Emit, workers: int, context: Any
) -> tuple[list[Job], list[Job]]:
    """Run ``jobs`` on one pool, recording each.

    Returns the jobs lost when a worker died: those a dead worker may have been running
    (suspects), and the others (queued, or running on a worker the pool then stopped).
    """
    began = context.RawArray("i", len(jobs))
    stopping = context.RawValue("b", 0)
    batch_process = (os.getpid(), process_identity(os.getpid()))
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=context,
        initializer=init_worker,
        initargs=(threads_per_worker(workers), renderers, batch_process, began, stopping),
    )
    pending: dict[Future, int] = {}
    lost: list[int] = []
    processes: dict[int, Any] = {}
    try:
        for index, job in enumerate(jobs):
            try:
                pending[pool.submit(execute_in_worker, index, job)] = index
            except (BrokenProcessPool, OSError) as error:
                # Broken while the jobs were handed over: a worker died as it started.
                logger.debug("worker pool broken at job %d: %r", index, error)
                lost.extend(range(index, len(jobs)))
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending[future]
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    processes.update(getattr(pool, "_processes", None) or {})
                    lost.append(index)
                    del pending[future]
                    continue
                # A job leaves ``pending`` with its record: an interrupt before would lose the
                # record of an output on disk (_stop_pool records what is pending), one between
                # would record it twice.
                with hold_signals:
                    emit(_future_record(jobs[index], error, future))
                    del pending[future]
    except BaseException as stop:
        _stop_pool(pool, pending, emit, began, stopping, interrupted=isinstance(stop, KeyboardInterrupt))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return sort_lost(jobs, lost, began, processes)


def _stop_pool(
    pool: ProcessPoolExecutor, pending: dict[Future, int], emit: Emit, began: Any, stopping: Any, *, interrupted: bool
) -> None:
    """Stop the workers' jobs (Ctrl-C, or a manifest that cannot be written), and wait for the workers.

    Queued jobs are cancelled by the pool's own thread (``shutdown(cancel_futures=True)``): on
    Python < 3.12 a future cancelled from here that the pool then finds broken (a worker
    killed as it started) raises InvalidStateError in that thread (CPython gh-107219), which
    leaves the running jobs' futures unresolved and the batch hanging. Only the workers that
    began a job get SIGINT: their handlers are in place, while a worker still starting would
    die of it; the shared ``stopping`` flag makes every worker refuse the jobs it takes next.
    After an interrupt the jobs that finished in the meantime still get their record.
    """
    stopping.value = 1
    processes = dict(getattr(pool, "_processes", None) or {})
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for pid in set(began) & set(processes):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGINT)
    if interrupted:
        for future in pending:
            with contextlib.suppress(BaseException):
                if future.exception(timeout=60) is None:
                    emit(future.result())
    if manager is not None:
        manager.join()


def sort_lost(jobs: list[Job], lost: list[int], began: Any, processes: dict[int, Any]) -> tuple[list[Job], list[Job]]:
    """Split the lost jobs (indices) into suspects and others; see :func:`run_pool`."""
    running = {index: began[index] for index in lost if began[index]}
    # After one worker died the pool stops the others with SIGTERM: one that ended otherwise
    # (SIGKILL, the out-of-memory killer, a crash) is one that died. Where none can be told
    # apart, every job that had begun is suspect.
    died = {pid for pid, process in processes.items() if process.exitcode not in (None, 0, -signal.SIGTERM)}
    blamed = {index for index, pid in running.items() if pid in died} or set(running)
    lost = sorted(lost)  # in plan order
    return [jobs[i] for i in lost if i in blamed], [jobs[i] for i in lost if i not in blamed]


def _future_record(job: Job, error: BaseException | None, future: Future) -> dict:
    if error is None:
        return future.result()
    if isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt
    return record(job, "failed", error=f"worker failed: {type(error).__name__}: {error}")
