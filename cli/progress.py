"""The progress line of a run on stderr, fed by the library's ``progress(step, total, losses)``.

The line is laid out for 80 columns: the name and the losses give way (cut with an
ellipsis) before the bar, the step count and the ETA do. A run has stages: the solver's
steps, then the making of the waveform (Griffin-Lim, then refinement). The library reports
refine steps as ``losses["stage"] == "refine"``; they are counted afresh with their own
ETA. Between the solver's last step and the next report the bar pulses without a count
or an ETA, instead of showing "30/30, ETA 0:00:00" while work goes on.
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, Task, TextColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

from .outputs import format_losses

__all__ = ["SolverProgress", "stderr_console"]

stderr_console = Console(stderr=True)

#: The stage the solver reports in (the library's calls without a ``stage``).
SOLVE = "solve"
#: Shown while nothing reports: from the solver's last step to the next stage or the end.
RECONSTRUCT = "waveform"


class _Count(MofNCompleteColumn):
    """``12/30``, or nothing while a stage has no count."""

    def render(self, task: Task) -> Text:
        return super().render(task) if task.total is not None else Text("")


class _Eta(TimeRemainingColumn):
    """``ETA 0:00:12``, or nothing while a stage has no count."""

    def render(self, task: Task) -> Text:
        return Text("ETA ") + super().render(task) if task.total is not None else Text("")


def progress_columns() -> tuple[Any, ...]:
    """Name, stage, bar, count, ETA, losses: at 80 columns the name and losses are cut first."""
    return (
        TextColumn("[bold]{task.description}", table_column=Column(max_width=20, no_wrap=True, overflow="ellipsis")),
        TextColumn("{task.fields[stage]:>8}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=16),
        _Count(table_column=Column(no_wrap=True)),
        _Eta(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[losses]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=0)),
    )


class SolverProgress:
    """The progress line of one run; a no-op when ``enabled`` is False or stderr is no terminal.

    Each stage keeps its own count and speed (the segmented path alternates between them),
    and only the current stage's line is shown.
    """

    def __init__(self, description: str, *, enabled: bool = True, console: Console | None = None) -> None:
        console = console or stderr_console
        self.description = description
        self._progress = Progress(
            *progress_columns(),
            console=console,
            transient=True,
            expand=True,
            # Off when stderr is not a terminal: a redrawn bar only litters logs and pipes.
            disable=not (enabled and console.is_terminal),
        )
        self._tasks: dict[str, Any] = {}
        self._show(SOLVE, total=None)

    def __enter__(self) -> "SolverProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def _show(self, stage: str, *, total: int | None) -> Any:
        """The task of ``stage`` (made on first use), the only one visible."""
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(self.description, total=total, stage=stage, losses="")
        for name, task in self._tasks.items():
            self._progress.update(task, visible=name == stage)
        return self._tasks[stage]

    def __call__(self, step: int, total: int, losses: Mapping[str, Any]) -> None:
        stage = losses.get("stage")
        stage = stage if isinstance(stage, str) else SOLVE
        count: int | None = total
        if stage == SOLVE and step >= total:
            # The waveform is made next and reports nothing: a pulsing bar, no count, no ETA.
            stage, count = RECONSTRUCT, None
        task = self._show(stage, total=count)
        self._progress.update(task, completed=step if count else 0, total=count, losses=format_losses(losses))
