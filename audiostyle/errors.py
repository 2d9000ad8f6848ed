"""The one error family the library raises for bad input, bad settings and failed runs."""

from __future__ import annotations

__all__ = [
    "AudioStyleError",
    "AudioFileError",
    "ConfigError",
    "WeightsError",
    "NumericalError",
]


class AudioStyleError(Exception):
    """Base class of every error audiostyle raises on purpose.

    The CLI maps it to exit code 4 (runtime failure) unless a subclass says otherwise.
    """

    exit_code = 4


class AudioFileError(AudioStyleError):
    """An audio file is missing, unreadable, unsupported, empty, too short or non-finite.

    Also raised for an output path that cannot be written (missing folder, unsupported
    extension, the path of an input).
    """

    exit_code = 3

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(AudioStyleError, ValueError):
    """A parameter is out of its valid range; the message names it and the valid range."""

    exit_code = 2


class WeightsError(AudioStyleError):
    """Network weights are malformed, unsafe (pickled code) or do not fit the architecture."""

    exit_code = 2


class NumericalError(AudioStyleError):
    """The optimisation produced NaN or Inf; nothing is written."""

    exit_code = 4
