"""audiostyle.report: a run's report holds everything needed to reproduce it."""

from __future__ import annotations

import json

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
