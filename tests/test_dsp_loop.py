"""Seamless loops: audiostyle.dsp.loop's circular STFT and Griffin-Lim, and stylize(loop=True)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiostyle import ConfigError, stylize
from audiostyle.dsp.loop import circular_griffin_lim, circular_istft, circular_stft
from tests.support import RATE, TINY


def test_circular_stft_inverts_exactly_and_wraps(rng):
    wave = torch.from_numpy(rng.standard_normal((2, 40 * 128)).astype(np.float32))
    spec = circular_stft(wave, n_fft=512, hop_length=128)
    assert spec.shape == (2, 257, 40)
    assert torch.allclose(circular_istft(spec, n_fft=512, hop_length=128), wave, atol=1e-5)
    # A circular shift by whole hops shifts the frames: nothing marks the start.
    shifted = circular_stft(torch.roll(wave, 3 * 128, dims=-1), n_fft=512, hop_length=128)
    assert torch.allclose(shifted, torch.roll(spec, 3, dims=-1), atol=1e-3)


def test_circular_griffin_lim_needs_whole_hops():
    assert circular_griffin_lim(torch.rand(257, 10), n_fft=512, hop_length=128, n_iter=1).shape == (1280,)
    with pytest.raises(ConfigError):
        circular_stft(torch.zeros(1000), n_fft=512, hop_length=128)


def test_loop_texture_has_no_seam(style_wave, single_thread):
    result = stylize(None, (style_wave, RATE), TINY.replace(loop=True, iterations=5), duration=1.0)
    audio = result.audio[0]
    assert audio.shape[-1] % TINY.hop_length == 0 and np.isfinite(audio).all()
    inside = np.abs(np.diff(audio))
    tiled = np.concatenate([audio, audio])
    seam = abs(float(tiled[audio.size] - tiled[audio.size - 1]))
    # The jump where the file meets its own start is no larger than one inside the file,
    # and is typical rather than extreme (below the 99th percentile of neighbour jumps).
    assert seam <= inside.max()
    assert seam <= np.percentile(inside, 99)
    assert result.metrics["spectral_convergence_db"] < 0


def test_loop_with_content_is_refused(style_wave):
    with pytest.raises(ConfigError, match="loop"):
        stylize((style_wave, RATE), (style_wave, RATE), TINY.replace(loop=True))
