"""The error family: library terms only (no exit codes, no flags), settings named, picklable."""

from __future__ import annotations

import pickle

import pytest

from audiostyle import AudioFileError, AudioStyleError, ConfigError, NumericalError, WeightsError


@pytest.mark.parametrize("kind", [AudioStyleError, ConfigError, WeightsError, NumericalError])
def test_errors_carry_no_front_end_knowledge(kind):
    error = kind("n_fft=3 must be >= 16", parameters=("n_fft",))
    assert not hasattr(error, "exit_code")
    assert str(error) == "n_fft=3 must be >= 16" and error.parameters == ("n_fft",)
    assert kind("plain").parameters == ()


def test_config_error_is_a_value_error():
    assert isinstance(ConfigError("x"), ValueError)


def test_file_error_names_the_file_and_the_problem():
    error = AudioFileError("in/a.wav", "is 1500 s long, over max_duration=1200", parameters=["max_duration"])
    assert str(error) == "in/a.wav: is 1500 s long, over max_duration=1200"
    assert (error.path, error.problem, error.parameters) == ("in/a.wav", "is 1500 s long, over max_duration=1200", ("max_duration",))


@pytest.mark.parametrize(
    "error",
    [AudioFileError("a.wav", "is empty", parameters=("overwrite",)), ConfigError("seed=-1 must be >= 0", parameters=("seed",)), WeightsError("bad")],
)
def test_errors_survive_pickling(error):
    # Batch workers send errors across processes.
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error) and again.parameters == error.parameters
    assert getattr(again, "path", None) == getattr(error, "path", None)
