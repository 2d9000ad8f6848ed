"""audiostyle.plots: figures of files and of a run, written as PNG."""

from __future__ import annotations

import pytest

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
