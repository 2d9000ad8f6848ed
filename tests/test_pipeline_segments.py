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
from audiostyle import ConfigError, stylize
from audiostyle.dsp.levels import PEAK_CEILING
from audiostyle.solver import OptimizationResult
from tests.support import RATE, TINY, tone

HOP, N_FFT, WORK = 64, 256, 16000


def _run(waveform, rate=WORK, offsets=None, overlap=16, gain=1.0, progress=None):
    calls = {"n": 0, "max_frames": 0, "levels": [], "follow": []}

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

    def follow_onsets(piece, part):
        # Each segment's output is matched with the working-rate content slice it came from.
        calls["follow"].append((tuple(piece.shape), part.shape))
        return piece

    stages = SimpleNamespace(analyze=analyse, solve=solve, reconstruct=reconstruct, follow_onsets=follow_onsets)
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
    assert len(calls["follow"]) == calls["n"] and all(piece == part for piece, part in calls["follow"])
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


# --- stylize() on long content: segments, joins, level, memory ------------------------------------


def test_segment_bounds_cover_and_overlap():
    bounds = segment_bounds(1000, 128, 16)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1000
    assert all(stop - start == 128 for start, stop in bounds[:-1])
    assert 16 < bounds[-1][1] - bounds[-1][0] <= 128
    assert all(a[1] - b[0] == 16 for a, b in zip(bounds, bounds[1:]))
    assert segment_bounds(100, 128, 16) == [(0, 100)]
    with pytest.raises(ConfigError):
        segment_bounds(1000, 128, 128)
    # Only neighbours overlap, also when the content just passes a whole number of steps
    # (a full-length last segment would overlap the one before its neighbour here).
    for n_frames in range(129, 600):
        bounds = segment_bounds(n_frames, 100, 16)
        assert bounds[-1][1] == n_frames and bounds[-1][1] - bounds[-1][0] > 16
        assert all(a[1] <= c[0] for a, c in zip(bounds, bounds[2:]))


def test_crossfade_weights_sum_to_one():
    bounds = segment_bounds(700, 100, 20)
    coverage = torch.zeros(700)
    for index, (start, stop) in enumerate(bounds):
        weights = crossfade_weights(bounds, index)
        assert (weights > 0).all() and (weights <= 1).all()
        coverage[start:stop] += weights
    assert torch.allclose(coverage, torch.ones(700), atol=1e-6)


def _flux(audio, rate, n_fft=512, hop=128):
    """Spectral flux per frame: mean |change| of the log-magnitude between neighbouring frames."""
    log_mag = analyze(audio, rate, n_fft=n_fft, hop_length=hop).log_magnitude
    return log_mag.diff(dim=-1).abs().mean(dim=-2).max(dim=0).values  # worst channel


def _near_joins_and_elsewhere(flux, joins, hop=128, reach=3):
    """Flux within ``reach`` frames of each join sample, and the flux at all other frames."""
    near = torch.zeros_like(flux, dtype=torch.bool)
    for sample in joins:
        frame = sample // hop
        near[max(frame - reach, 0): frame + reach] = True
    return flux[near], flux[~near]


