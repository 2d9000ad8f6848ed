"""Batch under faults: a worker process killed mid-job (local executor and Dask).

The killed job is retried or recorded as failed, the other jobs finish, the manifest stays
valid JSON lines, no partial file is left, and a rerun completes whatever is missing.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import audiostyle.batch.dask as batch_dask
from audiostyle.batch import local
from audiostyle import AudioStyleError
from audiostyle.batch import MANIFEST_NAME, read_manifest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")

JOBS = 4

# Runs one batch in its own process, so that the test can find and kill its workers.
DRIVER = """
import sys
from pathlib import Path
from audiostyle import StyleConfig
from audiostyle.batch import MANIFEST_NAME, plan_batch, run_batch
if __name__ == "__main__":  # worker processes import this file again
    library, style, out, executor = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    config = StyleConfig(sample_rate=16000, n_fft=512, hop_length=128, filters=48, kernel_widths=(3, 7),
                         iterations=25, tolerance=0.0, griffin_lim_iters=4, device="cpu")
    report = run_batch(plan_batch([library], [style], out, config), executor, workers=2, manifest=out / MANIFEST_NAME)
    print(len(report.records))
"""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def worker_pids(root: int) -> list[int]:
    """Descendants of ``root`` that run jobs: leaves, not multiprocessing's helper processes."""
    tree, found, stack = _children(), [], list(_children().get(root, []))
    while stack:
        pid = stack.pop()
        stack.extend(tree.get(pid, []))
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if not tree.get(pid) and b"resource_tracker" not in command:
            found.append(pid)
    return found


def manifest_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def ended(records: list[dict]) -> list[dict]:
    """The records of jobs that ended, without the ``started`` ones a run writes first."""
    return [r for r in records if r["status"] != "started"]


