"""``audiostyle batch`` in hostile surroundings, as real processes.

A current folder that holds a folder named ``audiostyle`` (the worker processes must import
the installed package, not it); a batch process killed with SIGKILL (its workers must not
outlive it, and the rerun must redo what they left unrecorded rather than call it foreign);
a manifest that cannot grow (disk full, file size limit: one clear line, exit 4, no half
line left). The planning side of a rerun after a kill is checked in process.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from audiostyle import StyleConfig
from audiostyle.batch import MANIFEST_NAME, Job, plan_batch, read_manifest
from audiostyle.batch.jobs import record as job_record
from audiostyle.batch.manifest import Manifest, earlier_runs
from audiostyle.errors import AudioStyleError, ConfigError
from audiostyle_cli.app import app
from audiostyle_cli.exits import guarded
from audiostyle_cli.options import build_config

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")

RATE = 16000
ENGINE = ["--preset", "fast", "--filters", "32", "--kernel-widths", "3,7", "--sample-rate", str(RATE),
          "--n-fft", "512", "--hop-length", "128", "--device", "cpu", "-q"]
TINY = ["-n", "4", *ENGINE]


def tiny_config() -> StyleConfig:
    """The settings ``TINY`` gives on the command line."""
    return build_config("fast", iterations=4, filters=32, kernel_widths="3,7", sample_rate=RATE, n_fft=512,
                        hop_length=128, device="cpu")

# The real command line in its own process, from a script in a folder of its own (as the
# installed `audiostyle` script is), so that only the current folder can shadow the package.
# An optional file size limit applies to every file the process writes.
DRIVER = """
import resource, signal, sys
from audiostyle_cli.app import main
if __name__ == "__main__":  # worker processes import this file again
    limit = int(sys.argv[1])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.argv = ["audiostyle", *sys.argv[2:]]
    main()
