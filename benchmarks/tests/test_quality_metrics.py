"""The quality yardstick (benchmarks/quality_metrics.py) and its baselines (benchmarks/baselines.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.signal import butter, sosfilt

from benchmarks import baselines, quality_metrics

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SR = 22050
#: Families a fixed gain per band cannot move (the MFCC spread moves a little where the
#: 80 dB floor clips a boosted or cut band, so it is left out).
EQ_PROOF_FAMILIES = ("mfcc_motion",)


def drum_bursts(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Decaying noise bursts in three colours (kick-, snare- and hat-like) at random times."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * SR)
    colours = [
        sosfilt(butter(4, band, btype="bandpass", fs=SR, output="sos"), rng.standard_normal(samples))
        for band in ((60, 250), (800, 2500), (4000, 9000))
    ]
    signal = np.zeros(samples)
    start = 0
    while start < samples:
        colour = colours[rng.integers(len(colours))]
        length = min(int(rng.uniform(0.06, 0.15) * SR), samples - start)
        decay = np.exp(-np.arange(length) / (0.04 * SR))
        signal[start : start + length] += colour[start : start + length] / colour.std() * decay
        start += length + int(rng.uniform(0.08, 0.3) * SR)
    return (0.5 * signal / np.abs(signal).max()).astype(np.float32)


def harmonic_tone(seconds: float = 3.0) -> np.ndarray:
    """A steady 220 Hz sawtooth-like tone with 5 Hz vibrato."""
    time = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(220.0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * time))) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.5 * tone / np.abs(tone).max()).astype(np.float32)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    return drum_bursts(), harmonic_tone()


@pytest.fixture(scope="module")
def scored(pair):
    content, style = pair
    outputs = {
        "content": content,
        "style": style,
        "mix": baselines.mix(content, style, SR),
        "eq_match": baselines.eq_match(content, style, SR),
    }
    return {name: quality_metrics.score(output, content, style, SR) for name, output in outputs.items()}


def test_content_itself_scores_no_style_full_content(scored):
    result = scored["content"]
    assert result["style"] == pytest.approx(0.0, abs=1e-9)
    assert result["content"] == pytest.approx(1.0, abs=1e-9)
    assert result["combined"] == 0.0


def test_style_itself_scores_full_style_no_content(scored):
    result = scored["style"]
    assert result["style"] == pytest.approx(1.0, abs=1e-9)
    assert result["content"] == pytest.approx(0.0, abs=1e-9)
    for family in quality_metrics.STYLE_FAMILIES:
        assert result[f"style_{family}"] == pytest.approx(1.0)
        assert result[f"style_{family}_distance"] == pytest.approx(0.0, abs=1e-9)


def test_mix_lands_in_between(scored):
    result = scored["mix"]
    assert 0.1 < result["style"] < 0.9
    assert 0.1 < result["content"] < 0.97
    assert 0.0 < result["combined"] < 0.9


def test_eq_match_keeps_content_but_not_texture(scored):
    result = scored["eq_match"]
    assert result["content"] > 0.8
    assert result["style_colour"] > 0.5, "the EQ should copy the average spectrum"
    for family in EQ_PROOF_FAMILIES:
        assert abs(result[f"style_{family}"]) < 0.2, family
    assert result["style"] < 0.4


def test_combined_is_harmonic_mean_of_clipped_scores(scored):
    for result in scored.values():
        style, content = np.clip(result["style"], 0, 1), np.clip(result["content"], 0, 1)
        expected = 2 * style * content / (style + content) if style + content > 0 else 0.0
        assert result["combined"] == pytest.approx(expected)


def test_another_take_of_the_content_texture_scores_no_style_no_content(pair):
    content, style = pair
    result = quality_metrics.score(drum_bursts(seed=1), content, style, SR)
    assert abs(result["style"]) < 0.15
    assert result["content"] < 0.2


@pytest.mark.parametrize("seconds", [1.5, 4.0])
def test_style_statistics_do_not_depend_on_length(pair, seconds):
    content, style = pair
    assert quality_metrics.score(harmonic_tone(seconds), content, style, SR)["style"] > 0.9


def test_level_channels_and_input_kinds_do_not_change_the_score(pair, scored, tmp_path):
    content, style = pair
    output = baselines.mix(content, style, SR)
    path = tmp_path / "mix.wav"
    soundfile.write(path, output, SR, subtype="FLOAT")
    stereo_quiet = 0.1 * np.stack([output, output])
    for variant in (stereo_quiet, (output, SR), str(path), path):
        result = quality_metrics.score(variant, (content, SR), style, SR)
        for key in ("style", "content"):
            assert result[key] == pytest.approx(scored["mix"][key], abs=1e-4)


def test_other_sample_rates_score_alike(pair, scored):
    import librosa

    content, style = pair
    output = baselines.mix(content, style, SR)
    output_44k = librosa.resample(output, orig_sr=SR, target_sr=44100, res_type="soxr_hq")
    result = quality_metrics.score((output_44k, 44100), content, style, SR)
    assert result["style"] == pytest.approx(scored["mix"]["style"], abs=0.03)
    assert result["content"] == pytest.approx(scored["mix"]["content"], abs=0.03)


def test_score_is_deterministic(pair):
    content, style = pair
    output = baselines.mix(content, style, SR)
    assert quality_metrics.score(output, content, style, SR) == quality_metrics.score(output, content, style, SR)


@pytest.mark.parametrize(
    ("output", "error"),
    [
        (np.zeros(SR), ValueError),
        (np.full(SR, np.nan), ValueError),
        (np.ones((1, 2, SR)), ValueError),
        ([0.1, 0.2], TypeError),
        ((np.ones(SR), SR, 1), TypeError),
        ((np.ones(SR), 0), ValueError),
    ],
)
def test_bad_inputs_raise(pair, output, error):
    content, style = pair
    with pytest.raises(error):
        quality_metrics.score(output, content, style, SR)


def test_too_short_content_raises(pair):
    _, style = pair
    with pytest.raises(ValueError, match="at least"):
        quality_metrics.score(np.ones(500), np.ones(500), style, SR)


def test_unknown_family_or_measure_raises():
    with pytest.raises(ValueError, match="family"):
        quality_metrics.style_distance("loudness", np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="measure"):
        quality_metrics.content_similarity("pitch", np.zeros(3), np.zeros(3))


@pytest.mark.parametrize(("length", "expected"), [(2, [1, 2]), (7, [1, 2, 3, 1, 2, 3, 1])])
def test_fit_length_crops_or_tiles(length, expected):
    waveform = np.array([[1, 2, 3], [4, 5, 6]])
    fitted = baselines.fit_length(waveform, length)
    np.testing.assert_array_equal(fitted[0], expected)
    assert fitted.shape == (2, length)


@pytest.mark.parametrize("channels", [None, 2])
def test_baselines_keep_the_content_layout_and_level(pair, channels):
    content, style = pair
    if channels:
        content = np.stack([content, 0.5 * content])
    content_rms = np.sqrt(np.mean(content.astype(np.float64) ** 2))
    for make in (baselines.mix, baselines.eq_match):
        output = make(content, np.stack([style, style]), SR)
        assert output.shape == content.shape and output.dtype == np.float32
        assert np.sqrt(np.mean(output.astype(np.float64) ** 2)) == pytest.approx(content_rms, rel=0.02)


def test_eq_match_copies_the_average_spectrum(pair):
    content, style = pair
    colour = {
        name: quality_metrics.style_statistics(quality_metrics.load_mono(audio, sample_rate=SR))["colour"]
        for name, audio in (("content", content), ("style", style), ("eq", baselines.eq_match(content, style, SR)))
    }
    before = quality_metrics.style_distance("colour", colour["content"], colour["style"])
    after = quality_metrics.style_distance("colour", colour["eq"], colour["style"])
    assert after < 0.5 * before


CORPUS_PAIRS = [
    ("speech_librispeech_198-209_female.flac", "strings_brahms_hungarian_dance5.ogg"),
    ("speech_librispeech_198-209_female.flac", "env_rain_synthetic.ogg"),
]


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize(("content_name", "style_name"), CORPUS_PAIRS)
def test_real_pair_eq_match_scores_well_below_full_style(content_name, style_name):
    import librosa

    def first_seconds(name: str) -> tuple[np.ndarray, int]:
        data, rate = soundfile.read(CORPUS / name, dtype="float32", always_2d=True)
        return data[: 5 * rate].T, rate

    (content, content_rate), (style, style_rate) = first_seconds(content_name), first_seconds(style_name)
    style_at_content_rate = librosa.resample(style, orig_sr=style_rate, target_sr=content_rate, res_type="soxr_hq")
    references = ((content, content_rate), (style, style_rate))
    eq = quality_metrics.score((baselines.eq_match(content, style_at_content_rate, content_rate), content_rate), *references)
    mixed = quality_metrics.score((baselines.mix(content, style_at_content_rate, content_rate), content_rate), *references)

    assert eq["content"] > 0.9
    assert eq["style"] < 0.4
    for family in EQ_PROOF_FAMILIES:
        assert abs(eq[f"style_{family}"]) < 0.15, family
    # An EQ towards a noise style also steadies the spectral shape, so it may score about as
    # high as the mix overall; it must still take less style than the mix.
    assert eq["style"] < mixed["style"]
    assert 0.2 < mixed["style"] < 0.8
    assert 0.3 < mixed["content"] < 0.9


@pytest.mark.skipif(not CORPUS.is_dir(), reason="needs ../shared/corpus")
def test_every_benchmark_pair_names_readable_files():
    from benchmarks.quality import CORE_PAIRS, PAIRS

    assert set(CORE_PAIRS) < set(PAIRS) and len(PAIRS) == 21
    for name, paths in PAIRS.items():
        for path in paths:
            info = soundfile.info(str(path))
            assert info.frames > 0 and info.samplerate > 0, f"{name}: {path}"


# The bandwidth figure (benchmarks/spectrum_measures.bandwidth_db) and quality.py's --native-rate mode.


def test_bandwidth_of_white_noise_is_flat_and_of_a_low_passed_signal_very_low():
    from benchmarks.spectrum_measures import bandwidth_db

    rate = 44100
    noise = np.random.default_rng(0).standard_normal(2 * rate)
    assert bandwidth_db(noise, rate) == pytest.approx(0.0, abs=0.3)
    assert bandwidth_db(np.stack([noise, noise]), rate) == pytest.approx(bandwidth_db(noise, rate))
    low_passed = sosfilt(butter(12, 8000, fs=rate, output="sos"), noise)
    assert bandwidth_db(low_passed, rate) < -40.0
    # What a 22.05 kHz engine gives back at 44.1 kHz: nothing above 11 kHz.
    from audiostyle.dsp.resample import resample

    assert bandwidth_db(resample(resample(noise, rate, 22050), 22050, rate), rate) < -60.0


@pytest.mark.parametrize("rate", [16000, 22050])
def test_bandwidth_needs_a_rate_that_holds_the_band(rate):
    from benchmarks.spectrum_measures import bandwidth_db

    assert bandwidth_db(np.random.default_rng(0).standard_normal(rate), rate) is None


def test_bandwidth_summary_counts_styles_with_high_band_energy_and_contents_that_hold_it():
    from benchmarks.quality import bandwidth_summary

    def row(output, content, style, method="default"):
        return {"method": method, "bandwidth_output_db": output, "bandwidth_content_db": content, "bandwidth_style_db": style}

    rows = [
        row(-5.0, -20.0, -3.0),  # within 10 dB
        row(-140.0, -20.0, -3.0),  # band-limited output
        row(None, -20.0, -3.0),  # output at a rate that cannot hold the band
        row(-140.0, None, -3.0),  # content at 22.05 kHz: left out
        row(-140.0, -20.0, -90.0),  # style without energy above 11 kHz: not counted
        row(-140.0, -20.0, None),
        row(-3.0, -20.0, -3.0, method="mix"),
    ]
    assert bandwidth_summary(rows, "default") == (1, 3, 1)
    assert bandwidth_summary(rows, "mix") == (1, 1, 0)


@pytest.mark.parametrize("native_rate", [False, True])
def test_quality_native_rate_measures_outputs_at_their_own_rate(tmp_path, monkeypatch, capsys, native_rate):
    """quality.main end to end, with a stand-in engine that band-limits to 11 kHz like today's."""
    from types import SimpleNamespace

    from audiostyle.dsp.resample import resample
    from benchmarks import quality

    rng = np.random.default_rng(3)
    content_path, style_path = tmp_path / "content.wav", tmp_path / "style.flac"
    bursts = (np.arange(2 * 44100) // 4410) % 2  # 0.1 s on, 0.1 s off
    soundfile.write(content_path, 0.1 * rng.standard_normal(2 * 44100) * bursts, 44100)
    soundfile.write(style_path, 0.1 * rng.standard_normal(2 * 48000), 48000)
    monkeypatch.setitem(quality.PAIRS, "synthetic", (content_path, style_path))
    rates = []

    def band_limiting_stylize(content, style, config):
        (audio, rate), (_, style_rate) = content, style
        rates.append((rate, style_rate))
        return SimpleNamespace(audio=resample(resample(audio, rate, 22050), 22050, rate), sample_rate=rate)

    monkeypatch.setattr(quality, "stylize", band_limiting_stylize)
    output = tmp_path / "quality.json"
    argv = ["--presets", "default", "--pairs", "synthetic", "--seconds", "1.5", "--output", str(output)]
    quality.main(argv + (["--native-rate"] if native_rate else []))
    report = json.loads(output.read_text())
    rows = {row["method"]: row for row in report["rows"]}
    printed = capsys.readouterr().out
    assert report["native_rate"] is native_rate
    if not native_rate:
        # Everything at 22.05 kHz, as before: no band above 11 kHz to measure, no new columns.
        assert rates == [(quality.RATE, quality.RATE)]
        assert all(row["output_rate"] == quality.RATE and row["bandwidth_output_db"] is None for row in rows.values())
        assert "bw_out" not in printed and "bandwidth" not in printed
        return
    assert rates == [(44100, 48000)]
    assert rows["default"]["output_rate"] == 44100
    assert rows["default"]["bandwidth_style_db"] == pytest.approx(0.0, abs=0.5)
    assert rows["default"]["bandwidth_output_db"] < -60.0
    assert rows["mix"]["bandwidth_output_db"] > -10.0  # the mix carries the style's high band
    assert "bandwidth default: within 10 dB of the style's on 0/1 pairs" in printed
    assert "bandwidth mix: within 10 dB of the style's on 1/1 pairs" in printed
