"""Long content stylized segment by segment end to end: each segment is read from the content at
its own rate, worked on at the working rate and joined at the content's rate. The joined
waveform is exact when the segments are, the spans tile the content, and the fades leave no
step at the joins."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from audiostyle.dsp.resample import resample
from audiostyle.dsp.stft import analyze
from audiostyle.pipeline.segments import (
    _spans,
    crossfade_weights,
    segment_bounds,
    stylize_waveform_in_segments,
    working_length,
)
from audiostyle.solver import OptimizationResult

HOP, N_FFT, WORK = 64, 256, 16000


def _run(waveform, rate=WORK, offsets=None, overlap=16, gain=1.0, progress=None):
    calls = {"n": 0, "max_frames": 0, "levels": []}

    def analyse(part):
        calls["levels"].append(float(np.sqrt(np.mean(np.square(part, dtype=np.float64)))))
        return analyze(part, WORK, n_fft=N_FFT, hop_length=HOP)

    def solve(part, report):
        calls["max_frames"] = max(calls["max_frames"], part.shape[-1])
        if report is not None:
            report(1, 1, {"total": 1.0})
        return OptimizationResult(solution=part, history=[{"total": 1.0, "style": 1.0}], evaluations=1)

    def reconstruct(magnitude, samples, phase):
        # "Reconstruct" the slice itself (plus an offset per segment) from the analysed phase.
        index = calls["n"]
        calls["n"] += 1
        piece = torch.istft(
            (magnitude * phase).reshape(-1, *magnitude.shape[-2:]),
            n_fft=N_FFT, hop_length=HOP, window=torch.hann_window(N_FFT), length=samples,
        )
        return piece + (offsets[index] if offsets else 0.0), -30.0

    stages = SimpleNamespace(analyze=analyse, solve=solve, reconstruct=reconstruct)
    out = stylize_waveform_in_segments(
        waveform, stages, sample_rate=rate, working_rate=WORK, gain=gain, hop_length=HOP, segment_length=100,
        overlap=overlap, progress=progress,
    )
    return out, calls


def test_identity_segments_rebuild_the_waveform_exactly():
    rng = np.random.default_rng(0)
    waveform = rng.standard_normal((2, 64 * 555 + 17)).astype(np.float32) * 0.1
    before = waveform.copy()
    steps = []
    result, calls = _run(waveform, progress=lambda s, t, l: steps.append((s, t)))
    assert result.audio.shape == waveform.shape and result.audio.dtype == np.float32
    assert np.allclose(result.audio, waveform, atol=1e-4)
    assert np.array_equal(waveform, before)  # the content is read, never written
    # One segment, its closing frame and a margin of 8 hops on each side at a time.
    assert calls["max_frames"] <= 101 + 2 * 8
    assert abs(result.convergence + 30.0) < 1e-6 and result.evaluations == calls["n"]
    assert [s for s, _ in steps] == sorted(s for s, _ in steps) and steps[-1][0] == steps[-1][1]


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_segments_at_another_rate_match_resampling_the_whole(rate):
    # Each span is resampled with a margin and cut at the content's rate, so away from the
    # file's last samples (the resampler's own edge) the join equals resampling the whole
    # content to the working rate and back: no offset, gap or doubled sample at any join.
    rng = np.random.default_rng(1)
    waveform = rng.standard_normal((2, rate * 3 + 37)).astype(np.float32) * 0.1
    result, calls = _run(waveform, rate)
    whole = resample(resample(waveform, rate, WORK), WORK, rate)[:, : waveform.shape[-1]]
    assert result.audio.shape == waveform.shape
    assert calls["n"] > 3
    assert np.abs(result.audio - whole)[:, : -rate // 100].max() < 1e-4
    assert np.allclose(result.audio, whole, atol=0.1)


def test_the_gain_scales_what_is_analysed_not_the_output():
    rng = np.random.default_rng(2)
    waveform = rng.standard_normal((1, 64 * 400)).astype(np.float32) * 0.01
    plain, calls = _run(waveform)
    scaled, scaled_calls = _run(waveform, gain=10.0)
    assert np.allclose(np.array(scaled_calls["levels"]), 10 * np.array(calls["levels"]), rtol=1e-5)
    assert np.allclose(scaled.audio, 10 * plain.audio, atol=1e-5)  # identity "solver": scaled too


def test_disagreeing_segments_are_faded_without_steps():
    waveform = np.zeros((1, 64 * 600), np.float32)
    n_frames = 1 + waveform.shape[-1] // HOP
    bounds = segment_bounds(n_frames, 100, 16)
    offsets = [float(i % 2) for i in range(len(bounds))]
    result, _ = _run(waveform, offsets=offsets)
    joined = result.audio
    # Every step between samples is a fraction of the disagreement, never a hard cut.
    assert np.abs(np.diff(joined, axis=-1)).max() <= 1 / (16 * HOP) + 1e-5
    assert float(joined.min()) >= -1e-6 and float(joined.max()) <= 1 + 1e-6


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000, 11111])
def test_spans_tile_the_content_and_fades_sum_to_one(rate):
    n_samples = rate * 7 + 3
    n_frames = 1 + working_length(n_samples, rate, WORK) // HOP
    bounds = segment_bounds(n_frames, 100, 16)
    spans = _spans(n_samples, rate, WORK, HOP, bounds)
    assert spans[0][0] == 0 and spans[-1][1] == n_samples
    coverage = np.zeros(n_samples)
    for index, (first, last) in enumerate(spans):
        if index:
            assert spans[index - 1][0] < first < spans[index - 1][1]  # overlaps its neighbour only
        if index > 1:
            assert spans[index - 2][1] <= first
        coverage[first:last] += crossfade_weights(spans, index).numpy()
    assert np.abs(coverage - 1).max() < 1e-6


def test_working_length_is_what_resample_returns():
    for rate, samples in [(16000, 1), (16000, 16001), (44100, 44099), (48000, 12345), (16000, 16000)]:
        assert working_length(samples, rate, WORK) == resample(np.zeros((1, samples), np.float32), rate, WORK).shape[-1]