"""


def clips(folder: Path, count: int, seconds: float) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sf.write(folder / f"take{index}.wav", (0.2 * rng.standard_normal(int(seconds * RATE))).astype(np.float32), RATE)
    return folder


@pytest.fixture
def style(tmp_path: Path) -> Path:
    path = tmp_path / "style.wav"
    sf.write(path, (0.2 * np.random.default_rng(1).standard_normal(RATE // 2)).astype(np.float32), RATE)
    return path


def start_batch(tmp_path: Path, args: list, *, cwd: Path | None = None, size_limit: int = 0) -> subprocess.Popen:
    driver = tmp_path / "driver" / "audiostyle_driver.py"
    driver.parent.mkdir(exist_ok=True)
    driver.write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(driver), str(size_limit), "batch", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def ended(records: list[dict]) -> list[dict]:
    return [r for r in records if r["status"] != "started"]


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = set(), list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def running(pids: set[int]) -> set[int]:
    """The pids that still run (an exited process nobody has reaped yet does not)."""
    return {pid for pid in pids if (fields := _stat(pid)) and fields[0] not in ("Z", "X")}


@pytest.mark.parametrize("shadow", ["empty folder", "package that raises"])
def test_workers_import_the_installed_package_not_the_current_folders(tmp_path: Path, style: Path, shadow: str) -> None:
    library = clips(tmp_path / "lib", 2, 0.25)
    cwd = tmp_path / "cwd"
    (cwd / "audiostyle").mkdir(parents=True)
    if shadow != "empty folder":
        (cwd / "audiostyle" / "__init__.py").write_text("raise RuntimeError('the wrong audiostyle was imported')\n")
    out = tmp_path / "out"
    result = finish(start_batch(tmp_path, [library, "-s", style, "-o", out, "--workers", "2", *TINY], cwd=cwd))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrong audiostyle" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]
    statuses = {Path(r["input"]).name: r["status"] for r in ended(read_manifest(out / MANIFEST_NAME))}
    assert statuses == {"take0.wav": "done", "take1.wav": "done"}


def test_killed_batch_takes_its_workers_along_and_the_rerun_redoes_their_work(tmp_path: Path, style: Path) -> None:
    """SIGKILL of the batch process mid-run: its workers exit within a second or two instead
    of going on with their queued jobs, and the rerun finishes every job, calling none of
    the outputs "made otherwise"."""
    # Eight jobs for two workers: the solver may stop early on convergence, so a job can take
    # well under a second, and the kill, after the first job ends, must still find most queued.
    library = clips(tmp_path / "lib", 8, 1.0)
    out = tmp_path / "out"
    args = [library, "-s", style, "-o", out, "--workers", "2", "-n", "100", *ENGINE]
    process = start_batch(tmp_path, args)
    helpers: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while not ended(read_manifest(out / MANIFEST_NAME)):
            assert process.poll() is None, finish(process).stderr[-3000:]
            assert time.monotonic() < deadline, "no job finished"
            time.sleep(0.05)
        time.sleep(0.3)  # both workers are into their next jobs
        helpers = descendants(process.pid)  # the workers, the forkserver, the resource tracker
        assert len(helpers) >= 2, helpers
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        killed = time.monotonic()
        while running(helpers) and time.monotonic() - killed < 2.0:
            time.sleep(0.05)
        left = running(helpers)
    finally:
        for pid in running(helpers | descendants(process.pid)):
            os.kill(pid, signal.SIGKILL)  # orphans hold the output pipes open
        finish(process, timeout=30)
    assert not left, f"still running 2 s after the batch process was killed: {left}"
    assert len(ended(read_manifest(out / MANIFEST_NAME))) < 8, "the kill came after the last job"

    again = finish(start_batch(tmp_path, args))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "made otherwise" not in again.stderr + again.stdout
    latest = {Path(r["input"]).name: r for r in ended(read_manifest(out / MANIFEST_NAME))}
    assert sorted(latest) == [f"take{i}.wav" for i in range(8)]
    for record in latest.values():
        assert record["status"] == "done" or record.get("reason") == "finished earlier with the same settings", record
    assert all(sf.info(out / f"take{i}.wav").frames == RATE for i in range(8))
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def _job_line(job: Job, status: str) -> bytes:
    return (json.dumps(job_record(job, status), ensure_ascii=False) + "\n").encode()


def test_rerun_redoes_outputs_of_jobs_started_but_not_recorded(tmp_path: Path, style: Path, caplog) -> None:
    library = clips(tmp_path / "lib", 3, 0.1)
    out = tmp_path / "out"
    config = StyleConfig(sample_rate=RATE, n_fft=512, hop_length=128, filters=8, device="cpu")
    jobs = plan_batch([library], [style], out, config)
    out.mkdir()
    for job in jobs:
        Path(job.output).write_bytes(b"an output nobody recorded")
    other = plan_batch([library], [style], tmp_path / "elsewhere", config.replace(iterations=7))[2]
    # take0 was started and finished; take1 started and never finished (its run was killed);
    # take2 was started with other settings only.
    lines = [_job_line(jobs[0], "started"), _job_line(jobs[1], "started"), _job_line(jobs[0], "done")]
    lines.append(_job_line(dataclasses.replace(other, output=jobs[2].output, relative=jobs[2].relative), "started"))
    (out / MANIFEST_NAME).write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING, logger="audiostyle"):
        again = plan_batch([library], [style], out, config)
    reasons = {Path(job.input).name: job.skip_reason for job in again}
    assert reasons == {
        "take0.wav": "finished earlier with the same settings",
        "take1.wav": None,
        "take2.wav": "output exists, made otherwise; overwrite replaces it",
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "take1.wav" in warnings[0] and "take2" not in warnings[0], warnings


def test_manifest_that_cannot_grow_stops_the_run_with_one_clear_line(tmp_path: Path, style: Path, caplog) -> None:
    """A file size limit (as a full disk would) hits the job's "done" record after its output
    was written: exit 4 with the system's reason, the manifest cut back to whole lines; the
    rerun then redoes that output instead of calling it foreign."""
    library = clips(tmp_path / "lib", 1, 0.25)
    out = tmp_path / "out"
    out.mkdir()
    earlier = b"".join(
        json.dumps({"output": str(out / f"old{i}.wav"), "status": "failed", "error": "x" * 200}).encode() + b"\n"
        for i in range(200)
    )
    (out / MANIFEST_NAME).write_bytes(earlier)
    # Room for the started record (the same plan made here gives its length), not for the done one.
    started = len(_job_line(plan_batch([library], [style], out, tiny_config())[0], "started"))
    limit = len(earlier) + started + 40
    assert limit > (library / "take0.wav").stat().st_size * 2  # the output itself fits

    result = finish(start_batch(tmp_path, [library, "-s", style, "-o", out, *TINY], size_limit=limit))
    assert result.returncode == 4, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert MANIFEST_NAME in lines[0] and "could not record job" in lines[0] and "File too large" in lines[0], lines
    data = (out / MANIFEST_NAME).read_bytes()
    assert data.startswith(earlier) and data.endswith(b"\n")
    assert [json.loads(line)["status"] for line in data[len(earlier):].splitlines()] == ["started"]

    with caplog.at_level(logging.WARNING, logger="audiostyle"):
        again = CliRunner().invoke(app, ["batch", str(library), "-s", str(style), "-o", str(out), *TINY], prog_name="audiostyle")
    assert again.exit_code == 0, again.stderr
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("take0.wav" in w and "made again" in w for w in warnings), warnings
    assert ended(read_manifest(out / MANIFEST_NAME))[-1]["status"] == "done"


def test_failed_manifest_append_is_undone_and_keeps_the_reason(tmp_path: Path, monkeypatch) -> None:
    """A write that lands half a line and then fails (disk full) leaves the file as it was."""
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(b'{"output": "a.wav", "status": "done"}\n')
    real_write = os.write

    with Manifest(path) as manifest:
        target = manifest._fd

        def half_then_full(fd: int, data: bytes) -> int:
            if fd != target:
                return real_write(fd, data)
            if len(data) > 10:
                return real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(AudioStyleError, match=r"manifest.jsonl: could not record job b.wav \(done\): No space left on device"):
            manifest.write([{"input": "b.wav", "output": "b.wav", "status": "done"}], "job b.wav (done)")
        monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == b'{"output": "a.wav", "status": "done"}\n'


def test_unwritable_manifest_folder_is_one_clear_line(tmp_path: Path, style: Path) -> None:
    library = clips(tmp_path / "lib", 1, 0.1)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["batch", str(library), "-s", str(style), "-o", str(blocker / "out"), *TINY],
                                prog_name="audiostyle")
    assert result.exit_code == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Not a directory" in lines[0] and "unexpected" not in lines[0], lines


def test_os_errors_reach_the_user_with_their_reason_and_file(capsys) -> None:
    """An OSError nothing else caught still reads as the system's reason and the file, exit 4."""
    with pytest.raises(typer.Exit) as stopped:
        with guarded(False):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out/a.wav")
    assert stopped.value.exit_code == 4
    assert capsys.readouterr().err.strip() == "audiostyle: error: out/a.wav: No space left on device"


