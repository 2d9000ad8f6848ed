"""The one error family the library raises for bad input, bad settings and failed runs.

The errors say what is wrong in the library's own terms: a file and its problem, a parameter
and its valid range. They know nothing of a front end: which exit code, flag or HTTP status an
error becomes is the front end's choice. ``parameters`` names the settings (``StyleConfig``
fields or keyword arguments) that would change the outcome, so that a front end can point at
its own option for each, e.g. ``max_duration`` -> ``--max-duration``.
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = [
    "AudioStyleError",
    "AudioFileError",
    "ConfigError",
    "WeightsError",
    "NumericalError",
]


class AudioStyleError(Exception):
    """Base class of every error audiostyle raises on purpose.

    Parameters
    ----------
    *args
        The message (as for :class:`Exception`).
    parameters : iterable of str, optional
        Settings that would change the outcome (e.g. ``("max_duration",)``); empty when none.
    """

    def __init__(self, *args: Any, parameters: Iterable[str] = ()) -> None:
        super().__init__(*args)
        self.parameters: tuple[str, ...] = tuple(parameters)

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (batch workers): keep the keyword-only state.
        return (type(self), self.args, {"parameters": self.parameters})


class AudioFileError(AudioStyleError):
    """An audio file is missing, unreadable, unsupported, empty, too short or non-finite.

    Also raised for an output path that cannot be written (missing folder, unsupported
    extension, the path of an input). The message is ``"<path>: <problem>"``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    problem : str
        What is wrong with it, e.g. ``"is empty (0 samples)"``.
    parameters : iterable of str, optional
        Settings that would change the outcome (e.g. ``("max_duration",)``).
    """

    def __init__(self, path: object, problem: str, *, parameters: Iterable[str] = ()) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", parameters=parameters)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem), {"parameters": self.parameters})


class ConfigError(AudioStyleError, ValueError):
    """A parameter is out of its valid range; the message names it and the valid range."""


class WeightsError(AudioStyleError):
    """Network weights are malformed, unsafe (pickled code) or do not fit the architecture."""


class NumericalError(AudioStyleError):
    """The optimisation produced NaN or Inf; nothing is written."""
