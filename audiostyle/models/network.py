"""The transformation network of a style model: content spectrum frames in, per-bin gains out.

A causal stack of dilated 1-D convolutions over time (channels = mel bands, then hidden
channels), after the feed-forward networks of Johnson et al. (2016) and Ramani et al. (2018).
It reads the content's magnitude on a fixed frequency grid and predicts, for every frame, a
log-gain per grid bin and the log-level of noise to add in that bin: the output spectrum is the
content's times ``exp(gain)`` (keeping the content's phase) plus noise of magnitude
``exp(noise)``. The noise lets a model give a content the breath, hiss or grain of a style that
a gain alone cannot make where the content has no energy. A new model is the identity: its gain
layers start at zero and its noise far below audibility.

Causal means each output frame depends on its own and earlier frames only, so the network can
stream frame by frame with no look-ahead: :meth:`TransformNet.forward` takes and returns the
left context of every convolution, and feeding the frames in any split gives the same gains as
feeding them at once.
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
    n_freq = architecture["n_fft"] // 2 + 1
    shapes: dict[str, tuple[int, ...]] = {
        "band_mean": (bands,),
        "band_std": (bands,),
        "input.weight": (channels, bands, 1),
        "input.bias": (channels,),
    }
    for index in range(len(architecture["dilations"])):
        shapes[f"blocks.{index}.conv.weight"] = (channels, channels, kernel)
        shapes[f"blocks.{index}.conv.bias"] = (channels,)
        shapes[f"blocks.{index}.mix.weight"] = (channels, channels, 1)
        shapes[f"blocks.{index}.mix.bias"] = (channels,)
    shapes["fine.weight"] = (n_freq, channels, 1)
    shapes["fine.bias"] = (n_freq,)
    shapes["coarse.weight"] = (bands, channels, 1)
    shapes["coarse.bias"] = (bands,)
    shapes["noise_fine.weight"] = (n_freq, channels, 1)
    shapes["noise_fine.bias"] = (n_freq,)
    shapes["noise_coarse.weight"] = (bands, channels, 1)
    shapes["noise_coarse.bias"] = (bands,)
    return shapes


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
    """Content magnitude frames -> log-gains and noise log-levels per bin, causal in time.

    Parameters
    ----------
    architecture : mapping
        ``sample_rate`` and ``n_fft`` of the frequency grid (its ``n_fft // 2 + 1`` bins are
        spaced ``sample_rate / n_fft`` Hz apart), ``mel_bands`` (the input bands), ``channels``,
        ``kernel`` (temporal width) and ``dilations`` (one residual block each).

    Notes
    -----
    Gain and noise are each a smooth part (one value per mel band, spread over the bins by the
    bands' triangles) plus a per-bin part, bounded with a soft clip (``MAX_GAIN``,
    ``NOISE_RANGE``).
    """

    band_mean: torch.Tensor
    band_std: torch.Tensor
    bands: torch.Tensor
    spread: torch.Tensor

    def __init__(self, architecture: Mapping[str, Any]) -> None:
        super().__init__()
        self.architecture = dict(architecture)
        sample_rate, n_fft = architecture["sample_rate"], architecture["n_fft"]
        bands, channels, kernel = architecture["mel_bands"], architecture["channels"], architecture["kernel"]
        filters = torch.from_numpy(mel_filters(sample_rate, n_fft, bands, norm=None))
        # Input: each band's mean magnitude; output: a band's gain spread over its bins.
        self.register_buffer("bands", filters / filters.sum(-1, keepdim=True).clamp_min(1e-8), persistent=False)
        self.register_buffer("spread", filters.T / filters.T.sum(-1, keepdim=True).clamp_min(1e-8), persistent=False)
        self.register_buffer("band_mean", torch.zeros(bands))
        self.register_buffer("band_std", torch.ones(bands))
        self.input = torch.nn.Conv1d(bands, channels, 1)
        self.blocks = torch.nn.ModuleList(_Block(channels, kernel, d) for d in architecture["dilations"])
        self.fine = torch.nn.Conv1d(channels, n_fft // 2 + 1, 1)
        self.coarse = torch.nn.Conv1d(channels, bands, 1)
        self.noise_fine = torch.nn.Conv1d(channels, n_fft // 2 + 1, 1)
        self.noise_coarse = torch.nn.Conv1d(channels, bands, 1)
        for head in (self.fine, self.coarse, self.noise_fine, self.noise_coarse):
            torch.nn.init.zeros_(head.weight)
            torch.nn.init.zeros_(head.bias)

    @property
    def n_freq(self) -> int:
        return self.fine.out_channels

    def empty_state(self, batch: int = 1) -> list[torch.Tensor]:
        """The left context of every block before the first frame: silence (zeros)."""
        channels = self.input.out_channels
        weight = self.input.weight
        return [weight.new_zeros(batch, channels, block.context) for block in self.blocks]

    def band_levels(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(batch, n_freq, frames) magnitude -> normalised log band levels (batch, mel_bands, frames)."""
        levels = torch.log1p(torch.einsum("mf,bft->bmt", self.bands, magnitude))
        return (levels - self.band_mean[:, None]) / self.band_std[:, None]

    def forward(
        self, magnitude: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Log-gains and noise log-levels for ``magnitude`` frames, and the state for the next frames.

        Parameters
        ----------
        magnitude : torch.Tensor [shape=(batch, n_freq, frames)]
            Linear magnitude on the grid, at the analysis level the model was trained at.
        state : list of torch.Tensor, optional
            From the previous call; None starts from silence.

        Returns
        -------
        gains : torch.Tensor [shape=(batch, n_freq, frames)]
            Natural-log magnitude gains, within ``+-MAX_GAIN``.
        noise : torch.Tensor [shape=(batch, n_freq, frames)]
            Natural log of the added noise's magnitude, at the input's level, within ``NOISE_RANGE``.
        state : list of torch.Tensor
        """
        state = self.empty_state(magnitude.shape[0]) if state is None else state
        hidden = self.input(self.band_levels(magnitude))
        new_state = []
        for block, past in zip(self.blocks, state):
            hidden, kept = block(hidden, past)
            new_state.append(kept)
        raw = self.fine(hidden) + torch.einsum("fm,bmt->bft", self.spread, self.coarse(hidden))
        raw_noise = self.noise_fine(hidden) + torch.einsum("fm,bmt->bft", self.spread, self.noise_coarse(hidden))
        low, high = NOISE_RANGE
        middle, half = (low + high) / 2, (high - low) / 2
        start = math.atanh((NOISE_START - middle) / half) * half
        noise = middle + half * torch.tanh((raw_noise + start) / half)
        return MAX_GAIN * torch.tanh(raw / MAX_GAIN), noise, new_state

    def weight_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors a model file holds (names of :func:`expected_shapes`)."""
        state = self.state_dict()
        return {name: state[name].detach().contiguous().cpu() for name in expected_shapes(self.architecture)}
