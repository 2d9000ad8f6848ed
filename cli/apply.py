"""``audiostyle apply MODEL CONTENT``: re-render a sound with a trained style model, in one pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .exits import guarded
from .options import OUTPUT, Given, MaxDurationOpt, output_option, shared
from .outputs import check_targets, default_output_name

EXAMPLES = """
Examples:

  audiostyle apply rain.safetensors voice.wav      # writes ./voice-rain.wav

  audiostyle apply rain.safetensors voice.wav -o out.flac

  audiostyle apply rain.safetensors voice.wav --block-ms 20   # streamed; prints the latency

  audiostyle apply rain.safetensors voice.wav --colour-match 0   # the network's colour only

Train a model first with 'audiostyle train STYLE -o MODEL.safetensors'.
"""

#: The longest block --block-ms takes, in ms: a block is at most a minute of audio.
MAX_BLOCK_MS = 60_000


@shared(OUTPUT)
def apply_command(
    model: Annotated[Path, typer.Argument(help="A style model (.safetensors, its .json beside it) from 'audiostyle train'.", show_default=False)],
    content: Annotated[Path, typer.Argument(help="The sound to re-render (any format soundfile reads).", show_default=False)],
    output: output_option("./<content>-<model>.<content's ext>") = None,
    block_ms: Annotated[
        Optional[int],
        typer.Option(
            "--block-ms",
            help="Stream the content through the model in blocks of this many ms, as live audio would "
            "arrive, and print the latency; the output is the same.",
            min=1,
            max=MAX_BLOCK_MS,
            show_default=False,
        ),
    ] = None,
    colour_match: Annotated[
        float,
        typer.Option(
            "--colour-match",
            help="How far (0-1, in dB) the output's long-term colour is moved towards the style's; "
            "0 leaves the network's output as it is.",
            min=0.0,
            max=1.0,
        ),
    ] = 0.5,
    max_duration: MaxDurationOpt = None,
    *,
    given: Given,
) -> None:
    """Apply a trained style MODEL to CONTENT and write the result: one pass, no optimisation."""
    with guarded(given.debug, given.flags):
        target = output if output is not None else default_output_name(content, model)
        inputs = [content, model, model.with_suffix(".json")]
        check_targets(target, inputs=inputs, overwrite=given.overwrite, source=content)
        from audiostyle import StyleModel

        loaded = StyleModel.load(model)
        block_seconds = None if block_ms is None else block_ms / 1000
        # apply() feeds the decoded content to model.stream() block by block: with --block-ms
        # the blocks are a live stream's, and the output is the same up to float rounding.
        result = loaded.apply(content, block_seconds=block_seconds, colour_match=colour_match, max_duration=max_duration)
        written = result.save(target, overwrite=given.overwrite)
        if not given.quiet:
            typer.echo(summary(written, result, block_ms=block_ms))


def summary(written: Path, result: Any, *, block_ms: int | None = None) -> str:
    """One line: the file, its length, rate and channels, the time taken and the real-time factor;
    with ``block_ms``, the block size and the stream's latency."""
    seconds = result.timings["total"]
    speed = f", {result.duration / seconds:.0f}x real time" if seconds > 0 else ""
    line = (
        f"wrote {written} ({result.duration:.2f} s, {result.sample_rate} Hz, {result.audio.shape[0]} ch) "
        f"in {seconds:.2f} s{speed}"
    )
    if block_ms is not None:
        latency = result.metrics["latency_samples"]
        line += (
            f"; streamed in {block_ms} ms blocks: latency {1000 * latency / result.sample_rate:.1f} ms "
            f"({latency} samples) plus the block's {block_ms} ms"
        )
    return line
