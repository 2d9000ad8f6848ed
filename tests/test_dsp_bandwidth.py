"""Full-band output: audiostyle.bandwidth and its use in stylize()."""

from __future__ import annotations

import numpy as np
import pytest

from audiostyle.dsp import bandwidth
from audiostyle.dsp.bandwidth import (
    band_stft_size,
    crossover_hz,
    extend_bandwidth,
    long_term_power,
    style_band_power,
)
from audiostyle.dsp.resample import resample

RATE = 44100
WORKING = 22050


def band_level_db(audio: np.ndarray, rate: int, low: tuple[float, float], high: tuple[float, float]) -> float:
    """Mean power in ``high`` relative to ``low`` (Hz ranges), in dB."""
    power = np.abs(np.fft.rfft(audio.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / rate)

    def mean(band):
        return power[(freqs >= band[0]) & (freqs < band[1])].mean()

    return float(10 * np.log10(mean(high) / mean(low)))


def pink_noise(rng: np.random.Generator, channels: int, samples: int, tilt: float) -> np.ndarray:
    """Noise whose power falls by ``tilt`` dB per octave."""
    spectrum = np.fft.rfft(rng.standard_normal((channels, samples)), axis=-1)
    freqs = np.maximum(np.fft.rfftfreq(samples, 1 / RATE), 20.0)
    spectrum *= (freqs / 1000.0) ** (-tilt / (20 * np.log10(2)))
    audio = np.fft.irfft(spectrum, n=samples, axis=-1)
    return (0.1 * audio / audio.std()).astype(np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def band_limited(audio: np.ndarray) -> np.ndarray:
    """What the engine hands back: ``audio`` through the working rate."""
    return resample(resample(audio, RATE, WORKING), WORKING, RATE)[:, : audio.shape[-1]]


@pytest.mark.parametrize("tilt", [0.0, 3.0, 6.0])
def test_rebuilt_band_has_the_styles_relative_level(rng, tilt):
    style = pink_noise(rng, 1, 4 * RATE, tilt)
    output = band_limited(pink_noise(rng, 2, 3 * RATE, tilt))
    before = band_level_db(output, RATE, (1000, 8000), (11000, 16000))
    wanted = band_level_db(style, RATE, (1000, 8000), (11000, 16000))
    extended = extend_bandwidth(output.copy(), RATE, WORKING, style_band_power([(style, RATE)], [1.0], RATE))
    after = band_level_db(extended, RATE, (1000, 8000), (11000, 16000))
    assert before < wanted - 40
    assert abs(after - wanted) < 3
    # The solved band is left as it was.
    assert abs(band_level_db(extended, RATE, (1000, 8000), (2000, 8000)) - band_level_db(output, RATE, (1000, 8000), (2000, 8000))) < 0.2
    assert extended.shape == output.shape and extended.dtype == np.float32 and np.isfinite(extended).all()


def test_a_band_limited_style_adds_nothing_above_its_band(rng):
    style = band_limited(pink_noise(rng, 1, 4 * RATE, 3.0))
    output = band_limited(pink_noise(rng, 1, 2 * RATE, 3.0))
    extended = extend_bandwidth(output.copy(), RATE, WORKING, style_band_power([(style, RATE)], [1.0], RATE))
    assert band_level_db(extended, RATE, (1000, 8000), (12000, 16000)) < -40


def test_a_style_at_a_lower_rate_counts_as_band_limited(rng):
    style = pink_noise(rng, 1, 4 * RATE, 3.0)[:, ::2].copy()  # as if recorded at 22.05 kHz
    power = style_band_power([(style, WORKING)], [1.0], RATE)
    assert power.shape == (band_stft_size(RATE) // 2 + 1,)
    freqs = np.arange(power.size) * RATE / band_stft_size(RATE)
    assert power[freqs > 12000].max() < 1e-4 * power[freqs < 8000].mean()


def test_chunked_in_place_equals_one_pass(rng, monkeypatch):
    style = pink_noise(rng, 1, 2 * RATE, 3.0)
    output = band_limited(pink_noise(rng, 2, 2 * RATE, 3.0))
    power = style_band_power([(style, RATE)], [1.0], RATE)
    whole = extend_bandwidth(output.copy(), RATE, WORKING, power)
    monkeypatch.setattr(bandwidth, "CHUNK", 5120)  # a whole number of hops, as CHUNK is
    chunked = extend_bandwidth(output.copy(), RATE, WORKING, power)
    # long_term_power also runs in chunks: its frames at chunk edges differ slightly.
    assert np.abs(chunked - whole).max() < 2e-3 * np.abs(whole).max()
    spliced = output.copy()
    returned = extend_bandwidth(spliced, RATE, WORKING, power)
    assert returned is spliced


def test_loops_stay_seamless(rng):
    style = pink_noise(rng, 1, 2 * RATE, 0.0)
    period = band_limited(pink_noise(rng, 1, RATE, 0.0))
    power = style_band_power([(style, RATE)], [1.0], RATE)
    looped = extend_bandwidth(period.copy(), RATE, WORKING, power, circular=True)
    tiled = np.concatenate([looped, looped], axis=1)
    # The step across the seam is no larger than the steps inside the period.
    steps = np.abs(np.diff(tiled[0]))
    assert steps[RATE - 1] <= np.percentile(steps, 99.9)


def test_nothing_to_rebuild_at_the_working_rate(rng):
    audio = pink_noise(rng, 1, WORKING, 0.0)
    power = style_band_power([(audio, WORKING)], [1.0], WORKING)
    assert crossover_hz(WORKING) < WORKING / 2
    np.testing.assert_array_equal(extend_bandwidth(audio.copy(), WORKING, WORKING, power), audio)


def test_blend_weights_mix_shapes(rng):
    flat, steep = pink_noise(rng, 1, 2 * RATE, 0.0), pink_noise(rng, 1, 2 * RATE, 9.0)
    only_flat = style_band_power([(flat, RATE), (steep, RATE)], [1.0, 0.0], RATE)
    np.testing.assert_allclose(only_flat, style_band_power([(flat, RATE)], [1.0], RATE))
    half = style_band_power([(flat, RATE), (steep, RATE)], [1.0, 1.0], RATE)
    top = slice(-100, None)
    assert only_flat[top].mean() > half[top].mean() > style_band_power([(steep, RATE)], [1.0], RATE)[top].mean()


def test_long_term_power_is_smooth_and_nonnegative(rng):
    power = long_term_power(pink_noise(rng, 2, RATE, 3.0), 1024)
    assert power.shape == (513,) and (power >= 0).all()


def test_run_figure_shows_the_whole_band(rng, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from audiostyle import StyleConfig, plots, stylize

    config = StyleConfig(sample_rate=16000, n_fft=512, hop_length=128, filters=32, kernel_widths=(3,), iterations=2,
                         griffin_lim_iters=2, device="cpu")
    content = pink_noise(rng, 1, RATE, 3.0)
    style = pink_noise(rng, 1, RATE, 0.0)
    result = stylize((content, RATE), (style, RATE), config)
    assert result.sample_rate == RATE
    drawn = []
    real = plots._draw_panels
    monkeypatch.setattr(plots, "_draw_panels", lambda axes, panels: drawn.extend(panels) or real(axes, panels))
    plots.plot_result(result, (content, RATE), (style, RATE), tmp_path / "run.png", titles={"content": "mine.wav"})
    assert [title for title, *_ in drawn] == ["content: mine.wav", "style: array 1", "output"]
    assert {rate for *_, rate in drawn} == {RATE}
    output_db = drawn[-1][1]
    assert output_db.shape[0] == 512 * 2 // 2 + 1  # n_fft scaled with the rate
    # The output's rebuilt band is drawn, not cut at the working rate's Nyquist frequency.
    assert output_db[-100:].max() > output_db.max() - 60


def test_level_follows_the_styles_balance_even_when_the_solved_band_does_not(rng):
    # The solve may leave the octave below the crossover brighter than the style has it: the
    # rebuilt band still sits where the style's does against 1-8 kHz.
    style = pink_noise(rng, 1, 4 * RATE, 9.0)
    output = band_limited(pink_noise(rng, 1, 3 * RATE, 3.0))
    extended = extend_bandwidth(output.copy(), RATE, WORKING, style_band_power([(style, RATE)], [1.0], RATE))
    wanted = band_level_db(style, RATE, (1000, 8000), (11000, 16000))
    assert abs(band_level_db(extended, RATE, (1000, 8000), (11000, 16000)) - wanted) < 4


def test_long_term_power_ignores_the_cut_at_the_edges(rng):
    # A dark tone cut off mid-note: the cut is a broadband click, not the sound's top band.
    t = np.arange(2 * RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 220 * t + 0.3))[None].astype(np.float32)
    power = long_term_power(tone, 1024)
    freqs = np.arange(power.size) * RATE / 1024
    assert 10 * np.log10(power[(freqs > 11000) & (freqs < 16000)].mean() / power[(freqs > 100) & (freqs < 400)].mean()) < -100
