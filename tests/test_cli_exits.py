"""Exit codes and messages: the one table of codes, and flags added to the library's words."""

from __future__ import annotations

import pytest

from audiostyle import AudioFileError, AudioStyleError, ConfigError, NumericalError, WeightsError
from audiostyle_cli.exits import describe, exit_code
from audiostyle_cli.signals import Terminated

FLAGS = {name: "--" + name.replace("_", "-") for name in ("filters", "overwrite", "executor", "style_weight", "max_duration", "n_fft", "hop_length", "kernel_widths")}


@pytest.mark.parametrize(
    "error, code",
    [
        (ConfigError("iterations=0 must be >= 1"), 2),
        (WeightsError("bad weights"), 2),
        (AudioFileError("a.wav", "is empty"), 3),
        (NumericalError("NaN"), 4),
        (AudioStyleError("the manifest could not be written"), 4),
        (OSError(28, "No space left on device"), 4),
        (RuntimeError("bug"), 4),
        (KeyboardInterrupt(), 130),
        (Terminated(), 143),
    ],
)
def test_each_error_has_its_documented_exit_code(error, code):
    assert exit_code(error) == code


@pytest.mark.parametrize(
    "error, expected",
    [
        # A switch the library names as name=True becomes the flag.
        (AudioFileError("o.wav", "already exists; pass overwrite=True to replace it"), "o.wav: already exists; pass --overwrite to replace it"),
        # A setting named with a plain value becomes the flag and the value; the flags of the others follow.
        (ConfigError("hop_length=4096 must be <= n_fft // 2 = 256"), "--hop-length 4096 must be <= n_fft // 2 = 256 (see --n-fft)"),
        (ConfigError("a scheduler address needs executor='dask'"), "a scheduler address needs --executor dask"),
        (ConfigError("style_weight=-1.5 must be >= 0"), "--style-weight -1.5 must be >= 0"),
        (AudioFileError("in.wav", "is 9.0 s long, over the 1 s limit", parameters=("max_duration",)), "in.wav: is 9.0 s long, over the 1 s limit (see --max-duration)"),
        (ConfigError("kernel_dilations=(0,) must be >= 1"), "kernel_dilations=(0,) must be >= 1 (see --kernel-widths)"),
        # Advice that names settings with their current value points at their flags.
        (ConfigError("lower filters (now 64) or n_fft (now 2048)"), "lower filters (now 64) or n_fft (now 2048) (see --filters, --n-fft)"),
        # The path is never rewritten, and settings without a flag here get none.
        (AudioFileError("max_duration=1.wav", "is empty"), "max_duration=1.wav: is empty"),
        (ConfigError("texture_weight=-1 must be >= 0"), "texture_weight=-1 must be >= 0"),
    ],
)
def test_messages_gain_the_flags_of_the_settings_they_name(error, expected):
    assert describe(error, FLAGS) == expected


def test_a_flag_already_in_the_message_is_not_repeated():
    assert describe(ConfigError("--executor x must be local or dask"), {"executor": "--executor"}) == "--executor x must be local or dask"
