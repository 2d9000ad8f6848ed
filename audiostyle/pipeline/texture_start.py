"""Where texture synthesis starts: runs of the style's own spectral frames, in a random order.

A texture has no content to start from. Starting the solver from near-silent noise left it,
within the iterations a preset allows, with sparse bursts over silence, far quieter than the
style. Starting from the style's own STFT frames in a seeded random order gives the solver a
spectrogram that already has the style's level, spectrum and density everywhere; what it
lacks is the style's structure over time, which the Gram and band-envelope statistics then
impose. Frames come in crossfaded runs rather than one by one, so that the style's slower
level changes (wind's gusts) survive too instead of averaging out into a flat noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..dsp.stft import hann_window, log_magnitude

__all__ = ["texture_start", "frames_lasting", "RUN_SECONDS", "FADE_SECONDS"]

#: Frames gathered and transformed at a time: bounds the temporaries for long textures.
FRAME_CHUNK = 2048
#: Length of a run of consecutive style frames: the style's own motion survives within one.
RUN_SECONDS = 0.75
#: Crossfade between one run and the next: long enough that no step marks the join.
FADE_SECONDS = 0.28


def _frame_log_magnitudes(
    waveform: torch.Tensor, indices: torch.Tensor, *, n_fft: int, hop_length: int
) -> torch.Tensor:
    """``log1p |STFT|`` of the chosen frames of ``waveform`` [shape=(samples,)] -> (freq, len(indices)).

    The frames are those of :func:`audiostyle.dsp.stft.stft` (centred, zero-padded, Hann).
    """
    padded = torch.nn.functional.pad(waveform[None, None], (n_fft // 2, n_fft // 2))[0, 0]
    frames = padded.unfold(0, n_fft, hop_length)  # a view: nothing is copied until indexed
    window = hann_window(n_fft, waveform.device, waveform.dtype)
    parts = []
    for begin in range(0, indices.numel(), FRAME_CHUNK):
        chosen = frames[indices[begin : begin + FRAME_CHUNK]] * window
        parts.append(log_magnitude(torch.fft.rfft(chosen, dim=-1).abs()).T)
    return torch.cat(parts, dim=1)


def frames_lasting(seconds: float, sample_rate: int, hop_length: int) -> int:
    """Frames that last ``seconds`` at this rate and hop (at least 1)."""
    return max(1, round(seconds * sample_rate / hop_length))


def _inner_frames(style: np.ndarray, n_fft: int, hop_length: int) -> tuple[int, int]:
    """``(first, count)`` of the style's frames whose window lies wholly inside it (edge frames are half padding)."""
    available = 1 + style.shape[-1] // hop_length
    margin = min(n_fft // (2 * hop_length), (available - 1) // 2)
    return margin, available - 2 * margin


def texture_start(
    styles: Sequence[np.ndarray],
    weights: Sequence[float],
    *,
    frames: int,
    channels: int,
    n_fft: int,
    hop_length: int,
    seed: int,
    run_frames: int = 1,
    fade_frames: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A starting log-magnitude for texture synthesis: runs of style frames in a seeded random order.

    The texture is laid out as runs of ``run_frames`` consecutive frames of one style (the
    style drawn with probability proportional to its blend weight, the run's place in it
    uniformly), each run fading into the next over ``fade_frames`` frames (a linear
    crossfade of log-magnitudes), so the style's own motion survives within a run and no
    step marks where one run meets the next. Every channel takes the same frames (from the
    style's channel of the same index, wrapping), so a stereo style keeps its image.

    Parameters
    ----------
    styles : sequence of np.ndarray [shape=(channels, samples)]
        The styles at the working rate, as analysed for their statistics.
    weights : sequence of float
        Blend weights, one per style (>= 0, not all 0).
    frames : int
        Frames of the texture.
    channels : int
        Channels of the texture.
    n_fft, hop_length : int
        The analysis' STFT settings.
    seed : int
        Seeds the draw.
    run_frames : int
        Consecutive style frames per run (>= 1).
    fade_frames : int
        Frames over which a run fades into the next (0 <= fade_frames < run_frames).
    device : torch.device or str
        Where the result lives.

    Returns
    -------
    torch.Tensor [shape=(channels, n_fft // 2 + 1, frames)]

    Examples
    --------
    >>> start = texture_start([np.random.randn(1, 22050).astype(np.float32)], [1.0],
    ...                       frames=50, channels=2, n_fft=512, hop_length=128, seed=0)
    >>> tuple(start.shape)
    (2, 257, 50)
    """
    generator = torch.Generator().manual_seed(seed)
    probabilities = torch.tensor([float(w) for w in weights], dtype=torch.float64)
    probabilities /= probabilities.sum()
    # A run never needs more frames than the shortest style has inside its edges.
    run_frames = max(1, min(run_frames, *(_inner_frames(style, n_fft, hop_length)[1] for style in styles)))
    fade = max(0, min(fade_frames, run_frames - 1))
    step = run_frames - fade
    runs = max(1, -(-(frames - fade) // step))
    which = torch.multinomial(probabilities, runs, replacement=True, generator=generator)
    ramp = torch.ones(run_frames)
    if fade:
        ramp[:fade] = torch.arange(1, fade + 1) / (fade + 1)
        ramp[run_frames - fade :] = ramp[:fade].flip(0)
    total = torch.zeros(channels, n_fft // 2 + 1, frames)
    weight = torch.zeros(frames)
    for run in range(runs):
        style = styles[int(which[run])]
        margin, inner = _inner_frames(style, n_fft, hop_length)
        length = min(run_frames, inner, frames - run * step)
        first = margin + int(torch.randint(0, inner - length + 1, (1,), generator=generator))
        chosen = torch.arange(first, first + length)
        place = slice(run * step, run * step + length)
        shape = ramp[:length].clone()
        if run == 0:
            shape[:fade] = 1.0
        if run * step + length >= frames:
            shape[max(0, length - fade) :] = 1.0
        for channel in range(channels):
            waveform = torch.from_numpy(np.ascontiguousarray(style[channel % style.shape[0]], dtype=np.float32))
            frames_lm = _frame_log_magnitudes(waveform, chosen, n_fft=n_fft, hop_length=hop_length)
            total[channel][:, place] += frames_lm * shape
        weight[place] += shape
    return (total / weight.clamp_min(1e-12)).to(device)
