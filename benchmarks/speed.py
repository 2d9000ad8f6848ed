"""Speed and memory per preset: end-to-end seconds, seconds and GFLOP/s per loss evaluation
against the machine's measured GEMM peak, peak RSS, Griffin-Lim spectral convergence.

Each (preset, duration) runs in its own subprocess so that peak RSS is that run's alone.
Every preset runs to its own end: classic's 300 L-BFGS iterations usually stop earlier, when
the line search finds no more descent, so extrapolating a capped run (``--classic-iterations``,
for long clips) overstates its time and is marked as an upper bound.

The GEMM peak is the best *sustained* float32 matrix-product rate (each shape repeated for a
quarter second), measured right before and right after each run: on shared VMs single products
burst 20-30 % above what the machine sustains for seconds, and the rate drifts by as much from
minute to minute. The loop's share of it is measured two ways: the run's GFLOP/s against the
better of the two peaks around it, and interleaved, alternating short bursts of the run's own
solver with peak measurements (median of the rounds), which cancels the drift. Each round also
times the evaluations' own matrix products alone, same shapes and layouts: the share the loop
would reach if nothing but its products took time, i.e. its ceiling on this machine.

    python -m benchmarks.speed                       # classic + default + fast, 10 s clip
    python -m benchmarks.speed --durations 10 60 --presets default fast

Prints a table and writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CONTENT = ROOT / "samples" / "voice.flac"
DEFAULT_STYLE = ROOT / "samples" / "violin.wav"


#: (m, k, n) products timed for the GEMM peak: squares, and the tall-skinny shape of a loss
#: evaluation (10 s of frames x frequency bins x filters).
PEAK_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (431, 1025, 2048))


def gemm_peak_gflops(seconds_per_shape: float = 0.25) -> float:
    """Best sustained float32 matrix-product rate over :data:`PEAK_SHAPES`, torch's threads.

    Each shape is repeated back to back for ``seconds_per_shape`` (after a warm-up product)
    and its rate is the total work over the total time, so a momentary burst does not count.
    """
    import torch

    best_rate = 0.0
    for m, k, n in PEAK_SHAPES:
        a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        torch.mm(a, b, out=out)  # warm up the BLAS
        products, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds_per_shape:
            torch.mm(a, b, out=out)
            products += 1
        best_rate = max(best_rate, 2 * m * k * n * products / elapsed / 1e9)
    return best_rate


def evaluation_gemms(objective, start) -> list[tuple]:
    """The matrix products of one loss-and-gradient evaluation, as fresh operands of the same
    shapes and memory layouts (a transposed operand stays transposed), ready to be timed alone."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    def like(t):
        # Same shape and the same layout: column-major operands are made as a transposed copy.
        return torch.randn(t.shape[::-1]).T if t.dim() == 2 and t.stride(0) == 1 and t.shape[1] > 1 else torch.randn(t.shape)

    products = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            packet = getattr(func, "overloadpacket", None)
            if packet in (torch.ops.aten.mm, torch.ops.aten.addmm):
                a, b = (args[0], args[1]) if packet is torch.ops.aten.mm else (args[1], args[2])
                products.append((like(a), like(b), torch.empty(a.shape[0], b.shape[1])))
            elif packet is torch.ops.aten.bmm:
                for a, b in zip(args[0], args[1]):
                    products.append((like(a), like(b), torch.empty(a.shape[0], b.shape[1])))
            return func(*args, **(kwargs or {}))

    x = start.clone().requires_grad_(True)
    with Record():
        objective(x)[0].backward()
    return products


