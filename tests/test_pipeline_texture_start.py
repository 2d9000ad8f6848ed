"""Texture synthesis (stylize with no content): level, density, rate and channels of the style."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiostyle import stylize
from audiostyle.dsp.loop import resample_loop
from audiostyle.dsp.stft import analyze
from audiostyle.pipeline.texture_start import texture_start
from tests import support

RATE = 44100
TINY = support.TINY.replace(iterations=5)


def frame_levels_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Level of every 100 ms frame (all channels), dBFS."""
    size = int(0.1 * rate)
    frames = audio[:, : audio.shape[-1] // size * size].reshape(audio.shape[0], -1, size)
    return 10 * np.log10(np.square(frames, dtype=np.float64).mean(axis=(0, 2)) + 1e-12)


@pytest.fixture
def rain(rng) -> np.ndarray:
    """Dense stereo noise with scattered drops: what a rain recording looks like."""
    hiss = 0.05 * rng.standard_normal((2, 3 * RATE))
    for start in rng.integers(0, 3 * RATE - 2000, 40):
        hiss[:, start : start + 2000] += 0.12 * np.exp(-np.arange(2000) / 300) * rng.standard_normal(2000)
    return hiss.astype(np.float32)


def test_texture_keeps_the_styles_rate_channels_and_level(rain, single_thread):
    result = stylize(None, (rain, RATE), TINY, duration=2.0)
    assert result.sample_rate == RATE
    assert result.audio.shape == (2, 2 * RATE)
    assert np.isfinite(result.audio).all()
    levels, source = frame_levels_db(result.audio, RATE), frame_levels_db(rain, RATE)
    rms = lambda a: 10 * np.log10(np.square(a, dtype=np.float64).mean())  # noqa: E731
    assert abs(rms(result.audio) - rms(rain)) < 3
    # Dense like its source: no holes 20 dB under the source's median, percentiles close.
    assert (levels < np.median(source) - 20).mean() == 0
    assert np.abs(np.percentile(levels, [5, 50, 95]) - np.percentile(source, [5, 50, 95])).max() < 6
    # And full band: the style's air above the working band is there.
    spectrum = np.abs(np.fft.rfft(result.audio[0])) ** 2
    freqs = np.fft.rfftfreq(result.audio.shape[-1], 1 / RATE)
    high = spectrum[(freqs > 11000) & (freqs < 16000)].mean() / spectrum[(freqs > 1000) & (freqs < 7000)].mean()
    assert 10 * np.log10(high) > -20


def test_texture_from_noise_init_stays_mono_for_a_mono_style(rng, single_thread):
    style = (0.1 * rng.standard_normal((1, RATE))).astype(np.float32)
    result = stylize(None, (style, RATE), TINY.replace(init="noise", full_band=False), duration=1.0)
    assert result.audio.shape == (1, RATE) and result.sample_rate == RATE


def test_loop_texture_at_the_styles_rate_has_no_seam(rain, single_thread):
    result = stylize(None, (rain, RATE), TINY.replace(loop=True), duration=1.0)
    audio = result.audio[0]
    assert result.sample_rate == RATE
    tiled = np.concatenate([audio, audio])
    inside = np.abs(np.diff(audio))
    assert abs(float(tiled[audio.size] - tiled[audio.size - 1])) <= np.percentile(inside, 99.5)


def test_texture_start_draws_style_frames(rng):
    style = (0.1 * rng.standard_normal((2, 16000))).astype(np.float32)
    start = texture_start([style], [1.0], frames=60, channels=2, n_fft=512, hop_length=128, seed=3)
    frames = analyze(style, 16000, n_fft=512, hop_length=128).log_magnitude  # (2, 257, 126)
    assert start.shape == (2, 257, 60)
    for t in (0, 17, 59):
        # Each frame is one of the style's, the same one in both channels.
        distance = (frames[0] - start[0][:, t : t + 1]).abs().amax(dim=0)
        match = int(distance.argmin())
        assert float(distance[match]) < 1e-5
        assert torch.allclose(frames[1][:, match], start[1][:, t], atol=1e-5)
        assert 2 <= match <= frames.shape[-1] - 3  # never a half-padded edge frame
    again = texture_start([style], [1.0], frames=60, channels=2, n_fft=512, hop_length=128, seed=3)
    assert torch.equal(start, again)


def test_texture_start_follows_blend_weights(rng):
    loud = (0.5 * rng.standard_normal((1, 16000))).astype(np.float32)
    quiet = (0.005 * rng.standard_normal((1, 16000))).astype(np.float32)
    only_loud = texture_start([loud, quiet], [1.0, 0.0], frames=50, channels=1, n_fft=512, hop_length=128, seed=0)
    only_quiet = texture_start([loud, quiet], [0.0, 1.0], frames=50, channels=1, n_fft=512, hop_length=128, seed=0)
    assert float(only_loud.mean()) > 5 * float(only_quiet.mean())


@pytest.mark.parametrize(("orig", "target"), [(22050, 44100), (22050, 48000), (48000, 16000)])
def test_resample_loop_stays_periodic(orig, target):
    t = np.arange(orig) / orig
    period = np.sin(2 * np.pi * 5 * t)[None].astype(np.float32)  # 5 cycles per period
    out = resample_loop(period, orig, target)
    assert out.shape == (1, round(orig * target / orig))
    expected = np.sin(2 * np.pi * 5 * np.arange(out.shape[-1]) / out.shape[-1])
    np.testing.assert_allclose(out[0], expected, atol=1e-4)


def test_a_dc_offset_does_not_set_the_level(rain, single_thread):
    # A recording with a DC offset (the corpus whale has +0.35) is as loud as its sound, not its offset.
    offset = rain + np.float32(0.35)
    result = stylize(None, (offset, RATE), TINY.replace(full_band=False), duration=1.0)
    ac = lambda a: 10 * np.log10(np.square(a - a.mean(axis=-1, keepdims=True), dtype=np.float64).mean())  # noqa: E731
    assert abs(ac(result.audio) - ac(rain)) < 3


def test_texture_start_lays_crossfaded_runs(rng):
    style = (0.1 * rng.standard_normal((1, 16000))).astype(np.float32)
    frames = analyze(style, 16000, n_fft=512, hop_length=128).log_magnitude[0]  # (257, 126)
    start = texture_start([style], [1.0], frames=60, channels=1, n_fft=512, hop_length=128, seed=1, run_frames=20, fade_frames=6)[0]

    def source_of(t):
        distance = (frames - start[:, t : t + 1]).abs().amax(dim=0)
        return int(distance.argmin()), float(distance.min())

    # Inside a run (away from the fades), output frames are consecutive style frames.
    first, gap = source_of(0)
    assert gap < 1e-5
    for t in range(1, 14):
        assert source_of(t) == (first + t, pytest.approx(0.0, abs=1e-5))
    # In a fade, a frame is a blend of two runs: no single style frame matches it.
    assert source_of(16)[1] > 1e-3
    assert torch.isfinite(start).all() and start.shape == (257, 60)


def test_runs_longer_than_a_short_style_are_cut_to_it(rng):
    short = (0.1 * rng.standard_normal((1, 2000))).astype(np.float32)  # 16 frames, 12 inside its edges
    start = texture_start([short], [1.0], frames=100, channels=1, n_fft=512, hop_length=128, seed=0, run_frames=40, fade_frames=10)
    assert start.shape == (1, 257, 100) and torch.isfinite(start).all() and float(start.min()) >= 0
