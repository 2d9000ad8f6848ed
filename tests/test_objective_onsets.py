"""The onset contour: the content's spectral flux, kept by the ``onsets`` loss."""

from __future__ import annotations

import pytest
import torch

from audiostyle import StyleConfig
from audiostyle.errors import ConfigError
from audiostyle.networks import RandomCNN
from audiostyle.objective import OnsetContour
from audiostyle.objective.onsets import onset_strength
from audiostyle.objective.texture import band_filters
from audiostyle.pipeline import solver_settings, stylize_spectrogram

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLE_RATE, N_FFT = 16000, 256
N_FREQ = N_FFT // 2 + 1


def notes(starts: list[int], frames: int = 40, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``log1p`` magnitude [shape=(1, N_FREQ, frames)] of decaying notes starting at ``starts``."""
    level = torch.full((frames,), 0.01, dtype=torch.float64)
    for start in starts:
        level[start:] += torch.exp(-torch.arange(frames - start, dtype=torch.float64) / 6.0)
    spectrum = torch.exp(-torch.arange(N_FREQ, dtype=torch.float64) / 30.0)
    return torch.log1p(5 * spectrum[:, None] * level[None, :]).to(dtype)[None]


def contour(log_magnitude: torch.Tensor) -> OnsetContour:
    return OnsetContour.from_log_magnitude(log_magnitude, band_filters(SAMPLE_RATE, N_FFT).to(log_magnitude))


def test_the_flux_peaks_where_notes_start():
    content = notes([5, 20])
    flux = onset_strength(band_filters(SAMPLE_RATE, N_FFT) @ torch.expm1(content), 1e-3)[0]
    assert set(torch.topk(flux, 2).indices.tolist()) == {4, 19}  # flux[t] is the rise into frame t + 1


def test_the_loss_is_zero_for_the_content_and_grows_when_onsets_move():
    content = notes([5, 20])
    onsets = contour(content)
    assert float(onsets.loss_of_magnitude(torch.expm1(content))) == pytest.approx(0.0, abs=1e-12)
    near = float(onsets.loss_of_magnitude(torch.expm1(notes([6, 20]))))
    far = float(onsets.loss_of_magnitude(torch.expm1(notes([12, 30]))))
    assert 0 < near < far


def test_the_target_does_not_depend_on_the_level():
    content = notes([5, 20])
    louder = torch.log1p(10 * torch.expm1(content))
    torch.testing.assert_close(contour(content).target, contour(louder).target, atol=0.05, rtol=0.0)


def test_onset_gradient_matches_finite_differences():
    content = notes([5, 20], dtype=torch.float64)
    onsets = contour(content)
    point = (torch.expm1(notes([7, 22], dtype=torch.float64)) + 0.01).requires_grad_(True)
    (gradient,) = torch.autograd.grad(onsets.loss_of_magnitude(point), point)
    for index in [(0, 2, 6), (0, 10, 7), (0, 40, 22), (0, 100, 30)]:
        step = 1e-7
        plus, minus = point.detach().clone(), point.detach().clone()
        plus[index] += step
        minus[index] -= step
        numeric = (onsets.loss_of_magnitude(plus) - onsets.loss_of_magnitude(minus)) / (2 * step)
        assert float(gradient[index]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-10), index


def test_the_solver_keeps_the_content_onsets_against_a_style():
    torch.manual_seed(0)
    network = RandomCNN(N_FREQ, filters=32, kernel_widths=(3,))
    content, style = notes([5, 20])[0], notes([12, 30])[0]
    bands = band_filters(SAMPLE_RATE, N_FFT)
    kept = contour(content[None])

    def onset_loss(weight: float) -> float:
        solution = stylize_spectrogram(
            content, style, network, style_weight=1e3, onset_weight=weight, onset_bands=bands, iterations=15
        ).solution
        return float(kept.loss_of_magnitude(torch.expm1(solution[None])))

    assert onset_loss(10.0) < 0.5 * onset_loss(0.0)


def test_onset_weight_needs_bands_or_a_texture():
    with pytest.raises(ConfigError, match="onset"):
        stylize_spectrogram(notes([5])[0], notes([9])[0], RandomCNN(N_FREQ, filters=8, kernel_widths=(3,)), onset_weight=1.0)


def test_onset_weight_follows_strength_and_leaves_digests_alone():
    config = StyleConfig(onset_weight=4.0)
    assert solver_settings(config, None, content=True)["onset_weight"] == 4.0
    assert solver_settings(config.replace(strength=0.75), None, content=True)["onset_weight"] == pytest.approx(4.0 / 27)
    assert solver_settings(config, None, content=False)["onset_weight"] == 0.0
    assert StyleConfig(onset_weight=0.0).digest() == StyleConfig().digest()
    assert config.digest() != StyleConfig().digest()
    with pytest.raises(ConfigError, match="onset_weight"):
        StyleConfig(onset_weight=-1.0)
