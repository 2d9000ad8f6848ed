"""Shared validators: each checks one value and raises ConfigError naming it.

The library's parameters are checked at the top of each public function with these, so the
messages read alike everywhere: ``"hop_length=4096 must be <= n_fft // 2 = 1024"``.
"""

from __future__ import annotations

import numbers

from .errors import ConfigError

__all__ = ["positive_int", "positive_seconds"]


def positive_int(name: str, value: object) -> int:
    """``value`` as an int; ConfigError unless it is an integer > 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(value)


def positive_seconds(name: str, value: object) -> float:
    """``value`` as a float; ConfigError unless it is a finite number of seconds > 0."""
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 < value < float("inf")):
        raise ConfigError(f"{name}={value!r} must be a positive number of seconds")
    return float(value)
