"""audiostyle.plots: figures of files and of a run, written as PNG."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from audiostyle import ConfigError, stylize
from tests.support import TINY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_files_and_result_write_pngs(tone_files, tmp_path, single_thread):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    from audiostyle.plots import plot_files, plot_result

    content, style, other = tone_files
    figure = plot_files([content, style], tmp_path / "files.png", n_fft=512, hop_length=128)
    assert figure.read_bytes()[:8] == PNG_MAGIC and matplotlib.image.imread(figure).ndim == 3
    result = stylize(content, [(style, 0.5), (other, 0.5)], TINY)
    figure = plot_result(result, content, [(style, 0.5), (other, 0.5)], tmp_path / "run.png")
    assert figure.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ConfigError, match="png"):
        plot_files([content], tmp_path / "fig.txt")
    assert not (tmp_path / "fig.txt").exists()


def _two_seconds(tmp_path, rate: int = 22050):
    """A 2 s noise clip: ``n_fft=65536, hop_length=1`` on it (padded to one FFT) makes 2.1 billion spectrogram cells."""
    path = tmp_path / "c.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(2 * rate)).astype(np.float32), rate)
    return path


def _no_decoding(monkeypatch):
    import audiostyle.plots

    def refuse(*args, **kwargs):
        raise AssertionError("decoded or analysed audio before the size check")

    monkeypatch.setattr(audiostyle.plots, "_waveform", refuse)
    monkeypatch.setattr(audiostyle.plots, "_spectrum_db", refuse)


def test_plot_files_refuses_a_huge_spectrogram_at_once_from_the_header(tmp_path, monkeypatch):
    from audiostyle.plots import MAX_PLOT_CELLS, plot_files

    clip = _two_seconds(tmp_path)
    _no_decoding(monkeypatch)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"2,147,581,953 spectrogram cells.*raise hop_length \(now 1\)"):
        plot_files([clip], tmp_path / "p.png", n_fft=65536, hop_length=1)
    assert time.monotonic() - start < 2.0
    assert not (tmp_path / "p.png").exists()
    # The cap counts every panel: one file fits, 40 together do not.
    assert 32769 * (1 + 65536 // 64) < MAX_PLOT_CELLS < 40 * 32769 * (1 + 65536 // 64)
    with pytest.raises(ConfigError, match="over the limit"):
        plot_files([clip] * 40, tmp_path / "p.png", n_fft=65536, hop_length=64)


def test_plot_refuses_a_figure_larger_than_the_free_memory(tmp_path, monkeypatch):
    import audiostyle.pipeline.memory
    from audiostyle.plots import plot_files, plot_result

    clip = _two_seconds(tmp_path)
    monkeypatch.setattr(audiostyle.pipeline.memory, "available_memory", lambda device="cpu": 2**20)
    _no_decoding(monkeypatch)
    with pytest.raises(ConfigError, match=r"needs about .* of memory .* but only .* is free; raise hop_length \(now 512\)"):
        plot_files([clip], tmp_path / "p.png")
    # A run's figure: checked from the content's header and the output's length, before decoding.
    config = SimpleNamespace(sample_rate=22050, n_fft=2048, hop_length=512)
    result = SimpleNamespace(config=config, sample_rate=22050, audio=np.zeros((1, 44100), np.float32), history=[])
    with pytest.raises(ConfigError, match=r"is free; raise hop_length \(now 512\) or lower n_fft \(now 2048\)"):
        plot_result(result, clip, clip, tmp_path / "run.png")
    assert not list(tmp_path.glob("*.png"))


def test_plot_command_refuses_huge_settings_with_one_line_and_plots_ordinary_ones(tmp_path):
    pytest.importorskip("matplotlib")
    from audiostyle_cli.app import app
    from typer.testing import CliRunner

    clip = _two_seconds(tmp_path)
    start = time.monotonic()
    refused = CliRunner().invoke(
        app, ["plot", str(clip), "-o", str(tmp_path / "p.png"), "--n-fft", "65536", "--hop-length", "1"], prog_name="audiostyle"
    )
    assert time.monotonic() - start < 2.0
    assert refused.exit_code == 2, refused.output
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiostyle: error: the figure would hold"), refused.stderr
    assert "--hop-length" in lines[0] and not (tmp_path / "p.png").exists()
    plotted = CliRunner().invoke(app, ["plot", str(clip), "-o", str(tmp_path / "p.png"), "-q"], prog_name="audiostyle")
    assert plotted.exit_code == 0, plotted.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_result_refuses_what_is_no_result_or_clip(tmp_path):
    pytest.importorskip("matplotlib")
    from audiostyle import ConfigError
    from audiostyle.plots import plot_result

    with pytest.raises(ConfigError, match="Result"):
        plot_result(None, None, "s.wav", tmp_path / "r.png")
    from types import SimpleNamespace

    from audiostyle import StyleConfig

    fake = SimpleNamespace(audio=np.zeros((1, 22050), np.float32), sample_rate=22050, config=StyleConfig())
    clip = (np.zeros((1, 22050), np.float32), 22050)
    for content in ((clip[0], 0), (np.zeros((1, 2, 3)), 22050), (np.zeros(0), 22050)):
        with pytest.raises(ConfigError, match="clip to plot"):
            plot_result(fake, content, clip, tmp_path / "r.png")
    assert list(tmp_path.iterdir()) == []
