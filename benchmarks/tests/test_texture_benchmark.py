"""The texture benchmark (benchmarks/texture.py) and its measures (benchmarks/spectrum_measures.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile

from benchmarks import spectrum_measures, texture
from tests.hostile_inputs import TINY_SETTINGS

SR = 22050


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal((1, 3 * SR))).astype(np.float32)


def test_noise_against_itself_differs_in_nothing_and_passes(noise):
    figures = texture.compare(noise, SR, noise, SR)
    assert figures["rms_difference_db"] == pytest.approx(0.0, abs=1e-9)
    assert figures["levels_difference_db"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert figures["output_holes_pct"] == 0.0 and figures["source_holes_pct"] == 0.0
    assert figures["spectrum_difference_db"] == pytest.approx(0.0, abs=1e-9)
    assert figures["modulation_ratio"] == pytest.approx(1.0)
    assert figures["passed"] == dict.fromkeys((*texture.CRITERIA, "all"), True)


def test_half_silence_is_half_holes(noise):
    gapped = noise.copy()
    gapped[:, : gapped.shape[-1] // 2] = 0.0
    figures = texture.compare(gapped, SR, noise, SR)
    assert figures["output_holes_pct"] == pytest.approx(50.0, abs=2.0)
    assert figures["levels_difference_db"][0] < -40.0  # the 5th percentile is silence
    assert not figures["passed"]["holes"] and not figures["passed"]["levels"]
    # Judged against its own median (in the loud half), half the source is holes too.
    assert texture.compare(gapped, SR, gapped, SR)["source_holes_pct"] == pytest.approx(50.0, abs=2.0)


def test_six_db_quieter_copy_is_six_db_down_in_level_only(noise):
    quieter = noise * 10.0 ** (-6.0 / 20.0)
    figures = texture.compare(quieter, SR, noise, SR)
    assert figures["rms_difference_db"] == pytest.approx(-6.0, abs=1e-3)
    assert figures["levels_difference_db"] == pytest.approx([-6.0, -6.0, -6.0], abs=1e-3)
    # The spectrum's shape, not its level, is compared: level is the RMS criterion's job.
    assert figures["spectrum_difference_db"] == pytest.approx(0.0, abs=1e-6)
    assert figures["passed"]["rms"] is False and figures["passed"]["spectrum"] is True


def test_a_dc_offset_does_not_count_as_level(noise):
    offset = noise + 0.5
    figures = texture.compare(offset, SR, noise, SR)
    assert figures["rms_difference_db"] == pytest.approx(0.0, abs=1e-6)
    assert figures["levels_difference_db"] == pytest.approx([0.0, 0.0, 0.0], abs=0.05)


def test_rate_and_channel_count_must_match(noise):
    stereo = np.concatenate([noise, noise])
    figures = texture.compare(noise, SR, stereo, SR)
    # Power is averaged over channels, so a mono copy of a stereo pair measures the same...
    assert figures["rms_difference_db"] == pytest.approx(0.0, abs=1e-9)
    assert figures["spectrum_difference_db"] == pytest.approx(0.0, abs=1e-9)
    # ...but it is not the same format.
    assert figures["passed"]["format"] is False and figures["passed"]["all"] is False


def test_band_limited_output_of_a_wide_source_fails_the_spectrum():
    from audiostyle.dsp.resample import resample

    rate = 44100
    wide = (0.1 * np.random.default_rng(1).standard_normal((1, 3 * rate))).astype(np.float32)
    narrow = resample(resample(wide, rate, 22050), 22050, rate)  # what a 22.05 kHz engine gives back
    figures = texture.compare(narrow, rate, wide, rate)
    assert figures["spectrum_difference_db"] > texture.SPECTRUM_TOLERANCE_DB
    assert figures["rms_difference_db"] == pytest.approx(-10 * math.log10(2), abs=0.3)  # half the band's power
    # Output at 22.05 kHz: the bands only the source's rate holds count against it as well.
    at_low_rate = texture.compare(resample(wide, rate, 22050), 22050, wide, rate)
    assert at_low_rate["spectrum_difference_db"] > texture.SPECTRUM_TOLERANCE_DB
    assert at_low_rate["passed"]["format"] is False
    # A source that cannot hold the top bands is not compared there: extra output bandwidth is no fault.
    assert texture.compare(wide, rate, resample(wide, rate, 22050), 22050)["spectrum_difference_db"] < 1.0


def test_modulated_noise_is_deeper_than_steady_noise(noise):
    time = np.arange(noise.shape[-1]) / SR
    pulsing = noise * (1.0 + 0.9 * np.sin(2 * np.pi * 4 * time))
    figures = texture.compare(pulsing, SR, noise, SR)
    assert figures["modulation_ratio"] > 2.0
    depths = np.asarray(figures["output_modulation"], dtype=float)
    assert np.isnan(depths[-1])  # 8-16 kHz lies above 22.05 kHz's Nyquist frequency
    assert np.all(depths[:-1] > np.asarray(figures["source_modulation"])[:-1])


def test_halves_split_the_source():
    source = np.arange(10, dtype=np.float32).reshape(1, 10)
    first, second = texture.halves(source)
    assert first.tolist() == [[0, 1, 2, 3, 4]] and second.tolist() == [[5, 6, 7, 8, 9]]


@pytest.mark.parametrize("bad", [np.zeros((1, 0)), np.array([[np.nan, 0.0]]), np.zeros((1, 2, 3))])
def test_measures_refuse_empty_nonfinite_or_misshapen_audio(bad):
    with pytest.raises(ValueError):
        spectrum_measures.rms_db(bad)


def test_main_synthesises_measures_and_writes_json(tmp_path, monkeypatch, capsys):
    """End to end on a short noise file through the real engine, with a tiny preset."""
    import audiostyle

    rate = 16000
    source = tmp_path / "noise.wav"
    soundfile.write(source, 0.1 * np.random.default_rng(2).standard_normal((rate, 2)), rate)
    monkeypatch.setitem(texture.SOURCES, "noise", source)
    monkeypatch.setitem(audiostyle.PRESETS, "tiny", audiostyle.PRESETS["fast"].replace(**TINY_SETTINGS, refine_steps=0))
    output = tmp_path / "texture.json"
    texture.main(["--presets", "tiny", "--seconds", "1", "--styles", "noise", "--device", "cpu", "--output", str(output)])
    report = json.loads(output.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    rows = {row["row"]: row for row in report["rows"]}
    assert set(rows) == {"tiny", "halves"}
    assert rows["tiny"]["source_rate"] == rate and rows["tiny"]["source_channels"] == 2
    assert rows["tiny"]["output_rate"] > 0 and rows["tiny"]["seconds"] > 0
    assert set(rows["tiny"]["passed"]) == {*texture.CRITERIA, "all"}
    assert rows["halves"]["passed"]["format"] is True
    printed = capsys.readouterr().out
    assert "tiny: criteria met on" in printed and "halves (reference)" in printed
