"""The command line's ``--report``: the run's content and style figures, in the file and on one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audiostyle_cli.app import app
from audiostyle_cli.stylize import scores_line
from tests.support import RATE

TINY_CLI = ["--sample-rate", "16000", "--n-fft", "512", "--hop-length", "128", "--filters", "48",
            "--kernel-widths", "3,7", "-n", "3", "--device", "cpu"]


@pytest.fixture
def files(tmp_path, rng):
    paths = [tmp_path / f"{name}.wav" for name in ("content", "style")]
    t = np.arange(RATE) / RATE
    for path, (frequency, noise) in zip(paths, [(220.0, 0.05), (660.0, 0.2)]):
        sf.write(path, (0.3 * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(t.size)).astype(np.float32), RATE)
    return paths


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], prog_name="audiostyle")


def test_report_run_prints_its_figures_on_one_line(files, tmp_path):
    content, style = files
    report_path = tmp_path / "run.json"
    result = run(content, style, "-o", tmp_path / "out.wav", "--report", report_path, "--strength", "0.3", *TINY_CLI)
    assert result.exit_code == 0, result.output
    scores = json.loads(report_path.read_text())["scores"]
    line = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"content \d\.\d\d · style \d\.\d\d \(strength 0\.3\)", line), result.output
    assert line == f"content {scores['content']:.2f} · style {scores['style']:.2f} (strength 0.3)"


def test_no_figures_line_without_report_or_when_quiet(files, tmp_path):
    content, style = files
    plain = run(content, style, "-o", tmp_path / "a.wav", *TINY_CLI)
    assert plain.exit_code == 0 and "· style" not in plain.output
    quiet = run(content, style, "-o", tmp_path / "b.wav", "--report", tmp_path / "b.json", "--quiet", *TINY_CLI)
    assert quiet.exit_code == 0 and quiet.output == ""
    assert json.loads((tmp_path / "b.json").read_text())["scores"]["style"] is not None


def test_a_figure_that_cannot_be_measured_reads_n_a():
    assert scores_line({"content": 0.714, "style": None}, 0.5) == "content 0.71 · style n/a (strength 0.5)"
