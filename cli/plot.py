"""``audiostyle plot FILE... -o fig.png``: spectrograms of audio files side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List

import typer

from .exits import guarded
from .options import OUTPUT, STFT, Given, shared


@shared(STFT, OUTPUT)
def plot_command(
    files: Annotated[List[Path], typer.Argument(help="Audio files to draw, left to right.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The figure: .png, .pdf or .svg.", show_default=False)],
    *,
    given: Given,
) -> None:
    """Draw log-spectrograms of FILES side by side on one dB scale and frequency axis."""
    with guarded(given.debug, given.flags):
        from audiostyle.io import check_output_path
        from audiostyle.plots import plot_files

        check_output_path(output, protect=files, overwrite=given.overwrite)
        written = plot_files(files, output, n_fft=given.get("n_fft") or 2048, hop_length=given.get("hop_length") or 512)
        if not given.quiet:
            typer.echo(f"wrote {written}")
