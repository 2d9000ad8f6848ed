"""Waveform refinement: optimise the waveform itself against the spectrogram objective.

The optimised log-magnitude is usually not the magnitude of any real signal, so Griffin-Lim
can only approximate it. Optimising the waveform through a differentiable STFT instead lands
on a spectrogram that a real signal has, while matching the same content and style targets.
"""

from __future__ import annotations

import torch

from .objective import Objective
from .optimize import OptimizationResult, ProgressCallback, optimize
from .spectral import stft

__all__ = ["refine_waveform"]

# Keeps |STFT| differentiable at exact zeros (the gradient of |z| is z / |z|).
_MAGNITUDE_FLOOR = 1e-12


def refine_waveform(
    waveform: torch.Tensor,
    objective: Objective,
    *,
    n_fft: int,
    hop_length: int,
    steps: int = 30,
    progress: ProgressCallback | None = None,
) -> OptimizationResult:
    """Improve a waveform [shape=(channels, samples)] on ``objective`` with L-BFGS.

    Parameters
    ----------
    waveform : torch.Tensor [shape=(channels, samples)]
        Starting point, typically Griffin-Lim's output at the working rate and level.
    objective : Objective
        The loss used for the spectrogram, evaluated on ``log1p|STFT(waveform)|``.
    n_fft, hop_length : int
        The engine's STFT settings.
    steps : int
        L-BFGS iterations (>= 1).
    progress : callable, optional
        ``progress(step, total, losses)``.

    Returns
    -------
    OptimizationResult
        ``solution`` is the refined waveform.
    """

    def loss(signal: torch.Tensor):
        spec = stft(signal, n_fft=n_fft, hop_length=hop_length)
        magnitude = (spec.real.square() + spec.imag.square() + _MAGNITUDE_FLOOR).sqrt()
        return objective(torch.log1p(magnitude))

    return optimize(waveform, loss, iterations=steps, solver="lbfgs", tolerance=0.0, progress=progress)
