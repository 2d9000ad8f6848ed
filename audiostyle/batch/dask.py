"""The Dask executor: jobs on a cluster at a scheduler's address, or on a LocalCluster."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .. import ConfigError
from .execute import WORKER_RETRIES, Renderer, execute, threads_per_worker
from .jobs import Emit, Job, record
from .signals import hold_signals


def run_dask(
    jobs: list[Job], renderers: dict[str, Renderer], emit: Emit, workers: int, scheduler: str | None
) -> None:
    """Run ``jobs`` on Dask; a job lost with its worker is submitted again, at most WORKER_RETRIES times."""
    try:
        from distributed import as_completed
    except ImportError:
        raise ConfigError("executor='dask' needs Dask distributed: pip install 'audiostyle[dask]'") from None
    with contextlib.ExitStack() as stack:
        client, threads = _client(stack, workers, scheduler)
        shipped = client.scatter(renderers, broadcast=True)
        futures = {
            client.submit(_execute_on_dask, job, shipped[job.config_hash], threads, pure=False): job for job in jobs
        }
        retries: dict[int, int] = {}
        completed = as_completed(futures)
        try:
            for future in completed:
                job = futures.pop(future)
                # Fetching a result runs Dask's sync(), whose clean-up after an interrupt raised
                # inside it can itself fail with a traceback: a signal waits until it returns.
                with hold_signals:
                    lost = _emit_outcome(job, future, emit)
                if lost is None:
                    continue
                # A worker died with the job (or with data it needed): run it again, with its
                # renderer sent along rather than the scattered copy, which may be gone too.
                tries = retries.get(id(job), 0)
                if tries >= WORKER_RETRIES:
                    emit(record(job, "failed", error=f"worker lost {tries + 1} times: {lost}"))
                    continue
                retries[id(job)] = tries + 1
                again = client.submit(_execute_on_dask, job, renderers[job.config_hash], threads, pure=False)
                futures[again] = job
                completed.add(again)
        except KeyboardInterrupt:
            with hold_signals:
                client.cancel(list(futures))
            raise


def _client(stack: contextlib.ExitStack, workers: int, scheduler: str | None) -> tuple[Any, int | None]:
    """A client of the cluster at ``scheduler`` (or of a new LocalCluster), and the torch
    threads each of its workers is to use (None: the cluster's own setting)."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        # The scheduler's HTTP server starts whatever the dashboard setting; on a free port, so
        # that another cluster on Dask's usual 8787 (a second batch, a notebook's) does not make
        # Dask print a warning into the batch's output.
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                preload=["audiostyle.batch.dask_worker"],
            )
        )
        return stack.enter_context(Client(cluster)), threads_per_worker(workers)
    try:
        return stack.enter_context(Client(scheduler, timeout="30s")), None
    except (OSError, TimeoutError, ValueError, TypeError) as error:  # ValueError: an address dask cannot parse
        raise ConfigError(f"scheduler={scheduler!r}: cannot connect ({error})") from None


def _emit_outcome(job: Job, future: Any, emit: Emit) -> str | None:
    """Emit the record of a completed future; or, when it was lost with its worker, say why."""
    if future.status == "error":
        emit(record(job, "failed", error=f"worker failed: {future.exception()}"))
        return None
    try:
        outcome = future.result()
    except Exception as error:  # noqa: BLE001 - cancelled, or lost with its worker
        return f"{type(error).__name__}: {error}"
    emit(outcome)
    return None


def _execute_on_dask(job: Job, renderer: Renderer, threads: int | None) -> dict:
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return execute(job, renderer)