def interleaved_loop_share(
    objective, start, flops_per_evaluation: float, *, history_size: int, rounds: int = 5, iterations: int = 8
) -> dict:
    """The solver loop's GFLOP/s over the GEMM peak measured around it, round by round.

    Each round measures the peak, runs ``iterations`` solver steps from ``start`` on
    ``objective`` (the run's own solver, loss and shapes), times the same evaluations'
    matrix products alone (the share the loop could reach with nothing but its products:
    its ceiling), and measures the peak again; shares are over the better of the two peaks.
    Returns the medians and each round.
    """
    import torch

    from audiostyle.solver import optimize

    gemms = evaluation_gemms(objective, start)
    gemm_flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in gemms)
    optimize(start, objective, iterations=2, tolerance=0.0, history_size=history_size)  # warm up
    shares, rates, ceilings = [], [], []
    for _ in range(rounds):
        before = gemm_peak_gflops()
        began = time.perf_counter()
        solved = optimize(start, objective, iterations=iterations, tolerance=0.0, history_size=history_size)
        rate = flops_per_evaluation * solved.evaluations / (time.perf_counter() - began) / 1e9
        began = time.perf_counter()
        for _ in range(solved.evaluations):
            for a, b, out in gemms:
                torch.mm(a, b, out=out)
        gemm_rate = gemm_flops * solved.evaluations / (time.perf_counter() - began) / 1e9
        after = gemm_peak_gflops()
        rates.append(rate)
        shares.append(rate / max(before, after))
        ceilings.append(gemm_rate / max(before, after))
    return {
        "median_share": statistics.median(shares),
        "median_gemms_alone_share": statistics.median(ceilings),
        "shares": shares,
        "gemms_alone_shares": ceilings,
        "loop_gflops": rates,
        "gemms_per_evaluation": len(gemms),
    }


@contextlib.contextmanager
def recorded_solves():
    """Record ``(frames, evaluations)`` of every spectrogram solve that ``stylize`` runs inside.

    One per segment for content longer than a segment. It wraps the solver that
    :func:`audiostyle.pipeline.solve.stylize_spectrogram` calls (the refinement's is not wrapped).
    """
    from audiostyle.pipeline import solve as transfer

    solves: list[tuple[int, int]] = []
    solve = transfer.optimize

    def recording(initial, loss_function, **kwargs):
        solved = solve(initial, loss_function, **kwargs)
        solves.append((int(initial.shape[-1]), solved.evaluations))
        return solved

    transfer.optimize = recording
    try:
        yield solves
    finally:
        transfer.optimize = solve


