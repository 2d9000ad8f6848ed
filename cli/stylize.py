"""``audiostyle CONTENT STYLE``: re-render a sound in the timbre and texture of another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, List, Mapping, Optional

import typer

from .exits import guarded
from .options import CREATIVE, ENGINE, EXTRAS, OUTPUT, WEIGHTS, Given, optional, output_option, parse_weighted, shared
from .outputs import check_targets, default_output_name, write_outputs
from .progress import SolverProgress

EXAMPLES = """
Examples:

  audiostyle voice.wav cello.flac                  # writes ./voice-cello.wav

  audiostyle voice.wav rain.ogg -o out.flac --preset fast

  audiostyle drums.wav pad.wav --iterations 200 --style-weight 300 --seed 7
"""


@shared(ENGINE, WEIGHTS, CREATIVE, EXTRAS, OUTPUT)
def stylize_command(
    content: Annotated[Path, typer.Argument(help="The sound to re-render (any format soundfile reads).", show_default=False)],
    style: Annotated[Path, typer.Argument(help="The sound whose timbre and texture to impose.", show_default=False)],
    output: output_option("./<content>-<style>.<content's ext>") = None,
    blend: optional(
        List[str], "--blend", help="Blend in another style: FILE or FILE:WEIGHT (repeatable; STYLE has weight 1; weights are normalised)."
    ) = None,
    *,
    given: Given,
) -> None:
    """Stylize CONTENT with STYLE and write the result (the default command)."""
    with guarded(given.debug, given.flags):
        config = given.config()
        styles = [(style, 1.0), *(parse_weighted(text) for text in blend or [])]
        target = output if output is not None else default_output_name(content, style)
        extras = {"plot": given.get("plot"), "report": given.get("report")}
        inputs = [content, *(path for path, _ in styles)]
        check_targets(
            target, tuple(extras.values()), inputs=inputs, overwrite=given.overwrite, source=content, figure=extras["plot"]
        )
        import audiostyle

        with SolverProgress(f"{content.name} × {style.name}", enabled=not given.quiet) as progress:
            result = audiostyle.stylize(content, styles if blend else style, config, progress=progress)
        write_outputs(result, target, content=content, styles=styles, overwrite=given.overwrite, quiet=given.quiet, **extras)
        if extras["report"] is not None and not given.quiet:
            scores = json.loads(Path(extras["report"]).read_text(encoding="utf-8"))["scores"]
            typer.echo(scores_line(scores, config.strength))


def scores_line(scores: Mapping[str, Any], strength: float) -> str:
    """``content 0.71 · style 0.48 (strength 0.5)``: the report's two figures (``n/a`` where not measurable)."""
    return f"content {_figure(scores.get('content'))} · style {_figure(scores.get('style'))} (strength {strength:g})"


def _figure(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}"
