"""Fixed-seed runs on the shipped samples give the outputs they gave when recorded.

A refactoring must not change what users hear. The recorded figure of each run is its level
in every 50 ms frame (dB): any change to the algorithm moves it, while the last-bit rounding
differences of another CPU's kernels do not. To record again after an intended change, run
``python -m tests.test_reference_outputs`` and say why in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiostyle import StyleConfig, stylize

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
RECORD = Path(__file__).resolve().parent / "data" / "reference_outputs.json"

TINY = StyleConfig(sample_rate=16000, n_fft=512, hop_length=128, filters=64, kernel_widths=(3, 7), iterations=5,
                   griffin_lim_iters=4, refine_steps=3, texture_weight=1.0, envelope_weight=2.0, device="cpu")
RUNS = {
    "voice-violin": dict(content="voice.flac", style="violin.wav", changes={}),
    "voice-blend-strength": dict(content="voice.flac", style=[("violin.wav", 0.7), ("rain.ogg", 0.3)],
                                 changes={"strength": 0.3}),
    "rain-texture-full-band": dict(content=None, style="rain.ogg", changes={}, duration=1.5),
    "drums-loop": dict(content=None, style="drums.wav", changes={"loop": True}, duration=1.0),
}


def _run(name: str) -> tuple[int, list[float]]:
    spec = RUNS[name]
    style = spec["style"]
    style = [(SAMPLES / path, weight) for path, weight in style] if isinstance(style, list) else SAMPLES / style
    content = SAMPLES / spec["content"] if spec["content"] else None
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = stylize(content, style, TINY.replace(**spec["changes"]), duration=spec.get("duration"))
    finally:
        torch.set_num_threads(before)
    size = result.sample_rate // 20
    frames = result.audio[:, : result.audio.shape[-1] // size * size].reshape(result.audio.shape[0], -1, size)
    levels = 10 * np.log10(np.square(frames, dtype=np.float64).mean(axis=(0, 2)) + 1e-12)
    return result.sample_rate, [round(float(level), 3) for level in levels]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_output_is_as_recorded(name):
    recorded = json.loads(RECORD.read_text())[name]
    rate, levels = _run(name)
    assert rate == recorded["sample_rate"]
    assert len(levels) == len(recorded["levels_db"])
    np.testing.assert_allclose(levels, recorded["levels_db"], atol=0.05)


if __name__ == "__main__":
    RECORD.parent.mkdir(exist_ok=True)
    figures = {name: dict(zip(("sample_rate", "levels_db"), _run(name))) for name in sorted(RUNS)}
    RECORD.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"recorded {', '.join(figures)} in {RECORD}", file=sys.stderr)
