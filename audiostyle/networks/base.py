"""The contract every feature network follows, so random, pretrained and user networks plug in alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

__all__ = ["BandFrontEnd", "FeatureNetwork", "band_front_end", "content_layer_indices", "style_layer_indices"]


@runtime_checkable
class FeatureNetwork(Protocol):
    """A module mapping log-magnitude spectrograms to feature maps.

    ``forward(log_magnitude)`` takes a tensor shaped ``(batch, freq, frames)`` (``log1p`` of
    the linear STFT magnitude, ``freq = n_fft // 2 + 1``) and returns a list of feature maps,
    each shaped ``(batch, channels_i, frames_i)``. Gradients must flow back to the input.

    Two optional attributes choose which maps feed which loss (indices into that list):
    ``content_layers`` (default: the last map) and ``style_layers`` (default: all maps).
    """

    def __call__(self, log_magnitude: torch.Tensor) -> list[torch.Tensor]: ...


def content_layer_indices(network: FeatureNetwork, n_maps: int) -> Sequence[int]:
    """Indices of the maps used for the content loss (the network's choice, else the last)."""
    return tuple(getattr(network, "content_layers", (n_maps - 1,)))


def style_layer_indices(network: FeatureNetwork, n_maps: int) -> Sequence[int]:
    """Indices of the maps used for the style loss (the network's choice, else all)."""
    return tuple(getattr(network, "style_layers", range(n_maps)))


class BandFrontEnd(Protocol):
    """A network whose first step is ``levels = log1p(input_bands @ magnitude)``.

    Exposing the band matrix lets a caller compute the levels itself, in one matrix product
    shared with other band terms, and hand them to :meth:`features`.

    Attributes
    ----------
    input_bands : torch.Tensor [shape=(n_bands, n_fft // 2 + 1)]
        Band weights over the linear STFT bins.
    """

    input_bands: torch.Tensor

    def features(self, levels: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of band levels [shape=(batch, frames, n_bands)] (frames first)."""
        ...


def band_front_end(network: FeatureNetwork) -> BandFrontEnd | None:
    """``network`` if it follows :class:`BandFrontEnd` (has ``input_bands`` and ``features``), else None."""
    if getattr(network, "input_bands", None) is not None and callable(getattr(network, "features", None)):
        return network  # type: ignore[return-value]
    return None
