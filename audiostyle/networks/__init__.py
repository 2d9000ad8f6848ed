"""Feature networks: spectrogram -> feature maps."""

from __future__ import annotations

import torch

from .base import FeatureNetwork
from .random import MelBands, RandomCNN, input_channels

__all__ = ["FeatureNetwork", "MelBands", "RandomCNN", "build_network"]


def build_network(
    network: str | torch.nn.Module,
    *,
    n_freq: int,
    sample_rate: int,
    n_fft: int,
    filters: int = 4096,
    kernel_widths: tuple[int, ...] = (11,),
    kernel_dilations: tuple[int, ...] = (),
    seed: int = 0,
    padding: str = "same",
    mel_bands: int = 0,
) -> torch.nn.Module:
    """The feature network a config names.

    Parameters
    ----------
    network : str or torch.nn.Module
        ``"random"``, ``"pretrained"``, a path to a ``.safetensors`` file (architecture JSON
        beside it), or a module following :class:`FeatureNetwork` (returned as is).
    n_freq, sample_rate, n_fft : int
        The spectrogram the network will see.
    filters, kernel_widths, kernel_dilations, seed, padding
        Settings of the random network (:class:`RandomCNN`; empty ``kernel_dilations``
        means no dilation).
    mel_bands : int
        Random network only: 0 (or N >= ``n_freq``) feeds it the ``n_freq`` linear bins;
        0 < N < ``n_freq`` feeds it N mel bands (:class:`MelBands`). Other networks have their
        own front end and ignore it.

    Raises
    ------
    WeightsError
        Unreadable, unsafe or mismatched weights.
    """
    if isinstance(network, torch.nn.Module):
        return network
    if network == "random":
        channels = input_channels(n_freq, mel_bands)
        random = RandomCNN(
            channels, filters=filters, kernel_widths=kernel_widths, dilations=kernel_dilations, seed=seed, padding=padding
        )
        if channels < n_freq:
            return MelBands(random, sample_rate=sample_rate, n_fft=n_fft, n_bands=channels)
        return random
    from .pretrained import load_network

    return load_network(network, sample_rate=sample_rate, n_fft=n_fft)
