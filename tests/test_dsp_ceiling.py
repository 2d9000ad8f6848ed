"""Band ceiling: the output leaves the bands its style leaves empty; where the style sounds, nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

from audiostyle import StyleConfig, stylize
from audiostyle.dsp import ceiling as ceiling_module
from audiostyle.dsp.ceiling import (
    RANGE_DB,
    apply_band_ceiling,
    ceiling_stft_size,
    level_profile,
    style_level_profile,
)
from audiostyle.dsp.levels import EXCERPT_SECONDS

RATE = 16000


def band_noise(rng: np.random.Generator, seconds: float, low: float, high: float, rate: int = RATE) -> np.ndarray:
    """(1, samples) float32 noise with its power between ``low`` and ``high`` Hz, RMS 0.1."""
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    wave = np.fft.irfft(spectrum, n)
    return (0.1 * wave / np.sqrt(np.mean(wave**2)))[None].astype(np.float32)


def tone(seconds: float, hz: float, amplitude: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t))[None].astype(np.float32)


def band_db(audio: np.ndarray, low: float, high: float, rate: int = RATE) -> float:
    """Mean power between ``low`` and ``high`` Hz, dB."""
    spectrum = np.abs(np.fft.rfft(audio[0])) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / rate)
    return 10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].mean())


def test_a_band_the_style_leaves_empty_is_emptied_and_the_rest_is_left_alone(rng):
    style = band_noise(rng, 3.0, 2000, 7000)
    hiss = band_noise(rng, 3.0, 2000, 7000)
    output = hiss + tone(3.0, 500, 0.05)
    levels = style_level_profile([(style, RATE)], [1.0], RATE)
    capped = apply_band_ceiling(output.copy(), RATE, levels, 6.0)
    # The tone falls to about the style's level there, far under the hiss; the hiss stays.
    assert band_db(capped, 450, 550) < band_db(output, 450, 550) - 30
    assert band_db(capped, 2500, 6500) == pytest.approx(band_db(output, 2500, 6500), abs=0.2)
    assert capped.dtype == np.float32 and np.isfinite(capped).all()


def test_a_style_that_sounds_everywhere_changes_nothing(rng):
    style = band_noise(rng, 3.0, 0, RATE / 2)
    output = band_noise(rng, 3.0, 0, RATE / 2) + tone(3.0, 500, 0.02)
    levels = style_level_profile([(style, RATE)], [1.0], RATE)
    np.testing.assert_allclose(apply_band_ceiling(output.copy(), RATE, levels, 6.0), output, atol=1e-4)


def test_the_margin_sets_how_far_above_the_style_a_bin_may_stand(rng):
    style = band_noise(rng, 3.0, 2000, 7000) + tone(3.0, 500, 0.1 * 10 ** (-30 / 20))
    output = band_noise(rng, 3.0, 2000, 7000) + tone(3.0, 500, 0.1)
    levels = style_level_profile([(style, RATE)], [1.0], RATE)
    cut = {margin: band_db(output, 450, 550) - band_db(apply_band_ceiling(output.copy(), RATE, levels, margin), 450, 550)
           for margin in (0.0, 12.0, 40.0)}
    # The tone stands about 30 dB above the style's relative level: each dB of margin is a dB less cut.
    assert cut[0.0] == pytest.approx(cut[12.0] + 12.0, abs=2.0)
    assert cut[40.0] == pytest.approx(0.0, abs=0.5)


def test_a_blend_sounds_wherever_one_of_its_styles_does(rng):
    low, high = band_noise(rng, 3.0, 100, 1000), band_noise(rng, 3.0, 2000, 7000)
    freqs = np.linspace(0, RATE / 2, ceiling_stft_size(RATE) // 2 + 1)
    blend = style_level_profile([(low, RATE), (high, RATE)], [1.0, 3.0], RATE)
    alone = style_level_profile([(high, RATE)], [1.0], RATE)
    assert blend.max() == 0.0 and blend.min() >= -RANGE_DB
    assert blend[(freqs > 300) & (freqs < 700)].min() > -10
    assert alone[(freqs > 300) & (freqs < 700)].max() < -40
    # A style at weight 0 takes no part.
    np.testing.assert_array_equal(style_level_profile([(low, RATE), (high, RATE)], [0.0, 1.0], RATE), alone)


def test_a_style_at_a_lower_rate_is_empty_above_its_nyquist_frequency(rng):
    style = band_noise(rng, 3.0, 0, 8000, rate=16000)
    levels = style_level_profile([(style, 16000)], [1.0], 44100)
    freqs = np.linspace(0, 44100 / 2, levels.shape[0])
    assert levels[freqs > 11000].max() < -40
    assert levels[(freqs > 1000) & (freqs < 7000)].min() > -10


def test_nothing_to_go_by_leaves_the_audio_alone(rng):
    output = band_noise(rng, 1.0, 0, RATE / 2)
    silent = np.zeros((1, RATE), np.float32)
    assert style_level_profile([(silent, RATE)], [1.0], RATE) is None
    assert level_profile(output[:, :100], RATE) is None  # shorter than a frame
    np.testing.assert_array_equal(apply_band_ceiling(output.copy(), RATE, None, 6.0), output)
    levels = style_level_profile([(band_noise(rng, 1.0, 2000, 7000), RATE)], [1.0], RATE)
    np.testing.assert_array_equal(apply_band_ceiling(silent.copy(), RATE, levels, 6.0), silent)
    # A profile made at another rate does not fit this one's bins.
    other = style_level_profile([(band_noise(rng, 1.0, 2000, 7000), RATE)], [1.0], 44100)
    np.testing.assert_array_equal(apply_band_ceiling(output.copy(), RATE, other, 6.0), output)


def test_each_channel_is_capped_and_the_shape_kept(rng):
    style = band_noise(rng, 2.0, 2000, 7000)
    output = np.concatenate([band_noise(rng, 2.0, 2000, 7000) + tone(2.0, 500, 0.05), band_noise(rng, 2.0, 2000, 7000)])
    levels = style_level_profile([(style, RATE)], [1.0], RATE)
    capped = apply_band_ceiling(output.copy(), RATE, levels, 6.0)
    assert capped.shape == output.shape
    assert band_db(capped[:1], 450, 550) < band_db(output[:1], 450, 550) - 30
    np.testing.assert_allclose(capped[1:], output[1:], atol=1e-4)


def test_a_long_style_is_profiled_from_a_bounded_excerpt(rng, monkeypatch):
    long = np.tile(band_noise(rng, 5.0, 2000, 7000), 24)  # two minutes
    resampled = []
    original = ceiling_module.resample
    monkeypatch.setattr(ceiling_module, "resample", lambda audio, *args: resampled.append(audio.shape[-1]) or original(audio, *args))
    style_level_profile([(long, RATE)], [1.0], 22050)
    assert sum(resampled) <= EXCERPT_SECONDS * RATE


def _content_and_style(rng):
    content = (tone(2.0, 440, 0.1, 22050) + tone(2.0, 880, 0.05, 22050), 22050)
    style = (band_noise(rng, 2.0, 3000, 9000, 22050), 22050)
    return content, style


CONFIG = StyleConfig(n_fft=512, hop_length=128, filters=32, kernel_widths=(3,), iterations=5, griffin_lim_iters=4,
                     device="cpu", seed=0)


def test_the_spectrum_view_output_leaves_the_band_the_style_leaves_empty(rng):
    content, style = _content_and_style(rng)
    off = stylize(content, style, CONFIG).audio
    on = stylize(content, style, CONFIG.replace(band_ceiling_db=6.0)).audio
    # Against the style's band (the output's level is matched to the content's afterwards).
    def balance(audio):
        return band_db(audio, 300, 1000, 22050) - band_db(audio, 3500, 8500, 22050)

    assert balance(on) < balance(off) - 20


def test_the_envelope_view_keeps_the_content_s_notes_wherever_they_lie(rng):
    content, style = _content_and_style(rng)
    config = CONFIG.replace(style_view="envelope")
    np.testing.assert_array_equal(
        stylize(content, style, config.replace(band_ceiling_db=6.0)).audio, stylize(content, style, config).audio
    )


def test_a_many_channel_sound_is_analysed_one_channel_at_a_time(rng, monkeypatch):
    # Its STFT at once would take channels times the memory; the profile is the channels' mean power.
    channels = np.concatenate([band_noise(rng, 2.0, 2000, 7000) for _ in range(8)])
    seen = []
    original = ceiling_module.stft
    monkeypatch.setattr(ceiling_module, "stft", lambda wave, **kw: seen.append(tuple(wave.shape)) or original(wave, **kw))
    profile = level_profile(channels, RATE)
    assert len(seen) == 8 and all(len(shape) == 1 for shape in seen)
    freqs = np.linspace(0, RATE / 2, profile.shape[0])
    band = (freqs > 2500) & (freqs < 6500)
    # The mean of eight channels' powers varies less than one's, so its loud level is a few dB lower.
    single = level_profile(channels[:1], RATE)[band]
    assert np.all((profile[band] <= single + 1) & (profile[band] >= single - 8))
    assert profile[freqs < 1000].max() < profile[band].min() - 30
