"""The transformation network of a style model: content spectrum frames in, per-bin gains out.

A causal stack of dilated 1-D convolutions over time (channels = mel bands, then hidden
channels), after the feed-forward networks of Johnson et al. (2016) and Ramani et al. (2018).
It reads the content's magnitude in mel bands of a fixed frequency grid and predicts, for every
frame, a log-gain per band and the log-level of noise to add in it; spread over the bins, the
output spectrum is the content's times ``exp(gain)`` (keeping the content's phase) plus noise of
magnitude ``exp(noise)``. The noise lets a model give a content the breath, hiss or grain of a style that
a gain alone cannot make where the content has no energy. A new model is the identity: its gain
layers start at zero and its noise far below audibility.

Causal means each output frame depends on its own and earlier frames only, so the network can
stream frame by frame with no look-ahead: :meth:`TransformNet.forward` takes and returns the
left context of every convolution, and feeding the frames in any split gives the same gains as
feeding them at once. Streams and training crops alike start from the state that silence
leaves, so the first frames of a file are treated as in training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..dsp.mel import mel_filters
from ..errors import WeightsError
from ..validation import is_int

__all__ = ["MAX_GAIN", "NOISE_RANGE", "TransformNet", "expected_shapes", "validate_architecture"]

#: Largest log-gain (natural log of a magnitude ratio) a model applies: about +-70 dB.
MAX_GAIN = 8.0
#: The noise's log-magnitude stays in this range (about -140 dB to +35 dB of a unit grid bin),
#: and starts at NOISE_START (inaudible).
NOISE_RANGE = (-16.0, 4.0)
NOISE_START = -12.0
#: Bounds on what the JSON of a model file may make us allocate.
_LIMITS = {"n_freq": 16385, "mel_bands": 1024, "channels": 1024, "blocks": 64, "kernel": 15, "dilation": 256}


def validate_architecture(architecture: Any, *, source: str) -> dict[str, Any]:
    """The architecture dict, checked: known keys, integers within bounds; else WeightsError naming ``source``."""
    if not isinstance(architecture, Mapping):
        raise WeightsError(f"{source}: architecture must be a JSON object")
    required = ("sample_rate", "n_fft", "mel_bands", "channels", "kernel", "dilations")
    missing = [key for key in required if key not in architecture]
    if missing:
        raise WeightsError(f"{source}: architecture lacks {missing}")
    checked = {key: architecture[key] for key in required}
    for key in ("sample_rate", "n_fft", "mel_bands", "channels", "kernel"):
        value = checked[key]
        if not is_int(value) or value < 1:
            raise WeightsError(f"{source}: architecture {key}={value!r} must be a positive integer")
    dilations = checked["dilations"]
    if not isinstance(dilations, list) or not 1 <= len(dilations) <= _LIMITS["blocks"] or not all(
        is_int(d) and 1 <= d <= _LIMITS["dilation"] for d in dilations
    ):
        raise WeightsError(
            f"{source}: architecture dilations must be 1 to {_LIMITS['blocks']} integers in [1, {_LIMITS['dilation']}]"
        )
    n_freq = checked["n_fft"] // 2 + 1
    for key, value in (("n_freq", n_freq), ("mel_bands", checked["mel_bands"]), ("channels", checked["channels"]), ("kernel", checked["kernel"])):
        if value > _LIMITS[key]:
            raise WeightsError(f"{source}: architecture {key}={value} is over the limit {_LIMITS[key]}")
    if not 8000 <= checked["sample_rate"] <= 192000:
        raise WeightsError(f"{source}: architecture sample_rate={checked['sample_rate']} must be in [8000, 192000]")
    if checked["mel_bands"] > n_freq:
        raise WeightsError(f"{source}: architecture mel_bands={checked['mel_bands']} exceeds the {n_freq} bins")
    return checked


def expected_shapes(architecture: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor a model file of this architecture holds."""
    bands, channels, kernel = architecture["mel_bands"], architecture["channels"], architecture["kernel"]
    shapes: dict[str, tuple[int, ...]] = {
        "band_mean": (bands,),
        "band_std": (bands,),
        "style_colour": (bands,),
        "input.weight": (channels, bands, 1),
        "input.bias": (channels,),
    }
    for index in range(len(architecture["dilations"])):
        shapes[f"blocks.{index}.conv.weight"] = (channels, channels, kernel)
        shapes[f"blocks.{index}.conv.bias"] = (channels,)
        shapes[f"blocks.{index}.mix.weight"] = (channels, channels, 1)
        shapes[f"blocks.{index}.mix.bias"] = (channels,)
    shapes["output.weight"] = (2 * bands, channels, 1)
    shapes["output.bias"] = (2 * bands,)
    return shapes


