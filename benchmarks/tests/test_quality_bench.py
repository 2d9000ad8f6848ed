"""The quality benchmark's style-model mode (benchmarks/quality.py --models), at tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import quality

SAMPLES = Path(quality.ROOT) / "samples"


@pytest.fixture
def two_pairs(monkeypatch, tmp_path):
    """Pairs on the shipped samples only: voice->violin, and drums->rain whose content trains voice's model."""
    pairs = {
        "voice-violin": (SAMPLES / "voice.flac", SAMPLES / "violin.wav"),
        "drums-rain": (SAMPLES / "drums.wav", SAMPLES / "rain.ogg"),
    }
    monkeypatch.setattr(quality, "PAIRS", pairs)
    return pairs


def test_model_contents_exclude_the_pairs_own_content_also_when_another_pair_shares_it(monkeypatch, tmp_path):
    files = {name: tmp_path / f"{name}.wav" for name in ("speech", "piano", "style")}
    for path in files.values():
        path.touch()
    monkeypatch.setattr(quality, "PAIRS", {
        "speech-a": (files["speech"], files["style"]),
        "speech-b": (files["speech"], files["piano"]),
        "piano-a": (files["piano"], files["style"]),
        "missing": (tmp_path / "absent.wav", files["style"]),
    })
    assert quality.model_contents("speech-a") == [files["piano"]]
    assert quality.model_contents("speech-b") == [files["piano"]]
    assert quality.model_contents("piano-a") == [files["speech"]]


def test_model_check_needs_as_many_pairs_ahead_and_a_mean_within_the_margin():
    def summary(fast_ahead, model_ahead, fast_mean, model_mean):
        return {"fast": {"ahead_of_mix": fast_ahead, "mean_combined": fast_mean},
                "model-fast": {"ahead_of_mix": model_ahead, "mean_combined": model_mean}}

    assert quality.model_check(summary(15, 15, 0.60, 0.56), "model-fast")["met"]
    assert not quality.model_check(summary(15, 14, 0.60, 0.62), "model-fast")["met"]
    assert not quality.model_check(summary(15, 16, 0.60, 0.54), "model-fast")["met"]
    assert quality.model_check({"model-fast": {}}, "model-fast") is None


def test_models_mode_trains_applies_and_scores_a_model_per_pair(two_pairs, tmp_path, capsys):
    output = tmp_path / "quality.json"
    quality.main([
        "--presets", "--pairs", "voice-violin", "--seconds", "1.5", "--device", "cpu",
        "--models", "--model-max-steps", "1", "--output", str(output),
    ])
    report = json.loads(output.read_text())
    methods = {row["method"]: row for row in report["rows"]}
    assert set(methods) == {"mix", "eq_match", "model-fast"}
    model_row = methods["model-fast"]
    assert {"style", "content", "combined", "seconds", "train_seconds"} <= set(model_row)
    assert model_row["train_seconds"] > 0 and methods["mix"]["train_seconds"] is None
    figures = report["models"]["voice-violin"]
    # Trained on the other pair's content (never its own) plus the generic set.
    assert figures["contents"] == ["drums.wav"]
    assert figures["steps"] == 1 and figures["clips"] > 1
    assert report["summary"]["model-fast"]["pairs"] == 1
    assert "ahead_of_mix" in report["summary"]["model-fast"]
    assert report["model_check"] is None  # no per-clip fast run to compare with
    assert report["model_settings"] == {"preset": "fast", "minutes": None, "max_steps": 1, "seed": 0}
    assert "model-fast" in capsys.readouterr().out
