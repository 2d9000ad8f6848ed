"""Style targets: the (blended) Gram matrix of each style layer, computed once per style."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from ..networks.base import FeatureNetwork, style_layer_indices
from .features import LayerStyle, feature_losses, gram, pooled

__all__ = ["StyleStatistics"]


class StyleStatistics(torch.nn.Module):
    """Style targets: the (blended) Gram matrix of each style layer.

    Build with :meth:`from_log_magnitudes`; compute once per style and reuse for every content
    (the batch runner caches them). Each layer also keeps the style's own feature maps
    (``rows``) so that the loss can use the frame-product form when that is cheaper (see
    :class:`~audiostyle.objective.features.LayerStyle`). A module whose buffers are the
    targets: ``.to(device)`` moves them, in place, as for any module.

    Attributes
    ----------
    layers : torch.nn.ModuleList of LayerStyle
    layer_indices : tuple of int
        The network's feature maps these layers belong to.
    n_freq : int
        Frequency bins of the spectrograms they came from.
    """

    def __init__(self, layers: Sequence[LayerStyle], layer_indices: Sequence[int], n_freq: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)
        self.layer_indices = tuple(layer_indices)
        self.n_freq = int(n_freq)

    @classmethod
    @torch.no_grad()
    def from_log_magnitudes(
        cls,
        network: FeatureNetwork,
        log_magnitudes: Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
    ) -> StyleStatistics:
        """Style statistics of one style or a weighted blend of several.

        Parameters
        ----------
        network : FeatureNetwork
        log_magnitudes : sequence of torch.Tensor [shape=(channels, freq, frames)]
            One log-magnitude per style; a style's channels are pooled into one Gram.
        weights : sequence of float, optional
            Blend weights (non-negative, normalised to sum to 1); default equal.
        """
        if not log_magnitudes:
            raise ConfigError("at least one style is needed")
        weights = [1.0] * len(log_magnitudes) if weights is None else [float(w) for w in weights]
        if len(weights) != len(log_magnitudes) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"style weights {weights} must be non-negative, one per style, not all 0")
        total = sum(weights)
        weights = [w / total for w in weights]
        per_style = [network(log_mag) for log_mag in log_magnitudes]
        indices = style_layer_indices(network, len(per_style[0]))
        layers = []
        for index in indices:
            pooled_maps = [pooled(maps[index]) for maps in per_style]
            blend = sum(w * gram(p) for w, p in zip(weights, pooled_maps))
            kept = [(w, p) for w, p in zip(weights, pooled_maps) if w > 0]
            layers.append(
                LayerStyle(
                    gram=blend,
                    rows=torch.cat([p.T for _, p in kept]).contiguous(),
                    row_weights=torch.cat([p.new_full((p.shape[-1],), w / p.shape[-1]) for w, p in kept]),
                    norm2=blend.square().sum(),
                )
            )
        return cls(layers=layers, layer_indices=tuple(indices), n_freq=int(log_magnitudes[0].shape[-2]))

    def loss(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean over the batch of the summed relative Gram distances of the style layers.

        Each layer's distance and its gradient come from :class:`_FeatureLoss`, which picks
        the cheaper of the Gram and the frame-product forms.
        """
        return feature_losses(maps, self, None, style_weight=1.0, content_weight=0.0)[0]
