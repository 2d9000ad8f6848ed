"""Small inputs shared by the tests: tones, and the tiny run most stylize() tests use."""

from __future__ import annotations

import numpy as np

from audiostyle import StyleConfig
from tests.hostile_inputs import TINY_SETTINGS

RATE = 16000
#: ``TINY_SETTINGS`` as a config, its loss weights pinned: the strength tests read the trade-off
#: at this balance, whatever the defaults become.
TINY = StyleConfig(**TINY_SETTINGS, content_weight=1.0, style_weight=100.0)
#: The studio tests' presets: ``slow`` never stops early, so a job is still running when a test acts on it.
STUDIO_PRESETS = {"tiny": TINY, "slow": TINY.replace(iterations=2000, tolerance=0.0)}


def tone(rng: np.random.Generator, seconds: float, frequency: float, noise: float = 0.05) -> np.ndarray:
    """A ``(1, samples)`` float32 sine at ``RATE`` with a little of ``rng``'s noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.3 * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(t.size)
    return wave.astype(np.float32)[np.newaxis]


#: Python source that records ``OMP_WAIT_POLICY`` at the moment torch is first imported (what
#: OpenMP will read) in ``seen``; a test appends the code that should import torch.
TORCH_POLICY_PROBE = """
import os, sys
seen = []
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return None
sys.meta_path.insert(0, Probe())
"""
