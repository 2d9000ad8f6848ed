"""Batch throughput: files per minute and audio seconds per second for many short clips.

Stylizes N short clips (1-3 s, seeded synthetic one-shots) with one style four ways:

- ``loop``: a shell loop that calls ``audiostyle CONTENT STYLE`` once per file (every call
  imports torch, builds the network and computes the style's statistics again);
- ``batch-1``: ``audiostyle batch`` in one process;
- ``batch-2``: ``audiostyle batch --workers 2``;
- ``dask-2``: ``audiostyle batch --executor dask --workers 2`` (a Dask LocalCluster; skipped
  when distributed is not installed).

    python -m benchmarks.batch                    # 50 clips, --preset fast
    python -m benchmarks.batch --clips 20 --engine-args "--preset fast -n 10"

Prints a table and writes benchmarks/results/batch.json. Every run is timed end to end as a
user would see it, process start included; each must write every clip's output. The issue's
target is batch >= 3x the loop (``TARGET_SPEEDUP``). The machine's load average is recorded
before and after each mode: on a shared machine, compare runs made under similar load.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50, help="number of short clips (default 50)")
    parser.add_argument("--engine-args", default="--preset fast --device cpu",
                        help="options passed to every audiostyle call (default: %(default)s)")
    parser.add_argument("--modes", nargs="+", default=["loop", "batch-1", "batch-2", "dask-2"],
                        choices=["loop", "batch-1", "batch-2", "dask-2"])
    parser.add_argument("--json", type=Path, default=RESULTS / "batch.json", help="where to write the results")
    arguments = parser.parse_args(argv)

    executable = audiostyle_command()
    env = dict(os.environ)
    engine = arguments.engine_args
    rows = []
    with tempfile.TemporaryDirectory(prefix="audiostyle-batch-bench-") as scratch:
        scratch = Path(scratch)
        clips, style = scratch / "clips", scratch / "style.wav"
        audio_seconds = make_clips(clips, arguments.clips)
        make_style(style)
        q = shlex.quote
        outputs = {"loop": scratch / "loop", "batch-1": scratch / "b1", "batch-2": scratch / "b2", "dask-2": scratch / "d2"}
        commands = {
            "loop": (
                f"mkdir -p {q(str(outputs['loop']))} && for f in {q(str(clips))}/*.wav; do "
                f"{executable} \"$f\" {q(str(style))} -o {q(str(outputs['loop']))}/\"$(basename \"$f\")\" {engine} -q || exit 1; done"
            ),
            "batch-1": f"{executable} batch {q(str(clips))} -s {q(str(style))} -o {q(str(outputs['batch-1']))} {engine} -q --workers 1",
            "batch-2": f"{executable} batch {q(str(clips))} -s {q(str(style))} -o {q(str(outputs['batch-2']))} {engine} -q --workers 2",
            "dask-2": f"{executable} batch {q(str(clips))} -s {q(str(style))} -o {q(str(outputs['dask-2']))} {engine} -q --executor dask --workers 2",
        }
        warm_up(executable, env)
        for mode in arguments.modes:
            if mode == "dask-2" and importlib.util.find_spec("distributed") is None:
                print("dask-2: skipped (pip install 'audiostyle[dask]')", file=sys.stderr)
                continue
            print(f"{mode} ...", file=sys.stderr, flush=True)
            load_before = load_average()
            seconds = timed(commands[mode], env)
            written = count_outputs(outputs[mode])
            if written != arguments.clips:
                raise SystemExit(f"{mode}: wrote {written} of {arguments.clips} outputs")
            rows.append({
                "mode": mode,
                "seconds": round(seconds, 2),
                "files_per_minute": round(arguments.clips / seconds * 60, 2),
                "audio_seconds_per_second": round(audio_seconds / seconds, 3),
                "load_average_before": load_before,
                "load_average_after": load_average(),
            })
    loop = next((row["seconds"] for row in rows if row["mode"] == "loop"), None)
    for row in rows:
        row["speedup_vs_loop"] = round(loop / row["seconds"], 2) if loop else None
        if loop and row["mode"] != "loop":
            row["meets_target"] = row["speedup_vs_loop"] >= TARGET_SPEEDUP

    print(f"{arguments.clips} clips, {audio_seconds:.1f} s of audio, engine args: {engine}")
    print(f"{'mode':<8} {'wall s':>8} {'files/min':>10} {'audio-s/s':>10} {'vs loop':>8}  load avg before/after")
    for row in rows:
        speedup = f"{row['speedup_vs_loop']:.2f}x" if row["speedup_vs_loop"] else "-"
        target = {True: "  >= target", False: "  < target"}.get(row.get("meets_target"), "")
        print(f"{row['mode']:<8} {row['seconds']:>8.1f} {row['files_per_minute']:>10.1f} "
              f"{row['audio_seconds_per_second']:>10.3f} {speedup:>8}  "
              f"{_first(row['load_average_before'])} / {_first(row['load_average_after'])}{target}")
    if loop:
        print(f"target: batch >= {TARGET_SPEEDUP:g}x the loop")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps({
        "clips": arguments.clips,
        "audio_seconds": round(audio_seconds, 2),
        "engine_args": engine,
        "target_speedup": TARGET_SPEEDUP,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": load_average()},
        "results": rows,
    }, indent=2) + "\n")
    return 0


def _first(load: list[float] | None) -> str:
    return f"{load[0]:.1f}" if load else "-"


if __name__ == "__main__":
    sys.exit(main())
