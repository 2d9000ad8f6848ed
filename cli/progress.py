"""Rich progress display on stderr for the solver's progress callback."""

from __future__ import annotations

from typing import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr_console = Console(stderr=True)


def format_losses(losses: Mapping[str, float]) -> str:
    return "  ".join(f"{name} {value:.3g}" for name, value in losses.items() if name != "total")


class SolverProgress:
    """A progress bar with the current losses and ETA; a no-op when ``enabled`` is False."""

    def __init__(self, description: str, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.description = description
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=stderr_console,
            transient=True,
            # Off when stderr is not a terminal: a redrawn bar only litters logs and pipes.
            disable=not (enabled and stderr_console.is_terminal),
        )
        self._task = None

    def __enter__(self) -> "SolverProgress":
        self._progress.__enter__()
        self._task = self._progress.add_task(self.description, total=None, losses="")
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, step: int, total: int, losses: Mapping[str, float]) -> None:
        self._progress.update(self._task, completed=step, total=total, losses=format_losses(losses))
