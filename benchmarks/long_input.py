"""Peak memory of long inputs: 1, 5 and 10 minutes of content with the fast preset on CPU.

Each duration runs in its own process (so one run's peak cannot hide another's) on the
shipped voice sample (16 kHz) tiled to length, stylized by the violin sample; the process
reports its peak resident set size (``getrusage``), the RSS before stylizing (interpreter,
torch and the input), the time, and the size of the output waveform. Long content is
stylized in ``segment_seconds`` segments end to end: each segment's span is resampled from
the content to the working rate, analysed, solved, reconstructed by Griffin-Lim, resampled
back and overlap-added into one float32 output buffer at the content's rate, and loudness is
matched in place on that buffer. No full-length working-rate waveform, spectrogram or
float64 copy is made (``Result.log_magnitude`` is None for such runs), so the peak is one
segment's work plus the output buffer: what grows with length is that buffer alone (4 bytes
per sample and channel, 3.7 MB a minute here), and the table ends with the growth per minute
of the peak next to that of the output.

Not run in CI (it takes many minutes). Usage::

    nice python -m benchmarks.long_input                 # 1, 5, 10 minutes
    nice python -m benchmarks.long_input --minutes 1 2   # a quick look
    nice python -m benchmarks.long_input --minutes 1 --segment-seconds 15

Prints a table and writes ``benchmarks/results/long_input.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from tests.hostile_inputs import peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "long_input.json"
CONTENT = ROOT / "samples" / "voice.flac"
STYLE = ROOT / "samples" / "violin.wav"


def current_rss_mb() -> float:
    """This process's resident memory now, in MB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def run_one(minutes: float, threads: int, segment_seconds: float | None = None) -> dict:
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
    if segment_seconds is not None:
        config = config.replace(segment_seconds=segment_seconds)
    before = current_rss_mb()
    started = time.perf_counter()
    result = audiostyle.stylize((content, rate), STYLE, config)
    seconds = time.perf_counter() - started
    assert result.audio.shape == content.shape and np.isfinite(result.audio).all()
    return {
        "minutes": minutes,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_stylize_mb": round(before, 1),
        "output_waveform_mb": round(result.audio.nbytes / 2**20, 1),
        "seconds": round(seconds, 1),
        "segment_seconds": config.segment_seconds,
        "final_losses": result.history[-1],
        "spectral_convergence_db": result.metrics["spectral_convergence_db"],
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
    }


def _growth_per_minute(rows: list[dict]) -> dict | None:
    """Least-squares slope (MB a minute) of the peak RSS and of the output size over the runs."""
    if len(rows) < 2:
        return None
    minutes = [row["minutes"] for row in rows]
    mean = sum(minutes) / len(minutes)
    spread = sum((m - mean) ** 2 for m in minutes)
    if spread == 0:
        return None

    def slope(key: str) -> float:
        values = [row[key] for row in rows]
        centre = sum(values) / len(values)
        return round(sum((m - mean) * (v - centre) for m, v in zip(minutes, values)) / spread, 2)

    return {"peak_rss_mb": slope("peak_rss_mb"), "output_waveform_mb": slope("output_waveform_mb")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--segment-seconds", type=float, help="override the preset's segment_seconds")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.threads, args.segment_seconds)))
        return 0
    extra = [] if args.segment_seconds is None else ["--segment-seconds", str(args.segment_seconds)]
    rows = []
    for minutes in args.minutes:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.long_input", "--one", str(minutes), "--threads", str(args.threads), *extra],
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
    growth = _growth_per_minute(rows)
    if growth is not None:
        print(f"peak RSS grows {growth['peak_rss_mb']:.1f} MB a minute; the output waveform {growth['output_waveform_mb']:.1f} MB a minute")
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
                "growth_per_minute_mb": growth,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
