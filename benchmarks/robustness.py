"""Robustness benchmark: throw bad waveforms, bad settings and corrupt files at audiostyle.

Every case must either succeed with a finite output of the right shape or fail with an
``AudioStyleError`` (through the CLI: exit code 2/3, one line on stderr, no output file).
Anything else is a crash. The generators and judges live in ``tests/hostile_inputs.py``,
shared with the property, fuzz and limit tests, which run a bounded sample.

The file groups run every hostile file (``HOSTILE_FILES``: sample-rate and decoded-size
bombs, headers that lie about the length, many channels; a few kB each on disk) once, then
``--cases`` damaged copies of real files. When ``benchmarks/studio_hostile.py`` is there,
its hostile requests against the web studio are one more row.

Run::

    python -m benchmarks.robustness              # ~400 cases, prints a table
    python -m benchmarks.robustness --cases 60   # quicker

Writes ``benchmarks/results/robustness.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.hostile_inputs import (
    CORPUS,
    HOSTILE_FILES,
    MUTATIONS,
    RATES,
    REFUSED_HOSTILE_FILES,
    SIGNAL_KINDS,
    TINY_SETTINGS,
    check_cli_case,
    check_load_case,
    corpus_files,
    leftovers,
    make_waveform,
    mutate,
    random_config_value,
    write_hostile_file,
    write_reference_files,
)

RESULTS = Path(__file__).resolve().parent / "results" / "robustness.json"


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Tally:
    tried: int = 0
    succeeded: int = 0
    clean_errors: int = 0
    crashes: int = 0
    nan_outputs: int = 0
    partial_files: int = 0
    seconds: float = 0.0
    crash_examples: list[str] = field(default_factory=list)

    def crash(self, case: str, error: BaseException | str) -> None:
        self.crashes += 1
        if len(self.crash_examples) < 10:
            detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            self.crash_examples.append(f"{case}: {detail}"[:300])


def _stylize_cases(tally: Tally, count: int, rng: np.random.Generator, folder: Path) -> None:
    from audiostyle import AudioStyleError, StyleConfig, stylize

    config = StyleConfig(**TINY_SETTINGS)
    for index in range(count):
        kind = SIGNAL_KINDS[index % len(SIGNAL_KINDS)]
        rate = int(rng.choice(RATES))
        channels = int(rng.integers(1, 9))
        samples = int(rng.integers(0, int(rate * rng.choice([0.05, 0.5, 2.0])) + 1))
        style_kind = str(rng.choice(["noise", "tone", kind]))
        case = f"stylize {kind}/{style_kind} {channels}ch {samples} samples @ {rate} Hz"
        content = make_waveform(kind, channels=channels, samples=samples, seed=index)
        style = make_waveform(style_kind, channels=int(rng.integers(1, 3)), samples=int(rate * 0.6), seed=index + 1)
        tally.tried += 1
        try:
            result = stylize((content, rate), (style, rate), config)
            out = folder / f"out{index}.wav"
            result.save(out)
        except AudioStyleError:
            tally.clean_errors += 1
            continue
        except Exception as error:  # noqa: BLE001 - counting crashes is the point
            tally.crash(case, error)
            continue
        if not np.isfinite(result.audio).all():
            tally.nan_outputs += 1
        if result.audio.shape != content.shape or result.sample_rate != rate:
            tally.crash(case, f"output shape {result.audio.shape} @ {result.sample_rate} Hz")
            continue
        import soundfile as sf

        written, _ = sf.read(out, dtype="float32")
        if not np.isfinite(written).all():
            tally.nan_outputs += 1
        out.unlink()
        tally.succeeded += 1
    tally.partial_files += len(leftovers(folder))


def _config_cases(tally: Tally, count: int, rng: np.random.Generator, folder: Path) -> None:
    from dataclasses import fields

    from audiostyle import AudioStyleError, StyleConfig, stylize

    names = [f.name for f in fields(StyleConfig)]
    tone = make_waveform("tone", channels=1, samples=8000, seed=0)
    noise = make_waveform("noise", channels=1, samples=8000, seed=1)
    for index in range(count):
        changed = {name: random_config_value(name, rng) for name in rng.choice(names, size=int(rng.integers(1, 3)), replace=False)}
        case = f"config {changed!r}"
        tally.tried += 1
        try:
            config = StyleConfig(**{**TINY_SETTINGS, **changed})
            cheap = (
                config.filters <= 512 and config.n_fft <= 4096 and config.iterations <= 10
                and config.griffin_lim_iters <= 64 and config.refine_steps <= 10 and config.sample_rate <= 48000
                and sum(w * max(config.kernel_dilations or (1,)) for w in config.kernel_widths) <= 64
            )
            if cheap:
                result = stylize((tone, 16000), (noise, 16000), config)
                if not np.isfinite(result.audio).all():
                    tally.nan_outputs += 1
                if result.audio.shape != tone.shape:
                    tally.crash(case, f"output shape {result.audio.shape}")
                    continue
        except AudioStyleError:
            tally.clean_errors += 1
            continue
        except Exception as error:  # noqa: BLE001
            tally.crash(case, error)
            continue
        tally.succeeded += 1


def _count(tally: Tally, case: str, outcome: str, detail: str) -> None:
    if outcome == "ok":
        tally.succeeded += 1
    elif outcome == "clean":
        tally.clean_errors += 1
    elif outcome == "nan":
        tally.nan_outputs += 1
    elif outcome == "partial":
        tally.partial_files += 1
    else:
        tally.crash(case, detail)


def _judge_file(tally_load: Tally, tally_cli: Tally, path: Path, case: str, work: Path, *, refuse: bool) -> None:
    for tally, judge in ((tally_load, lambda: check_load_case(path)), (tally_cli, lambda: check_cli_case(path, work))):
        tally.tried += 1
        started = time.perf_counter()
        outcome, detail = judge()
        tally.seconds += time.perf_counter() - started
        if refuse and outcome != "clean":
            outcome, detail = "crash", f"should have been refused; got {outcome} {detail}".strip()
        _count(tally, case, outcome, detail)


def _file_cases(tally_load: Tally, tally_cli: Tally, count: int, rng: np.random.Generator, folder: Path) -> None:
    sources = corpus_files(limit=12) or []
    sources += write_reference_files(folder / "reference")
    work = folder / "fuzz"
    work.mkdir()
    for kind in HOSTILE_FILES:
        path = write_hostile_file(kind, work / "hostile")
        _judge_file(tally_load, tally_cli, path, f"hostile {kind}", work, refuse=kind in REFUSED_HOSTILE_FILES)
        path.unlink()
    for index in range(count):
        source = sources[int(rng.integers(len(sources)))]
        kind = MUTATIONS[index % len(MUTATIONS)]
        data, suffix = mutate(source.read_bytes(), kind, suffix=source.suffix, seed=index)
        path = work / f"case{index}{suffix}"
        path.write_bytes(data)
        _judge_file(tally_load, tally_cli, path, f"{source.name} {kind}", work, refuse=False)
        path.unlink()


STUDIO_ROW = "studio (hostile)"


def _studio_cases(tally: Tally, folder: Path) -> str | None:
    """Run ``benchmarks.studio_hostile`` into ``tally``; a note instead when it is not there.

    A case the studio answered as it should counts as succeeded, any other as a crash.
    """
    try:
        from benchmarks.studio_hostile import hostile_cases
    except ModuleNotFoundError as error:
        if error.name != "benchmarks.studio_hostile":
            raise
        return f"{STUDIO_ROW}: skipped, benchmarks/studio_hostile.py is not there"
    work = folder / "studio"
    work.mkdir()
    started = time.perf_counter()
    try:
        for case, problem in hostile_cases(work):
            tally.tried += 1
            if problem is None:
                tally.succeeded += 1
            else:
                tally.crash(case, problem)
    except Exception as error:  # noqa: BLE001 - the harness failing is a crash of the row, not of the run
        tally.tried += 1
        tally.crash("studio harness", error)
    tally.seconds = time.perf_counter() - started
    return None


def run(cases: int, seed: int = 0) -> tuple[dict[str, Tally], list[str]]:
    """Run every group with about ``cases`` cases each; returns a tally per group and notes."""
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    tallies = {name: Tally() for name in ("waveforms", "configs", "files:load_audio", "files:cli")}
    notes = []
    with tempfile.TemporaryDirectory(prefix="audiostyle-robustness-") as tmp:
        folder = Path(tmp)
        for name, job in (
            ("waveforms", lambda: _stylize_cases(tallies["waveforms"], cases, rng, folder)),
            ("configs", lambda: _config_cases(tallies["configs"], cases, rng, folder)),
            ("files", lambda: _file_cases(tallies["files:load_audio"], tallies["files:cli"], cases, rng, folder)),
        ):
            started = time.perf_counter()
            job()
            if name in tallies:  # the file groups time themselves, case by case
                tallies[name].seconds = time.perf_counter() - started
        studio = Tally()
        note = _studio_cases(studio, folder)
        if note is None:
            tallies[STUDIO_ROW] = studio
        else:
            notes.append(note)
    return tallies, notes


def format_table(tallies: dict[str, Tally]) -> str:
    columns = ("tried", "succeeded", "clean_errors", "crashes", "nan_outputs", "partial_files")
    header = f"{'group':<18}" + "".join(f"{c:>14}" for c in columns) + f"{'seconds':>10}"
    lines = [header, "-" * len(header)]
    total = Tally()
    for name, tally in tallies.items():
        lines.append(f"{name:<18}" + "".join(f"{getattr(tally, c):>14}" for c in columns) + f"{tally.seconds:>10.1f}")
        for c in columns:
            setattr(total, c, getattr(total, c) + getattr(tally, c))
    lines.append("-" * len(header))
    lines.append(f"{'total':<18}" + "".join(f"{getattr(total, c):>14}" for c in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="cases per group (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS})")
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    tallies, notes = run(args.cases, args.seed)
    print(format_table(tallies))
    for note in notes:
        print(f"note: {note}")
    bad = sum(t.crashes + t.nan_outputs + t.partial_files for t in tallies.values())
    for name, tally in tallies.items():
        for example in tally.crash_examples:
            print(f"CRASH [{name}] {example}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "cases_per_group": args.cases,
        "seed": args.seed,
        "corpus": str(CORPUS) if CORPUS.is_dir() else None,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "groups": {name: vars(tally) for name, tally in tallies.items()},
        "notes": notes,
        "passed": bad == 0,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
