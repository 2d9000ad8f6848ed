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
user would see it, process start included.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import shutil
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50, help="number of short clips (default 50)")
    parser.add_argument("--engine-args", default="--preset fast --device cpu",
                        help="options passed to every audiostyle call (default: %(default)s)")
    parser.add_argument("--modes", nargs="+", default=["loop", "batch-1", "batch-2", "dask-2"],
                        choices=["loop", "batch-1", "batch-2", "dask-2"])
    parser.add_argument("--json", type=Path, default=RESULTS / "batch.json", help="where to write the results")
    arguments = parser.parse_args(argv)

    executable = shutil.which("audiostyle") or f"{shlex.quote(sys.executable)} -m audiostyle_cli"
    env = dict(os.environ)
    engine = arguments.engine_args
    rows = []
    with tempfile.TemporaryDirectory(prefix="audiostyle-batch-bench-") as scratch:
        scratch = Path(scratch)
        clips, style = scratch / "clips", scratch / "style.wav"
        audio_seconds = make_clips(clips, arguments.clips)
        make_style(style)
        commands = {
            "loop": (
                f"mkdir -p {scratch}/loop && for f in {clips}/*.wav; do "
                f"{executable} \"$f\" {style} -o {scratch}/loop/\"$(basename \"$f\")\" {engine} -q || exit 1; done"
            ),
            "batch-1": f"{executable} batch {clips} -s {style} -o {scratch}/b1 {engine} -q --workers 1",
            "batch-2": f"{executable} batch {clips} -s {style} -o {scratch}/b2 {engine} -q --workers 2",
            "dask-2": f"{executable} batch {clips} -s {style} -o {scratch}/d2 {engine} -q --executor dask --workers 2",
        }
        for mode in arguments.modes:
            if mode == "dask-2" and importlib.util.find_spec("distributed") is None:
                print("dask-2: skipped (pip install 'audiostyle[dask]')", file=sys.stderr)
                continue
            print(f"{mode} ...", file=sys.stderr, flush=True)
            seconds = timed(commands[mode], env)
            rows.append({
                "mode": mode,
                "seconds": round(seconds, 2),
                "files_per_minute": round(arguments.clips / seconds * 60, 2),
                "audio_seconds_per_second": round(audio_seconds / seconds, 3),
            })
    loop = next((row["seconds"] for row in rows if row["mode"] == "loop"), None)
    for row in rows:
        row["speedup_vs_loop"] = round(loop / row["seconds"], 2) if loop else None

    print(f"{arguments.clips} clips, {audio_seconds:.1f} s of audio, engine args: {engine}")
    print(f"{'mode':<8} {'wall s':>8} {'files/min':>10} {'audio-s/s':>10} {'vs loop':>8}")
    for row in rows:
        speedup = f"{row['speedup_vs_loop']:.2f}x" if row["speedup_vs_loop"] else "-"
        print(f"{row['mode']:<8} {row['seconds']:>8.1f} {row['files_per_minute']:>10.1f} "
              f"{row['audio_seconds_per_second']:>10.3f} {speedup:>8}")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps({
        "clips": arguments.clips,
        "audio_seconds": round(audio_seconds, 2),
        "engine_args": engine,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "results": rows,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
