"""The creative controls on the command line: blends, strength, loops, figures and reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audiostyle import PRESETS
from audiostyle_cli.app import app
from audiostyle_cli.options import parse_weighted

RATE = 16000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_CLI = ["--sample-rate", "16000", "--n-fft", "512", "--hop-length", "128", "--filters", "48",
            "--kernel-widths", "3,7", "-n", "3", "--device", "cpu", "--quiet"]


@pytest.fixture
def files(tmp_path, rng):
    """A content, a style and another style: tones at three pitches with some noise."""
    paths = [tmp_path / f"{name}.wav" for name in ("content", "style", "other")]
    t = np.arange(RATE) / RATE
    for path, (frequency, noise) in zip(paths, [(220.0, 0.05), (660.0, 0.2), (1320.0, 0.01)]):
        wave = 0.3 * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(t.size)
        sf.write(path, wave.astype(np.float32), RATE)
    return tuple(paths)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], prog_name="audiostyle")


@pytest.mark.parametrize(
    "text, expected",
    [("a.wav", ("a.wav", 1.0)), ("a.wav:0.3", ("a.wav", 0.3)), ("C:/x/b.flac:2", ("C:/x/b.flac", 2.0)), ("dir:x/a.wav", ("dir:x/a.wav", 1.0))],
)
def test_parse_weighted(text, expected):
    path, weight = parse_weighted(text)
    assert (path.as_posix(), weight) == expected


def test_negative_blend_weight_is_a_usage_error(files):
    content, style, other = files
    result = run(content, style, "--blend", f"{other}:-1", *TINY_CLI)
    assert result.exit_code == 2


def test_blend_weights_count_only_as_shares_even_near_the_largest_float(files, tmp_path):
    content, style, other = files
    outputs = []
    for weight in ("1", "1e308"):
        out = tmp_path / f"w{weight}.wav"
        result = run(content, style, "--blend", f"{other}:{weight}", "-o", out, *TINY_CLI)
        assert result.exit_code == 0, result.output
        outputs.append(sf.read(out)[0])
    # The main style weighs 1: 1e308 to 1 is all but the other style alone, and finite.
    assert np.isfinite(outputs[1]).all() and not np.allclose(outputs[0], outputs[1])
    from audiostyle.pipeline.sources import normalise_styles

    assert normalise_styles([("a.wav", 1e308), ("b.wav", 1e308)], None)[1] == [1.0, 1.0]


def test_cli_texture_loop_with_plot_and_report(files, tmp_path):
    pytest.importorskip("matplotlib")
    _, style, other = files
    out, fig, rep = tmp_path / "loop.wav", tmp_path / "loop.png", tmp_path / "loop.json"
    result = run("texture", style, "--style", other, "--weight", "0.7", "--weight", "0.3", "-d", "0.5",
                 "--loop", "-o", out, "--plot", fig, "--report", rep, *TINY_CLI)
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(out)
    assert rate == RATE and audio.shape[0] % 128 == 0 and abs(audio.shape[0] - RATE // 2) <= 128
    assert fig.read_bytes()[:8] == PNG_MAGIC
    report = json.loads(rep.read_text())
    assert report["config"]["loop"] is True
    assert [s["weight"] for s in report["inputs"]["styles"]] == [0.7, 0.3]


def test_cli_main_command_strength_blend_report_and_plot_command(files, tmp_path):
    content, style, other = files
    out, rep = tmp_path / "out.wav", tmp_path / "out.json"
    result = run(content, style, "--blend", f"{other}:0.5", "--strength", "0.8", "-o", out, "--report", rep, *TINY_CLI)
    assert result.exit_code == 0, result.output
    report = json.loads(rep.read_text())
    assert report["config"]["strength"] == 0.8 and len(report["inputs"]["styles"]) == 2
    # strength 0.8 multiplies the style/content ratio by (0.8 / 0.2) ** 3 = 64 (the content weight is divided).
    preset = PRESETS["default"]
    assert report["loss_weights"]["style"] == pytest.approx(preset.style_weight)
    assert report["loss_weights"]["content"] == pytest.approx(preset.content_weight / 4**3)
    assert run(content, style, "--strength", "2", "-o", tmp_path / "x.wav", *TINY_CLI).exit_code == 2
    assert run("texture", style, "--weight", "1", "--weight", "2", "-o", tmp_path / "y.wav", *TINY_CLI).exit_code == 2
    # A report may never be written over an input.
    assert run(content, style, "-o", tmp_path / "z.wav", "--report", content, *TINY_CLI).exit_code == 3
    pytest.importorskip("matplotlib")
    fig = tmp_path / "cmp.png"
    assert run("plot", content, out, "-o", fig, "--quiet").exit_code == 0
    assert fig.read_bytes()[:8] == PNG_MAGIC
    assert run("plot", tmp_path / "missing.wav", "-o", tmp_path / "m.png").exit_code == 3
