"""Seeded random-weight 1-D CNN over time, the feature network of Ulyanov & Lebedev (2016).

Frequency bins are the input channels; each filter spans all bins and ``width`` frames, so a
feature map tells how strongly each random spectro-temporal pattern occurs at each frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..dsp.mel import band_views, mel_filters
from ..dsp.stft import magnitude_of
from ..errors import ConfigError

__all__ = ["Footprint", "MelBands", "RandomCNN", "input_channels", "split_filters"]

PADDING_MODES = ("same", "circular")


def split_filters(filters: int, n_widths: int) -> list[int]:
    """Share ``filters`` among ``n_widths`` kernel widths as evenly as possible."""
    base, extra = divmod(filters, n_widths)
    return [base + (1 if i < extra else 0) for i in range(n_widths)]


def input_channels(n_freq: int, mel_bands: int) -> int:
    """Channels the random network reads: ``mel_bands`` when ``0 < mel_bands < n_freq``, else the bins."""
    return mel_bands if 0 < mel_bands < n_freq else n_freq


@dataclass(frozen=True)
class Footprint:
    """What a random network of given settings holds, counted in floats, before it is built.

    Attributes
    ----------
    input_channels : int
        Channels the convolution reads: the linear bins, or the mel bands averaged from them.
    weight_floats : int
        All kernel weights.
    filters : int
        Feature maps' channels in all (one float per filter and frame in a pass).
    gram_floats : int
        Entries of the Gram matrices, ``filters_i ** 2`` per kernel width.
    """

    input_channels: int
    weight_floats: int
    filters: int
    gram_floats: int


class RandomCNN(torch.nn.Module):
    """One convolution layer with random weights and ReLU, one feature map per kernel width.

    Parameters
    ----------
    n_freq : int
        Number of input frequency bins (``n_fft // 2 + 1``).
    filters : int
        Total number of filters, shared among ``kernel_widths`` (4096 in the 2016 paper).
    kernel_widths : sequence of int
        Temporal widths in frames (odd, so that output frames stay aligned with input frames).
    dilations : sequence of int, optional
        Frames between the taps of each width's kernels (default all 1). A width 3 kernel
        dilated by 3 sees frames ``t - 3, t, t + 3``: longer time scales for the Gram
        statistics at the cost, weights and products of three taps.
    seed : int
        Seed of the weights; the same seed gives the same network on every device.
    padding : {"same", "circular"}
        Zero padding (silence) at the ends, or wrap-around for seamless loops.

    Notes
    -----
    Weights are Gaussian with the scale of the paper's code,
    ``std = sqrt(2) * sqrt(2 / ((n_freq + filters) * width))``, no bias. The convolution runs as
    one ``(frames, n_freq) @ (n_freq, filters)`` matrix product per kernel tap, accumulated in
    place over the tap's shifted frames (:class:`_ShiftedConvReLU`), so it never builds the
    unfolded ``(frames, width * n_freq)`` input, which would be the largest tensor of a loss
    evaluation.
    """

    def __init__(
        self,
        n_freq: int,
        *,
        filters: int = 4096,
        kernel_widths: Sequence[int] = (11,),
        dilations: Sequence[int] | None = None,
        seed: int = 0,
        padding: str = "same",
    ) -> None:
        super().__init__()
        if n_freq < 1:
            raise ConfigError(f"n_freq={n_freq} must be >= 1")
        if not kernel_widths:
            raise ConfigError("kernel_widths must name at least one width")
        if filters < len(kernel_widths):
            raise ConfigError(f"filters={filters} must be >= the number of kernel widths ({len(kernel_widths)})")
        for width in kernel_widths:
            if width < 1 or width % 2 == 0:
                raise ConfigError(f"kernel width {width} must be a positive odd integer")
        if padding not in PADDING_MODES:
            raise ConfigError(f"padding={padding!r} must be one of {PADDING_MODES}")
        self.n_freq = n_freq
        self.padding = padding
        self.kernel_widths = tuple(int(w) for w in kernel_widths)
        self.dilations = tuple(int(d) for d in dilations) if dilations else (1,) * len(self.kernel_widths)
        if len(self.dilations) != len(self.kernel_widths) or min(self.dilations) < 1:
            raise ConfigError(f"dilations={tuple(dilations)} must be one integer >= 1 per kernel width")
        generator = torch.Generator().manual_seed(seed)
        for index, (width, count) in enumerate(
            zip(self.kernel_widths, split_filters(filters, len(self.kernel_widths)))
        ):
            std = math.sqrt(2) * math.sqrt(2.0 / ((n_freq + filters) * width))
            # Laid out (width * n_freq, filters): rows tap * n_freq ... (tap + 1) * n_freq are one tap.
            # Scaled in place: a 4096-filter network would otherwise peak at twice its size.
            weight = torch.randn(width * n_freq, count, generator=generator).mul_(std)
            self.register_buffer(f"weight{index}", weight)

    @staticmethod
    def footprint(n_freq: int, *, filters: int, kernel_widths: Sequence[int], mel_bands: int = 0) -> Footprint:
        """The :class:`Footprint` of the network :func:`~audiostyle.networks.build_network` makes.

        For memory estimates that must run before anything is allocated.
        """
        n_in = input_channels(n_freq, mel_bands)
        per_width = split_filters(filters, len(kernel_widths))
        return Footprint(
            input_channels=n_in,
            weight_floats=sum(w * n_in * f for w, f in zip(kernel_widths, per_width)),
            filters=filters,
            gram_floats=sum(f * f for f in per_width),
        )

    @property
    def reach(self) -> int:
        """Frames each side of an output frame that its widest (dilated) kernel sees."""
        return max((w // 2) * d for w, d in zip(self.kernel_widths, self.dilations))

    @property
    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"weight{i}") for i in range(len(self.kernel_widths))]

    def forward(self, log_magnitude: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps, one per kernel width.

        Parameters
        ----------
        log_magnitude : torch.Tensor [shape=(batch, n_freq, frames)]

        Returns
        -------
        list of torch.Tensor [shape=(batch, filters_i, frames)]
        """
        if log_magnitude.ndim != 3 or log_magnitude.shape[1] != self.n_freq:
            raise ConfigError(
                f"input shape {tuple(log_magnitude.shape)} must be (batch, {self.n_freq}, frames)"
            )
        # (batch, frames, freq): each tap's shifted frames are then a contiguous block of rows.
        frames_first = log_magnitude.transpose(1, 2).contiguous()
        half = self.reach
        if half and self.padding == "circular":
            # Index arithmetic wraps any number of times, also for clips shorter than half.
            n_frames = frames_first.shape[1]
            wrap = torch.arange(-half, n_frames + half, device=frames_first.device) % n_frames
            padded = frames_first.index_select(1, wrap)
        elif half:
            padded = F.pad(frames_first, (0, 0, half, half))
        else:
            padded = frames_first
        weights = [weight.to(padded.dtype) for weight in self.weights]
        maps = _ShiftedConvReLU.apply(padded, self.kernel_widths, self.dilations, *weights)
        return [feature_map.transpose(1, 2) for feature_map in maps]


class MelBands(torch.nn.Module):
    """A feature network fed with mel-band magnitudes instead of the linear frequency bins.

    The input ``log1p`` magnitude is expanded, averaged within each mel band (triangular bands,
    each summing to 1) and compressed again: ``log1p(bands @ expm1(X))``. High frequencies,
    where a linear STFT spends most of its bins, are pooled as the ear pools them, so the
    network's weights and products shrink with the band count (see docs/presets-and-tuning.md
    for what it trades).

    Parameters
    ----------
    network : torch.nn.Module
        The feature network over ``n_bands`` channels, e.g. a :class:`RandomCNN`.
    sample_rate, n_fft : int
        The STFT the input comes from.
    n_bands : int
        Number of mel bands (<= ``n_fft // 2 + 1``).
    """

    def __init__(self, network: torch.nn.Module, *, sample_rate: int, n_fft: int, n_bands: int) -> None:
        super().__init__()
        n_freq = n_fft // 2 + 1
        if not 1 <= n_bands <= n_freq:
            raise ConfigError(f"mel bands={n_bands} must be in [1, {n_freq}] for n_fft={n_fft}")
        bands = torch.from_numpy(mel_filters(sample_rate, n_fft, n_bands, norm=None))
        # A band narrower than a bin can be empty at low n_fft: it averages its nearest bin.
        empty = bands.sum(-1) <= 0
        if bool(empty.any()):
            centres = torch.linspace(0, n_freq - 1, n_bands).round().long()
            bands[empty, centres[empty]] = 1.0
        self.register_buffer("bands", bands / bands.sum(-1, keepdim=True))
        self.network = network
        self.n_freq = n_freq
        for name in ("content_layers", "style_layers"):
            if hasattr(network, name):
                setattr(self, name, getattr(network, name))

    @property
    def input_bands(self) -> torch.Tensor:
        """The band matrix [shape=(n_bands, n_freq)] (the :class:`~audiostyle.networks.base.BandFrontEnd` protocol)."""
        return self.bands

    def forward(self, log_magnitude: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the band-averaged input [shape=(batch, n_freq, frames)]."""
        if log_magnitude.ndim != 3 or log_magnitude.shape[1] != self.n_freq:
            raise ConfigError(
                f"input shape {tuple(log_magnitude.shape)} must be (batch, {self.n_freq}, frames)"
            )
        bands = self.bands.to(log_magnitude.dtype)
        levels, _ = band_views(magnitude_of(log_magnitude), bands, bands.shape[0])
        return self.features(levels)

    def features(self, levels: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of band levels ``log1p(bands @ magnitude)`` [shape=(batch, frames, n_bands)].

        For callers that compute the band levels themselves (with :func:`~audiostyle.dsp.mel.band_views`,
        sharing the product with other band views, as the objective does).
        Frames first is the layout the random network reads, so the input needs no transposed copy.
        """
        return self.network(levels.transpose(1, 2))


class _ShiftedConvReLU(torch.autograd.Function):
    """``relu(conv1d)`` of padded frames with several kernel widths, as per-tap matrix products.

    For a width ``w`` and tap ``k``, output frame ``t`` sees input frame ``t + k`` of the
    padded input, so the convolution is ``sum_k padded[k : k + frames] @ weight[k]``: ``w``
    matrix products accumulated in place, each over a contiguous block of rows, with no
    unfolded copy of the input. The backward pass mirrors it (``grad_padded[k : k + frames] += grad @
    weight[k].T``), as one product for all taps when its buffer is no larger than the map,
    and keeps only the outputs, whose sign is the ReLU's mask. Gradients flow
    to the input only (the weights are fixed buffers). The out= forms of mm/addmm are used
    (not addmm_) so that torch's FLOP counter sees them.
    """

    @staticmethod
    def forward(ctx, padded: torch.Tensor, widths: tuple[int, ...], dilations: tuple[int, ...], *weights: torch.Tensor):
        n_freq = padded.shape[-1]
        half = max((w // 2) * d for w, d in zip(widths, dilations))
        frames = padded.shape[1] - 2 * half
        maps = []
        for width, dilation, weight in zip(widths, dilations, weights):
            start = half - (width // 2) * dilation
            out = padded.new_empty(padded.shape[0], frames, weight.shape[1])
            for item, target in zip(padded, out):
                for tap in range(width):
                    first = start + tap * dilation
                    rows = item[first : first + frames]
                    taps = weight[tap * n_freq : (tap + 1) * n_freq]
                    if tap == 0:
                        torch.mm(rows, taps, out=target)
                    else:
                        torch.addmm(target, rows, taps, out=target)
            maps.append(out.relu_())
        ctx.widths, ctx.dilations, ctx.half = widths, dilations, half
        ctx.save_for_backward(*maps, *weights)
        return tuple(maps)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        widths, dilations, half = ctx.widths, ctx.dilations, ctx.half
        saved = ctx.saved_tensors
        maps, weights = saved[: len(widths)], saved[len(widths) :]
        n_freq = weights[0].shape[0] // widths[0]
        batch, frames = maps[0].shape[:2]
        grad_padded = maps[0].new_zeros(batch, frames + 2 * half, n_freq)
        for width, dilation, weight, out, grad in zip(widths, dilations, weights, maps, grads):
            if grad is None:
                continue
            # ReLU's own backward kernel: one pass, where masked_fill first clones the gradient.
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
            start = half - (width // 2) * dilation
            # One product for all taps, then each tap's block added at its shift, saves the
            # per-tap products' overhead; its (frames, width * n_freq) buffer is allowed only
            # while it is no larger than the map itself.
            fused = width * n_freq <= out.shape[-1]
            for item, target in zip(grad, grad_padded):
                per_tap = item @ weight.T if fused else None
                for tap in range(width):
                    first = start + tap * dilation
                    block = target[first : first + frames]
                    if fused:
                        block += per_tap[:, tap * n_freq : (tap + 1) * n_freq]
                    else:
                        torch.addmm(block, item, weight[tap * n_freq : (tap + 1) * n_freq].T, out=block)
        return (grad_padded, None, None, *([None] * len(weights)))
