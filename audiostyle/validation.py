"""Shared validators: each checks one value and raises ConfigError naming it.

The library's parameters are checked at the top of each public function with these, so the
messages read alike everywhere: ``"hop_length=4096 must be <= n_fft // 2 = 1024"``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import ConfigError

__all__ = ["is_int", "is_number", "positive_int", "positive_seconds", "require", "validate_stft_params"]


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(``message``) unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for a finite int or float (bools and numbers too large for a float refused)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def positive_int(name: str, value: object) -> int:
    """``value`` as an int; ConfigError unless it is an integer > 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(value)


def positive_seconds(name: str, value: object) -> float:
    """``value`` as a float; ConfigError unless it is a finite number of seconds > 0."""
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 < value < float("inf")):
        raise ConfigError(f"{name}={value!r:.40} must be a positive number of seconds")
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        raise ConfigError(f"{name}={value!r:.40} must be a positive number of seconds that fits a float") from None


def validate_stft_params(n_fft: int, hop_length: int) -> None:
    """Raise ConfigError unless ``n_fft`` and ``hop_length`` describe a usable STFT."""
    if not is_int(n_fft) or not 16 <= n_fft <= 65536:
        raise ConfigError(f"n_fft={n_fft!r} must be an integer in [16, 65536]")
    if not is_int(hop_length) or hop_length < 1:
        raise ConfigError(f"hop_length={hop_length!r} must be a positive integer")
    # Hann windows need 2x overlap at least for the overlap-add to be invertible.
    if hop_length > n_fft // 2:
        raise ConfigError(f"hop_length={hop_length} must be <= n_fft // 2 = {n_fft // 2}")
