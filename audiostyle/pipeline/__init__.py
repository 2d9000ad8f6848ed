"""stylize() and its stages: inputs, prepared style, solve, waveform, segments, memory, Result."""

from .prepared import PreparedStyle, prepare_style
from .result import Result
from .solve import solver_settings, stylize_spectrogram
from .sources import Audio, AudioSource
from .stylize import stylize

__all__ = [
    "Audio",
    "AudioSource",
    "PreparedStyle",
    "Result",
    "prepare_style",
    "solver_settings",
    "stylize",
    "stylize_spectrogram",
]
