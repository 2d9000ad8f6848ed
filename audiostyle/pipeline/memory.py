"""Memory check before a run: estimate the peak, compare it with what the machine has free.

A run that does not fit should stop at once with a message that says which setting to
lower, not minutes later when the operating system kills the process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..config import StyleConfig
from ..errors import ConfigError
from ..networks.random import RandomCNN
from ..system import available_cpu_memory, format_gib
from .segments import segment_frames

__all__ = ["estimate_peak_bytes", "available_memory", "check_memory"]

logger = logging.getLogger("audiostyle")

FLOAT_BYTES = 4
#: Allocator slack, temporaries and the interpreter itself.
SAFETY_FACTOR = 1.5
#: Floats per optimised spectrogram bin that the optional stages add: waveform refinement
#: (an STFT under autograd plus L-BFGS on the waveform) and the band-envelope texture loss,
#: with room above what benchmarks/long_input.py measures.
REFINE_FLOATS_PER_BIN = 64
TEXTURE_FLOATS_PER_BIN = 8
#: torch, librosa and friends once imported.
BASELINE_BYTES = 300 * 2**20


def estimate_peak_bytes(
    config: StyleConfig,
    content_columns: int,
    style_columns: Sequence[int],
) -> int:
    """Estimate the peak memory of one :func:`~audiostyle.stylize` run, in bytes.

    Parameters
    ----------
    config : StyleConfig
        The run's settings (FFT size, filters, kernel widths, solver).
    content_columns : int
        Spectrogram frames of the content times its channels (of the texture, when there
        is no content): the size of the optimised variable.
    style_columns : sequence of int
        Frames times channels of each style.

    Returns
    -------
    int
        Estimated peak bytes, safety factor included.

    Notes
    -----
    The random network convolves tap by tap, so a pass holds two copies of its input (frames
    first, then padded) and the feature maps, ``filters * frames``; the backward pass as much
    again. Gram matrices are ``filters_i ** 2`` per width, and L-BFGS keeps
    ``2 * history_size`` copies of the variable. Pretrained networks are smaller
    than the random one at the same frame count, so the estimate errs on the safe side.
    """
    n_freq = config.n_fft // 2 + 1
    network = RandomCNN.footprint(
        n_freq, filters=config.filters, kernel_widths=config.kernel_widths, mel_bands=config.mel_bands
    )
    n_in, weights, grams = network.input_channels, network.weight_floats, network.gram_floats

    def network_pass(columns: int, *, backward: bool) -> int:
        inputs = 2 * n_in * columns + (2 * n_freq * columns if n_in < n_freq else 0)
        maps = network.filters * columns
        return (inputs + maps) * (2 if backward else 1)

    # Targets: the style's (and content's) features, one style at a time, then only Grams kept.
    largest_style = max(style_columns, default=0)
    targets = network_pass(max(largest_style, content_columns), backward=False)
    # Optimisation: variable, gradient, content target, spectrogram/phase, solver state.
    solver_state = 2 * config.history_size if config.solver == "lbfgs" else 2
    variable = n_freq * content_columns * (4 + solver_state)
    optimise = variable + network_pass(content_columns, backward=True) + config.filters * content_columns
    styles = sum(n_freq * c * 3 for c in style_columns)  # log-magnitude, complex STFT
    if getattr(config, "refine_steps", 0) > 0:
        optimise += REFINE_FLOATS_PER_BIN * n_freq * content_columns
    if getattr(config, "texture_weight", 0) > 0:
        optimise += TEXTURE_FLOATS_PER_BIN * n_freq * content_columns
    total_floats = weights + 3 * grams + styles + max(targets, optimise)
    return int(total_floats * FLOAT_BYTES * SAFETY_FACTOR) + BASELINE_BYTES


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes free for a run on ``device``, or None when this machine does not say.

    CPU: :func:`audiostyle.system.available_cpu_memory` (``MemAvailable``, capped by a
    container's cgroup limit and the process's ulimits). CUDA: the driver's free memory.
    MPS: unknown.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError):
            return None
        return int(free)
    if device.type != "cpu":
        return None
    return available_cpu_memory()


def _shape(waveform: np.ndarray | tuple[int, int]) -> tuple[int, int]:
    return tuple(waveform) if isinstance(waveform, tuple) else waveform.shape


def _columns(waveform: np.ndarray | tuple[int, int], hop_length: int) -> int:
    # analyze() turns channels into the batch: frames per channel times channels.
    channels, samples = _shape(waveform)
    return channels * (1 + samples // hop_length)


def check_memory(
    config: StyleConfig,
    content: np.ndarray | tuple[int, int] | None,
    styles: Sequence[np.ndarray],
    *,
    texture_seconds: float | None = None,
    device: torch.device | str = "cpu",
) -> int:
    """Refuse a run whose estimated peak exceeds the free memory of ``device``.

    Parameters
    ----------
    config : StyleConfig
        The run's settings.
    content : np.ndarray [shape=(channels, samples)], (channels, samples) or None
        The content at the working rate, or just its shape (long content is never resampled
        whole); None for a texture.
    styles : sequence of np.ndarray [shape=(channels, samples)]
        The styles at the working rate.
    texture_seconds : float, optional
        Length of a texture (``content=None``); default: the first style's length.
    device : torch.device or str
        Where the run will happen.

    Returns
    -------
    int
        The estimate in bytes (returned also when free memory is unknown and the check
        is skipped).

    Raises
    ------
    ConfigError
        The estimate is larger than the free memory; the message names the settings to
        lower (``filters``, the fast preset, ``n_fft``, ``segment_seconds``, a shorter clip).
    """
    hop = config.hop_length
    style_columns = [_columns(style, hop) for style in styles]
    long_buffers = 0
    if content is not None:
        content_columns = _columns(content, hop)
        # Longer content is resampled, analysed, solved and reconstructed one segment at a
        # time (audiostyle.pipeline.segments.stylize_waveform_in_segments); only the float32 output
        # at the content's rate grows with it, counted here at twice the working rate's
        # samples to cover 44.1 and 48 kHz content (see benchmarks/long_input.py).
        channels, samples = _shape(content)
        solved_columns = min(content_columns, channels * segment_frames(config.segment_seconds, config.sample_rate, hop))
        if solved_columns < content_columns:
            long_buffers = 2 * channels * samples * FLOAT_BYTES
        content_columns = solved_columns
    else:
        valid = isinstance(texture_seconds, (int, float)) and 0 < texture_seconds <= config.max_duration
        samples = texture_seconds * config.sample_rate if valid else styles[0].shape[-1]
        # A texture has the first style's channels, each solved like a content channel.
        content_columns = _shape(styles[0])[0] * (1 + int(samples) // hop)
    needed = estimate_peak_bytes(config, content_columns, style_columns) + long_buffers
    free = available_memory(device)
    if free is None:
        logger.debug("free memory on %s unknown; skipping the memory check", device)
        return needed
    logger.debug("estimated peak %s of %s free on %s", format_gib(needed), format_gib(free), device)
    if needed > free:
        longest = max(_shape(w)[-1] for w in ([content] if content is not None else []) + list(styles))
        raise ConfigError(
            f"this run needs about {format_gib(needed)} of memory on {torch.device(device)} but only "
            f"{format_gib(free)} is free; lower filters (now {config.filters}), use the fast preset, "
            f"a smaller n_fft (now {config.n_fft}), shorter segment_seconds (now "
            f"{config.segment_seconds:g}), or a shorter clip (the longest input lasts "
            f"{longest / config.sample_rate:.0f} s)"
        )
    return needed
