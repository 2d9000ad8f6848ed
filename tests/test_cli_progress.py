"""The progress line at 80 columns: bar, count and ETA stay; the refine stage is counted."""

from __future__ import annotations

import io
import re

from rich.console import Console

from audiostyle_cli.progress import SolverProgress

LOSSES = {"style": 3.76, "content": 0.512, "texture": 0.0123, "envelope": 0.1, "total": 4.4}


def drawn_lines(feed, width: int = 80) -> list[str]:
    """Every line the display drew while ``feed(progress)`` ran, without terminal codes."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    with SolverProgress("a-long-content-name.wav × a-long-style-name.flac", console=console) as progress:
        feed(progress)
        progress._progress.refresh()
    return [line for line in re.split(r"[\r\n]|\x1b\[[0-9;?]*[A-Za-z]", out.getvalue()) if line.strip()]


def last_line(feed, width: int = 80) -> str:
    return drawn_lines(feed, width)[-1]


def test_the_bar_count_and_eta_fit_in_80_columns():
    line = last_line(lambda progress: [progress(step, 30, LOSSES) for step in range(1, 13)])
    assert len(line) <= 80
    assert "━" in line and "12/30" in line and re.search(r"ETA \d+:\d\d:\d\d", line)
    assert "style" in line  # the losses get what room is left


def test_after_the_last_solver_step_the_line_stops_counting():
    # Griffin-Lim runs next and reports nothing: no "30/30 ETA 0:00:00" while work goes on.
    line = last_line(lambda progress: [progress(step, 30, LOSSES) for step in range(1, 31)])
    assert "30/30" not in line and "ETA" not in line and "waveform" in line and "━" in line


def test_refine_steps_are_counted_with_their_own_eta():
    def feed(progress):
        for step in range(1, 31):
            progress(step, 30, LOSSES)
        for step in range(1, 8):
            progress(step, 20, {**LOSSES, "stage": "refine"})

    line = last_line(feed)
    assert "refine" in line and "7/20" in line and re.search(r"ETA \d+:\d\d:\d\d", line) and len(line) <= 80


def test_disabled_display_draws_nothing():
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True)
    with SolverProgress("x", enabled=False, console=console) as progress:
        progress(1, 3, LOSSES)
    assert out.getvalue() == ""


def test_the_batch_bar_and_eta_fit_in_80_columns():
    from audiostyle.batch import BatchReport
    from audiostyle_cli.batch_display import BatchDisplay

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    with BatchDisplay(100.0, 10, enabled=True, console=console) as display:
        report = BatchReport()
        for index in range(3):
            record = {"status": "done", "duration": 10.0, "input": f"in{index}.wav", "output": f"out{index}.wav"}
            report.records.append(record)
            report.done.append(record)
            display(record, report)
        display._progress.refresh()
    line = [line for line in re.split(r"[\r\n]|\x1b\[[0-9;?]*[A-Za-z]", out.getvalue()) if line.strip()][-1]
    assert len(line) <= 80 and "━" in line and re.search(r"ETA \d+:\d\d:\d\d", line) and "3/10 files" in line
