"""The files a command writes: checked before the work starts, written after, summarised.

Minutes of work must not end in "cannot write": every target is checked first (a file name,
not a folder; in a folder this process can write in; new unless ``--overwrite``; not an
input; for the audio, an extension that names a format).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import typer

__all__ = ["check_targets", "default_output_name", "write_outputs", "summary", "format_losses"]


def check_targets(
    output: Path,
    extras: Sequence[Optional[Path]] = (),
    *,
    inputs: Sequence[Path],
    overwrite: bool,
    source: Optional[Path] = None,
    figure: Optional[Path] = None,
) -> None:
    """Fail now if ``output`` (audio) or one of ``extras`` (figure, report) could not be written.

    ``source`` is the input whose rate and channels the output keeps (the content, or a
    texture's first style): the output's format must hold them. ``figure``, one of
    ``extras``, must name a figure format. No two targets may be one file.

    Raises
    ------
    AudioFileError
        A target is a folder, in a missing or unwritable folder, an input, exists without
        ``overwrite``, or (``output``) has an extension that names no audio format or a
        format that cannot hold ``source``'s rate or channels.
    """
    from audiostyle import AudioFileError
    from audiostyle.io import audio_info, check_encodable, check_output_path, output_format

    # The path first: a folder is reported as a folder, not as a missing extension.
    check_output_path(output, protect=inputs, overwrite=overwrite)
    output_format(output)
    if source is not None:
        info = audio_info(source)
        check_encodable(output, info.sample_rate, info.channels)
    if figure is not None:
        from audiostyle.plots import check_figure_path

        check_figure_path(figure)
    given = [extra for extra in extras if extra is not None]
    for index, extra in enumerate(given):
        if any(os.path.realpath(extra) == os.path.realpath(other) for other in given[:index]):
            raise AudioFileError(extra, "is given for two outputs (a figure and a report); give each its own path")
        check_output_path(extra, protect=(*inputs, output), overwrite=overwrite)


def default_output_name(first: Path, second: Optional[Path] = None, *, tag: str = "") -> Path:
    """``./<first>-<second>.<first's extension>`` (``.wav`` if it is not writable), or ``./<first>-<tag>.wav``."""
    from audiostyle.io import WRITABLE_EXTENSIONS

    if second is None:
        return Path.cwd() / f"{first.stem}-{tag}.wav"
    suffix = first.suffix.lower() if first.suffix.lower() in WRITABLE_EXTENSIONS else ".wav"
    return Path.cwd() / f"{first.stem}-{second.stem}{suffix}"


def write_outputs(
    result: Any,
    output: Path,
    *,
    content: Optional[Path],
    styles: Sequence[tuple[Path, float]],
    plot: Optional[Path] = None,
    report: Optional[Path] = None,
    duration: float | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    note: str = "",
) -> None:
    """Save the audio, then the figure and the JSON report asked for; say what was written."""
    written = [result.save(output, overwrite=overwrite)]
    inputs = ([content] if content is not None else []) + [path for path, _ in styles]
    if plot is not None:
        from audiostyle.plots import plot_result

        written.append(plot_result(result, content, list(styles), plot))
    if report is not None:
        from audiostyle.report import build_report, write_report

        data = build_report(result, content=content, styles=styles, output=written[0], duration=duration)
        written.append(write_report(data, report, protect=inputs))
    if not quiet:
        typer.echo(summary(written[0], result, note=note))
        for path in written[1:]:
            typer.echo(f"wrote {path}")


def format_losses(losses: Mapping[str, Any]) -> str:
    """``"style 0.0194  content 1.2"``: the named losses (not their total, nor a stage name)."""
    return "  ".join(f"{name} {value:.3g}" for name, value in losses.items() if name != "total" and not isinstance(value, str))


def summary(written: Path, result: Any, *, note: str = "") -> str:
    """One line: the file, its length, rate, channels and style view, the time taken, each loss from first to last."""
    first, last = result.history[0], result.history[-1]
    losses = ", ".join(
        f"{name} {first[name]:.3g} -> {value:.3g}" if name in first else f"{name} {value:.3g}"
        for name, value in last.items()
        if name != "total" and not isinstance(value, str)
    )
    channels = result.audio.shape[0]
    view = result.metrics.get("style_view")
    view = f", {view} view" if view else ""
    return (
        f"wrote {written} ({result.duration:.2f} s, {result.sample_rate} Hz, {channels} ch{view}{note}) "
        f"in {result.timings['total']:.1f} s; losses: {losses}"
    )

