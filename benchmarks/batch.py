"""Batch throughput: files per minute and audio seconds per second for many short clips.

Stylizes N short clips (1-3 s, seeded synthetic one-shots) with one style in up to six ways:

- ``loop``: a shell loop that calls ``audiostyle CONTENT STYLE`` once per file (every call
  imports torch, builds the network and computes the style's statistics again);
- ``batch-1``: ``audiostyle batch`` in one process;
- ``batch-2``: ``audiostyle batch --workers 2``;
- ``dask-2``: ``audiostyle batch --executor dask --workers 2`` (a Dask LocalCluster; skipped
  when distributed is not installed);
- ``model-1``, ``model-2``: ``audiostyle train STYLE --on CLIPS -o MODEL`` (a style model
  trained on the clips themselves), then ``audiostyle batch CLIPS --model MODEL --workers 1|2``.
  Training is part of the figure: the model is trained once per run (timed, process start
  included) and its seconds count in each model mode's total beside the apply seconds.

    python -m benchmarks.batch                    # 50 clips, every mode
    python -m benchmarks.batch --clips 20 --engine-args "--preset fast -n 10"
    python -m benchmarks.batch --clips 200 --modes batch-1 batch-2 model-1 model-2

Each mode is also extrapolated to 1,000 and 10,000 clips: training (model modes) plus N times
the measured seconds per clip at that worker count; the arithmetic is printed. That spreads the
apply run's fixed cost (process start, model load, worker start) over its clips, so it errs
long; the model modes therefore also time the same apply run on one clip and give a second
figure that counts that fixed cost once: train + one-clip run + (N - 1) x the marginal seconds
per clip, (apply - one-clip run) / (clips - 1). A style model's targets (issue 24): 1,000 clips
in at most 3 minutes and 10,000 in at most 8, training included, and the apply run alone at
least 100x real time.

Prints a table and writes benchmarks/results/batch.json. Every run is timed end to end as a
user would see it, process start included; each must write every clip's output. The issue's
target for per-file batch is >= 3x the loop (``TARGET_SPEEDUP``). The machine's load average
is recorded before and after each mode: on a shared machine, compare runs made under similar
load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RATE = 22050
#: Issue #3: batch processing must be at least this much faster than the per-file loop.
TARGET_SPEEDUP = 3.0
MODES = ("loop", "batch-1", "batch-2", "dask-2", "model-1", "model-2")
MODEL_MODES = ("model-1", "model-2")
#: Library sizes each mode is extrapolated to.
EXTRAPOLATE_TO = (1_000, 10_000)
#: Issue 24: seconds a style model may take for a library of this many clips, training included.
MODEL_TARGET_SECONDS = {1_000: 180.0, 10_000: 480.0}
#: Issue 24: the model's apply run alone, audio seconds per wall second.
MODEL_TARGET_REAL_TIME = 100.0


def make_clips(folder: Path, count: int, seed: int = 0) -> float:
    """``count`` one-shots of 1-3 s (decaying harmonic tones with a noise burst); total seconds."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for index in range(count):
        seconds = float(rng.uniform(1.0, 3.0))
        t = np.arange(int(seconds * RATE)) / RATE
        pitch = 55.0 * 2 ** rng.uniform(0, 4)
        tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        burst = rng.standard_normal(t.size) * np.exp(-t * 30)
        wave = (0.25 * tone * np.exp(-t * rng.uniform(1, 4)) + 0.2 * burst).astype(np.float32)
        sf.write(folder / f"clip_{index:03d}.wav", wave, RATE)
        total += seconds
    return total


