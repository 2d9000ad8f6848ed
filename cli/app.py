"""The ``audiostyle`` command: ``audiostyle CONTENT STYLE`` plus subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

import audiostyle
from audiostyle.audio import check_output_path, output_format

from .common import (
    ContentWeightOpt,
    DebugOpt,
    DeviceOpt,
    FiltersOpt,
    HopLengthOpt,
    IterationsOpt,
    KernelWidthsOpt,
    MaxDurationOpt,
    NetworkOpt,
    NFftOpt,
    OverwriteOpt,
    PresetOpt,
    QuietOpt,
    SampleRateOpt,
    SeedOpt,
    StyleWeightOpt,
    build_config,
    configure_logging,
    default_output_name,
    guarded,
)
from .creative import PlotOpt, ReportOpt, SegmentOpt, StrengthOpt, apply_creative, check_extra_outputs, parse_weighted, write_extras
from .batch import EPILOG as BATCH_EXAMPLES, batch_command
from .plot import plot_command
from .texture import EXAMPLES as TEXTURE_EXAMPLES, texture_command
from .progress import SolverProgress, format_losses
from .serve import serve_command

DEFAULT_COMMAND = "stylize"

EXAMPLES = """
Examples:

  audiostyle voice.wav cello.flac                  # writes ./voice-cello.wav

  audiostyle voice.wav rain.ogg -o out.flac --preset fast

  audiostyle drums.wav pad.wav --iterations 200 --style-weight 300 --seed 7
"""


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument may be a file: then the default command runs.

    ``audiostyle CONTENT STYLE`` stays the main form while subcommands (``batch``,
    ``texture``, ...) live beside it.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=DefaultCommandGroup,
    name="audiostyle",
    help="Neural audio style transfer: re-render CONTENT in the timbre and texture of STYLE.\n\n"
    "Main form: audiostyle CONTENT STYLE [OPTIONS]  (see 'audiostyle stylize --help').",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"audiostyle {audiostyle.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Neural audio style transfer."""


@app.command(DEFAULT_COMMAND, epilog=EXAMPLES)
def stylize_command(
    content: Annotated[Path, typer.Argument(help="The sound to re-render (any format soundfile reads).", show_default=False)],
    style: Annotated[Path, typer.Argument(help="The sound whose timbre and texture to impose.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Output file; the extension picks the format. Default: ./<content>-<style>.<content's ext>.", show_default=False),
    ] = None,
    preset: PresetOpt = "default",
    iterations: IterationsOpt = None,
    content_weight: ContentWeightOpt = None,
    style_weight: StyleWeightOpt = None,
    filters: FiltersOpt = None,
    kernel_widths: KernelWidthsOpt = None,
    network: NetworkOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    sample_rate: SampleRateOpt = None,
    n_fft: NFftOpt = None,
    hop_length: HopLengthOpt = None,
    max_duration: MaxDurationOpt = None,
    blend: Annotated[
        Optional[List[str]],
        typer.Option("--blend", help="Blend in another style: FILE or FILE:WEIGHT (repeatable; STYLE has weight 1; weights are normalised).", show_default=False),
    ] = None,
    strength: StrengthOpt = None,
    segment_seconds: SegmentOpt = None,
    plot: PlotOpt = None,
    report: ReportOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Stylize CONTENT with STYLE and write the result (the default command)."""
    configure_logging(debug)
    with guarded(debug):
        config = build_config(
            preset,
            iterations=iterations,
            content_weight=content_weight,
            style_weight=style_weight,
            filters=filters,
            kernel_widths=kernel_widths,
            network=network,
            seed=seed,
            device=device,
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            max_duration=max_duration,
        )
        config = apply_creative(config, strength=strength, segment_seconds=segment_seconds)
        styles = [(style, 1.0), *(parse_weighted(text) for text in blend or [])]
        target = output if output is not None else default_output_name(content, style)
        # Fail before minutes of work, not after: the output must be writable and new.
        output_format(target)
        inputs = (content, *(path for path, _ in styles))
        check_output_path(target, protect=inputs, overwrite=overwrite)
        check_extra_outputs([plot, report], protect=(*inputs, target), overwrite=overwrite)
        with SolverProgress(f"{content.name} × {style.name}", enabled=not quiet) as progress:
            result = audiostyle.stylize(content, styles if blend else style, config, progress=progress)
        written = result.save(target, overwrite=overwrite)
        if not quiet:
            first, last = result.history[0], result.history[-1]
            typer.echo(
                f"wrote {written} ({result.duration:.2f} s, {result.sample_rate} Hz, "
                f"{result.audio.shape[0]} ch) in {result.timings['total']:.1f} s; "
                f"style {first['style']:.3g} -> {last['style']:.3g}; final {format_losses(last)}"
            )
        write_extras(result, content=content, styles=styles, output=written, plot=plot, report=report, quiet=quiet)


app.command("serve")(serve_command)
app.command("batch", epilog=BATCH_EXAMPLES)(batch_command)
app.command("plot")(plot_command)
app.command("texture", epilog=TEXTURE_EXAMPLES)(texture_command)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="audiostyle")


if __name__ == "__main__":
    main()
