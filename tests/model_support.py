"""A tiny style model for the front-end tests: trained in a second or two, applied in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from audiostyle import StyleModel, train_style_model
from tests.support import RATE, TINY

#: A network far smaller than the shipped default: the tests check the plumbing, not the sound.
TINY_ARCHITECTURE = {"mel_bands": 32, "channels": 16, "kernel": 3, "dilations": [1, 2]}


def tiny_model(seed: int = 0, steps: int = 2) -> StyleModel:
    """A model of a noise style trained on four tones for ``steps`` steps; ``seed`` changes its weights."""
    rng = np.random.default_rng(seed)
    style = ((0.2 * rng.standard_normal(RATE)).astype(np.float32), RATE)
    t = np.arange(RATE) / RATE
    contents = [((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), RATE) for f in (220, 330, 440, 550)]
    config = TINY.replace(device="cpu")
    return train_style_model(style, contents, config, generic=False, max_steps=steps, seed=seed, architecture=TINY_ARCHITECTURE)


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    """:func:`tiny_model` saved at ``path`` (``.safetensors``, its ``.json`` beside it)."""
    return tiny_model(seed).save(path, overwrite=True)


def write_clip(path: Path, seconds: float, rate: int, channels: int, *, subtype: str | None = None, seed: int = 0) -> Path:
    """A noisy tone of ``seconds`` at ``rate`` with ``channels``, written at ``path``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t)[:, np.newaxis] + 0.05 * rng.standard_normal((t.size, channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), rate, subtype=subtype)
    return path
