"""What ``audiostyle batch`` shows: the plan of a dry run, the progress bar, the summary table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from .progress import stderr_console

__all__ = ["BatchDisplay", "print_plan", "print_summary", "print_failure"]


def _seconds(value: float) -> str:
    value = max(0.0, value)
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


class BatchDisplay:
    """The overall progress bar (files, audio seconds per second, ETA) and one line per failure."""

    def __init__(self, total_seconds: float, total_jobs: int, *, enabled: bool, console: Console | None = None) -> None:
        from audiostyle.batch import BatchReport

        console = console or stderr_console
        self.enabled = enabled
        self.started = time.perf_counter()
        # At 80 columns the counts and the speed are cut (with an ellipsis) before the bar and the ETA.
        self._progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(bar_width=16),
            TextColumn("ETA", table_column=Column(no_wrap=True)),
            TimeRemainingColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[counts]}  {task.fields[speed]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=console,
            transient=True,
            expand=True,
            disable=not (enabled and console.is_terminal),
        )
        self._total_jobs = total_jobs
        # Progress counts audio seconds so that the ETA weighs long files properly.
        self._task = self._progress.add_task("batch", total=max(total_seconds, 1e-9), counts=self._counts(BatchReport()), speed="")

    def _counts(self, report: Any) -> str:
        return (
            f"{len(report.records)}/{self._total_jobs} files  [green]{len(report.done)} done[/]  "
            f"[red]{len(report.failed)} failed[/]  {len(report.skipped)} skipped"
        )

    def __enter__(self) -> "BatchDisplay":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, record: dict, report: Any) -> None:
        if record["status"] == "failed":
            self._progress.console.print(f"failed: {record['error']}", markup=False, highlight=False, soft_wrap=True)
        elapsed = time.perf_counter() - self.started
        speed = f"{report.audio_seconds / elapsed:.2f} audio-s/s" if elapsed > 0 and report.done else ""
        advance = 0.0 if record["status"] == "skipped" else record.get("duration") or 0.0
        self._progress.update(self._task, advance=advance, counts=self._counts(report), speed=speed)


def print_plan(jobs: list, workers: int, output_dir: Path) -> None:
    """The dry run's report: counts, skips and their reasons, audio to stylize, estimated time."""
    from audiostyle.batch import MANIFEST_NAME, estimate_rate, summarize_plan

    summary = summarize_plan(jobs)
    out = Console()
    renders = f"{summary['models']} model" if summary["models"] else f"{summary['styles']} style(s)"
    out.print(
        f"plan: {summary['inputs']} input files x {renders} = {summary['jobs']} jobs; "
        f"{summary['to_run']} to run, {summary['jobs'] - summary['to_run']} to skip",
        highlight=False,
    )
    for reason, count in summary["skipped"].items():
        out.print(f"  skip {count}: {reason}", highlight=False, markup=False)
    out.print(f"audio to stylize: {_seconds(summary['audio_seconds'])} ({summary['audio_seconds']:.1f} s)", highlight=False)
    if summary["unreadable_headers"]:
        out.print(f"  {summary['unreadable_headers']} file(s) have unreadable headers and will likely fail", highlight=False)
    if summary["to_run"]:
        runnable = [job for job in jobs if job.skip_reason is None]
        rate, source = estimate_rate(runnable, output_dir / MANIFEST_NAME)
        estimate = summary["audio_seconds"] / (rate * min(workers, summary["to_run"]))
        out.print(f"estimated time: {_seconds(estimate)} with {workers} worker(s) ({rate:.2f} audio-s/s per worker, {source})", highlight=False)
    out.print("dry run: nothing was written", highlight=False)


def print_summary(report: Any, manifest: Path) -> None:
    """The table of done, failed and skipped jobs, the failures, and where the manifest is."""
    out = Console()
    table = Table(title="audiostyle batch", show_header=True, header_style="bold")
    for column in ("done", "failed", "skipped", "audio", "wall time", "audio-s/s"):
        table.add_column(column, justify="right")
    speed = report.audio_seconds / report.elapsed if report.elapsed > 0 else 0.0
    table.add_row(
        str(len(report.done)),
        str(len(report.failed)),
        str(len(report.skipped)),
        f"{report.audio_seconds:.1f} s",
        _seconds(report.elapsed),
        f"{speed:.2f}",
    )
    out.print(table)
    if report.failed:
        failures = Table(title="failed", show_header=True, header_style="bold")
        failures.add_column("input", overflow="fold")
        failures.add_column("error", overflow="fold")
        for record in report.failed:
            failures.add_row(record["input"], record["error"])
        out.print(failures)
    out.print(f"manifest: {manifest}", highlight=False, markup=False)




def print_failure(record: dict, report: Any) -> None:
    """The quiet run's only output: one line per failed job."""
    if record["status"] == "failed":
        typer.echo(f"failed: {record['error']}", err=True)
