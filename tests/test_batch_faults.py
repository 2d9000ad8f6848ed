"""Batch under faults: a worker process killed mid-job (local executor and Dask).

The killed job is retried or recorded as failed, the other jobs finish, the manifest stays
valid JSON lines, no partial file is left, and a rerun completes whatever is missing.
"""

from __future__ import annotations

import json
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

import audiostyle.batch as batch
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
            while not manifest_lines(out / MANIFEST_NAME) and process.poll() is None:
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


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_killed_worker_fails_or_retries_its_job_and_a_rerun_completes(executor: str, job_files, tmp_path: Path) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    library, style = job_files
    out = tmp_path / "out"
    first = run_driver(executor, library, style, out, kill=True)
    assert first.returncode == 0, first.stderr[-2000:]

    lines = manifest_lines(out / MANIFEST_NAME)
    records = [json.loads(line) for line in lines]  # every line is whole, valid JSON
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

    second = run_driver(executor, library, style, out, kill=False)
    assert second.returncode == 0, second.stderr[-2000:]
    latest = {Path(r["input"]).name: r["status"] for r in read_manifest(out / MANIFEST_NAME)}
    assert all(latest[f"take{i}.wav"] in ("done", "skipped") for i in range(JOBS)), latest
    assert all(sf.info(out / f"take{i}.wav").frames == 32000 for i in range(JOBS))


class _PoolWithAPoisonJob:
    """Stands in for ProcessPoolExecutor: jobs run at once, except that the job named
    ``poison.wav`` kills its worker, which breaks it and every job submitted after it."""

    pools: list[list[str]] = []

    def __init__(self, max_workers, mp_context=None, initializer=None, initargs=()):
        self.broken = False
        self.names: list[str] = []
        self.pools.append(self.names)

    def submit(self, fn, job):
        future = Future()
        self.names.append(Path(job.input).name)
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


def test_only_the_job_that_kills_its_worker_fails(monkeypatch) -> None:
    monkeypatch.setattr(batch, "ProcessPoolExecutor", _PoolWithAPoisonJob)
    _PoolWithAPoisonJob.pools.clear()
    names = ["a.wav", "poison.wav", "b.wav", "c.wav"]
    jobs = [_FakeJob(input=f"/lib/{n}", output=f"/out/{n}") for n in names]
    records: list[dict] = []
    batch._run_processes(jobs, {}, records.append, workers=2)
    statuses = {Path(r["input"]).name: r["status"] for r in records}
    assert statuses == {"a.wav": "done", "poison.wav": "failed", "b.wav": "done", "c.wav": "done"}
    failed = next(r for r in records if r["status"] == "failed")
    assert f"died {batch.WORKER_RETRIES + 1} times" in failed["error"]
    # One shared pool, then each lost job alone: the poison one WORKER_RETRIES times.
    assert _PoolWithAPoisonJob.pools[0] == names
    alone = sorted(_PoolWithAPoisonJob.pools[1:])
    assert alone == [["b.wav"], ["c.wav"]] + [["poison.wav"]] * batch.WORKER_RETRIES


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
    batch._run_dask(jobs, {"h": "style"}, records.append, workers=2, scheduler=None)
    statuses = {Path(r["input"]).name: r["status"] for r in records}
    assert statuses == {"a.wav": "done", "once.wav": "done", "lost.wav": "failed", "bad.wav": "failed", "b.wav": "done"}
    errors = {Path(r["input"]).name: r.get("error") for r in records}
    assert f"lost {batch.WORKER_RETRIES + 1} times" in errors["lost.wav"] and "boom" in errors["bad.wav"]
    retried = [(name, style) for name, style in _DaskClientLosingJobs.submitted[len(names):]]
    assert retried == [("once.wav", "style")] + [("lost.wav", "style")] * batch.WORKER_RETRIES