@pytest.mark.parametrize("refine_steps", [0, 3])
def test_long_content_is_stylized_in_segments(rng, style_wave, single_thread, refine_steps):
    content = tone(rng, 3.2, 330.0)
    config = TINY.replace(segment_seconds=1.0, iterations=2, refine_steps=refine_steps)
    steps = []
    result = stylize((content, RATE), (style_wave, RATE), config, progress=lambda s, t, l: steps.append((s, t, l.get("stage"))))
    assert result.audio.shape == content.shape and np.isfinite(result.audio).all()
    assert result.log_magnitude is None
    # Each segment is refined as a waveform before it is joined, as a whole clip would be.
    refined = result.metrics["refined_spectral_convergence_db"]
    assert (refined is not None and refined < 0 and "refine" in result.timings) == (refine_steps > 0)
    # 3.2 s in 1 s segments overlapping by 16 frames: 4 segments, each solved, then refined.
    solver = [total for _, total, stage in steps if stage is None]
    refine = [total for _, total, stage in steps if stage == "refine"]
    assert solver[-1] == 4 * 2 and refine == [4 * refine_steps] * (4 * refine_steps)
    # No discontinuity at the joins: the spectral flux of the output near where each overlap
    # begins and ends is no larger than the flux elsewhere in the file.
    bounds = segment_bounds(1 + content.shape[-1] // 128, 125, 16)
    joins = [b[0] * 128 for b in bounds[1:]] + [a[1] * 128 for a in bounds[:-1]]
    near, elsewhere = _near_joins_and_elsewhere(_flux(result.audio, RATE), joins)
    assert near.max() <= elsewhere.max()
    assert near.max() <= 2 * torch.quantile(elsewhere, 0.99)


def test_segmented_stereo_at_another_rate_keeps_shape_rate_and_level(rng, style_wave, single_thread):
    # 44.1 kHz stereo content, worked on at 16 kHz in 2 s segments, joined at 44.1 kHz.
    rate, seconds = 44100, 8.0
    t = np.arange(int(seconds * rate)) / rate
    content = np.stack([
        0.2 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t)),
        0.15 * np.sin(2 * np.pi * 330 * t + 1.0),
    ]).astype(np.float32) + 0.02 * rng.standard_normal((2, t.size)).astype(np.float32)
    config = TINY.replace(segment_seconds=2.0, iterations=2, griffin_lim_iters=2)
    result = stylize((content, rate), (style_wave, RATE), config)
    assert result.sample_rate == rate
    assert result.audio.shape == content.shape and result.audio.dtype == np.float32
    assert result.log_magnitude is None
    assert np.isfinite(result.audio).all()
    assert np.abs(result.audio).max() <= PEAK_CEILING + 1e-7
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    assert rms(result.audio) == pytest.approx(rms(content), rel=1e-4)
    assert result.metrics["spectral_convergence_db"] < 0 and result.history[-1]["style"] < result.history[0]["style"]
    # Both channels carry sound all the way through (no segment dropped, no gap at a join).
    frames = result.audio[:, : rate * 8 // 2205 * 2205].reshape(2, -1, 2205)  # 50 ms frames
    assert (np.sqrt(np.mean(np.square(frames), axis=-1)) > 0.01).all()
    # No seam: the joins (where each 2 s segment's overlap begins and ends) are invisible in
    # the spectral flux of the output.
    n_frames = 1 + seconds * 16000 // 128
    bounds = segment_bounds(int(n_frames), 250, 31)
    joins = [round(b[0] * 128 * rate / 16000) for b in bounds[1:]] + [round(a[1] * 128 * rate / 16000) for a in bounds[:-1]]
    near, elsewhere = _near_joins_and_elsewhere(_flux(result.audio, rate, n_fft=1024, hop=256), joins, hop=256)
    assert near.max() <= elsewhere.max()
    assert near.max() <= 2 * torch.quantile(elsewhere, 0.99)


def test_segmented_memory_grows_only_by_the_output(rng, style_wave, single_thread):
    # numpy allocations are traced (torch's are not): a segmented run's peak grows with the
    # content's length by the float32 output and nothing else, so no full-length copy
    # (working rate, float64, resampled) is made. Twice the length, twice the output.
    import tracemalloc

    rate = 44100
    config = TINY.replace(segment_seconds=2.0, iterations=1, griffin_lim_iters=1)
    content = (0.1 * rng.standard_normal((2, 16 * rate))).astype(np.float32)
    stylize((content[:, : 3 * rate], rate), (style_wave, RATE), config)  # warm up caches
    peaks, outputs = [], []
    for seconds in (8, 16):
        tracemalloc.start()
        try:
            result = stylize((content[:, : seconds * rate], rate), (style_wave, RATE), config)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        outputs.append(result.audio.nbytes)
        assert result.log_magnitude is None
    assert peaks[1] - peaks[0] <= 1.2 * (outputs[1] - outputs[0])
