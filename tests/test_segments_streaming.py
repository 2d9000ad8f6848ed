"""Long content stylized segment by segment end to end: the joined waveform is exact when the
segments are, and the fades leave no step at the joins."""

import numpy as np
import torch

from audiostyle.optimize import OptimizationResult
from audiostyle.segments import segment_bounds, stylize_waveform_in_segments
from audiostyle.spectral import analyze

HOP = 64


def _run(waveform, offsets=None, overlap=16):
    calls = {"n": 0, "max_frames": 0}

    def analyse(part):
        return analyze(part, 16000, n_fft=256, hop_length=HOP)

    def solve(part, progress):
        calls["max_frames"] = max(calls["max_frames"], part.shape[-1])
        if progress is not None:
            progress(1, 1, {"total": 1.0})
        return OptimizationResult(solution=part, history=[{"total": 1.0, "style": 1.0}], evaluations=1)

    def reconstruct(magnitude, samples, phase):
        # "Reconstruct" the slice itself (plus an offset per segment) from the analysed phase.
        index = calls["n"]
        calls["n"] += 1
        piece = torch.istft(
            (magnitude * phase).reshape(-1, *magnitude.shape[-2:]),
            n_fft=256, hop_length=HOP, window=torch.hann_window(256), length=samples,
        )
        return piece + (offsets[index] if offsets else 0.0), -30.0

    out = stylize_waveform_in_segments(
        waveform, hop_length=HOP, segment_length=100, overlap=overlap,
        analyse=analyse, solve=solve, reconstruct=reconstruct,
    )
    return out, calls


def test_identity_segments_rebuild_the_waveform_exactly():
    rng = np.random.default_rng(0)
    waveform = rng.standard_normal((2, 64 * 555 + 17)).astype(np.float32) * 0.1
    (joined, log_mag, result, convergence), calls = _run(waveform)
    assert joined.shape == waveform.shape
    assert np.allclose(joined.numpy(), waveform, atol=1e-4)
    assert calls["max_frames"] <= 101  # one segment (plus its closing frame) at a time
    assert log_mag.shape == (2, 129, 1 + waveform.shape[-1] // HOP) and torch.isfinite(log_mag).all()
    # Away from a slice's edges (where its own STFT pads), each segment saw the true frames.
    whole = analyze(waveform, 16000, n_fft=256, hop_length=HOP).log_magnitude
    assert torch.allclose(log_mag[..., 3:80], whole[..., 3:80], atol=1e-4)
    assert abs(convergence + 30.0) < 1e-6 and result.evaluations == calls["n"]


def test_disagreeing_segments_are_faded_without_steps():
    waveform = np.zeros((1, 64 * 600), np.float32)
    n_frames = 1 + waveform.shape[-1] // HOP
    bounds = segment_bounds(n_frames, 100, 16)
    offsets = [float(i % 2) for i in range(len(bounds))]
    (joined, _, _, _), _ = _run(waveform, offsets)
    # Every step between samples is a fraction of the disagreement, never a hard cut.
    assert joined.diff(dim=-1).abs().max() <= 1 / (16 * HOP) + 1e-5
    assert float(joined.min()) >= -1e-6 and float(joined.max()) <= 1 + 1e-6
