"""End-to-end stylize() on short clips: shapes, rates, channels, losses, loudness, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiostyle import (
    PRESETS,
    AudioFileError,
    ConfigError,
    StyleConfig,
    stylize,
    stylize_spectrogram,
)
from audiostyle.dsp.levels import PEAK_CEILING
from audiostyle.networks import RandomCNN
from tests import support

TINY = StyleConfig(
    sample_rate=16000,
    n_fft=512,
    hop_length=128,
    filters=96,
    kernel_widths=(3, 7),
    iterations=15,
    griffin_lim_iters=8,
    device="cpu",
)


def tone_and_noise(rate: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    envelope = (np.sin(2 * np.pi * 2 * t) > 0).astype(np.float32)
    tone = 0.3 * np.sin(2 * np.pi * 330 * t) * envelope
    wave = tone + 0.02 * rng.standard_normal(t.size)
    return np.stack([wave * (1 - 0.3 * c) for c in range(channels)]).astype(np.float32)


def noise_texture(rate: int, seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    crackle = (rng.random(n) < 0.002) * rng.standard_normal(n)
    return (0.1 * rng.standard_normal(n) + 0.5 * crackle).astype(np.float32)[np.newaxis]


@pytest.fixture(scope="module")
def content() -> tuple[np.ndarray, int]:
    return tone_and_noise(22050, 1.5), 22050


@pytest.fixture(scope="module")
def style() -> tuple[np.ndarray, int]:
    return noise_texture(16000, 2.0), 16000


@pytest.fixture(scope="module")
def result(content, style):
    return stylize(content, style, TINY)


def test_output_keeps_content_rate_length_and_channels(result, content):
    audio, rate = content
    assert result.sample_rate == rate
    assert result.audio.dtype == np.float32
    assert result.audio.shape == audio.shape
    assert np.isfinite(result.audio).all()


def test_style_loss_falls_tenfold(result):
    assert result.history[-1]["style"] < result.history[0]["style"] / 10
    totals = [entry["total"] for entry in result.history]
    assert all(b <= a + 1e-6 for a, b in zip(totals, totals[1:]))


def test_peak_is_limited_and_loudness_matches(result, content):
    audio, _ = content
    assert np.abs(result.audio).max() <= PEAK_CEILING + 1e-6
    rms_out = np.sqrt(np.mean(result.audio.astype(np.float64) ** 2))
    rms_in = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    # Equal unless the -1 dBFS limiter had to pull the level down.
    assert rms_out <= rms_in * 1.001
    assert rms_out > rms_in * 0.2


def test_result_reports_timings_and_reconstruction(result):
    for stage in ("load", "analyze", "targets", "optimize", "griffin_lim", "total"):
        assert result.timings[stage] >= 0
    assert np.isfinite(result.metrics["spectral_convergence_db"])
    assert result.metrics["spectral_convergence_db"] < 0
    assert result.log_magnitude.shape[-2] == TINY.n_fft // 2 + 1
    assert (result.log_magnitude >= 0).all()


def test_stereo_content_stays_stereo(style):
    stereo = tone_and_noise(16000, 1.0, channels=2)
    out = stylize((stereo, 16000), style, TINY.replace(iterations=3))
    assert out.audio.shape == stereo.shape
    assert not np.allclose(out.audio[0], out.audio[1])


def test_stereo_style_pools_channels(content):
    stereo_style = np.concatenate([noise_texture(16000, 1.0, seed=2), noise_texture(16000, 1.0, seed=3)])
    out = stylize(content, (stereo_style, 16000), TINY.replace(iterations=3))
    assert out.audio.shape == content[0].shape


def test_same_seed_reproduces_and_other_seed_differs(content, style):
    config = TINY.replace(iterations=4)
    a = stylize(content, style, config).audio
    b = stylize(content, style, config).audio
    c = stylize(content, style, config.replace(seed=1)).audio
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_files_in_and_out(tmp_path, content, style):
    content_path, style_path = tmp_path / "content.flac", tmp_path / "style.wav"
    sf.write(content_path, content[0].T, content[1], subtype="PCM_24")
    sf.write(style_path, style[0].T, style[1])
    out = stylize(content_path, style_path, TINY.replace(iterations=3))
    written = out.save(tmp_path / "out.flac")
    info = sf.info(written)
    assert (info.samplerate, info.channels, info.format, info.subtype) == (22050, 1, "FLAC", "PCM_24")
    assert abs(info.frames - content[0].shape[-1]) <= TINY.hop_length
    as_wav = sf.info(out.save(tmp_path / "out.wav"))
    assert as_wav.format == "WAV"
    with pytest.raises(AudioFileError, match="input"):
        out.save(content_path)
    assert sf.info(content_path).subtype == "PCM_24"


def test_silent_content_gives_quiet_finite_output(style):
    silent = np.zeros((1, 16000), np.float32)
    out = stylize((silent, 16000), style, TINY.replace(iterations=3))
    assert np.isfinite(out.audio).all()
    assert np.abs(out.audio).max() < 1e-3


def test_near_silent_content_works(style):
    quiet = tone_and_noise(16000, 1.0) * 1e-3
    out = stylize((quiet, 16000), style, TINY.replace(iterations=3))
    assert np.isfinite(out.audio).all()
    assert out.history[-1]["style"] < out.history[0]["style"]


def test_silent_style_is_a_clear_error(content):
    with pytest.raises(AudioFileError, match="silent"):
        stylize(content, (np.zeros((1, 16000), np.float32), 16000), TINY)


def test_style_blend_accepts_pairs(content, style):
    other = (tone_and_noise(16000, 1.0, seed=5), 16000)
    out = stylize(content, [(style, 0.7), (other, 0.3)], TINY.replace(iterations=3))
    assert np.isfinite(out.audio).all()
    with pytest.raises(ConfigError):
        stylize(content, [style, other], TINY, style_weights=[1.0])


def test_texture_synthesis_has_requested_duration(style):
    out = stylize(None, style, TINY.replace(iterations=5), duration=1.25)
    assert out.sample_rate == TINY.sample_rate
    assert out.audio.shape == (1, int(1.25 * TINY.sample_rate))
    assert np.isfinite(out.audio).all() and np.abs(out.audio).max() > 0
    assert out.history[-1]["style"] < out.history[0]["style"]


def test_adam_solver_also_lowers_the_loss(content, style):
    out = stylize(content, style, TINY.replace(solver="adam", learning_rate=0.05, iterations=10))
    assert out.history[-1]["total"] < out.history[0]["total"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_run_on_a_short_clip(name, content, style):
    config = PRESETS[name].replace(iterations=2, griffin_lim_iters=2, device="cpu")
    if config.filters > 1024:
        config = config.replace(filters=1024)
    out = stylize(content, style, config)
    assert out.audio.shape == content[0].shape and np.isfinite(out.audio).all()


def test_stylize_spectrogram_shapes_and_batches():
    net = RandomCNN(65, filters=48, kernel_widths=(3,))
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(65, 30, generator=generator)
    style = torch.rand(65, 40, generator=generator)
    single = stylize_spectrogram(content, style, net, iterations=5)
    assert single.solution.shape == content.shape
    batched = stylize_spectrogram(torch.stack([content, content]), style, net, iterations=5)
    assert batched.solution.shape == (2, 65, 30)
    assert single.history[-1]["style"] < single.history[0]["style"]


@pytest.mark.parametrize(
    "source, error",
    [
        ((np.zeros((1, 0), np.float32), 16000), AudioFileError),
        ((np.full((1, 16000), np.nan, np.float32), 16000), AudioFileError),
        ((np.zeros((1, 100), np.float32), 16000), AudioFileError),
        ((np.zeros((1, 16000), np.float32), 0), ConfigError),
        ((np.zeros((2, 3, 4), np.float32), 16000), ConfigError),
        (12345, ConfigError),
    ],
)
def test_bad_array_inputs_raise_documented_errors(source, error, style):
    with pytest.raises(error):
        stylize(source, style, TINY)


def test_shipped_pretrained_network_stylizes_a_short_clip(content, style):
    out = stylize(content, style, TINY.replace(network="pretrained", iterations=4))
    assert out.audio.shape == content[0].shape and np.isfinite(out.audio).all()
    assert out.history[-1]["style"] < out.history[0]["style"]


# --- style blends and strength (at the pinned balance of support.TINY) ---------------------------


def test_blend_pairs_equal_style_weights(tone_files, single_thread):
    content, style, other = tone_files
    pairs = stylize(content, [(style, 0.7), (other, 0.3)], support.TINY)
    weights = stylize(content, [style, other], support.TINY, style_weights=[7, 3])
    assert np.allclose(pairs.audio, weights.audio, atol=1e-6)
    single = stylize(content, style, support.TINY)
    assert not np.allclose(pairs.audio, single.audio, atol=1e-4)


def test_strength_trades_content_for_style(tone_files, single_thread):
    # The presets weigh style 100:1, so the trade-off shows below the default strength.
    content, style, _ = tone_files
    finals = [
        stylize(content, style, support.TINY.replace(strength=s, iterations=8, griffin_lim_iters=1)).history[-1]
        for s in (0.1, 0.3, 0.5)
    ]
    styles = [f["style"] for f in finals]
    contents = [f["content"] for f in finals]
    assert styles[0] > styles[1] > styles[2]
    assert contents[0] < contents[1] < contents[2]


def test_a_prepared_style_makes_its_band_spectrum_once_per_rate(monkeypatch):
    # A library at 44.1 kHz reuses one long-term spectrum of the style instead of one per file.
    import audiostyle.pipeline.output as output
    from audiostyle import prepare_style

    config = StyleConfig(sample_rate=16000, n_fft=512, hop_length=128, filters=32, kernel_widths=(3,), iterations=2,
                         griffin_lim_iters=2, device="cpu")
    content = (0.1 * np.random.default_rng(0).standard_normal((1, 44100))).astype(np.float32)
    calls = []
    real = output.style_band_power
    monkeypatch.setattr(output, "style_band_power", lambda *args: calls.append(args[-1]) or real(*args))
    prepared = prepare_style((content, 44100), config)
    first = stylize((content, 44100), None, config, prepared=prepared)
    second = stylize((content, 44100), None, config, prepared=prepared)
    unprepared = stylize((content, 44100), (content, 44100), config)
    assert calls == [44100, 44100]  # once for the prepared style, once for the unprepared run
    np.testing.assert_array_equal(first.audio, second.audio)
    np.testing.assert_array_equal(first.audio, unprepared.audio)


def test_the_progress_callback_is_checked_and_cannot_change_the_history(content, style):
    with pytest.raises(ConfigError, match="progress"):
        stylize(content, style, TINY, progress=5)
    seen = []

    def meddle(step, total, losses):
        seen.append(dict(losses))
        losses.clear()  # the caller's copy, not the run's record
        losses["total"] = float("nan")

    out = stylize(content, style, TINY.replace(iterations=3), progress=meddle)
    assert seen and all(np.isfinite(entry["total"]) and "style" in entry for entry in out.history)


@pytest.mark.parametrize("weights", [1.0, "19", [None, 1], ["a", "b"], [1j, 1], np.ones((2, 2)), [True, 1]])
def test_style_weights_that_are_not_numbers_are_config_errors(content, style, weights):
    with pytest.raises(ConfigError, match="weight"):
        stylize(content, [style, style], TINY, style_weights=weights)


def test_style_weights_past_a_float_are_refused_and_numpy_numbers_taken(content, style):
    with pytest.raises(ConfigError, match="weights"):
        stylize(content, [style, style], TINY, style_weights=[10**400, 1])
    from audiostyle.pipeline.sources import normalise_styles

    assert normalise_styles([style, style], np.array([2.0, 1.0], np.float32))[1] == [1.0, 0.5]


def test_numbers_past_a_float_are_config_errors(style):
    with pytest.raises(ConfigError, match="duration"):
        stylize(None, style, TINY, duration=10**400)
    with pytest.raises(ConfigError, match="envelope_resolution_hz"):
        TINY.replace(style_view="envelope", envelope_resolution_hz=1e-320)


def test_a_duration_with_a_content_and_a_complex_waveform_are_refused(content, style):
    with pytest.raises(ConfigError, match="texture's length"):
        stylize(content, style, TINY, duration=2.0)
    waveform, rate = content
    with pytest.raises(ConfigError, match="real numbers"):
        stylize((waveform.astype(np.complex64), rate), style, TINY)


def test_a_texture_shorter_than_one_frame_is_refused_not_padded(style):
    with pytest.raises(ConfigError, match="shorter than one FFT frame"):
        stylize(None, style, TINY, duration=0.001)
