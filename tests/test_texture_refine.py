"""Band-envelope texture statistics and waveform refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiostyle.dsp.phase import griffin_lim
from audiostyle.dsp.stft import analyze
from audiostyle.networks import RandomCNN
from audiostyle.objective import ContentTargets, Objective, StyleStatistics
from audiostyle.objective.texture import (
    TextureStatistics,
    band_envelopes,
    band_filters,
    texture_statistics,
)
from audiostyle.pipeline.waveform import refine_waveform

RATE, N_FFT, HOP = 16000, 512, 128


def crackle(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(RATE * seconds)
    return (0.05 * rng.standard_normal(n) + (rng.random(n) < 0.003) * rng.standard_normal(n)).astype(np.float32)


def hum(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


def log_mag(wave: np.ndarray) -> torch.Tensor:
    return analyze(wave, RATE, n_fft=N_FFT, hop_length=HOP).log_magnitude


def stats_of(wave: np.ndarray) -> TextureStatistics:
    return TextureStatistics.from_log_magnitudes([log_mag(wave)], [1.0], sample_rate=RATE, n_fft=N_FFT, hop_length=HOP)


def test_statistics_shapes_and_finiteness():
    envelopes = band_envelopes(log_mag(crackle(1.0, 0)), band_filters(RATE, N_FFT))
    stats = texture_statistics(envelopes, RATE / HOP)
    assert stats["mean"].shape == (1, 32)
    assert stats["correlation"].shape == (1, 32, 32)
    assert stats["modulation"].shape[:2] == (1, 32)
    assert all(torch.isfinite(v).all() for v in stats.values())


def test_loss_is_zero_on_the_style_and_separates_textures():
    target = stats_of(crackle(1.0, 0))
    assert float(target.loss(log_mag(crackle(1.0, 0)))) < 1e-6
    same_kind = float(target.loss(log_mag(crackle(1.0, 1))))
    other_kind = float(target.loss(log_mag(hum(1.0))))
    assert same_kind < other_kind


def test_statistics_are_time_averages():
    # A style measured on 4 s still recognises its kind in clips of other lengths.
    target = stats_of(crackle(4.0, 0))
    other_kind = float(target.loss(log_mag(hum(2.0))))
    for seconds in (1.0, 2.0, 3.0):
        assert float(target.loss(log_mag(crackle(seconds, 5)))) < other_kind / 3


def test_gradient_is_finite_even_at_silence():
    target = stats_of(crackle(1.0, 0))
    x = torch.zeros_like(log_mag(crackle(1.0, 0))).requires_grad_(True)
    target.loss(x).backward()
    assert torch.isfinite(x.grad).all()


def test_refinement_lowers_the_objective():
    content, style = log_mag(hum(1.0) + crackle(1.0, 2) * 0.1), log_mag(crackle(1.0, 0))
    net = RandomCNN(N_FFT // 2 + 1, filters=64, kernel_widths=(3, 7))
    objective = Objective(
        net,
        StyleStatistics.from_log_magnitudes(net, [style]),
        ContentTargets.from_log_magnitude(net, content),
        content_weight=1.0,
        style_weight=100.0,
        texture=stats_of(crackle(1.0, 0)),
        texture_weight=1.0,
    )
    start = griffin_lim(torch.expm1(content), n_fft=N_FFT, hop_length=HOP, length=RATE, n_iter=4)
    refined = refine_waveform(start, objective, n_fft=N_FFT, hop_length=HOP, steps=5)
    assert refined.solution.shape == start.shape
    assert torch.isfinite(refined.solution).all()
    assert refined.history[-1]["total"] < refined.history[0]["total"]
    assert "texture" in refined.history[-1]


@pytest.mark.parametrize(
    "shape, n_fft, hop",
    [((1, 5000), 512, 128), ((2, 4097), 256, 64), ((3001,), 255, 100), ((1, 700), 512, 256)],
    ids=["mono", "stereo", "odd-fft", "shorter-than-two-frames"],
)
def test_refine_log_magnitude_gradient_matches_autograd(shape, n_fft, hop):
    """The written-out STFT adjoint is autograd's through torch.stft, to float64 rounding."""
    from audiostyle.dsp.stft import stft
    from audiostyle.pipeline.waveform import _LogMagnitude, _MAGNITUDE_FLOOR

    generator = torch.Generator().manual_seed(0)
    wave = torch.randn(*shape, generator=generator, dtype=torch.float64)
    wave[..., :50] = 0.0  # exact zeros: the floor keeps the gradient finite
    ours_in, reference_in = wave.clone().requires_grad_(True), wave.clone().requires_grad_(True)
    ours = _LogMagnitude.apply(ours_in, n_fft, hop)
    spec = stft(reference_in, n_fft=n_fft, hop_length=hop)
    reference = torch.log1p((spec.real.square() + spec.imag.square() + _MAGNITUDE_FLOOR).sqrt())
    probe = torch.randn(reference.shape, generator=generator, dtype=torch.float64)
    (ours * probe).sum().backward()
    (reference * probe).sum().backward()
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    assert ours_in.grad.shape == wave.shape
    torch.testing.assert_close(ours_in.grad, reference_in.grad, rtol=1e-10, atol=1e-10)


