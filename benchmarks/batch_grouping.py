"""Is one batched optimisation of several short clips faster than one optimisation per clip?

For N short one-shots (``benchmarks.batch.make_clips``, cut or padded to one common length
so that every clip has the same frame count and no masking is needed), with one prepared
style, compares

- ``per-clip``: ``audiostyle.stylize(clip, None, config, prepared=prepared)`` for each clip;
- ``group-G``: clips stacked ``G`` at a time into one ``(G, freq, frames)`` log-magnitude and
  optimised together by ``audiostyle.stylize_spectrogram`` (one L-BFGS on the sum
  of the clips' losses), then Griffin-Lim on the group and, when the preset refines, the
  waveform refinement per clip as ``stylize`` does it.

for each preset and torch thread count, and reports seconds per clip (wall and CPU), the
optimisation stage alone, and how each grouped clip's final loss compares with the same
clip optimised alone (L-BFGS on a sum shares one line search and one curvature model, so a
clip's own loss can end higher).

    python -m benchmarks.batch_grouping                         # 8 clips, fast + default
    python -m benchmarks.batch_grouping --presets fast --threads 1 --groups 1 4

Prints a table and writes benchmarks/results/batch_grouping.json. CPU seconds are the
process's (all threads); with one thread they are a fair measure on a busy machine, where
wall seconds are not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf
import torch

from audiostyle.config import PRESETS, StyleConfig
from audiostyle.dsp.levels import normalise_level
from audiostyle.dsp.phase import griffin_lim
from audiostyle.dsp.resample import resample
from audiostyle.dsp.stft import analyze
from audiostyle.io import load_audio
from audiostyle.objective import ContentTargets, LoudnessContour, Objective
from audiostyle.pipeline import (
    PreparedStyle,
    prepare_style,
    stylize,
    stylize_spectrogram,
)
from audiostyle.pipeline import solver_settings as transfer_settings
from audiostyle.pipeline.waveform import refine_waveform
from benchmarks.batch import RATE, make_clips, make_style

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Clip:
    """One clip at the working rate and level, with its spectrogram."""

    path: Path
    waveform: np.ndarray
    log_magnitude: torch.Tensor
    phase: torch.Tensor


@dataclass
class Timing:
    """Seconds spent, wall and CPU, and per-clip final losses."""

    wall: float = 0.0
    cpu: float = 0.0
    optimize_wall: float = 0.0
    optimize_cpu: float = 0.0
    totals: list[float] | None = None


class _Clock:
    """Wall and process CPU time since start, accumulated into a Timing field pair."""

    def __enter__(self) -> "_Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def equal_length_clips(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` one-shots from ``make_clips``, each cut or zero-padded to ``seconds``."""
    make_clips(folder / "raw", count)
    length = int(seconds * RATE)
    paths = []
    for raw in sorted((folder / "raw").glob("*.wav")):
        audio, rate = sf.read(raw, dtype="float32")
        audio = np.pad(audio[:length], (0, max(0, length - audio.size)))
        path = folder / raw.name
        sf.write(path, audio, rate)
        paths.append(path)
    return paths


def load_clip(path: Path, config: StyleConfig) -> Clip:
    """As ``stylize`` sees a content file: working rate, -20 dBFS RMS, analysed."""
    audio, rate = load_audio(path)
    working = resample(audio, rate, config.sample_rate)
    working = normalise_level(working)
    spec = analyze(working, config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length, device="cpu")
    return Clip(path, working, spec.log_magnitude, spec.phase)


def solver_settings(config: StyleConfig, prepared: PreparedStyle) -> dict[str, Any]:
    """``stylize_spectrogram`` keyword arguments as ``stylize`` passes them for content."""
    return transfer_settings(config, prepared.texture, content=True)


