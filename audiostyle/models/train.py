"""Training a style model: Adam on a transformation network against the per-clip objective.

Each step crops a batch from the training contents, lets the network predict its gains, and
scores the result with the same :class:`~audiostyle.objective.Objective` that :func:`stylize`
optimises for one clip (content features, Gram statistics, texture and loudness contour of the
chosen preset, against the style's statistics made once). The network sees each crop at a
random level (+-15 dB), while the objective sees it at the analysis level, so the gains it
learns do not depend on how loud the content is.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..config import PRESETS, StyleConfig
from ..dsp.stft import linear_magnitude
from ..errors import ConfigError
from ..objective import ContentTargets, LoudnessContour, Objective
from ..pipeline import prepare_style
from ..pipeline.prepared import PreparedStyle
from ..pipeline.sources import AudioSource
from ..validation import is_int, is_number
from .model import StyleModel
from .network import TransformNet
from .training_data import TrainingClip, load_clips

__all__ = ["DEFAULT_ARCHITECTURE", "TrainingProgress", "train_style_model"]

logger = logging.getLogger("audiostyle")

#: ``progress(step, total, losses)`` after each step; ``total`` is an estimate under a time budget.
TrainingProgress = Callable[[int, int, dict[str, float]], None]

#: The transformation network's shape (the grid comes from the config).
DEFAULT_ARCHITECTURE = {"mel_bands": 128, "channels": 128, "kernel": 3, "dilations": [1, 2, 4, 8, 1, 2, 4]}
#: Frames per training crop and crops per step.
CROP_FRAMES = 64
BATCH = 8
#: Levels (dB) the network sees a crop at, around the analysis level.
LEVEL_RANGE_DB = 15.0
LEARNING_RATE = 3e-3
#: Validation crops, and how often (a fraction of the budget) the validation loss is measured.
VALIDATION_CROPS = 16
VALIDATION_EVERY = 0.1
MAX_MINUTES = 24 * 60


def train_style_model(
    style: AudioSource | Sequence[AudioSource] | Sequence[tuple[AudioSource, float]],
    contents: Sequence[AudioSource] = (),
    config: StyleConfig | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    generic: bool = True,
    minutes: float = 2.0,
    max_steps: int | None = None,
    seed: int = 0,
    progress: TrainingProgress | None = None,
    architecture: dict[str, Any] | None = None,
) -> StyleModel:
    """Train a style model for ``style`` on ``contents`` (plus the shipped generic set).

    Parameters
    ----------
    style, style_weights
        As for :func:`~audiostyle.stylize`: a path or ``(waveform, rate)``, a list (a blend),
        or ``(style, weight)`` pairs.
    contents : sequence
        Content files, folders (searched for audio files, a seeded sample of at most
        ``MAX_FILES`` is read) or ``(waveform, rate)`` pairs; for a batch, the library itself.
    config : StyleConfig, optional
        The objective to train against (default ``PRESETS["fast"]``): its analysis, feature
        network, loss weights and ``strength``.
    generic : bool
        Add the shipped generic contents (speech, instruments, drums, one-shots).
    minutes : float
        Wall-clock budget for the training steps (reading the contents comes on top).
    max_steps : int, optional
        Stop after this many steps at the latest.
    seed : int
        Seeds the network's initial weights, the crops and the levels.
    progress : callable, optional
        ``progress(step, total, losses)``; ``losses`` holds ``total``, the objective's parts,
        ``eta`` (seconds) and, when measured, ``validation``.
    architecture : dict, optional
        Overrides of :data:`DEFAULT_ARCHITECTURE`.

    Returns
    -------
    StyleModel
        Its ``training`` dict holds steps, seconds, clip counts and first/last losses.

    Raises
    ------
    AudioFileError
        A style file is missing, unreadable or silent.
    ConfigError
        A bad setting, or no usable contents.
    """
    config = PRESETS["fast"] if config is None else config
    if not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig; got {type(config).__name__}")
    if not is_number(minutes) or not 0 < minutes <= MAX_MINUTES:
        raise ConfigError(f"minutes={minutes!r} must be a number in (0, {MAX_MINUTES}]")
    if max_steps is not None and (not is_int(max_steps) or max_steps < 1):
        raise ConfigError(f"max_steps={max_steps!r} must be a positive integer or None")
    if config.loop:
        raise ConfigError("a style model transforms a content; loop=True is for textures")
    started = time.perf_counter()
    prepared = prepare_style(style, config, style_weights=style_weights)
    device = prepared.statistics.layers[0].gram.device
    clips = load_clips(contents, config, generic=generic, seed=seed)
    training, validation = _split(clips)
    network = _new_network(config, architecture, seed).to(device)
    _fit_band_levels(network, training)
    generator = torch.Generator().manual_seed(seed)
    validation_batch = _crops(validation, VALIDATION_CROPS, generator, network.context).to(device)
    trainer = _Trainer(network, prepared, config)
    steps, figures = trainer.run(
        training, generator, validation_batch, minutes=minutes, max_steps=max_steps, progress=progress, device=device
    )
    figures.update(
        seconds=round(time.perf_counter() - started, 3),
        clips=len(training),
        validation_clips=len(validation) if validation is not training else 0,
        generic=bool(generic),
        crop_frames=CROP_FRAMES,
        batch=BATCH,
        seed=int(seed),
    )
    return StyleModel(
        network.cpu(), config, style_names=prepared.names, style_weights=prepared.weights, training=figures
    ).to(device)


def _new_network(config: StyleConfig, architecture: dict[str, Any] | None, seed: int) -> TransformNet:
    shape = dict(DEFAULT_ARCHITECTURE, **(architecture or {}))
    shape.update(sample_rate=config.sample_rate, n_fft=config.n_fft)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TransformNet(shape)


def _split(clips: list[TrainingClip]) -> tuple[list[TrainingClip], list[TrainingClip]]:
    """Every eighth clip held out for validation; with fewer than four, validation reuses them all."""
    if len(clips) < 4:
        return clips, clips
    held = clips[3::8] or clips[-1:]
    return [clip for clip in clips if clip not in held], held


@torch.no_grad()
def _fit_band_levels(network: TransformNet, clips: list[TrainingClip]) -> None:
    """Set the network's input normalisation to the training contents' band levels."""
    device = network.band_mean.device
    levels = torch.cat(
        [torch.log1p(network.band_magnitudes(linear_magnitude(clip.log_magnitude.to(device))))[0] for clip in clips], dim=-1
    )
    network.band_mean.copy_(levels.mean(-1))
    network.band_std.copy_(levels.std(-1).clamp_min(0.05))


def _crops(clips: list[TrainingClip], count: int, generator: torch.Generator, context: int) -> torch.Tensor:
    """``count`` random crops, (count, freq, context + CROP_FRAMES): the crop and the frames before it.

    Before a clip's start and after its end is silence (zeros), as in a stream.
    """
    freq = clips[0].log_magnitude.shape[-2]
    batch = torch.zeros(count, freq, context + CROP_FRAMES)
    for row in range(count):
        clip = clips[int(torch.randint(len(clips), (1,), generator=generator))]
        spare = clip.frames - CROP_FRAMES
        begin = int(torch.randint(spare + 1, (1,), generator=generator)) if spare > 0 else 0
        first = max(0, begin - context)
        piece = clip.log_magnitude[0, :, first : begin + CROP_FRAMES]
        offset = context - (begin - first)
        batch[row, :, offset : offset + piece.shape[-1]] = piece
    return batch


class _Trainer:
    """The loss of a batch and the Adam loop under a time budget."""

    def __init__(self, network: TransformNet, prepared: PreparedStyle, config: StyleConfig) -> None:
        self.network = network
        self.prepared = prepared
        self.content_weight, self.style_weight = config.loss_weights()
        self.texture_weight = config.texture_weight if prepared.texture is not None else 0.0
        self.envelope_weight = config.envelope_loss_weight()

    def loss(self, log_magnitude: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective of the network's output for a batch seen at ``levels``.

        ``log_magnitude`` is (batch, freq, context + CROP_FRAMES): the network reads the
        context frames before the crop, as it would have in a stream, and the objective scores
        the crop.
        """
        network = self.network
        gains, noise, _ = network(network.band_magnitudes(linear_magnitude(log_magnitude)) * levels[:, None, None])
        log_magnitude = log_magnitude[..., -CROP_FRAMES:]
        magnitude = linear_magnitude(log_magnitude)
        gains, noise = network.to_bins(gains[..., -CROP_FRAMES:]), network.to_bins(noise[..., -CROP_FRAMES:])
        # Content and noise add in power on average; the noise's level is the network input's.
        noise_power = torch.exp(2 * noise) / levels[:, None, None] ** 2
        output = torch.log1p(torch.sqrt((magnitude * torch.exp(gains)).square() + noise_power))
        features = self.prepared.network
        objective = Objective(
            features,
            self.prepared.statistics,
            ContentTargets.from_log_magnitude(features, log_magnitude),
            content_weight=self.content_weight,
            style_weight=self.style_weight,
            texture=self.prepared.texture,
            texture_weight=self.texture_weight,
            envelope=LoudnessContour.from_log_magnitude(log_magnitude) if self.envelope_weight > 0 else None,
            envelope_weight=self.envelope_weight,
        )
        return objective(output)

    @torch.no_grad()
    def validate(self, batch: torch.Tensor) -> float:
        self.network.eval()
        total, _ = self.loss(batch, torch.ones(batch.shape[0], device=batch.device))
        self.network.train()
        return float(total)

    def run(
        self,
        clips: list[TrainingClip],
        generator: torch.Generator,
        validation: torch.Tensor,
        *,
        minutes: float,
        max_steps: int | None,
        progress: TrainingProgress | None,
        device: torch.device,
    ) -> tuple[int, dict[str, Any]]:
        budget = minutes * 60.0
        optimizer = torch.optim.Adam(self.network.parameters(), lr=LEARNING_RATE)
        checks = [self.validate(validation)]
        first: dict[str, float] | None = None
        losses: dict[str, float] = {}
        began = time.perf_counter()
        next_check = VALIDATION_EVERY * budget
        step = 0
        self.network.train()
        while True:
            elapsed = time.perf_counter() - began
            if elapsed >= budget or (max_steps is not None and step >= max_steps):
                break
            for group in optimizer.param_groups:
                group["lr"] = LEARNING_RATE * _decay(elapsed / budget, step, max_steps)
            batch = _crops(clips, BATCH, generator, self.network.context).to(device)
            decibels = (torch.rand(BATCH, generator=generator) * 2 - 1) * LEVEL_RANGE_DB
            total, parts = self.loss(batch, (10 ** (decibels / 20)).to(device))
            if not torch.isfinite(total):
                logger.warning("training: a non-finite loss at step %d was skipped", step + 1)
                optimizer.zero_grad(set_to_none=True)
                continue
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
            optimizer.step()
            step += 1
            losses = {"total": float(total.detach()), **{name: float(value) for name, value in parts.items()}}
            first = first or dict(losses)
            elapsed = time.perf_counter() - began
            if elapsed >= next_check:
                checks.append(self.validate(validation))
                losses["validation"] = checks[-1]
                next_check += VALIDATION_EVERY * budget
            if progress is not None:
                progress(step, _total_steps(step, elapsed, budget, max_steps), dict(losses, eta=_eta(step, elapsed, budget, max_steps)))
        checks.append(self.validate(validation))
        self.network.eval()
        return step, {
            "steps": step,
            "train_seconds": round(time.perf_counter() - began, 3),
            "loss_first": first or {},
            "loss_last": losses,
            "validation_first": checks[0],
            "validation_last": checks[-1],
        }


def _decay(fraction: float, step: int, max_steps: int | None) -> float:
    """Full rate for the first 60 % of the run, then a cosine down to 5 %."""
    if max_steps is not None:
        fraction = max(fraction, step / max_steps)
    if fraction < 0.6:
        return 1.0
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (fraction - 0.6) / 0.4)))


def _total_steps(step: int, elapsed: float, budget: float, max_steps: int | None) -> int:
    by_time = step if elapsed <= 0 else int(step * budget / elapsed)
    return max(step, min(by_time, max_steps) if max_steps is not None else by_time)


def _eta(step: int, elapsed: float, budget: float, max_steps: int | None) -> float:
    remaining = max(0.0, budget - elapsed)
    if max_steps is not None and step > 0:
        remaining = min(remaining, (max_steps - step) * elapsed / step)
    return remaining
