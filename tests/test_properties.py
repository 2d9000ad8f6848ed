"""Property tests: any waveform, any setting -> a finite output of the right shape or a
documented AudioStyleError; never another exception, never NaN on disk.

The generators live in benchmarks/robustness.py, which runs them at a larger count.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiostyle import AudioStyleError, StyleConfig, stylize
from audiostyle.errors import AudioFileError, ConfigError, NumericalError, WeightsError
from tests.hostile_inputs import (
    RATES,
    SIGNAL_KINDS,
    TINY_SETTINGS,
    leftovers,
    make_waveform,
    random_config_value,
)
from tests.support import TINY

DOCUMENTED = (AudioFileError, ConfigError, WeightsError, NumericalError)
# Bounded and reproducible in CI; benchmarks/robustness.py explores further.
BOUNDED = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FIELD_NAMES = [spec.name for spec in fields(StyleConfig)]


# One torch thread for every test here (see conftest.single_thread).
pytestmark = pytest.mark.usefixtures("single_thread")


def assert_documented(error: AudioStyleError) -> None:
    assert isinstance(error, DOCUMENTED), f"undocumented error class {type(error).__name__}: {error}"
    assert str(error), "an error must say what is wrong"


def check_saved(result, folder: Path) -> None:
    """Save, read back: the file exists, is finite, has the result's shape; no temp files."""
    out = result.save(folder / "out.wav")
    written, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == result.sample_rate
    assert written.shape == result.audio.T.shape
    assert np.isfinite(written).all()
    assert leftovers(folder) == []
    out.unlink()


waveforms = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(SIGNAL_KINDS),
        "style_kind": st.sampled_from(("noise", "tone", "square", "zeros", "nan", "denormal")),
        "rate": st.sampled_from(RATES) | st.integers(1000, 192000),
        "channels": st.integers(1, 8),
        "seconds": st.sampled_from((0.0, 0.001, 0.02, 0.1, 0.5, 1.5, 3.0)),
        "seed": st.integers(0, 2**16),
    }
)


@settings(BOUNDED, max_examples=45)
@given(case=waveforms)
def test_any_waveform_gives_finite_audio_or_a_documented_error(case, tmp_path_factory) -> None:
    rate, samples = case["rate"], int(case["rate"] * case["seconds"])
    content = make_waveform(case["kind"], channels=case["channels"], samples=samples, seed=case["seed"])
    style = make_waveform(case["style_kind"], channels=1 + case["seed"] % 2, samples=int(rate * 0.6), seed=case["seed"] + 1)
    try:
        result = stylize((content, rate), (style, rate), TINY)
    except AudioStyleError as error:
        assert_documented(error)
        finite = np.isfinite(content).all() and np.isfinite(style).all()
        long_enough = samples * TINY.sample_rate / rate >= TINY.n_fft + 1
        # Valid input must work: only NaN/Inf, too-short content or a silent style may fail.
        assert isinstance(error, AudioFileError), error
        assert not (finite and long_enough and style.any()), f"valid input refused: {error}"
        return
    assert result.audio.dtype == np.float32
    assert result.audio.shape == content.shape
    assert result.sample_rate == rate
    assert np.isfinite(result.audio).all()
    assert np.abs(result.audio).max(initial=0) <= 1.0
    check_saved(result, tmp_path_factory.mktemp("out"))


@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf", "one_nan"])
def test_non_finite_inputs_are_input_errors(kind: str) -> None:
    bad = make_waveform(kind, channels=2, samples=16000)
    good = make_waveform("noise", channels=1, samples=16000)
    for content, style in ((bad, good), (good, bad)):
        with pytest.raises(AudioFileError, match="non-finite"):
            stylize((content, 16000), (style, 16000), TINY)


def test_full_scale_square_and_dc_stay_within_full_scale(tmp_path: Path) -> None:
    square = make_waveform("square", channels=2, samples=16000, seed=3)
    dc = make_waveform("dc", channels=1, samples=16000, seed=1)
    for content, style in ((square, dc), (dc, square)):
        result = stylize((content, 16000), (style, 16000), TINY)
        assert result.audio.shape == content.shape
        assert np.isfinite(result.audio).all() and np.abs(result.audio).max() <= 1.0
        check_saved(result, tmp_path)


# ------------------------------------------------------------------------------- settings


