"""``audiostyle plot FILE... -o fig.png``: spectrograms of audio files side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List

import typer

from .common import DebugOpt, HopLengthOpt, NFftOpt, OverwriteOpt, QuietOpt, configure_logging, guarded


def plot_command(
    files: Annotated[List[Path], typer.Argument(help="Audio files to draw, left to right.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The figure: .png, .pdf or .svg.", show_default=False)],
    n_fft: NFftOpt = None,
    hop_length: HopLengthOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Draw log-spectrograms of FILES side by side on one dB scale and frequency axis."""
    configure_logging(debug)
    with guarded(debug):
        from audiostyle.audio import check_output_path
        from audiostyle.plots import plot_files

        check_output_path(output, protect=files, overwrite=overwrite)
        written = plot_files(files, output, n_fft=n_fft or 2048, hop_length=hop_length or 512)
        if not quiet:
            typer.echo(f"wrote {written}")
