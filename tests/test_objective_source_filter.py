"""The source-filter view (style on the spectral envelope, content on the fine structure) and its settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiostyle import PRESETS, StyleConfig, prepare_style, stylize
from audiostyle.errors import ConfigError
from audiostyle.networks import build_network
from audiostyle.objective import (
    ContentTargets,
    EnvelopeNetwork,
    FineStructureStatistics,
    FineStructureTargets,
    LoudnessContour,
    Objective,
    SourceFilterSplit,
    StyleStatistics,
    TextureStatistics,
)
from audiostyle.objective.source_filter import (
    BINS_PER_OCTAVE,
    LOWEST_HZ,
    envelope_coefficients,
    log_frequency_axis,
)
from tests.support import RATE, TINY

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLE_RATE, N_FFT = 16000, 512
N_FREQ = N_FFT // 2 + 1


def harmonic_log_magnitude(f0: float, brightness: float, frames: int = 24) -> torch.Tensor:
    """``log1p`` magnitude [shape=(1, N_FREQ, frames)] of a steady harmonic tone.

    Harmonics at multiples of ``f0`` with amplitudes ``exp(-f / brightness)``: the
    brightness is the instrument, ``f0`` the note.
    """
    frequencies = np.arange(N_FREQ) * SAMPLE_RATE / N_FFT
    spectrum = np.zeros(N_FREQ)
    for harmonic in np.arange(f0, SAMPLE_RATE / 2, f0):
        spectrum += np.exp(-harmonic / brightness) * np.exp(-0.5 * ((frequencies - harmonic) / 15.0) ** 2)
    gains = 1.0 + 0.1 * np.sin(np.arange(frames) / 3.0)  # a little movement, so statistics are not degenerate
    return torch.from_numpy(np.log1p(20 * spectrum[:, None] * gains[None, :])).float()[None]


def envelope_network(dtype: torch.dtype = torch.float32, *, mel_bands: int = 32, filters: int = 64) -> EnvelopeNetwork:
    network = build_network(
        "random", n_freq=N_FREQ, sample_rate=SAMPLE_RATE, n_fft=N_FFT, filters=filters, kernel_widths=(3,),
        mel_bands=mel_bands,
    )
    split = SourceFilterSplit(N_FREQ, envelope_coefficients(SAMPLE_RATE, 920.0), 0.1)
    return EnvelopeNetwork(network, split).to(dtype)


def relative_gram_distance(network: torch.nn.Module, first: torch.Tensor, second: torch.Tensor) -> float:
    a = StyleStatistics.from_log_magnitudes(network, [first])
    b = StyleStatistics.from_log_magnitudes(network, [second])
    return float(sum((x.gram - y.gram).norm() / y.gram.norm() for x, y in zip(a.layers, b.layers)))


def test_envelope_plus_fine_structure_is_the_log_spectrum(rng):
    split = SourceFilterSplit(N_FREQ, 17, 0.1).double()
    log_spectrum = torch.from_numpy(rng.standard_normal((2, N_FREQ, 5)))
    coefficients = split.coefficients(log_spectrum)
    assert coefficients.shape == (2, 17, 5)
    torch.testing.assert_close(split.envelope(coefficients) + split.fine(log_spectrum), log_spectrum)


def test_the_envelope_keeps_a_smooth_spectrum_and_drops_harmonic_ripple():
    split = SourceFilterSplit(N_FREQ, 17, 0.1).double()
    bins = torch.arange(N_FREQ, dtype=torch.float64)
    smooth = torch.cos(torch.pi * 3 * (bins + 0.5) / N_FREQ)[None, :, None]  # DCT coefficient 3: inside the untapered part
    ripple = torch.cos(2 * torch.pi * bins / 8)[None, :, None]  # a harmonic every 8 bins: far finer than 17 coefficients
    torch.testing.assert_close(split.envelope(split.coefficients(smooth)), smooth)
    # What is left is the ripple's own mean over the band (257 bins are not whole periods).
    assert split.envelope(split.coefficients(ripple)).abs().max() < 0.1
    torch.testing.assert_close(split.fine(ripple), ripple, atol=0.1, rtol=0)


def test_envelope_statistics_follow_the_instrument_not_the_notes():
    # The point of the view: one instrument on two notes gives alike statistics, two
    # instruments on one note do not; the whole spectrum's Grams change with the note.
    torch.manual_seed(0)
    envelope = envelope_network()
    spectrum = envelope.network
    # (The envelope's level still follows how densely the harmonics sit, so notes far
    # apart differ more than these, a whole tone apart.)
    dark_a, dark_b, bright_a = (harmonic_log_magnitude(f0, b) for f0, b in ((220.0, 600.0), (247.0, 600.0), (220.0, 3000.0)))
    same_instrument = relative_gram_distance(envelope, dark_a, dark_b)
    other_instrument = relative_gram_distance(envelope, dark_a, bright_a)
    assert same_instrument < 0.5 * other_instrument
    assert same_instrument < 0.3 * relative_gram_distance(spectrum, dark_a, dark_b)


def test_content_targets_of_an_envelope_network_are_its_fine_structure():
    network = envelope_network()
    content = harmonic_log_magnitude(262.0, 1000.0)
    targets = ContentTargets.from_log_magnitude(network, content)
    assert isinstance(targets, FineStructureTargets)
    split = network.split
    fine = split.fine(split.log_spectrum(torch.expm1(content)))
    torch.testing.assert_close(targets.target, fine)
    assert float(targets.loss(fine)) == pytest.approx(0.0, abs=1e-9)
    assert float(targets.loss(torch.zeros_like(fine))) == pytest.approx(1.0)


def fine_statistics(network: EnvelopeNetwork, style: torch.Tensor, weight: float = 4.0) -> FineStructureStatistics:
    return FineStructureStatistics.from_log_magnitudes(
        network.split, [style], [1.0], sample_rate=SAMPLE_RATE, n_fft=N_FFT, weight=weight
    ).to(style.dtype)


def test_the_log_frequency_axis_interpolates_between_bins():
    lower, upper_weight = log_frequency_axis(SAMPLE_RATE, N_FFT)
    positions = lower.double() + upper_weight.double()  # the interpolation of X[k] = k
    expected = LOWEST_HZ * 2.0 ** (torch.arange(lower.numel(), dtype=torch.float64) / BINS_PER_OCTAVE) * N_FFT / SAMPLE_RATE
    torch.testing.assert_close(positions, expected, rtol=1e-6, atol=1e-5)
    assert int(lower.max()) + 1 < N_FREQ and float(upper_weight.min()) >= 0 and float(upper_weight.max()) <= 1


def test_the_autocorrelation_is_the_mean_lagged_product_along_log_frequency(rng):
    lower, upper_weight = log_frequency_axis(SAMPLE_RATE, N_FFT)
    fine = torch.from_numpy(rng.standard_normal((2, N_FREQ, 7)))
    below, above = fine[:, lower], fine[:, lower + 1]
    points = below + upper_weight.double()[:, None] * (above - below)  # (batch, points, frames)
    count = points.shape[1]
    lags = torch.arange(FineStructureStatistics.autocorrelation(fine, lower, upper_weight).numel())
    expected = torch.stack([(points[:, : count - k] * points[:, k:]).sum() / (2 * 7 * count) for k in lags.tolist()])
    torch.testing.assert_close(FineStructureStatistics.autocorrelation(fine, lower, upper_weight), expected)
    assert lags.numel() == min(count, 3 * BINS_PER_OCTAVE + 1)


def test_fine_structure_statistics_follow_the_partials_not_the_note():
    network = envelope_network()
    harmonic_a, harmonic_b = harmonic_log_magnitude(220.0, 900.0), harmonic_log_magnitude(262.0, 900.0)
    noise = torch.log1p(torch.rand(harmonic_a.shape, generator=torch.Generator().manual_seed(3)) * 2)
    statistics = fine_statistics(network, harmonic_a)
    assert float(statistics.loss(network.split.fine(network.split.log_spectrum(torch.expm1(harmonic_a))))) < 1e-10
    other_note = float(statistics.loss(network.split.fine(network.split.log_spectrum(torch.expm1(harmonic_b)))))
    other_sound = float(statistics.loss(network.split.fine(network.split.log_spectrum(torch.expm1(noise)))))
    assert other_note < 0.2 * other_sound


def _objective(dtype: torch.dtype, content_weight: float = 1.0) -> tuple[Objective, torch.Tensor]:
    torch.manual_seed(1)
    network = envelope_network(dtype, mel_bands=12, filters=8)
    style = harmonic_log_magnitude(330.0, 2500.0, frames=10).to(dtype)
    content = harmonic_log_magnitude(262.0, 700.0, frames=6).to(dtype)
    network.fine_statistics = fine_statistics(network, style)
    texture = TextureStatistics.from_log_magnitudes(
        [network.envelope_log_magnitude(style)], [1.0], sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=128
    ).to(dtype)
    objective = Objective(
        network, StyleStatistics.from_log_magnitudes(network, [style]), ContentTargets.from_log_magnitude(network, content),
        content_weight=content_weight, style_weight=50.0, texture=texture, texture_weight=2.0,
        envelope=LoudnessContour.from_log_magnitude(content), envelope_weight=3.0,
    )
    return objective, content


def test_source_filter_objective_gradient_matches_finite_differences():
    objective, content = _objective(torch.float64)
    # A few bins and frames of a point away from the clamp at 0, where the gradient is smooth.
    start = (content + 0.3 * torch.rand(content.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    start.requires_grad_(True)
    total, _ = objective(start)
    (gradient,) = torch.autograd.grad(total, start)
    for index in [(0, 3, 0), (0, 17, 2), (0, 40, 5), (0, 130, 3), (0, 255, 1)]:
        step = 1e-6
        shifted = [start.detach().clone() for _ in range(2)]
        shifted[0][index] += step
        shifted[1][index] -= step
        numeric = (objective(shifted[0])[0] - objective(shifted[1])[0]) / (2 * step)
        assert float(gradient[index]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-9), index


def test_source_filter_objective_reports_every_part_and_sums_them():
    objective, content = _objective(torch.float32)
    total, parts = objective(content)
    assert set(parts) == {"style", "texture", "fine", "content", "envelope"}
    assert float(parts["content"]) == pytest.approx(0.0, abs=1e-6)  # the content keeps its own fine structure
    expected = (
        50.0 * parts["style"] + 2.0 * parts["texture"] + 4.0 * parts["fine"] + parts["content"] + 3.0 * parts["envelope"]
    )
    assert float(total) == pytest.approx(float(expected), rel=1e-5)


def test_envelope_network_without_band_front_end_reads_the_linear_envelope():
    network = build_network("random", n_freq=N_FREQ, sample_rate=SAMPLE_RATE, n_fft=N_FFT, filters=16, kernel_widths=(3,))
    wrapped = EnvelopeNetwork(network, SourceFilterSplit(N_FREQ, 17, 0.1))
    log_magnitude = harmonic_log_magnitude(220.0, 800.0)
    maps = wrapped(log_magnitude)
    torch.testing.assert_close(maps[0], network(wrapped.envelope_log_magnitude(log_magnitude))[0])


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"style_view": "notes"}, "style_view"),
        ({"envelope_resolution_hz": 0.0}, "envelope_resolution_hz"),
        ({"envelope_resolution_hz": 20000.0}, "envelope_resolution_hz"),  # under 2 coefficients
        ({"envelope_resolution_hz": 5.0, "style_view": "envelope"}, "envelope_resolution_hz"),  # more coefficients than bins
        ({"split_floor": 0.0}, "split_floor"),
        ({"split_floor": float("nan")}, "split_floor"),
        ({"fine_structure_weight": -1.0}, "fine_structure_weight"),
    ],
)
def test_bad_source_filter_settings_are_config_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        StyleConfig(**changes)


@pytest.mark.parametrize("view", ["envelope", "auto"])
def test_the_envelope_settings_constrain_only_the_views_that_may_split(view):
    assert StyleConfig(n_fft=16, hop_length=8).style_view == "spectrum"
    with pytest.raises(ConfigError, match="at least"):
        StyleConfig(n_fft=16, hop_length=8, style_view=view)


def test_the_new_settings_leave_existing_digests_alone():
    assert StyleConfig(full_band=False).digest() == "7fd7f0e3590ea037"
    assert StyleConfig().replace(envelope_resolution_hz=500.0).digest() == StyleConfig().digest()
    assert StyleConfig(style_view="envelope").digest() != StyleConfig().digest()
    assert StyleConfig(style_view="auto").digest() not in (StyleConfig().digest(), StyleConfig(style_view="envelope").digest())
    assert PRESETS["classic"].style_view == "spectrum"
    for name in ("default", "fast"):
        assert PRESETS[name].style_view == "auto" and PRESETS[name].fine_structure_weight == 30.0
    assert PRESETS["instrument"] == PRESETS["default"].replace(style_view="envelope")


def test_a_prepared_style_of_the_other_view_is_refused(rng):
    style = (0.3 * rng.standard_normal((1, RATE))).astype(np.float32), RATE
    prepared = prepare_style(style, TINY)
    with pytest.raises(ConfigError, match="style_view"):
        prepared.check(TINY.replace(style_view="envelope"))
    network = prepare_style(style, TINY.replace(style_view="envelope")).network
    assert isinstance(network, EnvelopeNetwork) and network.fine_statistics is None
    with_fine = prepare_style(style, TINY.replace(style_view="envelope", fine_structure_weight=3.0)).network
    assert with_fine.fine_statistics.weight == 3.0
    with pytest.raises(ConfigError, match="fine_structure_weight"):
        prepare_style(style, TINY.replace(style_view="envelope")).check(TINY.replace(style_view="envelope", fine_structure_weight=3.0))


def _tone(frequency: float, harmonics: int, seconds: float = 1.0) -> np.ndarray:
    time = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * k * frequency * time) / k**2 for k in range(1, harmonics + 1))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)[np.newaxis]


def _partial_level(audio: np.ndarray, frequency: float) -> float:
    """The strongest spectrum magnitude within 10 Hz of ``frequency``."""
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[-1])))
    frequencies = np.fft.rfftfreq(audio.shape[-1], d=1.0 / RATE)
    return float(spectrum[np.abs(frequencies - frequency) <= 10.0].max())


@pytest.mark.parametrize("view, leaks", [("spectrum", True), ("envelope", False)])
def test_the_envelope_view_keeps_the_contents_note(view, leaks):
    # Content: a mellow 330 Hz tone; style: a bright 523 Hz one. With a strong style weight
    # the whole spectrum's Grams bring the style's note in; the envelope's do not.
    content, style = _tone(330.0, 2), _tone(523.0, 8)
    config = TINY.replace(style_view=view, iterations=20, style_weight=1e4, envelope_weight=5.0, mel_bands=64)
    output = stylize((content, RATE), (style, RATE), config).audio
    assert np.isfinite(output).all() and output.shape == content.shape
    leak = _partial_level(output, 523.0) / _partial_level(output, 330.0)
    assert (leak > 0.1) if leaks else (leak < 0.01)