def config_values(name: str):
    """Valid, edge and wildly invalid values of one StyleConfig field."""
    wild = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.lists(st.integers(-3, 300), max_size=4),
        st.tuples(st.integers(-3, 300)),
    )
    seeded = st.integers(0, 2**32).map(lambda seed: random_config_value(name, np.random.default_rng(seed)))
    return seeded | wild


@settings(BOUNDED, max_examples=300)
@given(data=st.data())
def test_styleconfig_accepts_valid_values_and_refuses_others_with_config_error(data) -> None:
    names = data.draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=3, unique=True))
    changes = {name: data.draw(config_values(name), label=name) for name in names}
    try:
        config = StyleConfig(**{**TINY_SETTINGS, **changes})
    except ConfigError as error:
        message = str(error)
        assert any(name in message for name in FIELD_NAMES + ["weight"]), message
        return
    # Accepted: every stored value is a plain, finite, JSON-serialisable value.
    for value in config.to_dict().values():
        assert not (isinstance(value, float) and not math.isfinite(value))
    assert config.replace() == config
    assert len(config.digest()) == 16


cheap_configs = st.fixed_dictionaries(
    {
        "n_fft": st.sampled_from((128, 256, 512)),
        "hop_fraction": st.sampled_from((2, 4, 8)),
        "filters": st.integers(1, 64),
        # (width, dilation) per branch: dilations always one per width.
        "kernels": st.lists(
            st.tuples(st.sampled_from((1, 3, 5, 9, 15)), st.integers(1, 4)), min_size=1, max_size=3, unique_by=lambda k: k[0]
        ),
        "mel_bands": st.sampled_from((0, 16, 40)),
        "envelope_weight": st.sampled_from((0.0, 15.0)),
        "refine_steps": st.integers(0, 2),
        "content_weight": st.sampled_from((0.0, 1e-6, 1.0, 1e9)),
        "style_weight": st.sampled_from((0.0, 1.0, 100.0, 1e9)),
        "iterations": st.integers(1, 4),
        "solver": st.sampled_from(("lbfgs", "adam")),
        "learning_rate": st.sampled_from((1e-9, 0.1, 1.0, 1000.0)),
        "tolerance": st.sampled_from((0.0, 1e-4, 0.9)),
        "history_size": st.integers(1, 5),
        "init": st.sampled_from(("content", "noise")),
        "griffin_lim_iters": st.integers(0, 6),
        "momentum": st.sampled_from((0.0, 0.99, 1.49)),
        "phase_init": st.sampled_from(("content", "random")),
        "loudness": st.sampled_from(("rms", "none")),
        "seed": st.integers(0, 2**63 - 1),
    }
)


@settings(BOUNDED, max_examples=25)
@given(settings_=cheap_configs)
def test_every_valid_setting_runs_to_finite_audio_or_a_documented_error(settings_) -> None:
    hop = settings_.pop("hop_fraction")
    kernels = settings_.pop("kernels")
    settings_["kernel_widths"] = tuple(width for width, _ in kernels)
    settings_["kernel_dilations"] = tuple(dilation for _, dilation in kernels)
    try:
        config = StyleConfig(**{**TINY_SETTINGS, **settings_, "hop_length": settings_["n_fft"] // hop})
    except ConfigError:
        assert settings_["content_weight"] == settings_["style_weight"] == 0 or settings_["filters"] < len(settings_["kernel_widths"])
        return
    content = make_waveform("tone", channels=2, samples=8000)
    style = make_waveform("noise", channels=1, samples=8000, seed=1)
    try:
        result = stylize((content, 16000), (style, 16000), config)
    except AudioStyleError as error:
        # Only a diverging solver (huge weights or steps) may fail on valid settings.
        assert isinstance(error, NumericalError), error
        return
    assert result.audio.shape == content.shape
    assert np.isfinite(result.audio).all()
    assert all(math.isfinite(v) for step in result.history for v in step.values() if isinstance(v, float))


def test_torch_tensors_and_integer_arrays_are_accepted() -> None:
    content = torch.from_numpy(make_waveform("tone", channels=1, samples=8000))
    style = (make_waveform("noise", channels=1, samples=8000) * 2**15).astype(np.int16)
    result = stylize((content, 16000), (style, 16000), TINY)
    assert result.audio.shape == (1, 8000) and np.isfinite(result.audio).all()


def test_a_samples_by_channels_array_is_a_config_error_not_hours_of_work() -> None:
    stereo = make_waveform("noise", channels=2, samples=16000)
    with pytest.raises(ConfigError, match="transpose"):
        stylize((stereo.T, 16000), (stereo, 16000), TINY)
