"""audiostyle: neural audio style transfer.

Re-render a sound (the content) in the timbre and texture of another (the style) by matching
features of a 1-D CNN over a log-magnitude spectrogram, after Ulyanov & Lebedev (2016).

Importing it before torch also sets torch's thread policy: idle OpenMP threads sleep
(``OMP_WAIT_POLICY=PASSIVE`` unless the environment names another), see
:func:`audiostyle.system.prefer_sleeping_threads`.
"""

from .system import prefer_sleeping_threads

prefer_sleeping_threads()  # before anything below imports torch

from .config import PRESETS, StyleConfig, get_preset, resolve_device
from .dsp.phase import griffin_lim
from .dsp.stft import Spectrogram, analyze, synthesize
from .errors import (
    AudioFileError,
    AudioStyleError,
    ConfigError,
    NumericalError,
    WeightsError,
)
from .io import load_audio, save_audio
from .networks import FeatureNetwork, MelBands, RandomCNN
from .pipeline import PreparedStyle, Result, prepare_style, stylize, stylize_spectrogram
from .models import StyleModel, train_style_model

__version__ = "0.1.0"

__all__ = [
    "stylize",
    "stylize_spectrogram",
    "prepare_style",
    "PreparedStyle",
    "Result",
    "StyleModel",
    "train_style_model",
    "analyze",
    "synthesize",
    "Spectrogram",
    "griffin_lim",
    "load_audio",
    "save_audio",
    "StyleConfig",
    "PRESETS",
    "get_preset",
    "resolve_device",
    "FeatureNetwork",
    "MelBands",
    "RandomCNN",
    "AudioStyleError",
    "AudioFileError",
    "ConfigError",
    "WeightsError",
    "NumericalError",
    "__version__",
]
