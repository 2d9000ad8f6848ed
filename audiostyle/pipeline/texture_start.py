"""Where texture synthesis starts: the style's own spectral frames, drawn in a random order.

A texture has no content to start from. Starting the solver from near-silent noise left it,
within the iterations a preset allows, with sparse bursts over silence, far quieter than the
style. Starting from the style's own STFT frames in a seeded random order gives the solver a
spectrogram that already has the style's level, spectrum and density everywhere; what it
lacks is the style's structure over time, which the Gram and band-envelope statistics then
impose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..dsp.stft import hann_window, log_magnitude

__all__ = ["texture_start"]

#: Frames gathered and transformed at a time: bounds the temporaries for long textures.
FRAME_CHUNK = 2048
#: Consecutive style frames drawn together: runs keep the style's own motion within them.
RUN_FRAMES = 1


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


def texture_start(
    styles: Sequence[np.ndarray],
    weights: Sequence[float],
    *,
    frames: int,
    channels: int,
    n_fft: int,
    hop_length: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A starting log-magnitude for texture synthesis: style frames in a seeded random order.

    Each output frame is one frame of one style, the style drawn with probability
    proportional to its blend weight, the frame uniformly; every channel takes the same
    frame (from the style's channel of the same index, wrapping), so a stereo style keeps
    its image.

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
    which = torch.multinomial(probabilities / probabilities.sum(), frames, replacement=True, generator=generator)
    start = torch.empty(channels, n_fft // 2 + 1, frames, device=device)
    for index, style in enumerate(styles):
        positions = (which == index).nonzero().squeeze(1)
        if positions.numel() == 0:
            continue
        # Frames whose window lies wholly inside the style: the edge frames are half padding.
        available = 1 + style.shape[-1] // hop_length
        margin = min(n_fft // (2 * hop_length), (available - 1) // 2)
        run = max(1, min(RUN_FRAMES, available - 2 * margin))
        starts = torch.randint(0, available - 2 * margin - run + 1, (-(-positions.numel() // run),), generator=generator)
        chosen = (margin + starts[:, None] + torch.arange(run)[None, :]).reshape(-1)[: positions.numel()]
        for channel in range(channels):
            waveform = torch.from_numpy(np.ascontiguousarray(style[channel % style.shape[0]], dtype=np.float32))
            start[channel][:, positions.to(device)] = _frame_log_magnitudes(
                waveform, chosen, n_fft=n_fft, hop_length=hop_length
            ).to(device)
    return start