@pytest.fixture
def job_files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    library = tmp_path / "lib"
    library.mkdir()
    for index in range(JOBS):
        sf.write(library / f"take{index}.wav", (0.2 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    style = tmp_path / "style.wav"
    sf.write(style, (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000)
    return library, style


def run_driver(executor: str, library: Path, style: Path, out: Path, *, kill: bool) -> subprocess.CompletedProcess:
    script = out.parent / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(script), str(library), str(style), str(out), executor],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        if kill:
            deadline = time.monotonic() + 120
            # Wait until the workers are busy (one job is done, so every worker has started).
            while not ended(read_manifest(out / MANIFEST_NAME)) and process.poll() is None:
                assert time.monotonic() < deadline, "no job finished"
                time.sleep(0.05)
            workers = worker_pids(process.pid)
            assert workers, "no worker process found"
            os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("executor", ["local", pytest.param("dask", marks=pytest.mark.slow)])
def test_killed_worker_fails_or_retries_its_job_and_a_rerun_completes(executor: str, job_files, tmp_path: Path) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    library, style = job_files
    out = tmp_path / "out"
    first = run_driver(executor, library, style, out, kill=True)
    assert first.returncode == 0, first.stderr[-2000:]

    lines = manifest_lines(out / MANIFEST_NAME)
    records = ended([json.loads(line) for line in lines])  # every line is whole, valid JSON
    statuses = {Path(r["input"]).name: r["status"] for r in records}
    assert set(statuses) == {f"take{i}.wav" for i in range(JOBS)}, statuses
    assert set(statuses.values()) <= {"done", "failed"}
    # The killed worker's job was retried (or, at worst, recorded as failed); the others finished.
    assert sum(s == "done" for s in statuses.values()) >= JOBS - 1, statuses
    for name, status in statuses.items():
        output = out / name
        if status == "done":
            assert sf.info(output).frames == 32000
        else:
            assert not output.exists()
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    if executor == "local":
        # Said without any logging set up, and naming the job(s) run again.
        assert "a worker process died" in first.stderr and "take" in first.stderr, first.stderr[-2000:]

    second = run_driver(executor, library, style, out, kill=False)
    assert second.returncode == 0, second.stderr[-2000:]
    latest = {Path(r["input"]).name: r["status"] for r in read_manifest(out / MANIFEST_NAME)}
    assert all(latest[f"take{i}.wav"] in ("done", "skipped") for i in range(JOBS)), latest
    assert all(sf.info(out / f"take{i}.wav").frames == 32000 for i in range(JOBS))


class _PoolWithAPoisonJob:
    """Stands in for ProcessPoolExecutor: jobs run at once, except that the job named
    ``poison.wav`` kills its worker, which breaks the pool: that job had begun, the ones
    submitted after it were still queued."""

    pools: list[list[str]] = []

    def __init__(self, max_workers, mp_context=None, initializer=None, initargs=()):
        self.broken = False
        self.names: list[str] = []
        self.began = initargs[3]
        self.pools.append(self.names)

    def submit(self, fn, index, job):
        future = Future()
        self.names.append(Path(job.input).name)
        if not self.broken:
            self.began[index] = 4242
        self.broken = self.broken or Path(job.input).name == "poison.wav"
        if self.broken:
            future.set_exception(BrokenProcessPool("a process in the pool was terminated abruptly"))
        else:
            future.set_result({"input": job.input, "output": job.output, "status": "done"})
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


class _FakeJob(SimpleNamespace):
    def __getattr__(self, name: str) -> None:  # any other Job field a record copies
        return None


def test_only_the_job_that_kills_its_worker_is_run_alone(monkeypatch, caplog) -> None:
    monkeypatch.setattr(local, "ProcessPoolExecutor", _PoolWithAPoisonJob)
    monkeypatch.setattr(local, "worker_context", lambda: multiprocessing.get_context("spawn"))
    _PoolWithAPoisonJob.pools.clear()
    names = ["a.wav", "poison.wav", "b.wav", "c.wav"]
    jobs = [_FakeJob(input=f"/lib/{n}", output=f"/out/{n}") for n in names]
    records: list[dict] = []
    with caplog.at_level(logging.WARNING, logger="audiostyle"):
        local.run_processes(jobs, {}, records.append, workers=2)
    statuses = {Path(r["input"]).name: r["status"] for r in records}
    assert statuses == {"a.wav": "done", "poison.wav": "failed", "b.wav": "done", "c.wav": "done"}
    failed = next(r for r in records if r["status"] == "failed")
    assert f"died {local.WORKER_RETRIES + 1} times" in failed["error"]
    # One shared pool; the job that had begun alone, WORKER_RETRIES times; the queued ones
    # together again, not one by one.
    assert _PoolWithAPoisonJob.pools == [names] + [["poison.wav"]] * local.WORKER_RETRIES + [["b.wav", "c.wav"]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("poison.wav" in w and "b.wav" not in w for w in warnings), warnings


def test_a_dead_worker_is_told_from_the_ones_the_pool_stopped() -> None:
    """After a worker dies the pool stops the others with SIGTERM: only the jobs of a worker
    that ended otherwise are suspects; where none did, every job that had begun is."""
    jobs = [_FakeJob(input=f"/lib/{n}.wav") for n in "abcd"]
    began = [101, 102, 0, 101]  # c never began; d began on the same worker as a, after it

    def processes(**codes: int) -> dict:
        return {int(pid[1:]): SimpleNamespace(exitcode=code) for pid, code in codes.items()}

    names = lambda found: [Path(job.input).stem for job in found]  # noqa: E731
    killed = local.sort_lost(jobs, [0, 1, 2, 3], began, processes(p101=-signal.SIGKILL, p102=-signal.SIGTERM))
    assert (names(killed[0]), names(killed[1])) == (["a", "d"], ["b", "c"])
    stopped = local.sort_lost(jobs, [1, 2], began, processes(p101=0, p102=0))
    assert (names(stopped[0]), names(stopped[1])) == (["b"], ["c"])
    unknown = local.sort_lost(jobs, [0, 1, 2], began, {})
    assert (names(unknown[0]), names(unknown[1])) == (["a", "b"], ["c"])


def test_workers_that_never_start_fail_their_jobs_after_the_retries(monkeypatch) -> None:
    """Workers that die as they start (a broken install) break the pool before any job
    begins, even while the jobs are being handed over: every job is retried together, then
    recorded as failed; nothing escapes as an unexpected error."""
    pools: list[int] = []

    class NeverStarts:
        def __init__(self, max_workers, mp_context=None, initializer=None, initargs=()):
            pools.append(max_workers)
            self.submitted = 0

        def submit(self, fn, index, job):
            self.submitted += 1
            if self.submitted > 1:
                raise BrokenProcessPool("A child process terminated abruptly, the process pool is not usable anymore")
            future = Future()
            future.set_exception(BrokenProcessPool("a process in the pool was terminated abruptly"))
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(local, "ProcessPoolExecutor", NeverStarts)
    monkeypatch.setattr(local, "worker_context", lambda: multiprocessing.get_context("spawn"))
    jobs = [_FakeJob(input=f"/lib/{n}.wav", output=f"/out/{n}.wav") for n in "abc"]
    records: list[dict] = []
    local.run_processes(jobs, {}, records.append, workers=2)
    assert pools == [2] * (local.WORKER_RETRIES + 1)
    assert [r["status"] for r in records] == ["failed"] * 3
    assert "before running any job" in records[0]["error"]


class _DaskFuture:
    def __init__(self, status: str, result: dict | None = None) -> None:
        self.status, self._result = status, result

    def result(self) -> dict:
        if self.status == "cancelled":
            raise RuntimeError("cancelled for reason: already forgotten")  # as FutureCancelledError
        return self._result

    def exception(self) -> BaseException:
        return ValueError("boom")


class _DaskClientLosingJobs:
    """Stands in for distributed.Client: ``lost.wav`` is cancelled every time (its worker died),
    ``once.wav`` the first time only, ``bad.wav`` raises in the task; the rest finish."""

    submitted: list[tuple[str, object]] = []

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def scatter(self, styles, broadcast=False):
        return {key: ("scattered", key) for key in styles}

    def submit(self, fn, job, style, threads, pure=False):
        name = Path(job.input).name
        self.submitted.append((name, style))
        tries = sum(n == name for n, _ in self.submitted)
        if name == "lost.wav" or (name == "once.wav" and tries == 1):
            return _DaskFuture("cancelled")
        if name == "bad.wav":
            return _DaskFuture("error")
        return _DaskFuture("finished", {"input": job.input, "output": job.output, "status": "done"})

    def cancel(self, futures) -> None:
        pass


class _AsCompleted:
    def __init__(self, futures) -> None:
        self.queue = list(futures)

    def add(self, future) -> None:
        self.queue.append(future)

    def __iter__(self):
        while self.queue:
            yield self.queue.pop(0)


def test_dask_jobs_lost_with_their_worker_are_resubmitted(monkeypatch) -> None:
    """A cancelled or lost Dask future (its worker died, or the scheduler forgot its data) is
    submitted again with the style itself, WORKER_RETRIES times, then recorded as failed; it
    never stops the batch."""
    fake = SimpleNamespace(Client=_DaskClientLosingJobs, LocalCluster=_DaskClientLosingJobs, as_completed=_AsCompleted)
    monkeypatch.setitem(sys.modules, "distributed", fake)
    _DaskClientLosingJobs.submitted = []
    names = ["a.wav", "once.wav", "lost.wav", "bad.wav", "b.wav"]
    jobs = [_FakeJob(input=f"/lib/{n}", output=f"/out/{n}", config_hash="h") for n in names]
    records: list[dict] = []
    batch_dask.run_dask(jobs, {"h": "style"}, records.append, workers=2, scheduler=None)
    statuses = {Path(r["input"]).name: r["status"] for r in records}
    assert statuses == {"a.wav": "done", "once.wav": "done", "lost.wav": "failed", "bad.wav": "failed", "b.wav": "done"}
    errors = {Path(r["input"]).name: r.get("error") for r in records}
    assert f"lost {local.WORKER_RETRIES + 1} times" in errors["lost.wav"] and "boom" in errors["bad.wav"]
    retried = [(name, style) for name, style in _DaskClientLosingJobs.submitted[len(names):]]
    assert retried == [("once.wav", "style")] + [("lost.wav", "style")] * local.WORKER_RETRIES


def test_dask_run_stops_when_a_record_cannot_be_written(monkeypatch) -> None:
    """A manifest that cannot be written (disk full) stops a Dask run at once, as it stops the
    local ones: the job is not taken for lost with its worker and run again."""
    fake = SimpleNamespace(Client=_DaskClientLosingJobs, LocalCluster=_DaskClientLosingJobs, as_completed=_AsCompleted)
    monkeypatch.setitem(sys.modules, "distributed", fake)
    _DaskClientLosingJobs.submitted = []
    jobs = [_FakeJob(input=f"/lib/{n}", output=f"/out/{n}", config_hash="h") for n in ["a.wav", "b.wav"]]

    def disk_full(record: dict) -> None:
        raise AudioStyleError("manifest.jsonl: could not record job a.wav (done): No space left on device")

    with pytest.raises(AudioStyleError, match="No space left"):
        batch_dask.run_dask(jobs, {"h": "style"}, disk_full, workers=2, scheduler=None)
    assert [name for name, _ in _DaskClientLosingJobs.submitted] == ["a.wav", "b.wav"]