def make_style(path: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(4 * RATE) / RATE
    grains = rng.standard_normal(t.size) * (0.5 + 0.5 * np.sin(2 * np.pi * 6 * t))
    sf.write(path, (0.15 * grains + 0.1 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), RATE)


def timed(command: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    # Its own process group, so that stopping the benchmark also stops the shell loop's children.
    process = subprocess.Popen(command, shell=True, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate()
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)
        raise
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {command}\n{stderr[-2000:]}")
    return elapsed


def audiostyle_command() -> str:
    """The command line of this environment's ``audiostyle`` (not another one on PATH)."""
    script = Path(sys.executable).with_name("audiostyle")
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m audiostyle_cli"


def warm_up(executable: str, env: dict[str, str]) -> None:
    """Start the command once, untimed, so that the first timed mode does not alone pay for
    reading torch & co. from a cold disk cache."""
    subprocess.run(f"{executable} --version", shell=True, env=env, check=True, stdout=subprocess.DEVNULL)


def count_outputs(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*.wav")) if folder.is_dir() else 0


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def mode_commands(executable: str, clips: Path, style: Path, outputs: dict[str, Path], model: Path, engine: str) -> dict[str, str]:
    """The timed command of each mode (for a model mode, its apply run; training is :func:`train_command`).
    ``outputs`` maps each mode to its output folder."""
    q = shlex.quote
    batch = f"{executable} batch {q(str(clips))}"
    per_file = f"-s {q(str(style))} {engine} -q"
    return {
        "loop": (
            f"mkdir -p {q(str(outputs['loop']))} && for f in {q(str(clips))}/*.wav; do "
            f"{executable} \"$f\" {q(str(style))} -o {q(str(outputs['loop']))}/\"$(basename \"$f\")\" {engine} -q || exit 1; done"
        ),
        "batch-1": f"{batch} {per_file} -o {q(str(outputs['batch-1']))} --workers 1",
        "batch-2": f"{batch} {per_file} -o {q(str(outputs['batch-2']))} --workers 2",
        "dask-2": f"{batch} {per_file} -o {q(str(outputs['dask-2']))} --executor dask --workers 2",
        # A model keeps the settings it was trained with: batch --model takes no engine options.
        "model-1": f"{batch} --model {q(str(model))} -o {q(str(outputs['model-1']))} -q --workers 1",
        "model-2": f"{batch} --model {q(str(model))} -o {q(str(outputs['model-2']))} -q --workers 2",
    }


def train_command(executable: str, clips: Path, style: Path, model: Path, train_args: str, minutes: float | None) -> str:
    """``audiostyle train`` on the clips themselves, as a user would for a library."""
    q = shlex.quote
    budget = "" if minutes is None else f" --minutes {minutes:g}"
    return f"{executable} train {q(str(style))} --on {q(str(clips))} -o {q(str(model))} {train_args}{budget} -q"


def extrapolate(train_seconds: float, apply_seconds: float, clips: int, one_clip_seconds: float | None = None) -> dict[str, dict]:
    """Each size in :data:`EXTRAPOLATE_TO`: training plus N times the measured seconds per clip.

    With ``one_clip_seconds`` (the same apply run on one clip) and more than one clip, also
    ``seconds_fixed_once``: training + the one-clip run + (N - 1) times the marginal seconds
    per clip, which counts the run's fixed cost once instead of N / clips times.
    """
    per_clip = apply_seconds / clips
    figures = {}
    for size in EXTRAPOLATE_TO:
        seconds = train_seconds + size * per_clip
        figure = {
            "seconds": round(seconds, 1),
            "minutes": round(seconds / 60, 2),
            "arithmetic": f"{train_seconds:.1f} + {size} x {per_clip:.4f} = {seconds:.1f} s ({seconds / 60:.2f} min)",
        }
        if one_clip_seconds is not None and clips > 1:
            marginal = max(0.0, (apply_seconds - one_clip_seconds) / (clips - 1))
            fixed_once = train_seconds + one_clip_seconds + (size - 1) * marginal
            figure.update(
                seconds_fixed_once=round(fixed_once, 1),
                arithmetic_fixed_once=(
                    f"{train_seconds:.1f} + {one_clip_seconds:.1f} + {size - 1} x ({apply_seconds:.1f} - {one_clip_seconds:.1f}) "
                    f"/ {clips - 1} = {fixed_once:.1f} s ({fixed_once / 60:.2f} min)"
                ),
            )
        figures[str(size)] = figure
    return figures


def model_targets(row: dict) -> dict[str, bool]:
    """Issue 24's targets for a model mode's row: each library size in time (both extrapolations), and apply speed."""
    met = {}
    for size, limit in MODEL_TARGET_SECONDS.items():
        figure = row["extrapolated"][str(size)]
        met[f"{size}_clips"] = figure["seconds"] <= limit
        if "seconds_fixed_once" in figure:
            met[f"{size}_clips_fixed_once"] = figure["seconds_fixed_once"] <= limit
    met["apply_real_time"] = row["apply_audio_seconds_per_second"] >= MODEL_TARGET_REAL_TIME
    return met


def measure_row(mode: str, seconds: float, *, train_seconds: float, clips: int, audio_seconds: float,
                load_before: list[float] | None, one_clip_seconds: float | None = None) -> dict:
    """One mode's figures: ``seconds`` is the apply run, ``train_seconds`` training (0 for per-file
    modes), ``one_clip_seconds`` the same apply run on one clip (model modes)."""
    total = train_seconds + seconds
    row = {
        "mode": mode,
        "train_seconds": round(train_seconds, 2),
        "apply_seconds": round(seconds, 2),
        "one_clip_seconds": None if one_clip_seconds is None else round(one_clip_seconds, 2),
        "seconds": round(total, 2),
        "files_per_minute": round(clips / total * 60, 2),
        "audio_seconds_per_second": round(audio_seconds / total, 3),
        "apply_files_per_minute": round(clips / seconds * 60, 2),
        "apply_audio_seconds_per_second": round(audio_seconds / seconds, 3),
        "extrapolated": extrapolate(train_seconds, seconds, clips, one_clip_seconds),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if mode in MODEL_MODES:
        row["meets_model_targets"] = model_targets(row)
    return row


def print_table(rows: list[dict], clips: int, audio_seconds: float, engine: str, train: str | None) -> None:
    print(f"{clips} clips, {audio_seconds:.1f} s of audio, engine args: {engine}")
    if train:
        print(f"training: {train}")
    print(f"{'mode':<8} {'train s':>8} {'apply s':>8} {'files/min':>10} {'audio-s/s':>10} "
          f"{'apply a-s/s':>11} {'vs loop':>8}  load avg before/after")
    for row in rows:
        speedup = f"{row['speedup_vs_loop']:.2f}x" if row["speedup_vs_loop"] else "-"
        target = {True: "  >= target", False: "  < target"}.get(row.get("meets_target"), "")
        print(f"{row['mode']:<8} {row['train_seconds']:>8.1f} {row['apply_seconds']:>8.1f} {row['files_per_minute']:>10.1f} "
              f"{row['audio_seconds_per_second']:>10.3f} {row['apply_audio_seconds_per_second']:>11.3f} {speedup:>8}  "
              f"{_first(row['load_average_before'])} / {_first(row['load_average_after'])}{target}")
    if any(row["speedup_vs_loop"] for row in rows):
        print(f"target: batch >= {TARGET_SPEEDUP:g}x the loop")
    print("extrapolated: train s + N x (apply s / clips); fixed cost once: train s + one-clip s + (N - 1) x marginal s per clip")
    for row in rows:
        for size, figure in row["extrapolated"].items():
            limit = MODEL_TARGET_SECONDS.get(int(size)) if row["mode"] in MODEL_MODES else None
            verdict = "" if limit is None else f"  ({'<=' if figure['seconds'] <= limit else '>'} target {limit:g} s)"
            print(f"  {row['mode']:<8} {int(size):>6} clips: {figure['arithmetic']}{verdict}")
            if "arithmetic_fixed_once" in figure:
                verdict = "" if limit is None else f"  ({'<=' if figure['seconds_fixed_once'] <= limit else '>'} target {limit:g} s)"
                print(f"  {'':<8} {'':>6}  fixed cost once: {figure['arithmetic_fixed_once']}{verdict}")
    for row in rows:
        if row["mode"] in MODEL_MODES:
            met = row["apply_audio_seconds_per_second"] >= MODEL_TARGET_REAL_TIME
            print(f"  {row['mode']}: apply {row['apply_audio_seconds_per_second']:.1f}x real time "
                  f"({'>=' if met else '<'} target {MODEL_TARGET_REAL_TIME:g}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50, help="number of short clips (default 50)")
    parser.add_argument("--engine-args", default="--preset fast --device cpu",
                        help="options passed to every per-file audiostyle call (default: %(default)s)")
    parser.add_argument("--train-args", default="--preset fast --device cpu",
                        help="options passed to 'audiostyle train' in the model modes (default: %(default)s)")
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="training budget of the model modes (default: 'audiostyle train's own --minutes)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--json", type=Path, default=RESULTS / "batch.json", help="where to write the results")
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.clips <= 100_000:
        parser.error(f"--clips {arguments.clips} must be in [1, 100000]")

    executable = audiostyle_command()
    env = dict(os.environ)
    engine = arguments.engine_args
    rows: list[dict] = []
    train_seconds: float | None = None
    train = None
    with tempfile.TemporaryDirectory(prefix="audiostyle-batch-bench-") as scratch:
        scratch = Path(scratch)
        clips, style, model = scratch / "clips", scratch / "style.wav", scratch / "model.safetensors"
        audio_seconds = make_clips(clips, arguments.clips)
        make_style(style)
        one_clip = scratch / "one-clip"
        one_clip.mkdir()
        (one_clip / "clip_000.wav").write_bytes((clips / "clip_000.wav").read_bytes())
        outputs = {mode: scratch / mode for mode in MODES}
        commands = mode_commands(executable, clips, style, outputs, model, engine)
        one_clip_commands = mode_commands(executable, one_clip, style, {m: scratch / f"{m}-one" for m in MODES}, model, engine)
        train = train_command(executable, clips, style, model, arguments.train_args, arguments.train_minutes)
        warm_up(executable, env)
        for mode in arguments.modes:
            if mode == "dask-2" and importlib.util.find_spec("distributed") is None:
                print("dask-2: skipped (pip install 'audiostyle[dask]')", file=sys.stderr)
                continue
            load_before = load_average()
            if mode in MODEL_MODES and train_seconds is None:
                print("train ...", file=sys.stderr, flush=True)
                train_seconds = timed(train, env)
            print(f"{mode} ...", file=sys.stderr, flush=True)
            seconds = timed(commands[mode], env)
            written = count_outputs(outputs[mode])
            if written != arguments.clips:
                raise SystemExit(f"{mode}: wrote {written} of {arguments.clips} outputs")
            one_clip_seconds = None
            if mode in MODEL_MODES:
                print(f"{mode} on one clip ...", file=sys.stderr, flush=True)
                one_clip_seconds = timed(one_clip_commands[mode], env)
            rows.append(measure_row(
                mode, seconds, train_seconds=train_seconds if mode in MODEL_MODES else 0.0,
                clips=arguments.clips, audio_seconds=audio_seconds, load_before=load_before,
                one_clip_seconds=one_clip_seconds,
            ))
    loop = next((row["seconds"] for row in rows if row["mode"] == "loop"), None)
    for row in rows:
        row["speedup_vs_loop"] = round(loop / row["seconds"], 2) if loop else None
        if loop and row["mode"] != "loop":
            row["meets_target"] = row["speedup_vs_loop"] >= TARGET_SPEEDUP

    trained = train_seconds is not None
    print_table(rows, arguments.clips, audio_seconds, engine, train if trained else None)
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps({
        "clips": arguments.clips,
        "audio_seconds": round(audio_seconds, 2),
        "engine_args": engine,
        "train_args": arguments.train_args if trained else None,
        "train_minutes": arguments.train_minutes if trained else None,
        "train_seconds": round(train_seconds, 2) if trained else None,
        "target_speedup": TARGET_SPEEDUP,
        "model_targets": {"seconds": {str(k): v for k, v in MODEL_TARGET_SECONDS.items()},
                          "apply_real_time": MODEL_TARGET_REAL_TIME},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": load_average()},
        "results": rows,
    }, indent=2) + "\n")
    return 0


def _first(load: list[float] | None) -> str:
    return f"{load[0]:.1f}" if load else "-"


if __name__ == "__main__":
    sys.exit(main())
