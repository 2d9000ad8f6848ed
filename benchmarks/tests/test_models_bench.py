"""The style-model benchmark (benchmarks/models.py), at tiny settings."""

from __future__ import annotations

import json

from audiostyle.models.grid import RateGrid
from benchmarks import models


def window(rate: int) -> int:
    """The STFT size of a model trained with the fast preset (the benchmark's), at ``rate``."""
    config = models.PRESETS["fast"]
    return RateGrid.at(rate, grid_rate=config.sample_rate, grid_n_fft=config.n_fft, grid_hop=config.hop_length).n_fft


def test_apply_stream_and_difference_rows_at_tiny_settings(tmp_path, capsys):
    output = tmp_path / "models.json"
    models.main([
        "--train-max-steps", "1", "--device", "cpu", "--durations", "0.5", "--rates", "22050", "44100",
        "--repeats", "2", "--block-ms", "20", "50", "--stream-rates", "44100", "48000",
        "--stream-seconds", "0.5", "--difference-seconds", "0.5", "--json", str(output),
    ])
    report = json.loads(output.read_text())
    assert report["model"]["trained_here"] and report["model"]["training"]["steps"] == 1
    assert report["machine"]["torch_threads"] >= 1 and "load_average_before" in report["machine"]

    assert [(row["seconds"], row["rate"]) for row in report["apply"]] == [(0.5, 22050), (0.5, 44100)]
    for row in report["apply"]:
        assert len(row["runs"]) == 2 and row["channels"] == 2
        assert row["real_time_factor"] > 0 and isinstance(row["meets_target"], bool)

    assert [(row["rate"], row["block_ms"]) for row in report["stream"]] == [(44100, 20), (44100, 50), (48000, 20), (48000, 50)]
    for row in report["stream"]:
        # The stated latency is the model's STFT window at that rate, less one sample.
        assert row["latency_samples"] == window(row["rate"]) - 1
        assert row["latency_ms"] == round(1000 * row["latency_samples"] / row["rate"], 2)
        assert row["cost_p95_ms"] <= row["cost_max_ms"] and isinstance(row["keeps_up"], bool)
    latencies = {row["rate"]: row["latency_samples"] for row in report["stream"]}
    assert latencies[48000] > latencies[44100]
    assert report["stream"][0]["meets_latency_target"] is not None and report["stream"][2]["meets_latency_target"] is None

    assert [row["block_ms"] for row in report["difference"]] == [20, 50]
    for row in report["difference"]:
        assert row["max_abs_difference"] < 1e-4 and row["offline_peak"] > 0
    assert "stream vs offline" in capsys.readouterr().out
