"""``audiostyle texture STYLE``: a new sound of any length with the style's statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List

import typer

from .exits import guarded
from .options import ENGINE, EXTRAS, OUTPUT, Given, optional, output_option, parse_weighted, shared
from .outputs import check_targets, default_output_name, write_outputs
from .progress import SolverProgress

EXAMPLES = """
Examples:

  audiostyle texture rain.ogg -d 30 -o rain-30s.wav

  audiostyle texture drums.wav -d 8 --loop -o drum-loop.wav      # tiles without a click

  audiostyle texture rain.ogg --style violin.wav --weight 0.7 --weight 0.3 -d 10 -o blend.wav
"""


@shared(ENGINE, EXTRAS, OUTPUT)
def texture_command(
    style: Annotated[Path, typer.Argument(help="The sound whose statistics the texture has.", show_default=False)],
    duration: optional(float, "--duration", "-d", help="Length in seconds (default: the style's length).") = None,
    output: output_option("./<style>-texture.wav") = None,
    extra_styles: optional(List[str], "--style", help="Another style to blend in: FILE or FILE:WEIGHT (repeatable).") = None,
    style_weights: optional(List[float], "--weight", help="Blend weights, one per style in order (STYLE first, then each --style); normalised to sum to 1.") = None,
    loop: Annotated[bool, typer.Option("--loop", help="Make the result loop seamlessly (no click when tiled end to end).")] = False,
    *,
    given: Given,
) -> None:
    """Synthesise a texture: a new sound of any length with STYLE's statistics."""
    with guarded(given.debug, given.flags):
        config = given.config(loop=loop)
        styles = [(style, 1.0), *(parse_weighted(text) for text in extra_styles or [])]
        target = output if output is not None else default_output_name(style, tag="texture")
        extras = {"plot": given.get("plot"), "report": given.get("report")}
        check_targets(
            target, tuple(extras.values()), inputs=[path for path, _ in styles], overwrite=given.overwrite,
            source=style, figure=extras["plot"],
        )
        import audiostyle

        with SolverProgress(f"texture of {style.name}", enabled=not given.quiet) as progress:
            result = audiostyle.stylize(
                None, styles, config, style_weights=style_weights or None, duration=duration, progress=progress
            )
        if style_weights:
            styles = [(path, weight) for (path, _), weight in zip(styles, style_weights, strict=True)]
        note = ", loops seamlessly" if loop else ""
        write_outputs(
            result, target, content=None, styles=styles, duration=duration, overwrite=given.overwrite, quiet=given.quiet, note=note, **extras
        )
