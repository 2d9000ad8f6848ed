"""Nothing lost: Ctrl-C, SIGTERM and a full disk leave no output and no temporary file.

SIGINT exits 130, SIGTERM 143 (both mid-optimisation in a real process, and mid-write in
process); a write that fails with ENOSPC is an input/output error (exit 3) naming the cause.
"""

from __future__ import annotations

import errno
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

import audiostyle
from audiostyle import AudioFileError, save_audio
from audiostyle_cli.app import app
from audiostyle_cli.signals import Terminated, terminate_as_interrupt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TINY_SETTINGS = dict(sample_rate=16000, n_fft=512, hop_length=128, filters=48, kernel_widths=(3, 7), iterations=3, griffin_lim_iters=4, device="cpu")
TINY_CLI = ["--preset", "fast", "-n", "3", "--filters", "48", "--sample-rate", "16000", "--n-fft", "512", "--hop-length", "128", "--device", "cpu", "-q"]
# The 2016 preset never stops early (tolerance 0), so 100000 iterations outlast the test.
ENDLESS_CLI = ["--preset", "classic", "-n", "100000", *TINY_CLI[4:]]

def make_waveform(kind: str, *, channels: int, samples: int, seed: int = 0) -> np.ndarray:
    """A ``(channels, samples)`` float32 tone or noise."""
    if kind == "tone":
        wave = 0.5 * np.sin(2 * np.pi * 40 * np.arange(samples) / samples)
        return np.broadcast_to(wave, (channels, samples)).astype(np.float32)
    return (0.3 * np.random.default_rng(seed).standard_normal((channels, samples))).astype(np.float32)


def leftovers(folder: Path) -> list[Path]:
    """Temporary files atomic_write would leave if it failed to clean up."""
    return sorted(p for p in folder.iterdir() if ".part" in p.name)


# Runs the real CLI, and writes a marker file once the solver has taken a step, so that the
# test signals the process mid-optimisation rather than while it imports torch.
DRIVER = """
import pathlib, signal, sys
# As a terminal user's process: Ctrl-C raises KeyboardInterrupt even when the test runner
# was started with SIGINT ignored (nohup, some CI shells).
signal.signal(signal.SIGINT, signal.default_int_handler)
import audiostyle
marker = pathlib.Path(sys.argv[1])
real_stylize = audiostyle.stylize
def stylize(*args, progress=None, **kwargs):
    def relay(step, total, losses):
        if step >= 2 and not marker.exists():
            marker.write_text(str(step))
        if progress is not None:
            progress(step, total, losses)
    return real_stylize(*args, progress=relay, **kwargs)
audiostyle.stylize = stylize
from audiostyle_cli.app import main
sys.argv = ["audiostyle", *sys.argv[2:]]
main()
"""


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    yield


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "content.wav", tmp_path / "style.flac"
    sf.write(content, make_waveform("tone", channels=1, samples=32000).T, 16000)
    sf.write(style, make_waveform("noise", channels=2, samples=16000, seed=1).T, 16000)
    return content, style


def assert_nothing_written(folder: Path, output: Path) -> None:
    assert not output.exists()
    assert leftovers(folder) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_optimisation_exits_cleanly(signum: int, code: int, inputs, tmp_path: Path) -> None:
    content, style = inputs
    output, marker, driver = tmp_path / "out.wav", tmp_path / "started", tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(driver), str(marker), str(content), str(style), "-o", str(output), *ENDLESS_CLI],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the solver never started"
            time.sleep(0.05)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "no partial output" in lines[0]
    assert_nothing_written(tmp_path, output)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_write_removes_the_temporary_file(signum: int, code: int, inputs, tmp_path: Path, monkeypatch) -> None:
    content, style = inputs
    output = tmp_path / "out.flac"
    real_write = sf.write

    def write_then_signal(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)
        assert any(".part" in path.name for path in tmp_path.iterdir())
        os.kill(os.getpid(), signum)
        time.sleep(1)  # the handler runs before this returns
        raise AssertionError("the signal did not interrupt the write")

    monkeypatch.setattr("audiostyle.io.write.sf.write", write_then_signal)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = CliRunner().invoke(app, [str(content), str(style), "-o", str(output), *TINY_CLI], prog_name="audiostyle")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert_nothing_written(tmp_path, output)


def test_sigterm_handler_is_restored_after_the_block() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) == before
    assert issubclass(Terminated, KeyboardInterrupt)


def _disk_full_write(file, data, *args, **kwargs):
    file.write(b"RIFF" + bytes(100))  # some bytes made it before the disk filled (a file object: see save_audio)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_in_the_library_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("audiostyle.io.write.sf.write", _disk_full_write)
    output = tmp_path / "out.wav"
    with pytest.raises(AudioFileError, match="No space left on device"):
        save_audio(output, np.zeros((1, 1000), np.float32), 16000)
    assert_nothing_written(tmp_path, output)


def test_disk_full_keeps_an_existing_output_intact(tmp_path: Path, monkeypatch) -> None:
    output = tmp_path / "out.wav"
    save_audio(output, np.full((1, 1000), 0.5, np.float32), 16000)
    before = output.read_bytes()
    monkeypatch.setattr("audiostyle.io.write.sf.write", _disk_full_write)
    with pytest.raises(AudioFileError, match="No space left"):
        save_audio(output, np.zeros((1, 1000), np.float32), 16000)
    assert output.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_disk_full_on_fsync_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("audiostyle.io.write.os.fsync", no_space)
    output = tmp_path / "out.wav"
    with pytest.raises(AudioFileError, match="No space left"):
        save_audio(output, np.zeros((1, 1000), np.float32), 16000)
    assert_nothing_written(tmp_path, output)


def test_disk_full_through_the_cli_is_one_line_and_exit_3(inputs, tmp_path: Path, monkeypatch) -> None:
    content, style = inputs
    output = tmp_path / "out.wav"
    monkeypatch.setattr("audiostyle.io.write.sf.write", _disk_full_write)
    result = CliRunner().invoke(app, [str(content), str(style), "-o", str(output), *TINY_CLI], prog_name="audiostyle")
    assert result.exit_code == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(output) in lines[0]
    assert_nothing_written(tmp_path, output)


def test_result_save_after_disk_full_can_be_retried(tmp_path: Path, monkeypatch) -> None:
    config = audiostyle.StyleConfig(**TINY_SETTINGS)
    tone = make_waveform("tone", channels=1, samples=8000)
    result = audiostyle.stylize((tone, 16000), (make_waveform("noise", channels=1, samples=8000), 16000), config)
    output = tmp_path / "out.wav"
    with monkeypatch.context() as patch:
        patch.setattr("audiostyle.io.write.sf.write", _disk_full_write)
        with pytest.raises(AudioFileError):
            result.save(output)
    assert_nothing_written(tmp_path, output)
    result.save(output)  # space freed: the same result writes fine
    assert sf.read(output)[0].shape == (8000,)
