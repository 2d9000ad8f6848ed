"""audiostyle.dsp.levels: chunked RMS, peak, analysis gain and loudness matching against full-copy computations."""

from __future__ import annotations

import numpy as np
import pytest

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
