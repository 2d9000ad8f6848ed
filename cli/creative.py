"""Options and helpers of the creative controls: strength, blends, segments, figures, reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import typer

from audiostyle import ConfigError, StyleConfig
from audiostyle.audio import check_output_path

StrengthOpt = Annotated[
    Optional[float],
    typer.Option(
        "--strength",
        help="Content/style balance in [0, 1]: 0 content only, 1 style only; 0.5 uses the weights as set.",
        show_default=False,
    ),
]
SegmentOpt = Annotated[
    Optional[float],
    typer.Option("--segment-seconds", help="Stylize longer content in overlapping segments of this many seconds (default 30).", show_default=False),
]
PlotOpt = Annotated[
    Optional[Path],
    typer.Option("--plot", help="Also write a figure (.png/.pdf/.svg): content, style and output spectrograms and the losses.", show_default=False),
]
ReportOpt = Annotated[
    Optional[Path],
    typer.Option("--report", help="Also write a JSON report: config, versions, device, losses per step, timings, quality.", show_default=False),
]


def parse_weighted(text: str) -> tuple[Path, float]:
    """``FILE`` or ``FILE:WEIGHT`` -> (path, weight); the weight defaults to 1."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            weight = float(tail)
        except ValueError:
            return Path(text), 1.0
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"--blend {text!r}: the weight must be a finite number >= 0")
        return Path(head), weight
    return Path(text), 1.0


def apply_creative(config: StyleConfig, *, strength: float | None = None, segment_seconds: float | None = None, loop: bool | None = None) -> StyleConfig:
    """The config with the creative options the user gave."""
    changes = {"strength": strength, "segment_seconds": segment_seconds, "loop": loop}
    return config.replace(**{name: value for name, value in changes.items() if value is not None})


def check_extra_outputs(paths: Sequence[Optional[Path]], *, protect: Sequence[Any], overwrite: bool) -> None:
    """Fail before the work when a figure or report could not be written."""
    for path in paths:
        if path is not None:
            check_output_path(path, protect=protect, overwrite=overwrite)


def write_extras(
    result: Any,
    *,
    content: Optional[Path],
    styles: Sequence[tuple[Path, float]],
    output: Path,
    plot: Optional[Path],
    report: Optional[Path],
    duration: float | None = None,
    quiet: bool = False,
) -> None:
    """Write the figure and the JSON report the user asked for."""
    inputs = ([content] if content is not None else []) + [path for path, _ in styles]
    if plot is not None:
        from audiostyle.plots import plot_result

        written = plot_result(result, content, list(styles), plot)
        if not quiet:
            typer.echo(f"wrote {written}")
    if report is not None:
        from audiostyle.report import build_report, write_report

        data = build_report(result, content=content, styles=styles, output=output, duration=duration)
        written = write_report(data, report, protect=inputs)
        if not quiet:
            typer.echo(f"wrote {written}")
