"""audiostyle.report: a run's report holds everything needed to reproduce it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiostyle import StyleConfig, stylize
from tests.support import TINY


def test_report_has_everything_to_reproduce(tone_files, tmp_path):
    from audiostyle.report import build_report, write_report

    content, style, _ = tone_files
    result = stylize(content, style, TINY)
    path = write_report(build_report(result, content=content, styles=[(style, 1.0)]), tmp_path / "r.json")
    report = json.loads(path.read_text())
    for key in ("config", "config_digest", "versions", "device", "losses", "timings", "quality", "audio", "loss_weights"):
        assert key in report
    assert StyleConfig(**report["config"]) == result.config
    assert len(report["losses"]) == len(result.history)
    assert report["timings"]["total"] > 0 and "griffin_lim" in report["timings"]
    assert report["versions"]["torch"] == torch.__version__
    assert report["quality"]["spectral_convergence_db"] < 0


def test_report_carries_the_runs_content_and_style_figures(tone_files):
    from audiostyle.report import build_report
    from audiostyle.scores import score_output

    content, style, other = tone_files
    result = stylize(content, style, TINY)
    report = json.loads(json.dumps(build_report(result, content=content, styles=[(style, 1.0)])))
    scores = report["scores"]
    assert set(scores) == {"content", "style", "content_parts", "style_parts", "seconds"}
    assert 0.0 <= scores["content"] <= 1.0 and 0.0 <= scores["style"] <= 1.0
    assert set(scores["content_parts"]) == {"chroma", "onsets", "structure"}
    assert set(scores["style_parts"]) == {"timbre", "spectrum"}
    # The figures of the output that was written, against the files the run read.
    expected = score_output((result.audio, result.sample_rate), content, [(style, 1.0)])
    assert scores == expected.to_dict()
    # A blend is scored against both styles.
    blended = build_report(result, content=content, styles=[(style, 1.0), (other, 1.0)])["scores"]
    assert blended != scores


def test_a_texture_report_has_no_scores(tone_files):
    from audiostyle.report import build_report

    _, style, _ = tone_files
    result = stylize(None, style, TINY, duration=0.5)
    assert build_report(result, content=None, styles=[(style, 1.0)], duration=0.5)["scores"] is None


def test_a_report_json_cannot_hold_is_a_config_error_and_writes_nothing(tmp_path):
    from audiostyle import ConfigError
    from audiostyle.report import write_report

    for bad in ({"a": float("nan")}, {"a": np.zeros(2)}, {"a": object()}):
        with pytest.raises(ConfigError, match="JSON"):
            write_report(bad, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []
