"""The batch benchmark's style-model modes (benchmarks/batch.py --modes model-1 model-2), at tiny settings."""

from __future__ import annotations

import json

import pytest

from benchmarks import batch


def test_extrapolation_adds_training_to_n_times_the_seconds_per_clip():
    figures = batch.extrapolate(60.0, 20.0, 200)
    assert figures["1000"]["seconds"] == pytest.approx(60.0 + 1000 * 0.1)
    assert figures["10000"]["seconds"] == pytest.approx(60.0 + 10000 * 0.1)
    assert figures["1000"]["arithmetic"] == "60.0 + 1000 x 0.1000 = 160.0 s (2.67 min)"
    assert "seconds_fixed_once" not in figures["1000"]


def test_extrapolation_with_a_one_clip_run_counts_the_fixed_cost_once():
    # 200 clips in 20 s, one clip in 4 s: 16 s for the other 199 clips.
    figures = batch.extrapolate(60.0, 20.0, 200, one_clip_seconds=4.0)
    assert figures["10000"]["seconds_fixed_once"] == pytest.approx(60.0 + 4.0 + 9999 * 16.0 / 199, abs=0.05)
    assert figures["10000"]["seconds_fixed_once"] < figures["10000"]["seconds"]
    assert batch.extrapolate(0.0, 5.0, 1, one_clip_seconds=5.0)["1000"].get("seconds_fixed_once") is None


def test_model_targets_judge_both_extrapolations_and_apply_speed():
    row = {"extrapolated": batch.extrapolate(60.0, 20.0, 200, one_clip_seconds=5.0), "apply_audio_seconds_per_second": 120.0}
    # 1,000 clips: 60 + 100 = 160 s, or 60 + 5 + 999 x 15/199 = 140.3 s, both <= 180 s;
    # 10,000: 1060 s, or 818.7 s, both > 480 s.
    assert batch.model_targets(row) == {"1000_clips": True, "1000_clips_fixed_once": True, "10000_clips": False,
                                        "10000_clips_fixed_once": False, "apply_real_time": True}
    row["apply_audio_seconds_per_second"] = 99.0
    assert batch.model_targets(row)["apply_real_time"] is False


@pytest.mark.slow  # five CLI processes: training, two apply runs and their one-clip runs
def test_model_modes_train_apply_and_write_their_figures(tmp_path, capsys):
    output = tmp_path / "batch.json"
    batch.main([
        "--clips", "2", "--modes", "model-1", "model-2",
        "--train-args", "--preset fast --device cpu --max-steps 1", "--train-minutes", "0.05",
        "--json", str(output),
    ])
    report = json.loads(output.read_text())
    assert report["train_seconds"] > 0 and report["train_minutes"] == 0.05
    rows = {row["mode"]: row for row in report["results"]}
    assert set(rows) == {"model-1", "model-2"}
    for row in rows.values():
        # One training, counted in both modes.
        assert row["train_seconds"] == pytest.approx(report["train_seconds"])
        assert row["seconds"] == pytest.approx(row["train_seconds"] + row["apply_seconds"], abs=0.02)
        assert row["one_clip_seconds"] > 0 and row["files_per_minute"] > 0 and row["apply_audio_seconds_per_second"] > 0
        assert set(row["extrapolated"]) == {"1000", "10000"}
        assert {"seconds", "arithmetic", "seconds_fixed_once", "arithmetic_fixed_once"} <= set(row["extrapolated"]["1000"])
        assert set(row["meets_model_targets"]) == {
            "1000_clips", "1000_clips_fixed_once", "10000_clips", "10000_clips_fixed_once", "apply_real_time"
        }
    assert "fixed cost once" in capsys.readouterr().out