def clip_objective(clip: Clip, config: StyleConfig, prepared: PreparedStyle) -> Objective:
    """The objective of one clip alone (its own content targets, scales and loudness contour)."""
    settings = solver_settings(config, prepared)
    return Objective(
        prepared.network,
        prepared.statistics,
        ContentTargets.from_log_magnitude(prepared.network, clip.log_magnitude),
        content_weight=settings["content_weight"],
        style_weight=settings["style_weight"],
        texture=prepared.texture,
        texture_weight=config.texture_weight,
        envelope=LoudnessContour.from_log_magnitude(clip.log_magnitude) if settings["envelope_weight"] > 0 else None,
        envelope_weight=settings["envelope_weight"],
    )


@torch.no_grad()
def clip_loss(solution: torch.Tensor, clip: Clip, config: StyleConfig, prepared: PreparedStyle) -> float:
    """The weighted total loss of one clip's optimised log-magnitude under its own objective."""
    total, _ = clip_objective(clip, config, prepared)(solution)
    return float(total)


def run_per_clip(paths: list[Path], config: StyleConfig, prepared: PreparedStyle) -> Timing:
    """(a): ``stylize`` once per clip, sharing the prepared style."""
    timing = Timing(totals=[])
    for path in paths:
        with _Clock() as clock:
            result = stylize(path, None, config, prepared=prepared)
        timing.wall += clock.wall
        timing.cpu += clock.cpu
        timing.optimize_wall += result.timings["optimize"]
        timing.totals.append(clip_loss(result.log_magnitude, load_clip(path, config), config, prepared))
    # stylize does not report the optimisation's CPU time: scale its wall share.
    timing.optimize_cpu = timing.cpu * timing.optimize_wall / max(timing.wall, 1e-9)
    return timing


