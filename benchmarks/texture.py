"""Texture synthesis against its source: rate, channels, loudness, holes, colour, modulation.

For each source file (the corpus's textures, ``samples/rain.ogg`` and a few tonal styles),
a texture of ``--seconds`` is synthesised from the file **as given** (its own rate and
channels; the engine decides the output's) with
``audiostyle.stylize(None, path, PRESETS[preset].replace(device=...), duration=seconds)``
for each preset, and compared with the source (see :func:`compare`):

- output rate and channel count against the source's;
- overall RMS difference (dB);
- 100 ms frame levels: 5th, 50th and 95th percentiles (dBFS) and their differences;
- holes: the share of frames more than 20 dB under the *source's* median frame level;
- 1/3-octave long-term spectrum, 50 Hz - 16 kHz: mean absolute difference of the shapes
  (dB; level-matched, see :func:`benchmarks.spectrum_measures.spectrum_difference_db`);
- modulation depth (std / mean of band envelopes) in octave bands 125 Hz - 16 kHz, output
  over source (geometric mean of the ratios; 1 = as steady or as patchy as the source).

The source's first half against its second half gives the same figures for a "perfect"
synthesis: another stretch of the same sound (the ``halves`` row). The pass columns are the
done-when of issue 22: RMS within 3 dB, every frame percentile within 6 dB, holes within 5
points of the source's share, spectrum within 4 dB on average, same rate and channel count.

Run::

    python -m benchmarks.texture                                 # default preset, 10 s, all sources
    python -m benchmarks.texture --presets default fast --seconds 5 --styles rain wind
    python -m benchmarks.texture --styles textures               # only the texture sources

Prints a table and writes ``benchmarks/results/texture.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import spectrum_measures as measures

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "benchmarks" / "results"

#: name -> source file. Textures first, then tonal styles a texture is also asked of.
SOURCES = {
    "rain": CORPUS / "env_rain_synthetic.ogg",
    "wind": CORPUS / "env_wind_synthetic.flac",
    "hum": CORPUS / "env_mains_hum_pinknoise.wav",
    "whale": CORPUS / "env_humpback_whale_nps.flac",
    "sample-rain": ROOT / "samples" / "rain.ogg",
    "violin": CORPUS / "violin_ode_to_joy.wav",
    "strings": CORPUS / "strings_brahms_hungarian_dance5.ogg",
    "drums": CORPUS / "drums_rock_loop.wav",
}
TEXTURES = ("rain", "wind", "hum", "whale", "sample-rain")
TONAL = ("violin", "strings", "drums")
GROUPS = {"all": tuple(SOURCES), "textures": TEXTURES, "tonal": TONAL}

#: Issue 22's done-when: largest allowed difference per criterion.
RMS_TOLERANCE_DB = 3.0
LEVELS_TOLERANCE_DB = 6.0
HOLES_TOLERANCE_POINTS = 5.0
SPECTRUM_TOLERANCE_DB = 4.0
PERCENTILES = (5, 50, 95)
CRITERIA = ("rms", "levels", "holes", "spectrum", "format")


def compare(output: np.ndarray, output_rate: int, source: np.ndarray, source_rate: int) -> dict[str, Any]:
    """Every figure of the benchmark for one output against its source.

    Parameters
    ----------
    output, source : np.ndarray [shape=(channels, samples)]
        Each at its own rate; lengths may differ.
    output_rate, source_rate : int

    Returns
    -------
    dict
        Rates and channel counts; ``*_rms_db`` and ``rms_difference_db`` (output - source);
        ``*_levels_db`` (frame-level percentiles 5/50/95, dBFS) and ``levels_difference_db``;
        ``*_holes_pct`` (frames 20 dB under the source's median frame level, percent);
        ``spectrum_difference_db`` (NaN when no band counts); ``*_modulation`` (per octave
        band, NaN where a rate cannot hold the band) and ``modulation_ratio`` (geometric
        mean of output / source over the bands both hold); ``passed`` per criterion.
    """
    output, source = np.atleast_2d(output), np.atleast_2d(source)
    output_levels = measures.frame_levels_db(output, output_rate)
    source_levels = measures.frame_levels_db(source, source_rate)
    source_median = float(np.median(source_levels))
    output_percentiles = np.percentile(output_levels, PERCENTILES)
    source_percentiles = np.percentile(source_levels, PERCENTILES)
    output_modulation = measures.modulation_depths(output, output_rate)
    source_modulation = measures.modulation_depths(source, source_rate)
    both = np.isfinite(output_modulation) & np.isfinite(source_modulation) & (source_modulation > 0)
    ratio = float(np.exp(np.mean(np.log(np.maximum(output_modulation[both], 1e-12) / source_modulation[both])))) if both.any() else math.nan
    figures: dict[str, Any] = {
        "output_rate": int(output_rate),
        "source_rate": int(source_rate),
        "output_channels": int(output.shape[0]),
        "source_channels": int(source.shape[0]),
        "output_rms_db": measures.rms_db(output),
        "source_rms_db": measures.rms_db(source),
        "output_levels_db": output_percentiles.tolist(),
        "source_levels_db": source_percentiles.tolist(),
        "levels_difference_db": (output_percentiles - source_percentiles).tolist(),
        "output_holes_pct": 100.0 * measures.hole_share(output_levels, source_median),
        "source_holes_pct": 100.0 * measures.hole_share(source_levels, source_median),
        "spectrum_difference_db": measures.spectrum_difference_db(
            measures.third_octave_levels_db(output, output_rate), measures.third_octave_levels_db(source, source_rate)
        ),
        "output_modulation": output_modulation.tolist(),
        "source_modulation": source_modulation.tolist(),
        "modulation_ratio": ratio,
    }
    figures["rms_difference_db"] = figures["output_rms_db"] - figures["source_rms_db"]
    figures["passed"] = verdicts(figures)
    return figures


def verdicts(figures: dict[str, Any]) -> dict[str, bool]:
    """Pass or fail per criterion of issue 22's done-when (see :data:`CRITERIA`), and ``all``."""
    spectrum = figures["spectrum_difference_db"]
    passed = {
        "rms": abs(figures["rms_difference_db"]) <= RMS_TOLERANCE_DB,
        "levels": all(abs(d) <= LEVELS_TOLERANCE_DB for d in figures["levels_difference_db"]),
        "holes": abs(figures["output_holes_pct"] - figures["source_holes_pct"]) <= HOLES_TOLERANCE_POINTS,
        "spectrum": bool(np.isfinite(spectrum) and spectrum <= SPECTRUM_TOLERANCE_DB),
        "format": (figures["output_rate"], figures["output_channels"]) == (figures["source_rate"], figures["source_channels"]),
    }
    passed["all"] = all(passed.values())
    return passed


def halves(source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and second half of ``source`` [shape=(channels, samples)], as (output, source)."""
    middle = source.shape[-1] // 2
    return source[:, :middle], source[:, middle:]


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN: NaN becomes None, in lists and dicts too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    return value


def _engine_version() -> str:
    """The commit the engine was run from, marked when audiostyle/ had uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "audiostyle"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+uncommitted audiostyle/ changes" if dirty.stdout.strip() else "")


HEADER = (
    f"{'style':12s} {'row':9s} {'rate':>11s} {'ch':>3s} {'rms':>6s} {'p5':>6s} {'p50':>6s} {'p95':>6s} {'holes%':>6s} "
    f"| {'d_rms':>5s} {'d_p5':>5s} {'d_p50':>5s} {'d_p95':>5s} {'srcH%':>5s} {'spec':>5s} {'mod_x':>5s} "
    f"| {'rms':4s} {'lvl':4s} {'hole':4s} {'spec':4s} {'fmt':4s} {'sec':>6s}"
)


def _row_line(style: str, label: str, figures: dict[str, Any], seconds: float | None) -> str:
    """One table line: the row's own levels, then its differences to the source and the verdicts."""
    rate = f"{figures['output_rate']}/{figures['source_rate']}"
    channels = f"{figures['output_channels']}/{figures['source_channels']}"
    levels = " ".join(f"{level:6.1f}" for level in figures["output_levels_db"])
    differences = " ".join(f"{d:+5.1f}" for d in figures["levels_difference_db"])
    verdict = " ".join(f"{'pass' if figures['passed'][c] else 'FAIL':4s}" for c in CRITERIA)
    return (
        f"{style:12s} {label:9s} {rate:>11s} {channels:>3s} {figures['output_rms_db']:6.1f} {levels} "
        f"{figures['output_holes_pct']:6.1f} | {figures['rms_difference_db']:+5.1f} {differences} "
        f"{figures['source_holes_pct']:5.1f} {figures['spectrum_difference_db']:5.1f} {figures['modulation_ratio']:5.2f} "
        f"| {verdict} {'' if seconds is None else f'{seconds:6.1f}'}"
    )


def _source_line(style: str, source: np.ndarray, rate: int) -> str:
    """The source's own figures (rate, channels, level, frame percentiles, holes)."""
    figures = compare(source, rate, source, rate)
    levels = " ".join(f"{level:6.1f}" for level in figures["source_levels_db"])
    return (
        f"{style:12s} {'source':9s} {rate:>11d} {source.shape[0]:>3d} {figures['source_rms_db']:6.1f} {levels} "
        f"{figures['source_holes_pct']:6.1f} |"
    )


def main(argv: list[str] | None = None) -> None:
    from audiostyle import PRESETS, AudioStyleError, load_audio, stylize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["default"], choices=sorted(PRESETS))
    parser.add_argument(
        "--styles", nargs="+", default=["all"], choices=[*SOURCES, *GROUPS],
        help="sources to synthesise from (names, or the groups all, textures, tonal)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each texture")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=RESULTS / "texture.json")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        parser.error(f"--seconds={args.seconds} must be a positive number")

    styles = list(dict.fromkeys(name for choice in args.styles for name in GROUPS.get(choice, (choice,))))
    rows: list[dict[str, Any]] = []
    print(HEADER)
    for style in styles:
        path = SOURCES[style]
        if not path.exists():
            print(f"{style:12s} skipped: {path} not found")
            continue
        source, source_rate = load_audio(path)
        print(_source_line(style, source, source_rate), flush=True)
        for preset in args.presets:
            config = PRESETS[preset].replace(device=args.device)
            start = time.perf_counter()
            try:
                result = stylize(None, path, config, duration=args.seconds)
            except AudioStyleError as error:
                print(f"{style:12s} {preset:9s} failed: {error}", flush=True)
                rows.append({"style": style, "row": preset, "file": path.name, "error": str(error)})
                continue
            seconds = time.perf_counter() - start
            figures = compare(result.audio, result.sample_rate, source, source_rate)
            rows.append({"style": style, "row": preset, "file": path.name, "seconds": seconds, **figures})
            print(_row_line(style, preset, figures, seconds), flush=True)
        first, second = halves(source)
        figures = compare(first, source_rate, second, source_rate)
        rows.append({"style": style, "row": "halves", "file": path.name, "seconds": None, **figures})
        print(_row_line(style, "halves", figures, None), flush=True)

    print()
    for preset in args.presets:
        mine = [row for row in rows if row["row"] == preset and "passed" in row]
        if mine:
            counts = ", ".join(f"{c} {sum(r['passed'][c] for r in mine)}/{len(mine)}" for c in (*CRITERIA, "all"))
            print(f"{preset}: criteria met on {counts} sources")
    reference = [row for row in rows if row["row"] == "halves"]
    if reference:
        counts = ", ".join(f"{c} {sum(r['passed'][c] for r in reference)}/{len(reference)}" for c in (*CRITERIA, "all"))
        print(f"halves (reference): criteria met on {counts} sources")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "seconds": args.seconds,
        "presets": args.presets,
        "device": args.device,
        "engine": _engine_version(),
        "criteria": {
            "rms_db": RMS_TOLERANCE_DB, "levels_db": LEVELS_TOLERANCE_DB,
            "holes_points": HOLES_TOLERANCE_POINTS, "spectrum_db": SPECTRUM_TOLERANCE_DB,
        },
        "third_octave_centres_hz": measures.THIRD_OCTAVE_CENTRES.tolist(),
        "modulation_edges_hz": list(measures.MODULATION_EDGES),
        "rows": _finite_or_none(rows),
    }
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
