"""Training a style model: the per-clip stylizer teaches, Adam fits a transformation network.

Training has two phases in one time budget. First, the teacher: excerpts of the training
contents are stylized one by one by :func:`~audiostyle.stylize` with the chosen preset (the
per-clip optimisation of the preset's objective: content features, Gram statistics, texture
and loudness contour, against the style's statistics made once). Then the student: Adam fits
the network so that its output for each excerpt matches the teacher's, as mean absolute
distance of ``log1p`` magnitudes over random crops (knowledge distillation). Fitting the
teacher's outputs, rather than the objective itself, is cheaper per step and generalised
better to held-out contents at the same wall-clock budget (docs/models.md has the figures).
The network sees each crop at a random level (+-15 dB) while its target stays at the analysis
level, so the gains it learns do not depend on how loud the content is. The model also keeps the
style's long-term band colour, which its stream's colour match moves the output towards.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import PRESETS, StyleConfig
from ..dsp.stft import analyze, linear_magnitude
from ..errors import ConfigError, WeightsError
from ..pipeline import prepare_style, stylize
from ..pipeline.prepared import PreparedStyle
from ..pipeline.sources import AudioSource
from ..validation import is_int, is_number
from .model import StyleModel
from .network import TransformNet, validate_architecture
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
#: Most of the budget the teacher may take; it stops earlier when every excerpt is done.
TEACHER_SHARE = 0.4
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
        The teacher's settings (default ``PRESETS["fast"]``): the per-clip stylization the
        model learns to reproduce, ``strength`` included. ``style_view="auto"`` teaches the
        spectrum view: one network serves every content, and taught both views it learned
        neither well.
    generic : bool
        Add the shipped generic contents (speech, instruments, drums, one-shots).
    minutes : float
        Wall-clock budget for the teacher and the training steps (reading the contents and the
        style comes on top).
    max_steps : int, optional
        Stop after this many steps at the latest.
    seed : int
        Seeds the network's initial weights, the crops and the levels.
    progress : callable, optional
        ``progress(step, total, losses)``: step 0 while the teacher works (``losses`` holds
        ``teacher``, the excerpts done), then after each step ``distance`` (to the teacher's
        output, on this batch), ``eta`` (seconds) and, when measured, ``validation`` (the
        distance on held-out excerpts).
    architecture : dict, optional
        Overrides of :data:`DEFAULT_ARCHITECTURE`.

    Returns
    -------
    StyleModel
        Its ``training`` dict holds steps, seconds, excerpt counts, teacher seconds and the
        first and last distances.

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
    if not is_int(seed) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed={seed!r:.40} must be an integer in [0, 2**63)")
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress={progress!r:.40} must be a callable or None")
    shape = _architecture(config, architecture)  # before any work: a bad one fails at once
    if config.style_view == "auto":
        config = config.replace(style_view="spectrum")
    started = time.perf_counter()
    prepared = prepare_style(style, config, style_weights=style_weights)
    device = prepared.statistics.layers[0].gram.device
    clips = load_clips(contents, config, generic=generic, seed=seed)
    budget = minutes * 60.0
    taught, teacher_seconds = _teach(clips, prepared, config, TEACHER_SHARE * budget, seed, progress)
    training, validation = _split(taught)
    network = _new_network(shape, seed).to(device)
    _fit_band_levels(network, training)
    _set_style_colour(network, prepared, config)
    generator = torch.Generator().manual_seed(seed)
    validation_batch = _crops(validation, VALIDATION_CROPS, generator, network.context)
    trainer = _Trainer(network, device)
    figures = trainer.run(
        training,
        generator,
        validation_batch,
        seconds=max(0.0, budget - teacher_seconds),
        max_steps=max_steps,
        progress=progress,
    )
    figures.update(
        seconds=round(time.perf_counter() - started, 3),
        teacher_seconds=round(teacher_seconds, 3),
        clips=len(training),
        validation_clips=len(validation) if validation is not training else 0,
        contents_read=len(clips),
        generic=bool(generic),
        crop_frames=CROP_FRAMES,
        batch=BATCH,
        seed=int(seed),
    )
    return StyleModel(
        network.cpu(),
        config,
        # File names only: a model file is shared, the folders it was made in are private.
        style_names=tuple(Path(name).name if not name.startswith("<") else name for name in prepared.names),
        style_weights=prepared.weights,
        training=figures,
    ).to(device)


def _teach(
    clips: list[TrainingClip],
    prepared: PreparedStyle,
    config: StyleConfig,
    seconds: float,
    seed: int,
    progress: TrainingProgress | None,
) -> tuple[list[TrainingClip], float]:
    """Stylize excerpts per clip (in a seeded order) until ``seconds`` are spent; at least two are done."""
    began = time.perf_counter()
    order = torch.randperm(len(clips), generator=torch.Generator().manual_seed(seed)).tolist()
    taught: list[TrainingClip] = []
    for index in order:
        clip = clips[index]
        result = stylize((clip.waveform, config.sample_rate), None, config, prepared=prepared)
        clip.target = analyze(result.audio, config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length).log_magnitude
        taught.append(clip)
        spent = time.perf_counter() - began
        if progress is not None:
            progress(0, 0, {"teacher": float(len(taught)), "eta": max(0.0, seconds - spent)})
        if spent >= seconds and len(taught) >= 2:
            break
    return taught, time.perf_counter() - began


def _architecture(config: StyleConfig, architecture: dict[str, Any] | None) -> dict[str, Any]:
    """:data:`DEFAULT_ARCHITECTURE` with ``architecture``'s overrides, checked as a model file's is."""
    if architecture is not None and not isinstance(architecture, Mapping):
        raise ConfigError(f"architecture={architecture!r:.40} must be a dict of overrides of {sorted(DEFAULT_ARCHITECTURE)}")
    unknown = sorted(set(architecture or {}) - set(DEFAULT_ARCHITECTURE))
    if unknown:
        raise ConfigError(f"architecture has unknown keys {unknown}; known: {sorted(DEFAULT_ARCHITECTURE)}")
    shape = dict(DEFAULT_ARCHITECTURE, **(architecture or {}))
    shape.update(sample_rate=config.sample_rate, n_fft=config.n_fft)
    try:
        return validate_architecture(shape, source="train_style_model")
    except WeightsError as error:
        raise ConfigError(str(error)) from None


def _new_network(shape: dict[str, Any], seed: int) -> TransformNet:
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


@torch.no_grad()
def _set_style_colour(network: TransformNet, prepared: PreparedStyle, config: StyleConfig) -> None:
    """Store the styles' blended long-term power per band, as shares, for the colour match at apply time."""
    weights = prepared.blend
    colour = torch.zeros(network.style_colour.shape, dtype=torch.float64)
    for style, weight in zip(prepared.styles, weights):
        spectrum = analyze(style.waveform, config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length)
        power = linear_magnitude(spectrum.log_magnitude.cpu()).double().square().mean(dim=(0, -1))
        bands = network.bands.cpu().double() @ power
        if float(bands.sum()) > 0:
            colour += weight * bands / bands.sum()
    if float(colour.sum()) > 0:
        network.style_colour.copy_((colour / colour.sum()).to(network.style_colour))


