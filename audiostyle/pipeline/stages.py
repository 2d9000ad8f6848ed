"""The per-clip stages of a run, bound to its settings and style targets.

:func:`~audiostyle.stylize` sends a whole content (or a texture) through them once; content
longer than a segment goes through the same stages one segment at a time
(:func:`~audiostyle.pipeline.segments.stylize_waveform_in_segments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import StyleConfig
from ..dsp.loop import circular_griffin_lim, circular_stft
from ..dsp.phase import griffin_lim
from ..dsp.pre_echo import suppress_pre_echo
from ..dsp.stft import Spectrogram, analyze, convergence_db, spectral_convergence, stft
from ..objective import ContentTargets, Objective, StyleStatistics, TextureStatistics
from ..solver import OptimizationResult, ProgressCallback
from .solve import stylize_spectrogram
from .waveform import refine_waveform

__all__ = ["REFINE_CONTENT_EMPHASIS", "Stages"]

#: The content weight of the waveform refinement, relative to the spectrogram solve's: the
#: solve has moved the style, so refining mostly has to keep the content while the
#: spectrogram becomes a real signal's.
REFINE_CONTENT_EMPHASIS = 16.0


def staged(progress: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """``progress`` with ``losses["stage"] = stage`` added, so a display can tell stages apart."""
    if progress is None:
        return None
    return lambda step, total, losses: progress(step, total, {**losses, "stage": stage})


@dataclass
class Stages:
    """Analyse, solve, reconstruct and refine one clip with one run's settings.

    Attributes
    ----------
    config : StyleConfig
    device : torch.device
        Where the spectrograms live.
    network : torch.nn.Module
        The feature network, on ``device``.
    style : StyleStatistics
    texture : TextureStatistics or None
    settings : dict
        :func:`~audiostyle.pipeline.solve.stylize_spectrogram` keyword arguments
        (from :func:`~audiostyle.pipeline.solve.solver_settings`).
    """

    config: StyleConfig
    device: torch.device
    network: torch.nn.Module
    style: StyleStatistics
    texture: TextureStatistics | None
    settings: dict[str, Any]

    def analyze(self, waveform: np.ndarray) -> Spectrogram:
        """The spectrogram of a working-rate waveform [shape=(channels, samples)], on the device."""
        config = self.config
        return analyze(waveform, config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length, device=self.device)

    def solve(
        self, log_magnitude: torch.Tensor | None, progress: ProgressCallback | None, *, frames: int | None = None
    ) -> OptimizationResult:
        """The optimised log-magnitude of a content (or, with None and ``frames``, of a texture)."""
        return stylize_spectrogram(log_magnitude, self.style, self.network, frames=frames, progress=progress, **self.settings)

    def reconstruct(
        self, magnitude: torch.Tensor, length: int, content_phase: torch.Tensor | None
    ) -> tuple[torch.Tensor, float]:
        """Griffin-Lim (circular for a loop) and the spectral convergence of its result in dB.

        ``content_phase`` is the starting phase when the config's ``phase_init`` is
        ``"content"``; otherwise, and for loops, the phase starts seeded at random.
        """
        config = self.config
        stft_settings = dict(n_fft=config.n_fft, hop_length=config.hop_length)
        iterations = dict(n_iter=config.griffin_lim_iters, momentum=config.momentum, seed=config.seed)
        if config.loop:
            waveform = circular_griffin_lim(magnitude, **stft_settings, **iterations)
            return waveform, convergence_db(circular_stft(waveform, **stft_settings).abs(), magnitude)
        phase = content_phase if config.phase_init == "content" else None
        waveform = griffin_lim(magnitude, length=length, init_phase=phase, **stft_settings, **iterations)
        return waveform, convergence_db(stft(waveform, **stft_settings).abs(), magnitude)

    def refine(
        self,
        waveform: torch.Tensor,
        content_log_magnitude: torch.Tensor | None,
        magnitude: torch.Tensor,
        progress: ProgressCallback | None = None,
    ) -> tuple[torch.Tensor, float, dict[str, float]]:
        """The refined waveform, its spectral convergence against ``magnitude`` in dB, its final losses.

        Griffin-Lim only approximates an inconsistent spectrogram; optimising the waveform
        itself lands on one a real signal has. ``progress(step, refine_steps, losses)`` follows
        each step, with ``losses["stage"] == "refine"``.
        """
        config = self.config
        content = (
            ContentTargets.from_log_magnitude(self.network, content_log_magnitude)
            if content_log_magnitude is not None
            else None
        )
        # No loudness contour here: Griffin-Lim's output already follows it.
        objective = Objective(
            self.network,
            self.style,
            content,
            content_weight=self.settings["content_weight"] * REFINE_CONTENT_EMPHASIS,
            style_weight=self.settings["style_weight"],
            texture=self.texture,
            texture_weight=config.texture_weight,
        )
        refined = refine_waveform(
            waveform, objective, n_fft=config.n_fft, hop_length=config.hop_length, steps=config.refine_steps,
            history_size=config.history_size, progress=staged(progress, "refine"),
        )
        convergence = spectral_convergence(refined.solution, magnitude, n_fft=config.n_fft, hop_length=config.hop_length)
        return refined.solution, convergence, refined.history[-1]

    def follow_onsets(self, waveform: torch.Tensor, content: np.ndarray) -> torch.Tensor:
        """``waveform`` with its pre-echo before the content's onsets turned down.

        ``content`` [shape=(channels, samples)] is the working-rate content it was made from;
        the config's ``pre_echo_db`` of 0 returns ``waveform`` unchanged (see
        :mod:`audiostyle.dsp.pre_echo`). In the envelope view, whose output keeps the
        content's notes and dynamics, every rise the content does not have is turned down,
        not only those ahead of its onsets, and the two are compared partial by partial.
        """
        config = self.config
        if not config.pre_echo_db:
            return waveform
        keeps_content = config.style_view == "envelope"
        with torch.no_grad():
            reference = torch.as_tensor(content, device=waveform.device, dtype=waveform.dtype)
            return suppress_pre_echo(
                waveform.detach(),
                reference,
                config.sample_rate,
                n_fft=config.n_fft,
                max_cut_db=config.pre_echo_db,
                everywhere=keeps_content,
                partials=keeps_content,
            )
