"""Waveform refinement: optimise the waveform itself against the spectrogram objective.

The optimised log-magnitude is usually not the magnitude of any real signal, so Griffin-Lim
can only approximate it. Optimising the waveform through a differentiable STFT instead lands
on a spectrogram that a real signal has, while matching the same content and style targets.
"""

from __future__ import annotations

import torch

from ..config import HISTORY_SIZE
from ..dsp.stft import hann_window, stft
from ..objective import Objective
from ..solver import OptimizationResult, ProgressCallback, optimize

__all__ = ["refine_waveform"]

# Keeps |STFT| differentiable at exact zeros (the gradient of |z| is z / |z|).
_MAGNITUDE_FLOOR = 1e-12


def _overlap_add(frames: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Sum of ``frames`` [shape=(batch, count, size)], frame ``t`` starting at ``t * hop_length``.

    Each hop-long slice of every frame lands on a strided view of the output, so this is
    ``ceil(size / hop_length)`` additions on any device (``F.fold`` is slow on the CPU and
    not native on older MPS builds). The output is ``hop_length`` samples longer than
    the frames reach, so that the last slice's view fits.
    """
    batch, count, size = frames.shape
    out = frames.new_zeros(batch, (count - 1) * hop_length + size + hop_length)
    for start in range(0, size, hop_length):
        width = min(hop_length, size - start)
        lanes = out[:, start : start + count * hop_length].view(batch, count, hop_length)
        lanes[..., :width] += frames[..., start : start + width]
    return out


class _LogMagnitude(torch.autograd.Function):
    """``log1p(sqrt(|stft(x)|^2 + floor))`` with the STFT's adjoint written out.

    For ``Z = stft(x)`` and an output gradient ``G``, the gradient with respect to ``Z`` is
    ``G Z / (|Z| (1 + |Z|))``, and the STFT's adjoint takes it to the waveform: each frame is
    ``irfft`` of it (interior bins counted twice, as a one-sided spectrum stands for both
    halves), times the window, overlap-added and stripped of the centring pad. Only ``Z`` is
    kept, where autograd through ``torch.stft`` would also keep the framed signal and the
    magnitude's parts, so refining needs no more memory than the spectrogram solve.
    """

    @staticmethod
    def forward(ctx, waveform: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
        spec = stft(waveform, n_fft=n_fft, hop_length=hop_length)
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + _MAGNITUDE_FLOOR)
        out = torch.log1p(magnitude)
        # Z / (|Z| (1 + |Z|)), ready for the backward pass.
        spec.div_(magnitude.mul_(out.exp()))
        ctx.n_fft, ctx.hop_length, ctx.samples = n_fft, hop_length, waveform.shape[-1]
        ctx.save_for_backward(spec)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (spec,) = ctx.saved_tensors
        n_fft, hop_length, samples = ctx.n_fft, ctx.hop_length, ctx.samples
        lead = spec.shape[:-2]
        grad_spec = (spec * grad).reshape(-1, *spec.shape[-2:])
        # One-sided spectrum: interior bins stand for two, so irfft (which halves them) * n_fft
        # gets them right once the DC and (for even sizes) Nyquist bins are doubled.
        grad_spec[:, 0].mul_(2)
        if n_fft % 2 == 0:
            grad_spec[:, -1].mul_(2)
        grad_frames = torch.fft.irfft(grad_spec.transpose(-1, -2), n=n_fft)  # (batch, frames, n_fft)
        grad_frames.mul_(hann_window(n_fft, grad_frames.device, grad_frames.dtype) * (n_fft / 2))
        start = n_fft // 2
        grad_waveform = _overlap_add(grad_frames, hop_length)[:, start : start + samples]
        return grad_waveform.reshape(*lead, samples), None, None


def refine_waveform(
    waveform: torch.Tensor, objective: Objective, *, n_fft: int, hop_length: int, steps: int = 30,
    history_size: int = HISTORY_SIZE, progress: ProgressCallback | None = None,
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
    history_size : int
        L-BFGS curvature pairs kept (see :func:`audiostyle.solver.optimize`).
    progress : callable, optional
        ``progress(step, total, losses)``.

    Returns
    -------
    OptimizationResult
        ``solution`` is the refined waveform.
    """

    def loss(signal: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return objective(_LogMagnitude.apply(signal, n_fft, hop_length))

    return optimize(
        waveform, loss, iterations=steps, solver="lbfgs", tolerance=0.0, history_size=history_size, progress=progress
    )