def test_digital_silence_does_not_dominate_the_gradient():
    # The compression's slope grows without bound towards 0: without a floor set from the
    # style's level, frames of exact zeros made the gradient ~10^4 times larger than
    # anywhere else and stalled L-BFGS (30 s of speech with pauses).
    target = stats_of(crackle(1.0, 0))
    sound = crackle(1.0, 3)
    gapped = sound.copy()
    gapped[RATE // 3 : RATE // 2] = 0.0
    largest = []
    for wave in (sound, gapped):
        x = log_mag(wave).requires_grad_(True)
        target.loss(x).backward()
        assert torch.isfinite(x.grad).all()
        largest.append(float(x.grad.abs().max()))
    assert largest[1] < 50 * largest[0]  # 9000 times with the old fixed 1e-6 floor
    assert 0 < target.floor.min() and target.floor.max() < 1
    assert 0 < target.steady < 1


@pytest.mark.parametrize("batch, frames", [(1, 60), (2, 60), (1, 61)])  # even frames have a Nyquist bin
def test_texture_gradient_matches_autograd(batch, frames):
    """The gradient written out by hand (_TextureDistance) against autograd through texture_statistics."""
    single = stats_of(crackle(1.0, 0))
    target = TextureStatistics(
        {k: v.double() for k, v in single.targets.items()}, single.filters.double(), single.frame_rate,
        single.floor.double(), single.steady,
    )
    generator = torch.Generator().manual_seed(4)
    x = (torch.randn(batch, N_FFT // 2 + 1, frames, generator=generator, dtype=torch.float64) * 0.8).abs()
    x[:, :5, :7] = 0.0  # exact zeros: clamp_min passes the gradient there
    x[:, 10:12] *= -1  # below 0: no gradient
    ours_in, reference_in = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = target.loss(ours_in)
    ours.backward()
    magnitude = target.filters @ torch.expm1(reference_in.clamp_min(0))
    stats = texture_statistics((magnitude + target.floor) ** 0.3, target.frame_rate, target.steady)
    reference = sum(
        ((v - target.targets[k]).square().mean(tuple(range(1, v.ndim))) if k in ("skew", "correlation")
         else (v - target.targets[k]).square().sum(tuple(range(1, v.ndim))) / target.targets[k].square().sum()).mean()
        for k, v in stats.items()
    )
    reference.backward()
    # exp(X) - 1 against expm1 in the reference: rounding only.
    torch.testing.assert_close(ours.detach(), reference.detach(), rtol=1e-12, atol=0)
    scale = float(reference_in.grad.abs().max())
    torch.testing.assert_close(ours_in.grad, reference_in.grad, rtol=1e-9, atol=1e-12 * scale)
    assert float(ours_in.grad[:, 10:12].abs().max()) == 0.0
