"""stylize()'s progress callback: solver steps, then refine steps marked with their stage."""

from __future__ import annotations

import numpy as np

from audiostyle import StyleConfig, stylize

RATE = 16000
TINY = StyleConfig(sample_rate=RATE, n_fft=512, hop_length=128, filters=32, kernel_widths=(3,), iterations=3,
                   griffin_lim_iters=2, refine_steps=2, tolerance=0.0, device="cpu")


def _record(calls):
    return lambda step, total, losses: calls.append((step, total, losses.get("stage")))


def test_refine_steps_are_reported_after_the_solver_steps(rng):
    content = (0.1 * rng.standard_normal((1, RATE))).astype(np.float32)
    style = (0.1 * rng.standard_normal((1, RATE))).astype(np.float32)
    calls = []
    stylize((content, RATE), (style, RATE), TINY, progress=_record(calls))
    solver = [(s, t) for s, t, stage in calls if stage is None]
    refine = [(s, t) for s, t, stage in calls if stage == "refine"]
    assert solver and solver[-1] == (3, 3)
    assert refine == [(1, 2), (2, 2)]
    assert [stage for *_, stage in calls] == [None] * len(solver) + ["refine"] * 2


def test_segmented_refine_steps_count_over_all_segments(rng):
    content = (0.1 * rng.standard_normal((1, 3 * RATE))).astype(np.float32)
    style = (0.1 * rng.standard_normal((1, RATE))).astype(np.float32)
    calls = []
    stylize((content, RATE), (style, RATE), TINY.replace(segment_seconds=1.0), progress=_record(calls))
    refine = [(s, t) for s, t, stage in calls if stage == "refine"]
    segments = refine[0][1] // 2
    assert segments >= 3
    assert refine == [(i, 2 * segments) for i in range(1, 2 * segments + 1)]
