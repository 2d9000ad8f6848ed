"""Stopping a pool of local workers: while some of them are still starting, and as a job is recorded.

On Python < 3.12 a future cancelled from outside the pool, which the pool then finds broken,
raises InvalidStateError in the pool's manager thread (CPython gh-107219): the running jobs'
futures are never resolved and the batch hangs after Ctrl-C or SIGTERM (seen in
tests/test_batch_signals.py with 2 workers on a loaded machine: a worker still starting died
of the SIGINT meant to interrupt jobs). ``_stop_pool`` must neither kill a starting worker nor
cancel futures behind the pool's back.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from types import SimpleNamespace

import pytest

from audiostyle.batch import local, worker

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: Seconds each worker spends in its initializer: the stop comes while it is still starting.
STARTING = 1.5


@pytest.mark.parametrize("killed", [False, True], ids=["stopped", "a-starting-worker-killed-meanwhile"])
def test_stopping_a_pool_of_starting_workers_resolves_every_future(monkeypatch, killed: bool) -> None:
    thread_errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args.exc_value))
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=2, mp_context=context, initializer=time.sleep, initargs=(STARTING,))
    pending = {pool.submit(time.sleep, 0.05): index for index in range(8)}
    began = context.RawArray("i", len(pending))  # no worker began a job
    stopping = context.RawValue("b", 0)
    deadline = time.monotonic() + 30
    while len(getattr(pool, "_processes", None) or {}) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker = next(iter(pool._processes))
    if killed:
        threading.Timer(0.2, os.kill, (worker, signal.SIGKILL)).start()
    records: list[dict] = []
    started = time.monotonic()
    try:
        local._stop_pool(pool, pending, records.append, began, stopping, interrupted=False)
        while not all(future.done() for future in pending) and time.monotonic() < started + 20:
            time.sleep(0.05)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    unresolved = [future for future in pending if not future.done()]
    assert not unresolved, f"{len(unresolved)} futures never resolved"
    assert not thread_errors, thread_errors
    assert stopping.value == 1
    assert time.monotonic() - started < 20
    if not killed:
        # No worker was interrupted or died: the jobs already handed over ran to their end.
        ran = [future for future in pending if not future.cancelled()]
        assert ran and all(future.exception() is None for future in ran), [future.exception() for future in ran]


class _PoolOfFinishedJobs:
    """Stands in for ProcessPoolExecutor: every job is done as soon as it is submitted."""

    def __init__(self, max_workers, mp_context=None, initializer=None, initargs=()) -> None:
        pass

    def submit(self, fn, index, job) -> Future:
        future: Future = Future()
        future.set_result({"input": job.input, "output": job.output, "status": "done"})
        return future

    def shutdown(self, wait=True, cancel_futures=False) -> None:
        pass


def test_an_interrupt_as_a_finished_job_is_recorded_loses_no_record(monkeypatch) -> None:
    """Ctrl-C between a job leaving the pending set and its record being written: the output
    is on disk, so its record must still be written, once."""
    monkeypatch.setattr(local, "ProcessPoolExecutor", _PoolOfFinishedJobs)
    monkeypatch.setattr(local, "worker_context", lambda: multiprocessing.get_context("spawn"))
    real, calls = local._future_record, []

    def interrupted_first(job, error, future):
        calls.append(job.input)
        if len(calls) == 1:
            raise KeyboardInterrupt  # as a signal delivered just before the record
        return real(job, error, future)

    monkeypatch.setattr(local, "_future_record", interrupted_first)
    jobs = [SimpleNamespace(input=f"/lib/{name}.wav", output=f"/out/{name}.wav") for name in "abc"]
    records: list[dict] = []
    with pytest.raises(KeyboardInterrupt):
        local.run_processes(jobs, {}, records.append, workers=2)
    assert sorted(record["input"] for record in records) == ["/lib/a.wav", "/lib/b.wav", "/lib/c.wav"]


def _starting_worker(ready, go, results, batch_process, began) -> None:
    """A worker process that is told to start (init_worker) only once the test says so."""
    ready.set()
    go.wait(30)
    worker.init_worker(1, {}, batch_process, began)
    results.put(worker._worker.interrupted)
    signal.alarm(0)  # the grace alarm on_terminate set


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="workers fork from a forkserver")
def test_sigterm_to_a_starting_worker_waits_for_its_handlers() -> None:
    """SIGTERM to the whole process group reaches workers that are still starting: they must
    not die of it (that breaks the pool) but handle it once their handlers are set."""
    context = local.worker_context()
    ready, go, results = context.Event(), context.Event(), context.Queue()
    batch_process = (os.getpid(), worker.process_identity(os.getpid()))
    process = context.Process(target=_starting_worker, args=(ready, go, results, batch_process, context.RawArray("i", 1)))
    process.start()
    try:
        assert ready.wait(60)
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert process.is_alive(), f"the starting worker died of SIGTERM (exit code {process.exitcode})"
        go.set()
        assert results.get(timeout=30) is True  # handled as soon as the handlers were in place
        process.join(30)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.kill()
