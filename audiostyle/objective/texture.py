"""Band-envelope texture statistics, after McDermott & Simoncelli (2011).

A Gram matrix of one short-kernel layer mostly measures which spectral patterns occur, i.e.
colour; it says little about how the sound moves over longer time scales. Sound textures
(rain, bowing, applause) are recognised by the statistics of their band envelopes: how much
each band's level fluctuates, how lopsided those fluctuations are, how fast they are (the
modulation spectrum) and which bands move together. Grinstein et al. (2018) found these the
best texture model. Matching them moves the output's texture over time, not only its colour.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import torch

from ..dsp.mel import band_views, mel_filters
from ..dsp.stft import magnitude_of

__all__ = ["TextureStatistics", "band_envelopes", "texture_statistics"]

N_BANDS = 32
#: Loudness-like compression of the envelopes (McDermott & Simoncelli use 0.3).
COMPRESSION = 0.3
#: Octave-spaced modulation bands in Hz (the frame rate at hop 512 / 22.05 kHz is 43 Hz).
MODULATION_EDGES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: Band magnitudes below this share of the style's mean magnitude in that band count as
#: silence (-40 dB; bands the style never reaches get its square times the mean over all
#: bands, -80 dB). The compression's slope grows without bound towards 0 (``x^-0.7``), so a
#: tiny fixed floor would let frames of digital silence dominate the gradient.
SILENCE_FLOOR = 1e-2
#: Envelope standard deviations are floored at this share of the style's mean envelope, so
#: a band that barely moves (or is silent throughout) has a skew near 0 and finite
#: correlations, instead of ratios of vanishing numbers.
STEADY_FLOOR = 0.05
_EPS = 1e-6
_STATISTICS = ("mean", "variation", "skew", "correlation", "modulation")
_BOUNDED = ("skew", "correlation")


def band_filters(sample_rate: int, n_fft: int, n_bands: int = N_BANDS) -> torch.Tensor:
    """Mel band filters [shape=(n_bands, n_fft // 2 + 1)], each summing to 1."""
    filters = torch.from_numpy(
        mel_filters(sample_rate, n_fft, n_bands, fmin=40.0, norm=None)
    ).float()
    return filters / filters.sum(-1, keepdim=True).clamp_min(_EPS)


def band_magnitudes(log_magnitude: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Band magnitudes [shape=(batch, bands, frames)] of a log1p magnitude, before compression."""
    return band_views(magnitude_of(log_magnitude), filters.to(log_magnitude), 0)[1]


def band_envelopes(log_magnitude: torch.Tensor, filters: torch.Tensor, floor: torch.Tensor | float = _EPS) -> torch.Tensor:
    """Compressed band envelopes [shape=(batch, bands, frames)] of a log1p magnitude.

    ``floor`` (in band-magnitude units) is added before the compression; see
    :data:`SILENCE_FLOOR`.
    """
    return _compressed(band_magnitudes(log_magnitude, filters), floor)


def _compressed(band_magnitude: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    return (band_magnitude + floor) ** COMPRESSION


@functools.lru_cache(maxsize=32)
def _modulation_bins(frames: int, frame_rate: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n_mod_bands, frames // 2 + 1) 0/1 matrix gathering rFFT bins into octave bands (cached: read-only)."""
    freqs = torch.fft.rfftfreq(frames, d=1.0 / frame_rate).to(device)
    edges = torch.tensor(MODULATION_EDGES, device=device)
    return ((freqs >= edges[:-1, None]) & (freqs < edges[1:, None])).to(dtype)


class _Moments(NamedTuple):
    """The intermediate quantities of :func:`texture_statistics` (its gradient reuses them)."""

    mean: torch.Tensor  # (batch, bands)
    centred: torch.Tensor  # (batch, bands, frames)
    std: torch.Tensor  # (batch, bands), floored
    normalised: torch.Tensor  # centred / std
    transform: torch.Tensor  # rfft(centred), (batch, bands, frames // 2 + 1)
    bins: torch.Tensor  # (octave bands, frames // 2 + 1)
    level: torch.Tensor  # mean^2 + eps, (batch, bands)
    modulation: torch.Tensor  # power per octave band / level, (batch, bands, octave bands)


def _moments(envelopes: torch.Tensor, frame_rate: float, steady: float) -> _Moments:
    frames = envelopes.shape[-1]
    mean = envelopes.mean(-1)
    centred = envelopes - mean[..., None]
    std = (centred.square().mean(-1) + steady**2).sqrt()
    normalised = centred / std[..., None]
    transform = torch.fft.rfft(centred, dim=-1)
    bins = _modulation_bins(frames, float(frame_rate), envelopes.device, envelopes.dtype)
    level = mean.square() + _EPS
    power = torch.view_as_real(transform).square().sum(-1) / frames**2  # |X|^2, no complex abs
    return _Moments(mean, centred, std, normalised, transform, bins, level, (power @ bins.T) / level[..., None])


def texture_statistics(envelopes: torch.Tensor, frame_rate: float, steady: float = _EPS) -> dict[str, torch.Tensor]:
    """Time-averaged statistics of band envelopes [shape=(batch, bands, frames)].

    ``steady`` floors each band's standard deviation (see :data:`STEADY_FLOOR`).

    Returns ``mean`` (batch, bands), ``variation`` (std / mean), ``skew``, ``correlation``
    (batch, bands, bands) and ``modulation`` (batch, bands, octave bands): envelope power per
    modulation band relative to the squared mean. Differentiable (by autograd); the texture
    loss has its gradient written out (see :class:`_TextureDistance`).
    """
    return _statistics_of(_moments(envelopes, frame_rate, steady))


def _statistics_of(moments: _Moments) -> dict[str, torch.Tensor]:
    normalised = moments.normalised
    return {
        "mean": moments.mean,
        "variation": moments.std / (moments.mean + _EPS),
        "skew": normalised.pow(3).mean(-1),
        "correlation": normalised @ normalised.transpose(-1, -2) / normalised.shape[-1],
        # The floor keeps the square root's gradient finite for a flat (silent) envelope.
        # The ratio is never negative (powers over a positive level); the clamp guards rounding.
        "modulation": (moments.modulation.clamp_min(0) + _EPS**2).sqrt(),
    }


class TextureStatistics(torch.nn.Module):
    """Target texture statistics of one style or a blend, and their relative loss.

    A module whose buffers are the targets, the band filters and the silence floor, so that
    ``.to(device)`` moves them in place.

    Parameters
    ----------
    targets : dict of str to torch.Tensor
        Each statistic's target (``mean``, ``variation``, ``skew``, ``correlation``,
        ``modulation``).
    filters : torch.Tensor [shape=(bands, n_freq)]
        The band filters.
    frame_rate : float
        Spectrogram frames per second.
    floor : torch.Tensor [shape=(bands, 1)] or float
        Band magnitude counted as silence.
    steady : float
        Floor of the envelopes' standard deviation.
    """

    def __init__(
        self,
        targets: dict[str, torch.Tensor],
        filters: torch.Tensor,
        frame_rate: float,
        floor: torch.Tensor | float = _EPS,
        steady: float = _EPS,
    ) -> None:
        super().__init__()
        self._names = tuple(targets)
        for name, target in targets.items():
            self.register_buffer(f"target_{name}", target)
        self.register_buffer("filters", filters)
        if torch.is_tensor(floor):
            self.register_buffer("floor", floor)
        else:
            self.floor = floor
        self.frame_rate = frame_rate
        self.steady = steady
        # (dtype, device) -> the targets flattened in _STATISTICS order and each entry's weight.
        self._flat: dict = {}

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        """Each statistic's target, by name."""
        return {name: getattr(self, f"target_{name}") for name in self._names}

    @classmethod
    @torch.no_grad()
    def from_log_magnitudes(
        cls,
        log_magnitudes: Sequence[torch.Tensor],
        weights: Sequence[float],
        *,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
    ) -> "TextureStatistics":
        """Statistics pooled over each style's channels, blended with normalised ``weights``."""
        filters = band_filters(sample_rate, n_fft).to(log_magnitudes[0].device)
        shares = [float(w) / float(sum(weights)) for w in weights]
        magnitudes = [band_magnitudes(m, filters) for m in log_magnitudes]  # small: bands x frames
        # Each band's mean magnitude over the styles' frames and channels, blended.
        level = sum(share * m.mean((0, 2)) for share, m in zip(shares, magnitudes))
        floor = (SILENCE_FLOOR * level + SILENCE_FLOOR**2 * level.mean() + _EPS)[:, None]
        envelopes = [_compressed(m, floor) for m in magnitudes]
        steady = STEADY_FLOOR * sum(share * float(e.mean()) for share, e in zip(shares, envelopes)) + _EPS
        frame_rate = sample_rate / hop_length
        targets: dict[str, torch.Tensor] = {}
        for envelope, share in zip(envelopes, shares):
            for name, value in texture_statistics(envelope, frame_rate, steady).items():
                contribution = value.mean(0) * share
                targets[name] = targets[name] + contribution if name in targets else contribution
        return cls(targets=targets, filters=filters, frame_rate=frame_rate, floor=floor, steady=steady)

    def loss(self, log_magnitude: torch.Tensor) -> torch.Tensor:
        """Sum over statistics of their squared errors, averaged over the batch.

        Scale-like statistics (mean, variation, modulation) are compared relative to the
        target's norm; the bounded ones (skew, correlation) by mean squared error.
        """
        return self.loss_of_bands(band_magnitudes(log_magnitude, self.filters))

    def _flat_targets(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All targets as one vector and each entry's weight in the loss, made once per dtype and device.

        Scale-like statistics weigh ``1 / ||target||^2`` (a relative error), the bounded ones
        ``1 / entries`` (a mean square).
        """
        key = (like.dtype, like.device)
        if key not in self._flat:
            targets, weights = [], []
            for name in _STATISTICS:
                target = self.targets[name].to(like).flatten()
                share = 1.0 / target.numel() if name in _BOUNDED else 1.0 / float(target.square().sum().clamp_min(_EPS))
                targets.append(target)
                weights.append(torch.full_like(target, share))
            self._flat[key] = (torch.cat(targets), torch.cat(weights))
        return self._flat[key]

    def loss_of_bands(self, band_magnitude: torch.Tensor) -> torch.Tensor:
        """:meth:`loss` from band magnitudes ``filters @ magnitude`` [shape=(batch, bands, frames)].

        For callers that compute the band magnitudes themselves, sharing the product with
        other band views (see :func:`~audiostyle.dsp.mel.band_views`).
        """
        return _TextureDistance.apply(band_magnitude, self)


class _TextureDistance(torch.autograd.Function):
    """:meth:`TextureStatistics.loss_of_bands` with its gradient written out, made in the forward pass.

    The statistics are five small tensors of 32 bands, so autograd's cost would be mostly its
    own bookkeeping; written out, with the five statistics' errors on one flat vector, it
    takes half the operations, most of them views. With ``e`` the envelopes,
    ``c = e - mu``, ``n = c / sigma`` and ``X = rfft(c)``, the chain is

    - skew ``mean n^3`` and correlation ``n n^T / T`` give ``dL/dn``, hence ``dL/dc = dL/dn / sigma``
      and ``dL/dsigma = -sum_t dL/dn * n / sigma``;
    - modulation ``sqrt(|X|^2 W^T / (T^2 level))`` gives ``dL/dc = (2 / T) irfft(Y)`` with
      ``Y = dL/dpower * X``, its interior bins halved (each stands for two conjugate bins), and
      a ``dL/dmu`` through the level;
    - ``sigma = sqrt(var + steady^2)``, ``c = e - mean(e)`` and ``e = (B + floor)^0.3`` close it.

    A float64 test checks value and gradient against autograd through :func:`texture_statistics`.
    """

    @staticmethod
    def forward(ctx, band_magnitude: torch.Tensor, texture: "TextureStatistics") -> torch.Tensor:
        batch, bands, frames = band_magnitude.shape
        base = band_magnitude + texture.floor
        envelopes = base**COMPRESSION
        moments = _moments(envelopes, texture.frame_rate, texture.steady)
        stats = _statistics_of(moments)
        # All statistics as one vector per item: the errors and their gradients in a few passes.
        flat = torch.cat([stats[name].flatten(1) for name in _STATISTICS], dim=1)
        target, weight = texture._flat_targets(flat)
        difference = flat - target
        weighted = difference * weight
        value = (weighted * difference).sum(-1).mean()
        # d value / d statistic, each item's share of the batch mean included.
        gradient = weighted.mul_(2 / batch)
        sizes = [stats[name][0].numel() for name in _STATISTICS]
        grads = {
            name: part.view(stats[name].shape)
            for name, part in zip(_STATISTICS, gradient.split(sizes, dim=1))
        }
        mean, std, normalised = moments.mean, moments.std, moments.normalised
        shifted_mean = mean + _EPS
        grad_mean = grads["mean"] - grads["variation"] * stats["variation"] / shifted_mean
        grad_std = grads["variation"] / shifted_mean
        # Modulation: m = sqrt(M + eps^2), M = P W^T / level, P = |X|^2 / T^2.
        grad_ratio = grads["modulation"] / (2 * stats["modulation"])
        grad_mean = grad_mean - (grad_ratio * moments.modulation).sum(-1) * (2 * mean / moments.level)
        grad_power = (grad_ratio / moments.level[..., None]) @ moments.bins
        interior_end = grad_power.shape[-1] - (1 if frames % 2 == 0 else 0)
        grad_power[..., 1:interior_end] *= 0.5
        # Real factors times a complex spectrum, on its (re, im) view: no complex promotion.
        spectral = torch.view_as_complex(torch.view_as_real(moments.transform) * grad_power[..., None])
        grad_centred = torch.fft.irfft(spectral, n=frames, dim=-1).mul_(2 / frames)
        # Skew and correlation through the normalised envelopes.
        grad_normalised = grads["skew"][..., None] * (3 / frames) * normalised.square()
        grad_normalised += (grads["correlation"] + grads["correlation"].transpose(-1, -2)) @ normalised / frames
        grad_centred += grad_normalised / std[..., None]
        grad_std = grad_std - (grad_normalised * normalised).sum(-1) / std
        # std = sqrt(var + steady^2), var = mean(c^2).
        grad_centred += moments.centred * (grad_std / (std * frames))[..., None]
        grad_envelopes = grad_centred - grad_centred.mean(-1, keepdim=True) + (grad_mean / frames)[..., None]
        ctx.save_for_backward(grad_envelopes.mul_(envelopes).mul_(COMPRESSION).div_(base))
        return value

    @staticmethod
    def backward(ctx, grad_value: torch.Tensor):
        (gradient,) = ctx.saved_tensors
        return gradient * grad_value, None
