"""Style models: apply speed as a real-time factor, streaming latency and block cost, stream = offline.

Three measures of one style model (trained here on ``samples/violin.wav`` with the library's
generic contents, ``--train-minutes`` of training, or read with ``--model``), through the
Python API with the model loaded once, on whatever device ``--device`` picks (``auto``, as the
CLI does) and with torch's threads as the CLI leaves them (``audiostyle`` is imported first,
so its thread policy holds):

- **apply**: ``StyleModel.apply`` on 10 s and 60 s stereo clips at 22.05 and 44.1 kHz (the
  shipped voice and drums, one per channel, tiled to length), median of 3 timed runs after an
  untimed warm-up; real-time factor = audio seconds / median seconds (issue 24's target: 100);
- **stream**: ``StyleModel.stream`` at 44.1 and 48 kHz stereo: its algorithmic latency in
  samples and ms (target 100 ms at 44.1 kHz), and for blocks of 10, 20 and 50 ms (as
  ``audiostyle apply --block-ms``) the cost of each ``process`` call over a 10 s clip:
  median, 95th percentile and maximum, and whether it keeps up with real time (95th
  percentile under the block's duration; ``every_block``: the maximum too);
- **difference**: the largest sample difference between ``apply`` (30 s blocks) and the same
  10 s clip at 44.1 kHz streamed in each block size.

    python -m benchmarks.models                               # trains 1 minute first
    python -m benchmarks.models --model rain.safetensors
    python -m benchmarks.models --train-minutes 0.1 --durations 10 --repeats 1

Prints a table and writes benchmarks/results/models.json, with the machine's load average
before and after (on a shared machine, compare runs made under similar load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# torch only through audiostyle: importing it first sets torch's thread policy, as the CLI does.
import audiostyle
from audiostyle import PRESETS, StyleModel, load_audio, train_style_model
from audiostyle.dsp.levels import analysis_gain
from audiostyle.dsp.resample import resample

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SAMPLES = ROOT / "samples"
DEFAULT_STYLE = SAMPLES / "violin.wav"
#: The clip's channels: the shipped voice left, drums right (different material per channel).
CHANNEL_SOURCES = (SAMPLES / "voice.flac", SAMPLES / "drums.wav")
#: Issue 24: apply at least this many times real time; a stream's latency at most this (ms, 44.1 kHz).
TARGET_REAL_TIME = 100.0
TARGET_LATENCY_MS = 100.0
TARGET_LATENCY_RATE = 44100
#: Longest clip a run may ask for (seconds): bounds the memory a typo could take.
MAX_SECONDS = 600.0


def content(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    """``(channels, seconds * rate)`` float32: the shipped voice and drums, tiled to length."""
    length = int(round(seconds * rate))
    rows = []
    for index in range(channels):
        source, source_rate = load_audio(CHANNEL_SOURCES[index % len(CHANNEL_SOURCES)], mono=True)
        wave = resample(source, source_rate, rate)[0]
        rows.append(np.tile(wave, -(-length // wave.size))[:length])
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


def prepare_model(arguments: argparse.Namespace, scratch: Path) -> tuple[StyleModel, dict]:
    """The model under test, loaded once from a file (trained and saved first without ``--model``)."""
    figures: dict = {}
    path = arguments.model
    if path is None:
        config = PRESETS["fast"].replace(device=arguments.device)
        began = time.perf_counter()
        trained = train_style_model(
            DEFAULT_STYLE, (), config, minutes=arguments.train_minutes, max_steps=arguments.train_max_steps, seed=0
        )
        figures.update(trained_here=True, train_seconds=round(time.perf_counter() - began, 2), style=str(DEFAULT_STYLE))
        path = trained.save(scratch / "model.safetensors")
    began = time.perf_counter()
    model = StyleModel.load(path, device=arguments.device)
    figures.update(
        path=str(arguments.model) if arguments.model else None,
        load_seconds=round(time.perf_counter() - began, 3),
        digest=model.digest,
        styles=list(model.style_names),
        device=str(model.device),
        training={k: model.training.get(k) for k in ("steps", "seconds", "clips", "validation_first", "validation_last")},
    )
    return model, figures


def apply_speed(model: StyleModel, durations: list[float], rates: list[int], channels: int, repeats: int) -> list[dict]:
    """Real-time factor of :meth:`StyleModel.apply` for each (duration, rate): median of ``repeats`` runs."""
    model.apply((content(1.0, rates[0], channels), rates[0]))  # warm-up: first calls allocate and pick kernels
    rows = []
    for rate in rates:
        for seconds in durations:
            audio = content(seconds, rate, channels)
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                model.apply((audio, rate))
                times.append(time.perf_counter() - began)
            median = statistics.median(times)
            rows.append({
                "seconds": seconds, "rate": rate, "channels": channels, "runs": [round(t, 4) for t in times],
                "median_seconds": round(median, 4), "real_time_factor": round(seconds / median, 1),
                "meets_target": seconds / median >= TARGET_REAL_TIME,
            })
    return rows


def block_costs(model: StyleModel, audio: np.ndarray, rate: int, block_ms: int) -> list[float]:
    """Seconds of each ``process`` call (and the closing ``flush``) streaming ``audio`` in ``block_ms`` blocks."""
    stream = model.stream(rate, audio.shape[0], input_gain=analysis_gain(audio))
    block = max(1, round(block_ms * rate / 1000))
    costs = []
    for begin in range(0, audio.shape[-1], block):
        began = time.perf_counter()
        stream.process(audio[:, begin : begin + block])
        costs.append(time.perf_counter() - began)
    began = time.perf_counter()
    stream.flush()
    costs.append(time.perf_counter() - began)
    return costs


def streaming(model: StyleModel, rates: list[int], blocks_ms: list[int], seconds: float, channels: int) -> list[dict]:
    """Latency at each rate, and per-block cost at each block size over ``seconds`` of audio."""
    rows = []
    for rate in rates:
        audio = content(seconds, rate, channels)
        latency = model.stream(rate, channels).latency_samples
        for block_ms in blocks_ms:
            costs = np.array(block_costs(model, audio, rate, block_ms)) * 1000
            duration_ms = max(1, round(block_ms * rate / 1000)) * 1000 / rate
            p95 = float(np.percentile(costs, 95))
            rows.append({
                "rate": rate, "channels": channels, "block_ms": block_ms, "blocks": int(costs.size),
                "latency_samples": latency, "latency_ms": round(1000 * latency / rate, 2),
                "latency_with_block_ms": round(1000 * latency / rate + duration_ms, 2),
                "cost_median_ms": round(float(np.median(costs)), 3), "cost_p95_ms": round(p95, 3),
                "cost_max_ms": round(float(costs.max()), 3),
                "real_time_factor": round(1000 * seconds / float(costs.sum()), 1),
                "keeps_up": p95 < duration_ms, "keeps_up_every_block": float(costs.max()) < duration_ms,
                "meets_latency_target": None if rate != TARGET_LATENCY_RATE else 1000 * latency / rate <= TARGET_LATENCY_MS,
            })
    return rows


def stream_difference(model: StyleModel, seconds: float, rate: int, blocks_ms: list[int], channels: int) -> list[dict]:
    """Largest |stream - offline| sample difference on one clip, per block size (``apply(block_seconds=...)``
    streams exactly as ``audiostyle apply --block-ms`` does)."""
    audio = content(seconds, rate, channels)
    offline = model.apply((audio, rate)).audio
    peak = float(np.abs(offline).max())
    rows = []
    for block_ms in blocks_ms:
        streamed = model.apply((audio, rate), block_seconds=block_ms / 1000).audio
        if streamed.shape != offline.shape:
            raise SystemExit(f"stream of {block_ms} ms blocks is {streamed.shape}, offline {offline.shape}")
        difference = float(np.abs(streamed.astype(np.float64) - offline).max())
        rows.append({
            "seconds": seconds, "rate": rate, "channels": channels, "block_ms": block_ms,
            "max_abs_difference": difference, "offline_peak": round(peak, 4),
            "difference_db_below_peak": None if difference == 0 else round(20 * np.log10(peak / difference), 1),
        })
    return rows


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def print_tables(report: dict) -> None:
    model = report["model"]
    print(f"model {model['digest']} ({', '.join(Path(s).name for s in model['styles'])}) on {model['device']}, "
          f"{report['machine']['torch_threads']} torch threads; loaded in {model['load_seconds']:.2f} s"
          + (f"; trained here in {model['train_seconds']:.0f} s" if model.get("trained_here") else ""))
    print(f"\napply (median of {report['repeats']}; target >= {TARGET_REAL_TIME:g}x real time)")
    print(f"{'seconds':>8} {'rate':>6} {'ch':>3} {'median s':>9} {'x real time':>12}")
    for row in report["apply"]:
        print(f"{row['seconds']:>8g} {row['rate']:>6} {row['channels']:>3} {row['median_seconds']:>9.3f} "
              f"{row['real_time_factor']:>12.1f}{'' if row['meets_target'] else '  < target'}")
    print(f"\nstream (latency target <= {TARGET_LATENCY_MS:g} ms at {TARGET_LATENCY_RATE} Hz; block cost in ms)")
    print(f"{'rate':>6} {'block ms':>8} {'latency':>8} {'lat. ms':>8} {'+block':>7} {'median':>7} {'p95':>7} "
          f"{'max':>7} {'x rt':>7}  keeps up (p95 / every block)")
    for row in report["stream"]:
        print(f"{row['rate']:>6} {row['block_ms']:>8} {row['latency_samples']:>8} {row['latency_ms']:>8.1f} "
              f"{row['latency_with_block_ms']:>7.1f} {row['cost_median_ms']:>7.2f} {row['cost_p95_ms']:>7.2f} "
              f"{row['cost_max_ms']:>7.2f} {row['real_time_factor']:>7.1f}  "
              f"{'yes' if row['keeps_up'] else 'NO'} / {'yes' if row['keeps_up_every_block'] else 'no'}")
    print("\nstream vs offline apply")
    for row in report["difference"]:
        below = "identical" if row["difference_db_below_peak"] is None else f"{row['difference_db_below_peak']:.0f} dB below the peak"
        print(f"  {row['seconds']:g} s at {row['rate']} Hz, {row['block_ms']} ms blocks: "
              f"max |difference| {row['max_abs_difference']:.3g} ({below})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a model file to measure (default: train one here)")
    parser.add_argument("--train-minutes", type=float, default=1.0, help="training budget without --model (default 1)")
    parser.add_argument("--train-max-steps", type=int, default=None, help="stop training after this many steps")
    parser.add_argument("--device", default="auto", help="device for the model (default auto, as the CLI)")
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0], help="apply clip lengths (s)")
    parser.add_argument("--rates", type=int, nargs="+", default=[22050, 44100], help="apply sample rates")
    parser.add_argument("--channels", type=int, default=2, choices=(1, 2))
    parser.add_argument("--repeats", type=int, default=3, help="timed apply runs per clip (the median counts)")
    parser.add_argument("--block-ms", type=int, nargs="+", default=[10, 20, 50], help="stream block sizes (ms)")
    parser.add_argument("--stream-rates", type=int, nargs="+", default=[44100, 48000])
    parser.add_argument("--stream-seconds", type=float, default=10.0, help="audio streamed per block size (s)")
    parser.add_argument("--difference-seconds", type=float, default=10.0, help="clip compared stream vs offline (s)")
    parser.add_argument("--difference-rate", type=int, default=44100)
    parser.add_argument("--json", type=Path, default=RESULTS / "models.json", help="where to write the results")
    arguments = parser.parse_args(argv)
    lengths = [*arguments.durations, arguments.stream_seconds, arguments.difference_seconds]
    if not all(0 < s <= MAX_SECONDS for s in lengths):
        parser.error(f"clip lengths must be in (0, {MAX_SECONDS:g}] s")
    if not all(8000 <= r <= 192000 for r in [*arguments.rates, *arguments.stream_rates, arguments.difference_rate]):
        parser.error("rates must be in [8000, 192000] Hz")
    if not 1 <= arguments.repeats <= 20 or not all(1 <= b <= 1000 for b in arguments.block_ms):
        parser.error("--repeats must be in [1, 20] and --block-ms in [1, 1000]")

    import torch  # already loaded by audiostyle, with its thread policy

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="audiostyle-models-bench-") as scratch:
        model, figures = prepare_model(arguments, Path(scratch))
    print("apply ...", file=sys.stderr, flush=True)
    applied = apply_speed(model, arguments.durations, arguments.rates, arguments.channels, arguments.repeats)
    print("stream ...", file=sys.stderr, flush=True)
    streamed = streaming(model, arguments.stream_rates, arguments.block_ms, arguments.stream_seconds, arguments.channels)
    print("stream vs offline ...", file=sys.stderr, flush=True)
    differences = stream_difference(model, arguments.difference_seconds, arguments.difference_rate, arguments.block_ms, arguments.channels)
    report = {
        "model": figures,
        "repeats": arguments.repeats,
        "targets": {"real_time_factor": TARGET_REAL_TIME, "latency_ms": TARGET_LATENCY_MS, "latency_rate": TARGET_LATENCY_RATE},
        "machine": {
            "platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "audiostyle": audiostyle.__version__, "load_average_before": load_before, "load_average_after": load_average(),
        },
        "apply": applied,
        "stream": streamed,
        "difference": differences,
    }
    print_tables(report)
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {arguments.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
