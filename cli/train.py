"""``audiostyle train STYLE -o MODEL.safetensors``: train a style model once, then apply it to anything fast."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any, List, Mapping

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, Task, TextColumn
from rich.table import Column
from rich.text import Text

from .exits import guarded
from .options import OUTPUT, DeviceOpt, Given, optional, parse_weighted, shared
from .outputs import format_losses
from .progress import stderr_console

EXAMPLES = """
Examples:

  audiostyle train rain.ogg -o rain.safetensors      # a few minutes on 2 cores

  audiostyle train rain.ogg -o rain.safetensors --on library/ --minutes 5

  audiostyle train cello.wav --blend choir.wav:0.5 -o blend.safetensors --preset default

Then: 'audiostyle apply rain.safetensors voice.wav', or
'audiostyle batch library/ --model rain.safetensors -o out/'
"""

#: The presets a model is trained with.
TRAIN_PRESETS = ("fast", "default")
#: Values of the library's progress reports that are not losses.
_NOT_LOSSES = ("eta", "stage", "teacher")
#: The two stages of training as the progress line names them: the per-clip teacher, then the network's fit.
TEACHER, FIT = "teacher", "fit"


@shared(OUTPUT)
def train_command(
    styles: Annotated[
        List[Path],
        typer.Argument(help="The sound(s) whose timbre and texture the model learns; several are blended with weight 1 each.", show_default=False, metavar="STYLE..."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The model file to write (.safetensors; its .json sidecar goes beside it).", show_default=False)
    ],
    blend: optional(List[str], "--blend", help="Blend in another style: FILE or FILE:WEIGHT (repeatable; weights are normalised).") = None,
    on: optional(
        List[Path],
        "--on",
        help="Content to train on: audio files or folders (repeatable), e.g. a sample of the library the model is for.",
    ) = None,
    preset: Annotated[str, typer.Option("--preset", "-p", help="The objective's settings: fast or default.")] = "fast",
    minutes: Annotated[float, typer.Option("--minutes", help="Training time budget in minutes (wall clock).")] = 2.0,
    max_steps: optional(int, "--max-steps", help="Stop after this many training steps at most (default: the time budget alone).") = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the network's initial weights and of the training clips.")] = 0,
    no_generic: Annotated[
        bool, typer.Option("--no-generic", help="Train on --on alone, without the shipped generic clips (speech, instruments, drums).")
    ] = False,
    device: DeviceOpt = "auto",
    *,
    given: Given,
) -> None:
    """Train a style model for STYLE: slow once, then 'audiostyle apply' and 'batch --model' are fast."""
    with guarded(given.debug, given.flags):
        weighted = [*((path, 1.0) for path in styles), *(parse_weighted(text) for text in blend or [])]
        check_model_target(output, inputs=[*(path for path, _ in weighted), *(on or [])], overwrite=given.overwrite)
        check_contents(on or [])
        config = _config(preset).replace(device=device)
        import audiostyle

        names = " + ".join(path.name for path, _ in weighted)
        with TrainingProgress(f"train {names}", enabled=not given.quiet) as progress:
            model = audiostyle.train_style_model(
                weighted,
                on or (),
                config,
                generic=not no_generic,
                minutes=minutes,
                max_steps=max_steps,
                seed=seed,
                progress=progress,
            )
        written = model.save(output, overwrite=given.overwrite)
        if not given.quiet:
            typer.echo(summary(written, model))


def _config(preset: str) -> Any:
    """The preset's settings, one of :data:`TRAIN_PRESETS`."""
    from audiostyle import ConfigError, get_preset

    if preset not in TRAIN_PRESETS:
        raise ConfigError(f"preset={preset!r} must be one of {', '.join(TRAIN_PRESETS)} to train a model", parameters=("preset",))
    return get_preset(preset)


