"""Shared fixtures: a seeded random generator, the devices the tests run on, one torch thread,
and short tones as waveforms and files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.support import RATE, tone


def available_devices() -> list[str]:
    """CPU always, then every accelerator this machine has."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so every test sees the same data."""
    return np.random.default_rng(20160901)


@pytest.fixture(params=available_devices())
def device(request) -> torch.device:
    """Each test using it runs once per available device."""
    return torch.device(request.param)


@pytest.fixture
def single_thread():
    """Run torch on one thread: the tiny test shapes are slower, not faster, with more
    threads on a shared machine (thread contention), and one thread is more reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def style_wave(rng) -> np.ndarray:
    """One second of a noisy 440 Hz tone at ``support.RATE``, ``(1, samples)``."""
    return tone(rng, 1.0, 440.0, noise=0.1)


@pytest.fixture
def tone_files(tmp_path, rng):
    """Three one-second WAV files of different tones: ``(content, style, other)`` paths."""
    content, style, other = tmp_path / "content.wav", tmp_path / "style.wav", tmp_path / "other.wav"
    sf.write(content, tone(rng, 1.0, 220.0)[0], RATE)
    sf.write(style, tone(rng, 1.0, 660.0, noise=0.2)[0], RATE)
    sf.write(other, tone(rng, 1.0, 1320.0, noise=0.01)[0], RATE)
    return content, style, other