def groups_of(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def finish_group(clips: list[Clip], solution: torch.Tensor, config: StyleConfig, prepared: PreparedStyle) -> None:
    """Griffin-Lim on the whole group, then refinement and output level per clip."""
    reconstruction = dict(n_iter=config.griffin_lim_iters, momentum=config.momentum, seed=config.seed)
    magnitude = torch.expm1(solution).clamp_min(0)
    phase = torch.cat([clip.phase for clip in clips]) if config.phase_init == "content" else None
    length = clips[0].waveform.shape[-1]
    waves = griffin_lim(
        magnitude, n_fft=config.n_fft, hop_length=config.hop_length, length=length, init_phase=phase, **reconstruction
    )
    for index, clip in enumerate(clips):
        wave = waves[index : index + 1]
        if config.refine_steps > 0:
            objective = clip_objective(clip, config, prepared)
            wave = refine_waveform(
                wave, objective, n_fft=config.n_fft, hop_length=config.hop_length, steps=config.refine_steps,
                history_size=config.history_size,
            ).solution
        audio = resample(wave.detach().numpy(), config.sample_rate, RATE)
        peak = float(np.max(np.abs(audio)))
        assert np.isfinite(audio).all() and peak > 0


def run_grouped(paths: list[Path], size: int, config: StyleConfig, prepared: PreparedStyle) -> Timing:
    """(b): ``size`` clips per ``stylize_spectrogram`` call (equal frame counts, so no masks)."""
    timing = Timing(totals=[])
    settings = solver_settings(config, prepared)
    for group in groups_of(paths, size):
        with _Clock() as total:
            clips = [load_clip(path, config) for path in group]
            stacked = torch.cat([clip.log_magnitude for clip in clips])
            with _Clock() as solve:
                solved = stylize_spectrogram(stacked, prepared.statistics, prepared.network, **settings)
            finish_group(clips, solved.solution, config, prepared)
        timing.wall += total.wall
        timing.cpu += total.cpu
        timing.optimize_wall += solve.wall
        timing.optimize_cpu += solve.cpu
        timing.totals.extend(
            clip_loss(solved.solution[i : i + 1], clip, config, prepared) for i, clip in enumerate(clips)
        )
    return timing


def measure(
    paths: list[Path], style: Path, preset: str, threads: int, groups: list[int], log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Rows for one preset and thread count: the per-clip baseline, then each group size."""
    torch.set_num_threads(threads)
    config = PRESETS[preset].replace(device="cpu")
    prepared = prepare_style(style, config)
    # One-off costs (allocator, lazy imports, kernels' first calls) are not what is compared.
    stylize(paths[0], None, config, prepared=prepared)
    log(f"{preset}, {threads} thread(s): per-clip ...")
    baseline = run_per_clip(paths, config, prepared)
    rows = [_row(preset, threads, "per-clip", 1, baseline, baseline, len(paths))]
    for size in groups:
        log(f"{preset}, {threads} thread(s): group-{size} ...")
        grouped = run_grouped(paths, size, config, prepared)
        rows.append(_row(preset, threads, f"group-{size}", size, grouped, baseline, len(paths)))
    return rows


def _row(preset: str, threads: int, mode: str, size: int, timing: Timing, baseline: Timing, count: int) -> dict[str, Any]:
    ratios = [mine / alone for mine, alone in zip(timing.totals, baseline.totals)]
    return {
        "preset": preset,
        "threads": threads,
        "mode": mode,
        "group_size": size,
        "seconds_per_clip": round(timing.wall / count, 3),
        "cpu_seconds_per_clip": round(timing.cpu / count, 3),
        "optimize_seconds_per_clip": round(timing.optimize_wall / count, 3),
        "optimize_cpu_seconds_per_clip": round(timing.optimize_cpu / count, 3),
        "speedup_wall": round(baseline.wall / timing.wall, 2),
        "speedup_cpu": round(baseline.cpu / timing.cpu, 2),
        "loss_ratio_median": round(median(ratios), 3),
        "loss_ratio_max": round(max(ratios), 3),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'preset':<8} {'thr':>3} {'mode':<9} {'s/clip':>7} {'cpu s/clip':>10} {'opt s/clip':>10} "
        f"{'x wall':>7} {'x cpu':>6} {'loss/alone med':>14} {'max':>6}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['preset']:<8} {row['threads']:>3} {row['mode']:<9} {row['seconds_per_clip']:>7.2f} "
            f"{row['cpu_seconds_per_clip']:>10.2f} {row['optimize_seconds_per_clip']:>10.2f} "
            f"{row['speedup_wall']:>6.2f}x {row['speedup_cpu']:>5.2f}x "
            f"{row['loss_ratio_median']:>14.3f} {row['loss_ratio_max']:>6.3f}"
        )


def merge_results(
    path: Path | None, run: dict[str, Any], rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """This run's rows, after those of an earlier file for other presets or thread counts."""
    if path is None or not path.is_file():
        return [run], rows
    earlier = json.loads(path.read_text())
    measured = {(row["preset"], row["threads"]) for row in rows}
    kept = [row for row in earlier.get("results", []) if (row["preset"], row["threads"]) not in measured]
    return [*earlier.get("runs", []), run], kept + rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_grouping", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="number of clips (default 8)")
    parser.add_argument("--seconds", type=float, default=2.0, help="common clip length in seconds (default 2)")
    parser.add_argument("--presets", nargs="+", default=["fast", "default"], choices=sorted(PRESETS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--groups", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--json", type=Path, default=RESULTS / "batch_grouping.json", help="where to write the results")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of other presets/thread counts already in --json (measure in parts)")
    arguments = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="audiostyle-grouping-") as scratch:
        scratch = Path(scratch)
        paths = equal_length_clips(scratch / "clips", arguments.clips, arguments.seconds)
        style = scratch / "style.wav"
        make_style(style)
        for preset in arguments.presets:
            for threads in arguments.threads:
                rows.extend(measure(paths, style, preset, threads, arguments.groups, log))

    run = {
        "clips": arguments.clips,
        "clip_seconds": arguments.seconds,
        "presets": arguments.presets,
        "threads": arguments.threads,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
    }
    runs, rows = merge_results(arguments.json if arguments.append else None, run, rows)
    print(f"{arguments.clips} clips of {arguments.seconds:g} s (equal frame counts), CPU, torch {torch.__version__}")
    print_table(rows)
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps({"runs": runs, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
