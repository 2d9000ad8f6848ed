"""``audiostyle batch`` stopped by a signal in a real process: Ctrl-C exits 130, SIGTERM 143.

Either way the outputs finished so far are complete and each is in the manifest, no
temporary file is left (the worker processes' included), every manifest line is whole JSON,
and the same command run again does the rest and skips what was done. SIGTERM is sent to the
batch process alone (``kill PID``) and, with worker processes, to its whole process group
(systemd's and most schedulers' way), which the workers then receive too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import audiostyle.batch.execute as batch_execute
from audiostyle.batch import MANIFEST_NAME, read_manifest
from audiostyle.batch.signals import hold_signals
from audiostyle_cli.app import app
from audiostyle_cli.signals import Terminated

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CLIPS = 10
# A few tenths of a second per job: the signal lands while later jobs are still to do.
ENGINE = ["--preset", "fast", "-n", "8", "--filters", "32", "--kernel-widths", "3,7",
          "--sample-rate", "16000", "--n-fft", "512", "--hop-length", "128", "--device", "cpu", "-q"]

# The real command line in its own process. As a terminal user's process: Ctrl-C raises
# KeyboardInterrupt even when the test runner was started with SIGINT ignored (nohup, CI).
DRIVER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from audiostyle_cli.app import main
sys.argv = ["audiostyle", *sys.argv[1:]]
if __name__ == "__main__":  # worker processes import this file again
    main()
"""


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    clips = tmp_path / "lib"
    clips.mkdir()
    for index in range(CLIPS):
        tone = np.sin(2 * np.pi * (110 + 40 * index) * np.arange(16000) / 16000)
        sf.write(clips / f"hit{index}.wav", (0.3 * tone + 0.05 * rng.standard_normal(16000)).astype(np.float32), 16000)
    style = tmp_path / "style.wav"
    sf.write(style, (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000)
    return clips, style


def manifest_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def ended(records: list[dict]) -> list[dict]:
    """The records of jobs that ended, without the ``started`` ones a run writes first."""
    return [r for r in records if r["status"] != "started"]


def stop_batch(args: list[str], folder: Path, signum: int, *, group: bool) -> subprocess.CompletedProcess:
    """Run ``audiostyle batch ARGS`` and send ``signum`` once its first output is recorded."""
    driver = folder / "driver.py"
    driver.write_text(DRIVER)
    manifest = Path(args[args.index("-o") + 1]) / MANIFEST_NAME
    process = subprocess.Popen(
        [sys.executable, str(driver), "batch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=group,
    )
    try:
        deadline = time.monotonic() + 180
        while not ended(read_manifest(manifest)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no job finished"
            time.sleep(0.02)
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def hidden_or_partial(folder: Path) -> list[Path]:
    """``atomic_write``'s temporary files (``.<name>.<random>.part<ext>``) and anything hidden."""
    return [p for p in folder.rglob("*") if ".part" in p.name or p.name.startswith(".")]


@pytest.mark.parametrize(
    "signum, code, workers, group, executor",
    [
        (signal.SIGINT, 130, 1, False, "local"),
        (signal.SIGTERM, 143, 1, False, "local"),
        (signal.SIGTERM, 143, 2, False, "local"),
        (signal.SIGTERM, 143, 2, True, "local"),
        # A terminal's Ctrl-C and systemd's SIGTERM reach the local cluster's workers too.
        (signal.SIGINT, 130, 2, True, "dask"),
        (signal.SIGTERM, 143, 2, True, "dask"),
    ],
    ids=["ctrl-c", "sigterm", "sigterm-2-workers", "sigterm-process-group", "dask-ctrl-c-group", "dask-sigterm-group"],
)
def test_signal_stops_batch_cleanly_and_rerun_resumes(
    library, tmp_path: Path, signum, code, workers, group, executor, single_thread
) -> None:
    clips, style = library
    out = tmp_path / "out"
    args = [str(clips), "--style", str(style), "-o", str(out), *ENGINE]
    first = stop_batch([*args, "--workers", str(workers), "--executor", executor], tmp_path, signum, group=group)

    assert first.returncode == code, first.stderr[-3000:]
    lines = first.stderr.strip().splitlines()
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    assert len(lines) == 1 and word in lines[0] and "resume" in lines[0], first.stderr

    written = manifest_lines(out / MANIFEST_NAME)
    records = ended([json.loads(line) for line in written])  # every line whole
    assert records and all(r["status"] == "done" for r in records), records
    done = {Path(r["output"]).name for r in records}
    assert len(done) < CLIPS, "the signal came after the last job: nothing was interrupted"
    # Every output on disk is complete, and recorded; nothing else was written. Dask cannot stop
    # a job that is running: its output may still be written, unrecorded, and is made again.
    on_disk = {p.name for p in out.iterdir()} - {MANIFEST_NAME}
    assert on_disk == done if executor == "local" else on_disk >= done
    for name in on_disk:
        audio, rate = sf.read(out / name)
        assert rate == 16000 and audio.shape == (16000,) and np.isfinite(audio).all()
    assert hidden_or_partial(out) == [] and hidden_or_partial(clips) == []

    again = CliRunner().invoke(app, ["batch", *args], prog_name="audiostyle")
    assert again.exit_code == 0, again.stderr
    latest = {Path(r["output"]).name: r["status"] for r in ended(read_manifest(out / MANIFEST_NAME)[len(written):])}
    assert {name for name, status in latest.items() if status == "skipped"} == done
    assert {name for name, status in latest.items() if status == "done"} == {f"hit{i}.wav" for i in range(CLIPS)} - done
    assert all(sf.info(out / f"hit{i}.wav").frames == 16000 for i in range(CLIPS))
    assert hidden_or_partial(out) == []


def test_sigterm_in_process_exits_143_like_ctrl_c_exits_130(library, tmp_path: Path, monkeypatch, single_thread) -> None:
    clips, style = library
    out = tmp_path / "out"
    real, calls = batch_execute.stylize, []

    def terminated_second_job(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise Terminated("received signal 15")
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_execute, "stylize", terminated_second_job)
    result = CliRunner().invoke(app, ["batch", str(clips), "-s", str(style), "-o", str(out), *ENGINE], prog_name="audiostyle")
    assert result.exit_code == 143, result.stderr
    assert "terminated after 1 of" in result.stderr and "resume" in result.stderr
    assert [r["status"] for r in ended(read_manifest(out / MANIFEST_NAME))] == ["done"]
    assert sorted(p.name for p in out.iterdir()) == ["hit0.wav", MANIFEST_NAME]


def test_signals_are_held_while_an_output_is_recorded() -> None:
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    steps = []
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stop):
            with hold_signals:
                with hold_signals:  # re-entrant
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.2)  # the handler would have run here
                    steps.append("output written")
                steps.append("record written")
        assert steps == ["output written", "record written"]
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)


