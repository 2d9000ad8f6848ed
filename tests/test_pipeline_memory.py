"""Resource limits: the memory estimate, the early refusal, and --max-duration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audiostyle import AudioFileError, ConfigError, StyleConfig, stylize
from audiostyle.pipeline import memory as resources
from audiostyle.pipeline.memory import available_memory, check_memory, estimate_peak_bytes
from audiostyle_cli.app import app
from tests.hostile_inputs import leftovers, make_waveform
from tests.support import TINY

TINY_CLI = ["--preset", "fast", "-n", "3", "--filters", "48", "--sample-rate", "16000", "--n-fft", "512", "--hop-length", "128", "--device", "cpu", "-q"]


# One torch thread for every test here (see conftest.single_thread).
pytestmark = pytest.mark.usefixtures("single_thread")


def test_estimate_grows_with_every_setting_that_costs_memory() -> None:
    base = StyleConfig()
    reference = estimate_peak_bytes(base, 1000, [1000])
    assert estimate_peak_bytes(base.replace(filters=4096), 1000, [1000]) > reference
    assert estimate_peak_bytes(base.replace(n_fft=4096, hop_length=1024), 1000, [1000]) > reference
    assert estimate_peak_bytes(base.replace(kernel_widths=(3, 7, 15, 31)), 1000, [1000]) > reference
    assert estimate_peak_bytes(base, 4000, [1000]) > reference
    assert estimate_peak_bytes(base, 1000, [1000, 8000]) > reference
    assert estimate_peak_bytes(base.replace(solver="adam"), 1000, [1000]) < reference
    assert estimate_peak_bytes(base.replace(history_size=20), 1000, [1000]) > reference
    assert estimate_peak_bytes(base.replace(refine_steps=20), 1000, [1000]) > reference
    assert estimate_peak_bytes(base.replace(texture_weight=1.0), 1000, [1000]) > reference
    # Ten minutes of stereo at the default settings: many GiB, not a rounding error.
    frames = 2 * (1 + 600 * 22050 // 512)
    assert estimate_peak_bytes(base, frames, [frames]) > 8 * 2**30


def test_segments_bound_the_estimate_of_long_content(monkeypatch) -> None:
    monkeypatch.setattr(resources, "available_memory", lambda device: None)
    base = StyleConfig()
    long = np.zeros((2, 600 * 22050), np.float32)
    style = long[:, : 10 * 22050]
    unsegmented = check_memory(base.replace(segment_seconds=3600), long, [style])
    segmented = check_memory(base, long, [style])
    assert segmented < unsegmented / 4
    assert segmented > check_memory(base, long[:, : 30 * 22050], [style])


MEASURE = """
import resource, sys, numpy as np, torch
torch.set_num_threads(1)
from audiostyle import StyleConfig, stylize
from audiostyle.pipeline.memory import check_memory
from tests.hostile_inputs import TINY_SETTINGS, make_waveform, peak_rss_mb
config = StyleConfig(**{**TINY_SETTINGS, "filters": 512, "kernel_widths": (3, 7, 15), "iterations": 1, "griffin_lim_iters": 1,
                      "refine_steps": 2, "texture_weight": 1.0})
content = make_waveform("noise", channels=1, samples=16000 * 20, seed=2)
style = make_waveform("noise", channels=1, samples=16000 * 5, seed=3)
estimate = check_memory(config, content, [style])
stylize((content, 16000), (style, 16000), config)
print(estimate, int(peak_rss_mb() * 1024 * 1024))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the peak is read from /proc/self/status")
def test_estimate_bounds_a_real_run_from_above_but_not_wildly() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    estimate, peak = map(int, completed.stdout.split())
    assert peak < estimate < 4 * peak, f"estimate {estimate / 2**20:.0f} MiB, peak RSS {peak / 2**20:.0f} MiB"


def test_available_memory_is_positive_or_unknown() -> None:
    free = available_memory("cpu")
    assert free is None or free > 0
    if sys.platform == "linux":
        assert free is not None
    assert available_memory("mps") is None


