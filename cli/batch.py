"""``audiostyle batch``: stylize whole sample libraries with styles or a style model, locally or on a Dask cluster."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .batch_display import BatchDisplay, print_failure, print_plan, print_summary
from .exits import INTERRUPTED_EXIT, TERMINATED_EXIT, USAGE_EXIT, fail, guarded
from .options import ENGINE, OUTPUT, WEIGHTS, Given, shared
from .signals import Terminated

EPILOG = """
Examples:

  audiostyle batch drums/ --style tape.wav -o drums-tape/

  audiostyle batch loops/ one-shots/ -s vinyl.flac -s choir.wav -o out/ --preset fast --workers 2

  audiostyle batch library/ -s rain.ogg -o out/ --pattern '*.wav' --dry-run

  audiostyle batch library/ -s rain.ogg -o /shared/out --executor dask --scheduler tcp://host:8786

  audiostyle batch library/ --model rain.safetensors -o out/      # a model from 'audiostyle train'

A rerun resumes: outputs finished with the same settings (or the same model) are skipped,
failed ones retried, outputs of a model file that was retrained since are made again,
and outputs that a killed run wrote without recording them are made again (with a warning).
Exit status: 0 all jobs succeeded, 1 some failed, 2 usage error, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM). Either way finished outputs are complete and recorded, no partial
files remain, and the same command resumes.
"""


@shared(ENGINE, WEIGHTS, OUTPUT)
def batch_command(
    inputs: Annotated[
        List[Path],
        typer.Argument(help="Audio files and folders to stylize.", show_default=False, metavar="INPUT..."),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Output folder; mirrors the input tree and holds manifest.jsonl.", show_default=False),
    ],
    style: Annotated[
        Optional[List[Path]],
        typer.Option("--style", "-s", help="Style file; repeat for several (outputs go to OUTDIR/<style name>/).", show_default=False),
    ] = None,
    model: Annotated[
        Optional[Path],
        typer.Option(
            "--model",
            "-m",
            help="Apply this style model (from 'audiostyle train') instead of a --style: one fast pass per file; "
            "the model's own settings are used.",
            show_default=False,
        ),
    ] = None,
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
    *,
    given: Given,
) -> None:
    """Stylize every audio file under INPUT... with each --style (or a --model) into OUTDIR, resumably."""
    with guarded(given.debug, given.flags):
        if (model is None) == (not style):
            raise fail("give either --style (one or more) or --model, not both" if model else "missing option '--style' or '--model'", USAGE_EXIT)
        if model is not None:
            _refuse_engine_options(given)
        from audiostyle.batch import MANIFEST_NAME, check_executor, plan_batch, plan_model_batch, run_batch

        check_executor(executor, workers=workers, scheduler=scheduler)
        if executor == "dask" and not given.debug:
            # Dask's own INFO lines (here and in the workers it starts, which inherit the
            # environment) would bury the batch's one line per failure; a user's setting stays.
            os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        found = {"patterns": pattern, "recursive": recursive, "overwrite": given.overwrite, "format": output_format}
        if model is not None:
            jobs = plan_model_batch(inputs, model, output, **found)
        else:
            jobs = plan_batch(inputs, style or [], output, given.config(), **found)
        if dry_run:
            print_plan(jobs, workers, output)
            return
        manifest = output / MANIFEST_NAME
        total_seconds = sum(job.duration or 0.0 for job in jobs if job.skip_reason is None)
        with BatchDisplay(total_seconds, len(jobs), enabled=not given.quiet) as display:
            report = run_batch(
                jobs, executor, print_failure if given.quiet else display, workers=workers, scheduler=scheduler, manifest=manifest
            )
        if not given.quiet:
            print_summary(report, manifest)
        if report.interrupted:
            terminated = isinstance(report.interrupt, Terminated)
            raise fail(
                f"{'terminated' if terminated else 'interrupted'} after {len(report.records)} of {len(jobs)} jobs; "
                "finished outputs are complete, no partial files remain; run the same command again to resume",
                TERMINATED_EXIT if terminated else INTERRUPTED_EXIT,
            )
        if report.failed:
            raise typer.Exit(1)


def _refuse_engine_options(given: Given) -> None:
    """Fail on settings given beside --model: a model applies the settings it was trained with."""
    given_here = [
        given.flags.get(name, name)
        for name, value in given.values.items()
        if name not in ("overwrite", "quiet", "debug") and value is not None and value != _DEFAULTS.get(name)
    ]
    if given_here:
        raise fail(f"{', '.join(given_here)}: not used with --model (a model keeps the settings it was trained with)", USAGE_EXIT)


#: The engine options' defaults, which --model leaves alone.
_DEFAULTS = {"preset": "default", "device": "auto"}
