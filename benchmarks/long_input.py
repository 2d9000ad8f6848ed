"""Peak memory of long inputs: 1, 5 and 10 minutes of content with the fast preset on CPU.

Each duration runs in its own process (so one run's peak cannot hide another's) on the
shipped voice sample tiled to length, stylized by the violin sample; the process reports its
peak resident set size (``getrusage``), the RSS before stylizing (interpreter, torch and the
input), the time, and the size of the output waveform. Long content is stylized in
``segment_seconds`` segments end to end (analysis, solver and Griffin-Lim per segment), so
what still grows with length is only the output: the waveforms (input, working-rate output,
resampled and loudness-matched copies) and the joined float32 log-magnitude kept in
``Result.log_magnitude``.

Not run in CI (it takes many minutes). Usage::

    nice python -m benchmarks.long_input                 # 1, 5, 10 minutes
    nice python -m benchmarks.long_input --minutes 1 2   # a quick look

Prints a table and writes ``benchmarks/results/long_input.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "long_input.json"
CONTENT = ROOT / "samples" / "voice.flac"
STYLE = ROOT / "samples" / "violin.wav"


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def run_one(minutes: float, threads: int) -> dict:
    """Stylize ``minutes`` of content in this process and return its measurements."""
    import numpy as np
    import torch

    import audiostyle
    from audiostyle import PRESETS, load_audio

    torch.set_num_threads(threads)
    voice, rate = load_audio(CONTENT, mono=True)
    samples = int(minutes * 60 * rate)
    content = np.resize(voice, (1, samples)).astype(np.float32)
    config = PRESETS["fast"].replace(device="cpu")
    before = _current_rss_mb()
    started = time.perf_counter()
    result = audiostyle.stylize((content, rate), STYLE, config)
    seconds = time.perf_counter() - started
    assert result.audio.shape == content.shape and np.isfinite(result.audio).all()
    return {
        "minutes": minutes,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_stylize_mb": round(before, 1),
        "output_waveform_mb": round(result.audio.nbytes / 2**20, 1),
        "seconds": round(seconds, 1),
        "segment_seconds": config.segment_seconds,
        "final_losses": result.history[-1],
        "spectral_convergence_db": result.metrics["spectral_convergence_db"],
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.threads)))
        return 0
    rows = []
    for minutes in args.minutes:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.long_input", "--one", str(minutes), "--threads", str(args.threads)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(
            f"{row['minutes']:>6g} min  peak RSS {row['peak_rss_mb']:>8.1f} MB  "
            f"(before stylize {row['rss_before_stylize_mb']:.1f} MB, output waveform {row['output_waveform_mb']:.1f} MB)  "
            f"{row['seconds']:>7.1f} s",
            flush=True,
        )
    import torch

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "long_input",
                "preset": "fast",
                "device": "cpu",
                "threads": args.threads,
                "content": CONTENT.name,
                "style": STYLE.name,
                "machine": platform.platform(),
                "torch": torch.__version__,
                "runs": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