def test_a_run_that_does_not_fit_fails_before_any_work_naming_what_to_lower(monkeypatch) -> None:
    monkeypatch.setattr(resources, "available_memory", lambda device: 64 * 2**20)
    calls = []
    tone = make_waveform("tone", channels=2, samples=16000)
    with pytest.raises(ConfigError) as caught:
        stylize((tone, 16000), (tone, 16000), TINY, progress=lambda *a: calls.append(a))
    message = str(caught.value)
    for advice in ("filters (now 48)", "fast preset", "segment_seconds", "shorter clip", "GiB"):
        assert advice in message
    assert calls == [], "the solver must not start"


def test_unknown_free_memory_skips_the_check(monkeypatch) -> None:
    monkeypatch.setattr(resources, "available_memory", lambda device: None)
    tone = make_waveform("tone", channels=1, samples=8000)
    assert stylize((tone, 16000), (tone, 16000), TINY).audio.shape == (1, 8000)


def test_texture_memory_uses_the_requested_duration(monkeypatch) -> None:
    style = make_waveform("noise", channels=1, samples=8000)
    short = check_memory(TINY, None, [style], texture_seconds=1.0)
    long = check_memory(TINY, None, [style], texture_seconds=600.0)
    assert long > short
    assert check_memory(TINY, None, [style], texture_seconds=float("nan")) == check_memory(TINY, None, [style])


def test_cli_memory_refusal_is_exit_2_with_advice(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(resources, "available_memory", lambda device: 2**20)
    content = tmp_path / "content.wav"
    sf.write(content, make_waveform("tone", channels=1, samples=16000).T, 16000)
    output = tmp_path / "out.wav"
    result = CliRunner().invoke(app, [str(content), str(content), "-o", str(output), *TINY_CLI], prog_name="audiostyle")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--filters" in lines[0]
    assert not output.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("limit, code", [("0.5", 3), ("5", 0), ("-1", 2), ("nan", 2)])
def test_cli_max_duration(limit: str, code: int, tmp_path: Path) -> None:
    content = tmp_path / "content.wav"
    sf.write(content, make_waveform("tone", channels=1, samples=16000).T, 16000)
    output = tmp_path / "out.wav"
    result = CliRunner().invoke(
        app, [str(content), str(content), "-o", str(output), "--max-duration", limit, *TINY_CLI], prog_name="audiostyle"
    )
    assert result.exit_code == code, result.stderr
    if code == 0:
        assert sf.read(output)[0].shape == (16000,)
        return
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("max-duration" in lines[0] or "max_duration" in lines[0]), lines
    assert not output.exists()


def test_max_duration_applies_to_arrays_too() -> None:
    tone = make_waveform("tone", channels=1, samples=16000)
    with pytest.raises(AudioFileError, match="max_duration"):
        stylize((tone, 16000), (tone, 16000), TINY.replace(max_duration=0.5))


def test_preparing_a_style_that_does_not_fit_fails_before_its_analysis(monkeypatch) -> None:
    from audiostyle import prepare_style
    from audiostyle.pipeline import prepared

    monkeypatch.setattr(resources, "available_memory", lambda device: 2**20)
    monkeypatch.setattr(prepared, "style_targets", lambda *a, **k: pytest.fail("the analysis started"))
    tone = make_waveform("tone", channels=2, samples=16000)
    with pytest.raises(ConfigError, match="GiB|MiB"):
        prepare_style((tone, 16000), TINY)


def test_an_array_that_would_grow_past_the_decode_limit_when_resampled_is_refused(monkeypatch) -> None:
    from audiostyle.pipeline import sources

    monkeypatch.setattr(sources, "MAX_DECODED_BYTES", 2**20)  # as a 2 GiB limit is to a large array
    monkeypatch.setattr(sources, "resample", lambda *a, **k: pytest.fail("resampled before the check"))
    low = make_waveform("tone", channels=8, samples=4000)  # 4 s at 1 kHz: 8 ch × 64000 samples at 16 kHz
    with pytest.raises(AudioFileError, match="at the working rate"):
        stylize(None, (low, 1000), TINY)
