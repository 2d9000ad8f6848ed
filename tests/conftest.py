"""Shared fixtures: a seeded random generator and the devices the tests run on."""

from __future__ import annotations

import numpy as np
import pytest
import torch


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
