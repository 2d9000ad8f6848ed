"""Creative controls: seamless loops, style blends, strength, long inputs in segments,
figures and run reports (library and CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiostyle import ConfigError, StyleConfig, stylize
from audiostyle.dsp.levels import (
    LEVEL_CHUNK,
    PEAK_CEILING,
    all_finite,
    analysis_gain,
    match_loudness,
    normalise_level,
    peak,
    rms,
)
from audiostyle.dsp.loop import circular_griffin_lim, circular_istft, circular_stft
from audiostyle.dsp.stft import analyze
from audiostyle.networks import RandomCNN
from audiostyle.objective import StyleStatistics, gram
from audiostyle.pipeline.segments import crossfade_weights, segment_bounds

RATE = 16000
TINY = StyleConfig(
    sample_rate=RATE,
    n_fft=512,
    hop_length=128,
    filters=48,
    kernel_widths=(3, 7),
    iterations=3,
    griffin_lim_iters=4,
    content_weight=1.0,
    style_weight=100.0,  # pinned: the strength test reads the trade-off at this balance
    device="cpu",
)


def tone(rng, seconds, frequency, noise=0.05):
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.3 * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(t.size)
    return wave.astype(np.float32)[np.newaxis]


@pytest.fixture
def style_wave(rng):
    return tone(rng, 1.0, 440.0, noise=0.1)


@pytest.fixture
def files(tmp_path, rng):
    content, style, other = tmp_path / "content.wav", tmp_path / "style.wav", tmp_path / "other.wav"
    sf.write(content, tone(rng, 1.0, 220.0)[0], RATE)
    sf.write(style, tone(rng, 1.0, 660.0, noise=0.2)[0], RATE)
    sf.write(other, tone(rng, 1.0, 1320.0, noise=0.01)[0], RATE)
    return content, style, other


# --- seamless loops -------------------------------------------------------------------------


def test_circular_stft_inverts_exactly_and_wraps(rng):
    wave = torch.from_numpy(rng.standard_normal((2, 40 * 128)).astype(np.float32))
    spec = circular_stft(wave, n_fft=512, hop_length=128)
    assert spec.shape == (2, 257, 40)
    assert torch.allclose(circular_istft(spec, n_fft=512, hop_length=128), wave, atol=1e-5)
    # A circular shift by whole hops shifts the frames: nothing marks the start.
    shifted = circular_stft(torch.roll(wave, 3 * 128, dims=-1), n_fft=512, hop_length=128)
    assert torch.allclose(shifted, torch.roll(spec, 3, dims=-1), atol=1e-3)


def test_circular_griffin_lim_needs_whole_hops():
    assert circular_griffin_lim(torch.rand(257, 10), n_fft=512, hop_length=128, n_iter=1).shape == (1280,)
    with pytest.raises(ConfigError):
        circular_stft(torch.zeros(1000), n_fft=512, hop_length=128)


def test_loop_texture_has_no_seam(style_wave, single_thread):
    result = stylize(None, (style_wave, RATE), TINY.replace(loop=True, iterations=5), duration=1.0)
    audio = result.audio[0]
    assert audio.shape[-1] % TINY.hop_length == 0 and np.isfinite(audio).all()
    inside = np.abs(np.diff(audio))
    tiled = np.concatenate([audio, audio])
    seam = abs(float(tiled[audio.size] - tiled[audio.size - 1]))
    # The jump where the file meets its own start is no larger than one inside the file,
    # and is typical rather than extreme (below the 99th percentile of neighbour jumps).
    assert seam <= inside.max()
    assert seam <= np.percentile(inside, 99)
    assert result.metrics["spectral_convergence_db"] < 0


def test_loop_with_content_is_refused(style_wave):
    with pytest.raises(ConfigError, match="loop"):
        stylize((style_wave, RATE), (style_wave, RATE), TINY.replace(loop=True))


# --- style blends ---------------------------------------------------------------------------


def test_blend_statistics_are_the_weighted_grams():
    net = RandomCNN(65, filters=16, kernel_widths=(3,), seed=1)
    a, b = torch.rand(1, 65, 30), torch.rand(1, 65, 50) * 2
    blended = StyleStatistics.from_log_magnitudes(net, [a, b], [7, 3])  # normalised to 0.7, 0.3
    grams = [gram(net(x)[0][0]) for x in (a, b)]
    assert torch.allclose(blended.layers[0].gram, 0.7 * grams[0] + 0.3 * grams[1], atol=1e-5)
    alone = StyleStatistics.from_log_magnitudes(net, [a, b], [1, 0])
    assert torch.allclose(alone.layers[0].gram, grams[0], atol=1e-5)


def test_blend_pairs_equal_style_weights(files, single_thread):
    content, style, other = files
    pairs = stylize(content, [(style, 0.7), (other, 0.3)], TINY)
    weights = stylize(content, [style, other], TINY, style_weights=[7, 3])
    assert np.allclose(pairs.audio, weights.audio, atol=1e-6)
    single = stylize(content, style, TINY)
    assert not np.allclose(pairs.audio, single.audio, atol=1e-4)


# --- strength -------------------------------------------------------------------------------


def test_strength_mapping_is_monotonic_and_keeps_the_default_balance():
    base = StyleConfig(content_weight=2.0, style_weight=50.0)
    assert base.loss_weights() == (2.0, 50.0)
    assert StyleConfig(content_weight=2.0, style_weight=50.0, strength=0).loss_weights() == (2.0, 0.0)
    assert StyleConfig(content_weight=2.0, style_weight=50.0, strength=1).loss_weights() == (0.0, 50.0)
    ratios = [
        (lambda w: w[1] / max(w[0], 1e-12))(StyleConfig(strength=s).loss_weights()) for s in np.linspace(0, 1, 11)
    ]
    assert all(later > earlier for earlier, later in zip(ratios, ratios[1:]))
    for bad in (-0.1, 1.01, float("nan"), "0.5"):
        with pytest.raises(ConfigError, match="strength"):
            StyleConfig(strength=bad)
    with pytest.raises(ConfigError, match="strength"):
        StyleConfig(style_weight=0.0, strength=1.0)


def test_strength_trades_content_for_style(files, single_thread):
    # The presets weigh style 100:1, so the trade-off shows below the default strength.
    content, style, _ = files
    finals = [
        stylize(content, style, TINY.replace(strength=s, iterations=8, griffin_lim_iters=1)).history[-1]
        for s in (0.1, 0.3, 0.5)
    ]
    styles = [f["style"] for f in finals]
    contents = [f["content"] for f in finals]
    assert styles[0] > styles[1] > styles[2]
    assert contents[0] < contents[1] < contents[2]


# --- long inputs in segments ----------------------------------------------------------------


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
    result = stylize((content, RATE), (style_wave, RATE), config, progress=lambda s, t, l: steps.append((s, t)))
    assert result.audio.shape == content.shape and np.isfinite(result.audio).all()
    assert result.log_magnitude is None
    # Each segment is refined as a waveform before it is joined, as a whole clip would be.
    refined = result.metrics["refined_spectral_convergence_db"]
    assert (refined is not None and refined < 0 and "refine" in result.timings) == (refine_steps > 0)
    assert steps[-1][1] == 4 * 2  # 3.2 s in 1 s segments overlapping by 16 frames: 4 segments
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


def _full_rms(audio):
    # The full-copy computation the chunked rms replaces: about each channel's mean (a DC offset is no sound).
    centred = audio.astype(np.float64) - audio.mean(axis=-1, keepdims=True, dtype=np.float64)
    return float(np.sqrt(np.mean(np.square(centred))))


def _old_normalise_level(audio):
    # The full-copy computation the chunked helpers replace.
    rms = _full_rms(audio)
    return audio if rms == 0 else (audio * min(0.1 / rms, 1e4)).astype(np.float32)


def _old_match_loudness(audio, reference, mode):
    if mode == "rms" and reference is not None:
        target, current = _full_rms(reference), _full_rms(audio)
        audio = audio * (target / current) if current > 0 else audio
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > PEAK_CEILING:
        audio = audio * (PEAK_CEILING / peak)
    return audio.astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 1000), (2, 2 * LEVEL_CHUNK + 17)])
def test_chunked_level_helpers_equal_the_full_copy_computation(rng, shape):
    audio = (0.3 * rng.standard_normal(shape)).astype(np.float32)
    reference = (0.05 * rng.standard_normal((shape[0], shape[1] // 2 + 5))).astype(np.float32)
    full_rms = _full_rms(audio)
    assert rms(audio) == pytest.approx(full_rms, rel=1e-12)
    assert rms(np.ascontiguousarray(audio.T).T) == pytest.approx(full_rms, rel=1e-12)  # a strided view
    assert rms(audio + np.float32(0.5)) == pytest.approx(full_rms, rel=1e-5)  # a DC offset adds no level
    assert peak(audio) == float(np.max(np.abs(audio)))
    assert analysis_gain(audio) == pytest.approx(0.1 / full_rms, rel=1e-12)
    np.testing.assert_allclose(normalise_level(audio), _old_normalise_level(audio), rtol=1e-6, atol=0)
    quiet = audio * 1e-9
    assert analysis_gain(quiet) == 1e4  # capped
    silent = np.zeros(shape, np.float32)
    assert analysis_gain(silent) == 1.0 and normalise_level(silent) is silent
    for mode in ("rms", "none"):
        for scale in (0.5, 5.0):  # peaks below and above the -1 dBFS ceiling
            loud = audio * scale
            expected = _old_match_loudness(loud, reference, mode)
            matched = match_loudness(loud.copy(), reference, mode)
            np.testing.assert_allclose(matched, expected, rtol=1e-6, atol=0)
            assert matched.dtype == np.float32 and np.abs(matched).max() <= PEAK_CEILING + 1e-7
        inplace = audio.copy()
        assert match_loudness(inplace, reference, mode) is inplace
    assert match_loudness(silent.copy(), reference, "rms").max() == 0
    assert all_finite(audio)
    for bad in (np.nan, np.inf, -np.inf):
        broken = audio.copy()
        broken[-1, -1] = bad  # past the first chunk
        assert not all_finite(broken)


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


# --- figures and reports --------------------------------------------------------------------


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_files_and_result_write_pngs(files, tmp_path, single_thread):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    from audiostyle.plots import plot_files, plot_result

    content, style, other = files
    figure = plot_files([content, style], tmp_path / "files.png", n_fft=512, hop_length=128)
    assert figure.read_bytes()[:8] == PNG_MAGIC and matplotlib.image.imread(figure).ndim == 3
    result = stylize(content, [(style, 0.5), (other, 0.5)], TINY)
    figure = plot_result(result, content, [(style, 0.5), (other, 0.5)], tmp_path / "run.png")
    assert figure.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ConfigError, match="png"):
        plot_files([content], tmp_path / "fig.txt")
    assert not (tmp_path / "fig.txt").exists()


def test_report_has_everything_to_reproduce(files, tmp_path):
    from audiostyle.report import build_report, write_report

    content, style, _ = files
    result = stylize(content, style, TINY)
    path = write_report(build_report(result, content=content, styles=[(style, 1.0)]), tmp_path / "r.json")
    report = json.loads(path.read_text())
    for key in ("config", "config_digest", "versions", "device", "losses", "timings", "quality", "audio", "loss_weights"):
        assert key in report
    assert StyleConfig(**report["config"]) == result.config
    assert len(report["losses"]) == len(result.history)
    assert report["timings"]["total"] > 0 and "griffin_lim" in report["timings"]
    assert report["versions"]["torch"] == torch.__version__
    assert report["quality"]["spectral_convergence_db"] < 0