def tile_to(audio, samples: int):
    import numpy as np

    reps = -(-samples // audio.shape[-1])
    return np.tile(audio, (1, reps))[:, :samples]


def measure_one(
    preset: str, seconds: float, content: Path, style: Path, device: str, iterations: int | None = None
) -> dict:
    """Run inside the child process: one stylize() with timing and FLOP counting."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from audiostyle import PRESETS, load_audio, prepare_style, stylize
    from audiostyle.dsp.stft import analyze
    from audiostyle.objective import ContentTargets, LoudnessContour, Objective
    from audiostyle.pipeline import solver_settings

    from .long_input import current_rss_mb
    from .long_input import peak_rss_mb as peak_rss

    config = PRESETS[preset].replace(device=device)
    full_iterations = config.iterations
    if iterations is not None:
        config = config.replace(iterations=min(iterations, config.iterations))
    rate = config.sample_rate
    content_audio = tile_to(load_audio(content, rate, mono=True)[0], int(seconds * rate))
    style_audio = load_audio(style, rate, mono=True)[0]

    rss_before_mb = current_rss_mb()  # interpreter, torch and the two clips
    with recorded_solves() as solves:
        start = time.perf_counter()
        result = stylize((content_audio, rate), (style_audio, rate), config)
        total = time.perf_counter() - start
    # Peak RSS of the run itself, read before the FLOP count below builds a second network.
    peak_rss_mb = peak_rss()  # VmHWM: a child's ru_maxrss would include its parent's RSS

    # FLOPs of one loss-and-gradient evaluation, counted by torch on the same shapes, for each
    # solve: content longer than a segment is solved segment by segment, and the last segment
    # is shorter (at 60 s the last of three is about a quarter as long as the others; counting
    # it as a full one overstated the loop's GFLOP/s by about a third). The network and style
    # statistics are built as the run builds them.
    prepared = prepare_style((style_audio, rate), config)
    settings = solver_settings(config, prepared.texture, content=True)
    whole = analyze(content_audio, rate, n_fft=config.n_fft, hop_length=config.hop_length).log_magnitude

    def objective_for(frames: int) -> tuple:
        c = whole[..., :frames].contiguous()
        objective = Objective(
            prepared.network, prepared.statistics, ContentTargets.from_log_magnitude(prepared.network, c),
            content_weight=settings["content_weight"], style_weight=settings["style_weight"],
            texture=prepared.texture, texture_weight=settings["texture_weight"],
            envelope=LoudnessContour.from_log_magnitude(c) if settings["envelope_weight"] > 0 else None,
            envelope_weight=settings["envelope_weight"],
        )
        x = c.clone().requires_grad_(True)
        with FlopCounterMode(display=False) as counter:
            objective(x)[0].backward()
        return objective, c, counter.get_total_flops()

    counted = {frames: objective_for(frames) for frames in dict.fromkeys(frames for frames, _ in solves)}
    flops_by_frames = {frames: flops for frames, (_, _, flops) in counted.items()}
    solve_flops = sum(flops_by_frames[frames] * count for frames, count in solves)
    evaluations = max(result.metrics["evaluations"], 1)
    # The interleaved share runs the first solve's objective (a full segment when there are several).
    objective, c, first_flops = counted[solves[0][0]]
    del counted
    share = interleaved_loop_share(objective, c, first_flops, history_size=config.history_size)
    per_evaluation = result.timings["optimize"] / evaluations
    per_iteration = result.timings["optimize"] / max(result.metrics["iterations"], 1)
    capped = config.iterations < full_iterations and result.metrics["stopped"] == "iterations"
    return {
        # A capped run (--classic-iterations) is extrapolated to the preset's full count at
        # the measured seconds per iteration; the row says so. That is an upper bound: an
        # uncapped L-BFGS often stops before its last iteration.
        "extrapolated": capped,
        "end_to_end_s_full": total + (full_iterations - config.iterations) * per_iteration if capped else total,
        "preset": preset,
        "seconds_of_audio": seconds,
        "end_to_end_s": total,
        "stage_s": result.timings,
        "evaluations": evaluations,
        "iterations": result.metrics["iterations"],
        "s_per_evaluation": per_evaluation,
        # Over every solve (segment); the interleaved share's is the first solve's alone.
        "gflop_per_evaluation": solve_flops / evaluations / 1e9,
        "solves": [{"frames": frames, "evaluations": count, "gflop_per_evaluation": flops_by_frames[frames] / 1e9}
                   for frames, count in solves],
        "loop_gflops": solve_flops / result.timings["optimize"] / 1e9,
        "spectral_convergence_db": result.metrics["spectral_convergence_db"],
        "refined_spectral_convergence_db": result.metrics["refined_spectral_convergence_db"],
        "final_losses": result.history[-1],
        "peak_rss_mb": peak_rss_mb,
        "rss_before_run_mb": rss_before_mb,
        # What the run itself added on top of the interpreter, torch and the inputs.
        "run_peak_mb": peak_rss_mb - rss_before_mb,
        "interleaved_share_of_gemm_peak": share["median_share"],
        # The same evaluations' products alone: what the loop could reach with no other work.
        "gemms_alone_share_of_gemm_peak": share["median_gemms_alone_share"],
        "interleaved_rounds": share,
        "torch_threads": torch.get_num_threads(),
        # Measured right after the run (and after its RSS was read), in the same process.
        "gemm_peak_gflops_after": gemm_peak_gflops(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["classic", "default", "fast"])
    parser.add_argument("--durations", nargs="+", type=float, default=[10.0])
    parser.add_argument("--content", type=Path, default=DEFAULT_CONTENT)
    parser.add_argument("--style", type=Path, default=DEFAULT_STYLE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=RESULTS / "speed.json")
    parser.add_argument(
        "--classic-iterations", type=int, default=None,
        help="run classic for this many iterations and extrapolate to its 300: saves time on long clips, "
        "but overstates classic's time when its L-BFGS would have stopped earlier (an upper bound)",
    )
    parser.add_argument("--child", nargs=3, metavar=("PRESET", "SECONDS", "ITERATIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        cap = int(args.child[2]) if args.child[2] != "none" else None
        row = measure_one(args.child[0], float(args.child[1]), args.content, args.style, args.device, cap)
        print(json.dumps(row))
        return

    import torch

    peaks = []
    rows = []
    for seconds in args.durations:
        for preset in args.presets:
            cap = args.classic_iterations if preset == "classic" and args.classic_iterations else "none"
            peaks.append(gemm_peak_gflops())  # right before the run, as the child measures right after
            command = [sys.executable, "-m", "benchmarks.speed", "--child", preset, str(seconds), str(cap),
                       "--content", str(args.content), "--style", str(args.style), "--device", args.device]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{preset} {seconds:g}s failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["gemm_peak_gflops"] = max(peaks[-1], row["gemm_peak_gflops_after"])
            peaks.append(row["gemm_peak_gflops_after"])
            row["fraction_of_gemm_peak"] = row["loop_gflops"] / row["gemm_peak_gflops"]
            rows.append(row)
            print(
                f"{preset:8s} {seconds:5.0f}s  total {row['end_to_end_s_full']:7.1f}s"
                f"{' (extrapolated)' if row['extrapolated'] else ''}  "
                f"{row['s_per_evaluation']:.3f} s/eval  {row['evaluations']:4d} evals  "
                f"{row['loop_gflops']:6.1f} GFLOP/s ({100 * row['fraction_of_gemm_peak']:.0f}% of peak; "
                f"interleaved {100 * row['interleaved_share_of_gemm_peak']:.0f}%, "
                f"its GEMMs alone {100 * row['gemms_alone_share_of_gemm_peak']:.0f}%)  "
                f"SC {row['spectral_convergence_db']:6.1f} dB"
                f"{'' if row['refined_spectral_convergence_db'] is None else ' (refined %.1f)' % row['refined_spectral_convergence_db']}  "
                f"RSS {row['peak_rss_mb']:5.0f} MB (run {row['run_peak_mb']:4.0f} MB)",
                flush=True,
            )

    ratios = {}
    for seconds in args.durations:
        by_preset = {r["preset"]: r for r in rows if r["seconds_of_audio"] == seconds}
        if "classic" in by_preset and "default" in by_preset:
            classic, default = by_preset["classic"], by_preset["default"]
            ratios[f"{seconds:g}s"] = {
                "speedup_end_to_end": classic["end_to_end_s_full"] / default["end_to_end_s_full"],
                "memory_ratio": default["peak_rss_mb"] / classic["peak_rss_mb"],
                "run_memory_ratio": default["run_peak_mb"] / classic["run_peak_mb"],
                "classic_extrapolated": classic["extrapolated"],
            }
            ratio = ratios[f"{seconds:g}s"]
            print(
                f"{seconds:g} s clip: default is {ratio['speedup_end_to_end']:.1f}x faster than classic"
                f"{' (classic extrapolated: an upper bound)' if classic['extrapolated'] else ''}; peak RSS "
                f"{100 * ratio['memory_ratio']:.0f}% of classic's, the run's own memory "
                f"{100 * ratio['run_memory_ratio']:.0f}%"
            )
    peak = max(peaks, default=float("nan"))
    print(
        f"GEMM peak (float32, {torch.get_num_threads()} threads, best sustained of {len(PEAK_SHAPES)} shapes): "
        f"{min(peaks, default=float('nan')):.1f} to {peak:.1f} GFLOP/s over the runs; each row is "
        "compared with the better of the measurements just before and just after it"
    )
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "gemm_peak_gflops": peak,
        "rows": rows,
        "ratios": ratios,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
