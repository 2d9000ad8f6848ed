"""``audiostyle texture STYLE``: a new sound of any length with the style's statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

import audiostyle
from audiostyle import ConfigError
from audiostyle.audio import check_output_path, output_format

from .common import (
    DebugOpt,
    DeviceOpt,
    FiltersOpt,
    HopLengthOpt,
    IterationsOpt,
    KernelWidthsOpt,
    NetworkOpt,
    NFftOpt,
    OverwriteOpt,
    PresetOpt,
    QuietOpt,
    SampleRateOpt,
    SeedOpt,
    build_config,
    configure_logging,
    guarded,
)
from .creative import PlotOpt, ReportOpt, apply_creative, check_extra_outputs, write_extras
from .progress import SolverProgress, format_losses

EXAMPLES = """
Examples:

  audiostyle texture rain.ogg -d 30 -o rain-30s.wav

  audiostyle texture drums.wav -d 8 --loop -o drum-loop.wav      # tiles without a click

  audiostyle texture rain.ogg --style violin.wav --weight 0.7 --weight 0.3 -d 10 -o blend.wav
"""


def texture_command(
    style: Annotated[Path, typer.Argument(help="The sound whose statistics the texture has.", show_default=False)],
    duration: Annotated[
        Optional[float],
        typer.Option("--duration", "-d", help="Length in seconds (default: the style's length).", show_default=False),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Output file; the extension picks the format. Default: ./<style>-texture.wav.", show_default=False),
    ] = None,
    extra_styles: Annotated[
        Optional[List[Path]],
        typer.Option("--style", help="Another style to blend in (repeatable).", show_default=False),
    ] = None,
    weights: Annotated[
        Optional[List[float]],
        typer.Option("--weight", help="Blend weights, one per style in order (STYLE first, then each --style); normalised to sum to 1.", show_default=False),
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Make the result loop seamlessly (no click when tiled end to end).")] = False,
    preset: PresetOpt = "default",
    iterations: IterationsOpt = None,
    filters: FiltersOpt = None,
    kernel_widths: KernelWidthsOpt = None,
    network: NetworkOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    sample_rate: SampleRateOpt = None,
    n_fft: NFftOpt = None,
    hop_length: HopLengthOpt = None,
    plot: PlotOpt = None,
    report: ReportOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Synthesise a texture: a new sound of any length with STYLE's statistics (no content)."""
    configure_logging(debug)
    with guarded(debug):
        config = build_config(
            preset,
            iterations=iterations,
            filters=filters,
            kernel_widths=kernel_widths,
            network=network,
            seed=seed,
            device=device,
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
        )
        config = apply_creative(config, loop=loop)
        paths = [style, *(extra_styles or [])]
        if weights and len(weights) != len(paths):
            raise ConfigError(f"--weight given {len(weights)} times for {len(paths)} styles (STYLE and each --style)")
        styles = list(zip(paths, weights or [1.0] * len(paths)))
        target = output if output is not None else Path.cwd() / f"{style.stem}-texture.wav"
        output_format(target)
        check_output_path(target, protect=paths, overwrite=overwrite)
        check_extra_outputs([plot, report], protect=[*paths, target], overwrite=overwrite)
        with SolverProgress(f"texture of {style.name}", enabled=not quiet) as progress:
            result = audiostyle.stylize(None, styles, config, duration=duration, progress=progress)
        written = result.save(target, overwrite=overwrite)
        if not quiet:
            typer.echo(
                f"wrote {written} ({result.duration:.2f} s, {result.sample_rate} Hz"
                f"{', loops seamlessly' if loop else ''}) in {result.timings['total']:.1f} s; "
                f"final {format_losses(result.history[-1])}"
            )
        write_extras(
            result, content=None, styles=styles, output=written, plot=plot, report=report, duration=duration, quiet=quiet
        )