def _crops(
    clips: list[TrainingClip], count: int, generator: torch.Generator, context: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random crops of the contents and their targets, (count, freq, context + CROP_FRAMES) each.

    Each crop comes with the ``context`` frames before it, which the network reads as it would
    in a stream; before a clip's start and after its end is silence (zeros).
    """
    freq = clips[0].log_magnitude.shape[-2]
    contents = torch.zeros(count, freq, context + CROP_FRAMES)
    targets = torch.zeros_like(contents)
    for row in range(count):
        clip = clips[int(torch.randint(len(clips), (1,), generator=generator))]
        spare = clip.frames - CROP_FRAMES
        begin = int(torch.randint(spare + 1, (1,), generator=generator)) if spare > 0 else 0
        first = max(0, begin - context)
        offset = context - (begin - first)
        for batch, source in ((contents, clip.log_magnitude), (targets, clip.target)):
            piece = source[0, :, first : begin + CROP_FRAMES]
            batch[row, :, offset : offset + piece.shape[-1]] = piece
    return contents, targets


class _Trainer:
    """The distance of the network's outputs to the teacher's, and the Adam loop under a time budget."""

    def __init__(self, network: TransformNet, device: torch.device) -> None:
        self.network = network
        self.device = device

    def loss(self, contents: torch.Tensor, targets: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Mean absolute ``log1p`` magnitude distance to the targets over the crops, the network reading them at ``levels``."""
        network = self.network
        contents, targets, levels = contents.to(self.device), targets.to(self.device), levels.to(self.device)
        gains, noise, _ = network(network.band_magnitudes(linear_magnitude(contents)) * levels[:, None, None])
        magnitude = linear_magnitude(contents[..., -CROP_FRAMES:])
        gains, noise = network.to_bins(gains[..., -CROP_FRAMES:]), network.to_bins(noise[..., -CROP_FRAMES:])
        # Content and noise add in power on average; the noise's level is the network input's.
        noise_power = torch.exp(2 * noise) / levels[:, None, None] ** 2
        output = torch.log1p(torch.sqrt((magnitude * torch.exp(gains)).square() + noise_power))
        return (output - targets[..., -CROP_FRAMES:]).abs().mean()

    @torch.no_grad()
    def validate(self, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        self.network.eval()
        value = float(self.loss(*batch, torch.ones(batch[0].shape[0])))
        self.network.train()
        return value

    def run(
        self,
        clips: list[TrainingClip],
        generator: torch.Generator,
        validation: tuple[torch.Tensor, torch.Tensor],
        *,
        seconds: float,
        max_steps: int | None,
        progress: TrainingProgress | None,
    ) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.network.parameters(), lr=LEARNING_RATE)
        checks = [self.validate(validation)]
        first: float | None = None
        last = float("nan")
        began = time.perf_counter()
        next_check = VALIDATION_EVERY * seconds
        step = 0
        self.network.train()
        while True:
            elapsed = time.perf_counter() - began
            # At least one step, so that a model always comes out of its teacher's work.
            if step > 0 and (elapsed >= seconds or (max_steps is not None and step >= max_steps)):
                break
            for group in optimizer.param_groups:
                group["lr"] = LEARNING_RATE * _decay(elapsed / max(seconds, 1e-9), step, max_steps)
            contents, targets = _crops(clips, BATCH, generator, self.network.context)
            decibels = (torch.rand(BATCH, generator=generator) * 2 - 1) * LEVEL_RANGE_DB
            distance = self.loss(contents, targets, 10 ** (decibels / 20))
            optimizer.zero_grad(set_to_none=True)
            distance.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
            optimizer.step()
            step += 1
            last = float(distance.detach())
            first = last if first is None else first
            losses = {"distance": last}
            elapsed = time.perf_counter() - began
            if elapsed >= next_check:
                checks.append(self.validate(validation))
                losses["validation"] = checks[-1]
                next_check += VALIDATION_EVERY * seconds
            if progress is not None:
                progress(step, _total_steps(step, elapsed, seconds, max_steps), dict(losses, eta=_eta(step, elapsed, seconds, max_steps)))
        checks.append(self.validate(validation))
        self.network.eval()
        return {
            "steps": step,
            "train_seconds": round(time.perf_counter() - began, 3),
            "distance_first": first,
            "distance_last": last,
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