SERVER_DRIVER = """
import os, signal
from multiprocessing import forkserver
from audiostyle.batch.local import worker_context

# Default actions, both blocked until init_worker: the server's ignoring is not inherited.
WORKER_SIGNALS = (signal.default_int_handler, signal.SIG_DFL, True)


def worker_signals():
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    stops = {signal.SIGINT, signal.SIGTERM}
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), stops <= blocked


if __name__ == "__main__":  # worker processes import this file again
    # As a terminal user's process, even under a test runner started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    context = worker_context()
    # At once, while the server is still importing the library and torch.
    os.kill(forkserver._forkserver._forkserver_pid, signal.SIGINT)
    os.kill(forkserver._forkserver._forkserver_pid, signal.SIGTERM)
    kept = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    print(kept, signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set())
    # close() and join(): a worker ends at the pool's sentinel. terminate() would send SIGTERM,
    # which a worker keeps blocked until init_worker, never called in a plain Pool.
    pool = context.Pool(1)
    print(pool.apply(os.getpid) != os.getpid(), pool.apply(worker_signals) == WORKER_SIGNALS)
    pool.close()
    pool.join()
"""


@pytest.mark.skipif(sys.version_info < (3, 11) or sys.platform != "linux", reason="the preloading forkserver")
def test_the_worker_server_loading_the_library_ignores_ctrl_c_and_this_process_keeps_its_handlers(tmp_path: Path) -> None:
    driver = tmp_path / "server.py"
    driver.write_text(SERVER_DRIVER)
    done = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "True", "True", "True"]


def test_a_worker_forked_after_its_batch_stopped_ends_quietly(capsys) -> None:
    from audiostyle.batch.worker import report_start_error

    def raised(source: str, filename: str) -> BaseException:
        try:
            exec(compile(source, filename, "exec"), {})
        except BaseException as error:  # noqa: BLE001
            return error
        raise AssertionError("nothing raised")

    # The pool's semaphore, unlinked when the batch stopped, as unpickling it in the new worker finds.
    orphan = raised("raise FileNotFoundError(2, 'No such file or directory')", os.path.join("lib", "multiprocessing", "synchronize.py"))
    report_start_error(type(orphan), orphan, orphan.__traceback__)
    assert capsys.readouterr().err == ""
    other = raised("raise FileNotFoundError(2, 'missing.wav')", os.path.join("audiostyle", "batch", "execute.py"))
    report_start_error(type(other), other, other.__traceback__)
    reported = capsys.readouterr().err
    assert "Traceback" in reported and "missing.wav" in reported
