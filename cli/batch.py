"""``audiostyle batch``: stylize whole sample libraries, locally or on a Dask cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from audiostyle.batch import (
    EXECUTORS,
    MANIFEST_NAME,
    BatchReport,
    estimate_rate,
    plan_batch,
    run_batch,
    summarize_plan,
)
from audiostyle.errors import ConfigError

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
    fail,
    guarded,
)
from .progress import stderr_console
from .signals import INTERRUPTED_EXIT, TERMINATED_EXIT, Terminated

EPILOG = """
Examples:

  audiostyle batch drums/ --style tape.wav -o drums-tape/

  audiostyle batch loops/ one-shots/ -s vinyl.flac -s choir.wav -o out/ --preset fast --workers 2

  audiostyle batch library/ -s rain.ogg -o out/ --pattern '*.wav' --dry-run

  audiostyle batch library/ -s rain.ogg -o /shared/out --executor dask --scheduler tcp://host:8786

A rerun resumes: outputs finished with the same settings are skipped, failed ones retried,
and outputs that a killed run wrote without recording them are made again (with a warning).
Exit status: 0 all jobs succeeded, 1 some failed, 2 usage error, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM). Either way finished outputs are complete and recorded, no partial
files remain, and the same command resumes.
"""


def _seconds(value: float) -> str:
    value = max(0.0, value)
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


class BatchDisplay:
    """The overall progress bar (files, audio seconds per second, ETA) and one line per failure."""

    def __init__(self, total_seconds: float, total_jobs: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=stderr_console,
            transient=True,
            disable=not (enabled and stderr_console.is_terminal),
        )
        self._total_jobs = total_jobs
        # Progress counts audio seconds so that the ETA weighs long files properly.
        self._task = self._progress.add_task(
            "batch", total=max(total_seconds, 1e-9), counts=self._counts(BatchReport()), speed=""
        )

    def _counts(self, report: BatchReport) -> str:
        return (
            f"{len(report.records)}/{self._total_jobs} files  [green]{len(report.done)} done[/]  "
            f"[red]{len(report.failed)} failed[/]  {len(report.skipped)} skipped"
        )

    def __enter__(self) -> "BatchDisplay":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, record: dict, report: BatchReport) -> None:
        if record["status"] == "failed":
            self._progress.console.print(f"failed: {record['error']}", markup=False, highlight=False, soft_wrap=True)
        elapsed = time.perf_counter() - self.started
        speed = f"{report.audio_seconds / elapsed:.2f} audio-s/s" if elapsed > 0 and report.done else ""
        advance = 0.0 if record["status"] == "skipped" else record.get("duration") or 0.0
        self._progress.update(self._task, advance=advance, counts=self._counts(report), speed=speed)


def _print_plan(jobs: list, workers: int, output_dir: Path) -> None:
    summary = summarize_plan(jobs)
    out = Console()
    out.print(
        f"plan: {summary['inputs']} input files x {summary['styles']} style(s) = {summary['jobs']} jobs; "
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


def _print_summary(report: BatchReport, manifest: Path) -> None:
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


def batch_command(
    inputs: Annotated[
        List[Path],
        typer.Argument(help="Audio files and folders to stylize.", show_default=False, metavar="INPUT..."),
    ],
    style: Annotated[
        List[Path],
        typer.Option("--style", "-s", help="Style file; repeat for several (outputs go to OUTDIR/<style name>/).", show_default=False),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Output folder; mirrors the input tree and holds manifest.jsonl.", show_default=False),
    ],
    pattern: Annotated[
        Optional[List[str]],
        typer.Option("--pattern", help="File-name pattern in folders, case-insensitive; repeatable. Default: the audio extensions.", show_default=False),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Search sub-folders.")] = True,
    output_format: Annotated[
        Optional[str],
        typer.Option("--format", help="Write every output in this format (wav, flac, ogg, aiff). Default: each input's.", show_default=False),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes (torch threads are divided among them).", min=1)] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (counts, audio duration, estimated time); write nothing.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (this machine) or dask (needs the dask extra: pip install audiostyle\\[dask]).")] = "local",
    scheduler: Annotated[
        Optional[str],
        typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786. Default: a LocalCluster of --workers processes.", show_default=False),
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
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Stylize every audio file under INPUT... with each --style into OUTDIR, resumably."""
    configure_logging(debug)
    with guarded(debug):
        if executor not in EXECUTORS:
            raise ConfigError(f"--executor={executor!r} must be one of {', '.join(EXECUTORS)}")
        if scheduler is not None and executor != "dask":
            raise ConfigError("--scheduler needs --executor dask")
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
        jobs = plan_batch(
            inputs,
            style,
            output,
            config,
            patterns=pattern,
            recursive=recursive,
            overwrite=overwrite,
            format=output_format,
        )
        if dry_run:
            _print_plan(jobs, workers, output)
            return
        manifest = output / MANIFEST_NAME
        total_seconds = sum(job.duration or 0.0 for job in jobs if job.skip_reason is None)
        with BatchDisplay(total_seconds, len(jobs), enabled=not quiet) as display:
            report = run_batch(
                jobs,
                executor,
                display if not quiet else _print_failure,
                workers=workers,
                scheduler=scheduler,
                manifest=manifest,
            )
        if not quiet:
            _print_summary(report, manifest)
        if report.interrupted:
            terminated = isinstance(report.interrupt, Terminated)
            raise fail(
                f"{'terminated' if terminated else 'interrupted'} after {len(report.records)} of {len(jobs)} jobs; "
                "finished outputs are complete, no partial files remain; run the same command again to resume",
                TERMINATED_EXIT if terminated else INTERRUPTED_EXIT,
            )
        if report.failed:
            raise typer.Exit(1)


def _print_failure(record: dict, report: BatchReport) -> None:
    if record["status"] == "failed":
        typer.echo(f"failed: {record['error']}", err=True)