def test_symlinked_manifest_stops_the_batch_and_leaves_its_target_alone(tmp_path: Path, style: Path) -> None:
    """A link at the manifest's path (here onto an input) is never followed: exit 2 with one
    line naming it before any job runs, and the file it points at stays byte for byte."""
    library = clips(tmp_path / "in4", 1, 0.1)
    target = library / "take0.wav"
    before = target.read_bytes()
    out = tmp_path / "o5"
    out.mkdir()
    (out / MANIFEST_NAME).symlink_to(Path("..") / "in4" / "take0.wav")

    result = CliRunner().invoke(app, ["batch", str(library), "-s", str(style), "-o", str(out), *TINY], prog_name="audiostyle")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unexpected" not in lines[0], lines
    assert str(out / MANIFEST_NAME) in lines[0] and "symbolic link" in lines[0], lines
    assert target.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME]  # no job ran


def test_manifest_path_that_is_not_a_regular_file_is_neither_read_nor_written(tmp_path: Path) -> None:
    """Links (to a file or dangling) and other non-files are refused for reading and for
    appending alike, without writing to (or creating) what a link points at."""
    victim = tmp_path / "input.wav"
    victim.write_bytes(b"RIFF not ours to touch")
    link = tmp_path / "linked" / MANIFEST_NAME
    link.parent.mkdir()
    link.symlink_to(victim)
    dangling = tmp_path / "dangling" / MANIFEST_NAME
    dangling.parent.mkdir()
    dangling.symlink_to(tmp_path / "created-through-the-link")
    for path in (link, dangling):
        with pytest.raises(ConfigError, match=r"manifest\.jsonl: the manifest is a symbolic link"):
            read_manifest(path)
        with pytest.raises(ConfigError, match=r"manifest\.jsonl: the manifest is a symbolic link"), Manifest(path) as manifest:
            manifest.write([{"output": "a.wav", "status": "done"}], "job a.wav (done)")
    assert victim.read_bytes() == b"RIFF not ours to touch"
    assert not (tmp_path / "created-through-the-link").exists()

    folder = tmp_path / "folder" / MANIFEST_NAME
    folder.mkdir(parents=True)
    fifo = tmp_path / "fifo" / MANIFEST_NAME
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # opening it for reading would wait for a writer: it must not
    for path in (folder, fifo):
        with pytest.raises(ConfigError, match=r"manifest\.jsonl: the manifest is not a regular file"):
            read_manifest(path)
        with pytest.raises(ConfigError, match=r"manifest\.jsonl: the manifest is not a regular file"):
            Manifest(path).__enter__()


def test_manifest_lines_json_cannot_read_are_skipped_and_the_good_ones_kept(tmp_path: Path) -> None:
    """Deep nesting (RecursionError), an integer past int()'s digit limit (ValueError) and a
    record whose ``relative`` is no string are skipped like any bad line; the rest still resumes."""
    out = tmp_path / "out"
    out.mkdir()
    good = [
        {"output": str(out / "a.wav"), "relative": "a.wav", "status": "done", "config_hash": "h1"},
        {"output": str(out / "b.wav"), "relative": "b.wav", "status": "started", "config_hash": "h2"},
        {"output": str(out / "c.wav"), "relative": ["c.wav"], "status": "done", "config_hash": "h3"},
    ]
    lines = [
        json.dumps(good[0]),
        "[" * 100_000 + "]" * 100_000,
        '{"output": "x.wav", "status": "done", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"output": "y.wav", "status": "done", "seconds": ' + "9" * 100_000 + "}",
        json.dumps(good[1]),
        json.dumps(good[2]),
    ]
    (out / MANIFEST_NAME).write_text("\n".join(lines) + "\n")

    assert read_manifest(out / MANIFEST_NAME) == good[:2]
    finished, unfinished = earlier_runs(out)
    assert finished == {"a.wav": "h1"} and unfinished == {"b.wav": "h2"}
