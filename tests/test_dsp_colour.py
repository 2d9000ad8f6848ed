"""Colour match: the long-term colour moves towards the target's, the level and the rest stay."""

from __future__ import annotations

import numpy as np
import pytest

from audiostyle import StyleConfig, stylize
from audiostyle.dsp import bandwidth
from audiostyle.dsp.bandwidth import band_stft_size, long_term_power, style_band_power
from audiostyle.dsp.colour import (
    MAX_COLOUR_DB,
    colour_gains,
    match_colour,
    octave_windows,
)

RATE = 16000


def coloured_noise(rng: np.random.Generator, seconds: float, slope_db_per_octave: float) -> np.ndarray:
    """(1, samples) float32 noise whose power falls ``slope`` dB per octave above 100 Hz."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum *= 10 ** (slope_db_per_octave * np.log2(np.maximum(freqs, 100.0) / 100.0) / 20)
    wave = np.fft.irfft(spectrum, n)
    return (0.1 * wave / np.sqrt(np.mean(wave**2)))[None].astype(np.float32)


def tilt_db(audio: np.ndarray) -> float:
    """Level of 2-6 kHz against 200-600 Hz, dB."""
    n_fft = band_stft_size(RATE)
    power = long_term_power(audio, n_fft)
    freqs = np.arange(power.size) * RATE / n_fft
    high = power[(freqs >= 2000) & (freqs < 6000)].mean()
    low = power[(freqs >= 200) & (freqs < 600)].mean()
    return 10 * np.log10(high / low)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_moves_the_colour_part_of_the_way_and_keeps_the_level(rng):
    dark, bright = coloured_noise(rng, 2.0, -6.0), coloured_noise(rng, 2.0, 0.0)
    target = style_band_power([(bright, RATE)], [1.0], RATE)
    before = tilt_db(dark)
    half = match_colour(dark.copy(), RATE, target, 0.5)
    full = match_colour(dark.copy(), RATE, target, 1.0)
    gap = tilt_db(bright) - before
    assert gap > 15
    assert tilt_db(half) - before == pytest.approx(gap / 2, abs=2.5)
    # All the way, within the cap on each bin.
    assert tilt_db(half) + 3 < tilt_db(full) <= before + gap + 1
    for out in (half, full):
        assert np.mean(out**2) == pytest.approx(np.mean(dark**2), rel=0.1)
        assert out.shape == dark.shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_in_place_chunked_and_off_at_zero(rng, monkeypatch):
    audio = np.concatenate([coloured_noise(rng, 2.0, -6.0)] * 2)  # stereo
    target = style_band_power([(coloured_noise(rng, 2.0, 0.0), RATE)], [1.0], RATE)
    assert np.array_equal(match_colour(audio.copy(), RATE, target, 0.0), audio)
    whole = match_colour(audio.copy(), RATE, target, 0.5)
    monkeypatch.setattr(bandwidth, "CHUNK", 4096)  # a whole number of hops, as CHUNK is
    spliced = audio.copy()
    chunked = match_colour(spliced, RATE, target, 0.5)
    assert chunked is spliced
    assert np.abs(chunked - whole).max() < 2e-3 * np.abs(whole).max()


def test_gains_keep_the_total_and_ignore_what_the_target_lacks():
    bins = 257
    power = np.ones(bins)
    target = np.ones(bins)
    target[bins // 2 :] = 0.0  # a style with nothing in the upper half
    target[10] = 50.0
    gains = colour_gains(power, target, RATE, 1.0)
    assert np.sum(gains**2 * power) == pytest.approx(power.sum())
    assert np.ptp(gains[bins // 2 + 20 :]) < 1e-9  # no colour to match up there: one common gain
    assert gains[10] > gains[60]
    assert np.all(20 * np.log10(gains.max() / gains.min()) <= 2 * MAX_COLOUR_DB + 1e-6)
    assert np.array_equal(colour_gains(power, np.zeros(bins), RATE, 1.0), np.ones(bins))


def test_octave_windows_span_their_width():
    freqs = np.linspace(0, RATE / 2, 257)
    first, stop = octave_windows(freqs, 1 / 3)
    assert 35 <= stop[200] - first[200] <= 55  # 6.2 kHz: a third of an octave, ~1.4 kHz, ~45 bins
    # The default's two octaves: from half to twice the frequency.
    first, stop = octave_windows(freqs)
    assert 90 <= stop[64] - first[64] <= 100  # 2 kHz: 1-4 kHz, 96 bins
    assert np.all(first <= np.arange(257)) and np.all(stop > np.arange(257)) and stop[-1] == 257


def test_stylize_applies_it_when_asked(rng):
    config = StyleConfig(sample_rate=RATE, n_fft=512, hop_length=128, filters=32, kernel_widths=(3,), iterations=2,
                         griffin_lim_iters=2, device="cpu")
    content, style = (coloured_noise(rng, 1.0, -6.0), RATE), (coloured_noise(rng, 1.0, 0.0), RATE)
    plain = stylize(content, style, config)
    matched = stylize(content, style, config.replace(colour_match=1.0))
    assert "colour" in matched.timings
    assert tilt_db(matched.audio) > tilt_db(plain.audio) + 3


def test_a_loop_stays_seamless(rng):
    period = coloured_noise(rng, 1.0, -6.0)
    target = style_band_power([(coloured_noise(rng, 2.0, 0.0), RATE)], [1.0], RATE)
    looped = match_colour(period.copy(), RATE, target, 1.0, circular=True)
    tiled = np.concatenate([looped, looped], axis=1)
    # The step across the seam is no larger than the steps inside the period.
    steps = np.abs(np.diff(tiled[0]))
    assert steps[period.shape[-1] - 1] <= np.percentile(steps, 99.9)
    assert tilt_db(looped) > tilt_db(period) + 10


def test_the_style_spectra_are_made_once_per_run(rng, monkeypatch):
    # The full-band rebuild and the colour match both read the power at a 44.1 kHz content's
    # rate, the band ceiling the levels.
    from audiostyle.pipeline import output

    made = []
    for name in ("style_band_power", "style_level_profile"):
        original = getattr(output, name)
        monkeypatch.setattr(
            output, name, lambda *args, name=name, original=original: made.append((name, args[-1])) or original(*args)
        )
    audio = (rng.standard_normal((1, 44100)).astype(np.float32) * 0.1, 44100)
    config = StyleConfig(sample_rate=RATE, n_fft=512, hop_length=128, filters=16, kernel_widths=(3,), iterations=2,
                         griffin_lim_iters=2, colour_match=0.5, band_ceiling_db=6.0, device="cpu")
    stylize(audio, audio, config)
    assert sorted(made) == [("style_band_power", 44100), ("style_level_profile", 44100)]
