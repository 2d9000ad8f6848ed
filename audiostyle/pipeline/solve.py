"""The engine: optimise a log-magnitude spectrogram towards content features and style statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..config import HISTORY_SIZE, StyleConfig
from ..errors import ConfigError
from ..objective import (
    ContentTargets,
    LoudnessContour,
    Objective,
    OnsetContour,
    StyleStatistics,
    TextureStatistics,
)
from ..objective.texture import band_filters
from ..solver import OptimizationResult, ProgressCallback, optimize
from ..validation import is_int

__all__ = ["solver_settings", "stylize_spectrogram"]

#: The StyleConfig fields that are :func:`stylize_spectrogram` arguments of the same name.
_SOLVER_FIELDS = ("texture_weight", "iterations", "solver", "learning_rate", "tolerance", "history_size", "init", "seed")


def stylize_spectrogram(
    content_log_magnitude: torch.Tensor | None,
    style_log_magnitude: torch.Tensor | Sequence[torch.Tensor] | StyleStatistics,
    network: torch.nn.Module,
    *,
    content_weight: float = 1.0,
    style_weight: float = 100.0,
    style_weights: Sequence[float] | None = None,
    texture: TextureStatistics | None = None,
    texture_weight: float = 0.0,
    envelope_weight: float = 0.0,
    onset_weight: float = 0.0,
    onset_bands: torch.Tensor | None = None,
    iterations: int = 60,
    solver: str = "lbfgs",
    learning_rate: float = 1.0,
    tolerance: float = 1e-4,
    history_size: int = HISTORY_SIZE,
    init: str | torch.Tensor = "content",
    frames: int | None = None,
    channels: int = 1,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> OptimizationResult:
    """Optimise a log-magnitude spectrogram towards the content's features and the style's Grams.

    Parameters
    ----------
    content_log_magnitude : torch.Tensor or None [shape=(freq, frames) or (batch, freq, frames)]
        ``log1p`` STFT magnitude of the content; None synthesises a texture (``frames``
        then gives its length).
    style_log_magnitude : torch.Tensor, sequence of torch.Tensor, or StyleStatistics
        One style ``(freq, frames)``/``(channels, freq, frames)``, several (blended with
        ``style_weights``), or precomputed statistics.
    network : torch.nn.Module
        A :class:`~audiostyle.networks.FeatureNetwork` on the tensors' device.
    content_weight, style_weight : float
        Weights of the relative content and style losses.
    style_weights : sequence of float, optional
        Blend weights when several styles are given.
    texture : TextureStatistics, optional
        Band-envelope statistics of the style (:mod:`audiostyle.objective.texture`), matched with
        ``texture_weight``.
    envelope_weight : float
        Weight of the content's loudness contour (:class:`audiostyle.objective.LoudnessContour`);
        0 turns it off.
    onset_weight : float
        Weight of the content's onset contour (:class:`audiostyle.objective.OnsetContour`);
        0 turns it off.
    onset_bands : torch.Tensor [shape=(bands, freq)], optional
        The onset contour's band filters (default: the texture's).
    iterations, solver, learning_rate, tolerance, history_size
        See :func:`audiostyle.solver.optimize`.
    init : {"content", "noise"} or torch.Tensor
        Starting point; noise is small, non-negative and seeded.
    frames : int, optional
        Output length in frames for texture synthesis.
    channels : int
        Channels of a texture (its batch size); ignored with a content.
    seed : int
        Seed of the noise initialisation.
    progress : callable, optional
        ``progress(step, total, losses)``.

    Returns
    -------
    OptimizationResult
        ``solution`` is shaped like the content (``(batch, freq, frames)`` when batched).

    Examples
    --------
    >>> import torch
    >>> from audiostyle.networks import RandomCNN
    >>> net = RandomCNN(65, filters=32, kernel_widths=(3,))
    >>> content, style = torch.rand(65, 40), torch.rand(65, 50)
    >>> out = stylize_spectrogram(content, style, net, iterations=3)
    >>> out.solution.shape
    torch.Size([65, 40])
    """
    if isinstance(style_log_magnitude, StyleStatistics):
        style = style_log_magnitude
    else:
        styles = [style_log_magnitude] if torch.is_tensor(style_log_magnitude) else list(style_log_magnitude)
        style = StyleStatistics.from_log_magnitudes(network, [_batched(s) for s in styles], style_weights)

    if content_log_magnitude is not None:
        squeeze = content_log_magnitude.ndim == 2
        content = _batched(content_log_magnitude)
        targets = ContentTargets.from_log_magnitude(network, content)
        contour = LoudnessContour.from_log_magnitude(content) if envelope_weight > 0 else None
        onsets = _onset_contour(content, onset_weight, onset_bands, texture)
        shape, device = content.shape, content.device
    else:
        _check_texture_shape(frames, channels)
        squeeze, content, targets, contour, onsets = False, None, None, None, None
        shape, device = (channels, style.n_freq, frames), style.layers[0].gram.device
    start = _starting_point(init, content, shape, device, seed)

    objective = Objective(
        network, style, targets, content_weight=content_weight, style_weight=style_weight,
        texture=texture, texture_weight=texture_weight, envelope=contour, envelope_weight=envelope_weight,
        onsets=onsets, onset_weight=onset_weight,
    )
    result = optimize(
        start, objective, iterations=iterations, solver=solver, learning_rate=learning_rate,
        tolerance=tolerance, history_size=history_size, progress=progress,
    )
    result.solution = result.solution.clamp_min(0)
    if squeeze:
        result.solution = result.solution.squeeze(0)
    return result


def solver_settings(config: StyleConfig, texture: TextureStatistics | None, *, content: bool) -> dict[str, Any]:
    """The :func:`stylize_spectrogram` keyword arguments that ``config`` means.

    ``strength`` maps onto the content/style balance (and the loudness contour, which is on
    the content side); a texture (``content=False``) has no content to balance.
    """
    content_weight, style_weight = (
        config.loss_weights() if content else (config.content_weight, config.style_weight)
    )
    settings = {name: getattr(config, name) for name in _SOLVER_FIELDS}
    onset_weight = config.onset_loss_weight() if content else 0.0
    return dict(
        settings,
        content_weight=content_weight,
        style_weight=style_weight,
        texture=texture,
        envelope_weight=config.envelope_loss_weight() if content else 0.0,
        onset_weight=onset_weight,
        onset_bands=band_filters(config.sample_rate, config.n_fft) if onset_weight > 0 else None,
    )


def _onset_contour(
    content: torch.Tensor, weight: float, bands: torch.Tensor | None, texture: TextureStatistics | None
) -> OnsetContour | None:
    """The content's onset contour when its weight is on, on ``bands`` or else the texture's."""
    if weight <= 0:
        return None
    if bands is None:
        if texture is None:
            raise ConfigError("onset_weight > 0 needs onset_bands or a texture whose band filters it can use")
        bands = texture.filters
    return OnsetContour.from_log_magnitude(content, bands)


def _batched(tensor: torch.Tensor) -> torch.Tensor:
    """A log-magnitude as ``(batch, freq, frames)``."""
    if tensor.ndim == 2:
        return tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise ConfigError(f"a log-magnitude must be shaped (freq, frames) or (batch, freq, frames); got {tuple(tensor.shape)}")
    return tensor


def _check_texture_shape(frames: object, channels: object) -> None:
    if frames is None or not is_int(frames) or frames < 1:
        raise ConfigError(f"texture synthesis (no content) needs frames >= 1; got {frames!r}")
    if not is_int(channels) or channels < 1:
        raise ConfigError(f"texture synthesis needs channels >= 1; got {channels!r}")


def _starting_point(
    init: str | torch.Tensor, content: torch.Tensor | None, shape: tuple[int, ...], device: torch.device, seed: int
) -> torch.Tensor:
    """The solver's first point: a given tensor, the content, or small seeded non-negative noise."""
    if torch.is_tensor(init):
        if tuple(init.shape) != tuple(shape):
            raise ConfigError(f"init tensor shape {tuple(init.shape)} must be {tuple(shape)}")
        return init
    if init == "content" and content is not None:
        return content
    if init in ("noise", "content"):
        # A texture has no content to start from: both start from seeded small noise.
        generator = torch.Generator().manual_seed(seed)
        return (torch.randn(shape, generator=generator).abs() * 1e-3).to(device)
    raise ConfigError(f"init={init!r} must be 'content', 'noise' or a tensor")