def _spread(filters: torch.Tensor) -> torch.Tensor:
    """(n_freq, bands): each bin's share of each band, rows summing to 1.

    The bins no triangle covers (0 Hz, the Nyquist bin) take the nearest band's value.
    """
    spread = filters.T.clone()
    empty = spread.sum(-1) == 0
    nearest = torch.where(torch.arange(spread.shape[0]) < spread.shape[0] // 2, 0, spread.shape[1] - 1)
    spread[empty, nearest[empty]] = 1.0
    return spread / spread.sum(-1, keepdim=True)


class _Block(torch.nn.Module):
    """``x + mix(relu(conv(x)))`` with a causal dilated convolution."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.context = (kernel - 1) * dilation
        self.conv = torch.nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.mix = torch.nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        joined = torch.cat((past, x), dim=-1)
        out = x + self.mix(torch.relu(self.conv(joined)))
        return out, joined[..., joined.shape[-1] - self.context :]


class TransformNet(torch.nn.Module):
    """Content band levels -> log-gains and noise log-levels per band, causal in time.

    Parameters
    ----------
    architecture : mapping
        ``sample_rate`` and ``n_fft`` of the frequency grid (its ``n_fft // 2 + 1`` bins are
        spaced ``sample_rate / n_fft`` Hz apart), ``mel_bands`` (the bands it reads and
        shapes), ``channels``, ``kernel`` (temporal width) and ``dilations`` (one residual
        block each).

    Notes
    -----
    The network works in mel bands: ``bands`` (mel_bands, n_freq) averages grid magnitudes into
    them, and ``spread`` (n_freq, mel_bands) interpolates a band value over the bins (its rows
    sum to 1), so gains change smoothly along frequency and the content's harmonics keep their
    shape. Gains and noise levels are bounded with a soft clip (``MAX_GAIN``, ``NOISE_RANGE``).
    """

    band_mean: torch.Tensor
    band_std: torch.Tensor
    style_colour: torch.Tensor
    bands: torch.Tensor
    spread: torch.Tensor

    def __init__(self, architecture: Mapping[str, Any]) -> None:
        super().__init__()
        self.architecture = dict(architecture)
        sample_rate, n_fft = architecture["sample_rate"], architecture["n_fft"]
        bands, channels, kernel = architecture["mel_bands"], architecture["channels"], architecture["kernel"]
        filters = torch.from_numpy(mel_filters(sample_rate, n_fft, bands, norm=None))
        self.register_buffer("bands", filters / filters.sum(-1, keepdim=True).clamp_min(1e-8), persistent=False)
        self.register_buffer("spread", _spread(filters), persistent=False)
        self.register_buffer("band_mean", torch.zeros(bands))
        self.register_buffer("band_std", torch.ones(bands))
        # The style's long-term power per band as shares of its total; zeros: none is known.
        self.register_buffer("style_colour", torch.zeros(bands))
        self.input = torch.nn.Conv1d(bands, channels, 1)
        self.blocks = torch.nn.ModuleList(_Block(channels, kernel, d) for d in architecture["dilations"])
        self.output = torch.nn.Conv1d(channels, 2 * bands, 1)  # gain, then noise, per band
        torch.nn.init.zeros_(self.output.weight)
        torch.nn.init.zeros_(self.output.bias)

    @property
    def n_freq(self) -> int:
        return self.spread.shape[0]

    @property
    def context(self) -> int:
        """Frames before the current one that its output depends on (the receptive field less one)."""
        return sum(block.context for block in self.blocks)

    def silent_state(self, batch: int = 1) -> list[torch.Tensor]:
        """The state after ``context`` frames of silence: where every stream and training crop starts."""
        bands = self.bands.shape[0]
        state = [self.input.weight.new_zeros(batch, self.input.out_channels, block.context) for block in self.blocks]
        if self.context == 0:
            return state
        silence = self.input.weight.new_zeros(batch, bands, self.context)
        return self(silence, state)[2]

    def band_magnitudes(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(batch, n_freq, frames) grid magnitude -> (batch, mel_bands, frames) band magnitudes."""
        return torch.einsum("mf,bft->bmt", self.bands, magnitude)

    def to_bins(self, values: torch.Tensor) -> torch.Tensor:
        """(batch, mel_bands, frames) band values -> (batch, n_freq, frames), interpolated over the bins."""
        return torch.einsum("fm,bmt->bft", self.spread, values)

    def forward(
        self, band_magnitude: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Log-gains and noise log-levels per band for these frames, and the state for the next.

        Parameters
        ----------
        band_magnitude : torch.Tensor [shape=(batch, mel_bands, frames)]
            Band magnitudes (:meth:`band_magnitudes`) at the analysis level the model was
            trained at.
        state : list of torch.Tensor, optional
            From the previous call; None starts after silence (:meth:`silent_state`).

        Returns
        -------
        gains : torch.Tensor [shape=(batch, mel_bands, frames)]
            Natural-log magnitude gains, within ``+-MAX_GAIN``.
        noise : torch.Tensor [shape=(batch, mel_bands, frames)]
            Natural log of the added noise's magnitude, at the input's level, within ``NOISE_RANGE``.
        state : list of torch.Tensor
        """
        state = self.silent_state(band_magnitude.shape[0]) if state is None else state
        levels = (torch.log1p(band_magnitude) - self.band_mean[:, None]) / self.band_std[:, None]
        hidden = self.input(levels)
        new_state = []
        for block, past in zip(self.blocks, state):
            hidden, kept = block(hidden, past)
            new_state.append(kept)
        raw_gain, raw_noise = self.output(hidden).chunk(2, dim=1)
        low, high = NOISE_RANGE
        middle, half = (low + high) / 2, (high - low) / 2
        start = math.atanh((NOISE_START - middle) / half) * half
        noise = middle + half * torch.tanh((raw_noise + start) / half)
        return MAX_GAIN * torch.tanh(raw_gain / MAX_GAIN), noise, new_state

    def weight_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors a model file holds (names of :func:`expected_shapes`)."""
        state = self.state_dict()
        return {name: state[name].detach().contiguous().cpu() for name in expected_shapes(self.architecture)}