def check_model_target(output: Path, *, inputs: list[Path], overwrite: bool) -> None:
    """Fail now if the model file or its sidecar could not be written.

    Raises
    ------
    ConfigError
        ``output`` does not end in ``.safetensors``.
    AudioFileError
        As :func:`audiostyle.io.check_output_path`, for the model file and its ``.json``.
    """
    from audiostyle import ConfigError
    from audiostyle.io import check_output_path

    if output.suffix.lower() != ".safetensors":
        raise ConfigError(f"{output}: a model is written as .safetensors (its .json sidecar goes beside it)", parameters=("output",))
    for target in (output, output.with_suffix(".json")):
        check_output_path(target, protect=inputs, overwrite=overwrite)


def check_contents(contents: list[Path]) -> None:
    """Fail now on an --on path that does not exist (the library would skip it, minutes later, with a warning).

    Raises
    ------
    AudioFileError
        A path that is neither a file nor a folder.
    """
    from audiostyle import AudioFileError

    for path in contents:
        if not path.exists():
            raise AudioFileError(path, "no such file or folder (given with --on)")


def summary(written: Path, model: Any) -> str:
    """Two lines: the files written with the model's styles, and what training measured."""
    training = model.training
    figures = []
    if _is_number(training.get("steps")):
        figures.append(f"{training['steps']} steps")
    if _is_number(training.get("seconds")):
        figures.append(f"{training['seconds']:.0f} s")
    if _is_number(training.get("validation_last")):
        first = training.get("validation_first")
        before = f"{first:.3g} -> " if _is_number(first) else ""
        figures.append(f"held-out validation loss {before}{training['validation_last']:.3g} (distance to the teacher)")
    styles = ", ".join(Path(name).name for name in model.style_names) or "?"
    return (
        f"wrote {written} and {written.with_suffix('.json')} (style {styles}; digest {model.digest})\n"
        f"trained: {'; '.join(figures) or 'no figures recorded'}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Count(MofNCompleteColumn):
    """``12/300``, or nothing while the teacher works (no step count yet)."""

    def render(self, task: Task) -> Text:
        return super().render(task) if task.total is not None else Text("")


class TrainingProgress:
    """The training line on stderr: stage, bar, steps, the library's ETA, the latest figures.

    Fed by ``progress(step, total, losses)``. While the teacher stylizes excerpts the library
    reports step 0 of 0 with ``losses["teacher"]``, the excerpts done: the bar pulses and the
    count of excerpts shows. Then each training step: ``losses["eta"]`` is the seconds left by
    the library's estimate (it knows the time budget, which the step rate alone does not), and
    ``losses["validation"]`` the held-out figure when it was measured (it stays on the line
    until the next measurement). A no-op when disabled or stderr is no terminal.
    """

    def __init__(self, description: str, *, enabled: bool = True, console: Console | None = None) -> None:
        console = console or stderr_console
        self._progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(max_width=20, no_wrap=True, overflow="ellipsis")),
            TextColumn("{task.fields[stage]:>7}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=16),
            _Count(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[eta]}", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[losses]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=0)),
            console=console,
            transient=True,
            expand=True,
            disable=not (enabled and console.is_terminal),
        )
        self._task = self._progress.add_task(description, total=None, stage="", eta="", losses="")
        self._validation: float | None = None

    def __enter__(self) -> "TrainingProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, step: int, total: int, losses: Mapping[str, Any]) -> None:
        eta = eta_text(losses.get("eta"))
        if total <= 0:
            done = losses.get("teacher")
            figures = f"{done:.0f} excerpts stylized" if _is_number(done) else ""
            self._progress.update(self._task, completed=0, total=None, stage=TEACHER, eta=eta, losses=figures)
            return
        if _is_number(losses.get("validation")):
            self._validation = float(losses["validation"])
        shown = {name: value for name, value in losses.items() if name not in _NOT_LOSSES and name != "validation"}
        if self._validation is not None:
            shown["validation"] = self._validation
        self._progress.update(self._task, completed=step, total=total, stage=FIT, eta=eta, losses=format_losses(shown))


def eta_text(seconds: Any) -> str:
    """``"ETA 0:01:05"`` from a number of seconds; ``""`` when there is none."""
    if not _is_number(seconds) or not 0 <= seconds < float("inf"):
        return ""
    return f"ETA {datetime.timedelta(seconds=round(seconds))}"
