"""The source-filter view: the style acts on the spectral envelope, the content keeps the fine structure.

Gram statistics over frequency channels record which pitches a style plays, so matching the
full spectrum's statistics imposes the style's notes as well as its instrument. A
source-filter split keeps them apart. In ``Y = log(magnitude + floor)`` the spectral
envelope is the slowly varying part along frequency: the first ``K`` DCT-II coefficients of
each frame (the last quarter tapered so that the cut does not ring),
``E = D_K^T diag(w) D_K Y``, detail coarser than ``sample_rate / K`` Hz. The fine structure
``F = Y - E`` holds the harmonic positions, i.e. the notes. The style's statistics (the
feature network's Grams and the band-envelope texture) are taken of ``E`` only, and the
content term keeps the content's ``F`` instead of its network features, so content and style
no longer pull against each other.

The floor matters: in ``log1p`` the gaps between harmonics fill with noise where the
envelope rises, and a floor of about -20 dB under the analysis level keeps them empty.
All gradients here are autograd's (a few matrix products and pointwise functions); the tests
check them against finite differences in float64.
"""

from __future__ import annotations

import functools
import math

import torch

from ..dsp.mel import band_views
from ..dsp.stft import magnitude_of
from ..errors import ConfigError
from ..networks.base import FeatureNetwork, band_front_end
from .features import EPS

__all__ = [
    "EnvelopeNetwork",
    "FineStructureStatistics",
    "FineStructureTargets",
    "SourceFilterSplit",
    "envelope_coefficients",
    "log_frequency_axis",
]

#: Share of the kept DCT coefficients whose weight falls off as a half cosine.
TAPER = 0.25
#: The log-frequency axis of the fine-structure statistics: bins per octave, lowest and
#: highest frequency (Hz), and the longest lag (octaves).
BINS_PER_OCTAVE = 36
LOWEST_HZ, HIGHEST_HZ = 60.0, 8000.0
MAX_LAG_OCTAVES = 3.0


def envelope_coefficients(sample_rate: int, resolution_hz: float) -> int:
    """DCT coefficients ``K`` that keep detail coarser than ``resolution_hz`` along frequency.

    Coefficient ``q`` is a cosine of period ``sample_rate / q`` Hz over the band 0 to
    Nyquist, so ``K = sample_rate / resolution_hz``, at least 2.
    """
    return max(2, round(sample_rate / resolution_hz))


def _dct_rows(n: int, k: int) -> torch.Tensor:
    """Orthonormal DCT-II rows [shape=(k, n)], float64."""
    index = torch.arange(n, dtype=torch.float64)
    order = torch.arange(k, dtype=torch.float64)[:, None]
    rows = math.sqrt(2.0 / n) * torch.cos(math.pi * order * (index + 0.5) / n)
    rows[0] = 1.0 / math.sqrt(n)
    return rows


class SourceFilterSplit(torch.nn.Module):
    """``E = synthesis @ analysis @ Y`` and ``F = Y - E`` along frequency, with its operators as buffers.

    Parameters
    ----------
    n_freq : int
        Frequency bins of the spectrograms (``n_fft // 2 + 1``).
    coefficients : int
        DCT coefficients kept (``K``, 2..n_freq); see :func:`envelope_coefficients`.
    floor : float
        ``Y = log(magnitude + floor)``, in linear magnitude units (> 0).
    """

    analysis: torch.Tensor  # (K, n_freq): diag(w) D_K
    synthesis: torch.Tensor  # (n_freq, K): D_K^T

    def __init__(self, n_freq: int, coefficients: int, floor: float) -> None:
        super().__init__()
        if not 2 <= coefficients <= n_freq:
            raise ConfigError(f"envelope coefficients={coefficients} must be in [2, {n_freq}] (lower envelope_resolution_hz)")
        if not floor > 0:
            raise ConfigError(f"split floor={floor!r} must be > 0")
        rows = _dct_rows(n_freq, coefficients)
        weights = torch.ones(coefficients, dtype=torch.float64)
        ramp = round(TAPER * coefficients)
        if ramp > 0:
            steps = torch.arange(ramp, dtype=torch.float64)
            weights[coefficients - ramp :] = 0.5 * (1 + torch.cos(math.pi * (steps + 1) / (ramp + 1)))
        self.register_buffer("analysis", (rows * weights[:, None]).float())
        self.register_buffer("synthesis", rows.T.contiguous().float())
        self.floor = float(floor)

    def log_spectrum(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``Y = log(magnitude + floor)`` [shape=(batch, n_freq, frames)]."""
        return torch.log(magnitude + self.floor)

    def coefficients(self, log_spectrum: torch.Tensor) -> torch.Tensor:
        """The envelope's DCT coefficients [shape=(batch, K, frames)]."""
        return self.analysis.to(log_spectrum) @ log_spectrum

    def envelope(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``E`` from its coefficients [shape=(batch, n_freq, frames)], in the log domain."""
        return self.synthesis.to(coefficients) @ coefficients

    def fine(self, log_spectrum: torch.Tensor, envelope: torch.Tensor | None = None) -> torch.Tensor:
        """``F = Y - E`` [shape=(batch, n_freq, frames)], ``E`` computed here unless given."""
        if envelope is None:
            envelope = self.envelope(self.coefficients(log_spectrum))
        return log_spectrum - envelope


class EnvelopeNetwork(torch.nn.Module):
    """A feature network that sees only the spectral envelope of its ``log1p`` input.

    ``forward(X)`` feeds the wrapped network the envelope as ``log1p`` levels,
    ``softplus(E) = log1p(exp(E))``, on the network's own input bands when it has a band
    front end (``softplus(bands @ D_K^T C)``, a ``bands x K`` product) and on the linear bins
    otherwise. So :class:`~audiostyle.objective.StyleStatistics` made with it are statistics
    of the style's envelope, and :meth:`content_targets` gives the fine-structure content
    term that goes with them.

    Parameters
    ----------
    network : FeatureNetwork
        The wrapped network (its ``content_layers`` and ``style_layers`` carry over).
    split : SourceFilterSplit
    """

    def __init__(self, network: FeatureNetwork, split: SourceFilterSplit) -> None:
        super().__init__()
        self.network = network
        self.split = split
        #: The style's fine-structure statistics, set by whoever computes them (see
        #: :class:`FineStructureStatistics`); they travel with the view so every objective
        #: built on it, the waveform refinement's included, matches them.
        self.fine_statistics: FineStructureStatistics | None = None
        front_end = band_front_end(network)
        if front_end is not None:
            # Bands of the envelope straight from its coefficients: (bands, K), made once.
            self.register_buffer("envelope_bands", (front_end.input_bands.double() @ split.synthesis.double()).float())
        else:
            self.envelope_bands = None
        for name in ("content_layers", "style_layers"):
            if hasattr(network, name):
                setattr(self, name, getattr(network, name))

    def forward(self, log_magnitude: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the envelope of a ``log1p`` magnitude [shape=(batch, n_freq, frames)]."""
        coefficients = self.split.coefficients(self.split.log_spectrum(magnitude_of(log_magnitude)))
        return self.features_of(coefficients)

    def features_of(self, coefficients: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of an envelope given by its coefficients [shape=(batch, K, frames)]."""
        if self.envelope_bands is not None:
            # Frames first, the layout the front end's features read, with no transposed copy.
            levels = torch.nn.functional.softplus(coefficients.transpose(1, 2) @ self.envelope_bands.to(coefficients).T)
            return band_front_end(self.network).features(levels)
        return self.network(torch.nn.functional.softplus(self.split.envelope(coefficients)))

    @torch.no_grad()
    def envelope_log_magnitude(self, log_magnitude: torch.Tensor) -> torch.Tensor:
        """The envelope as a ``log1p`` magnitude, ``log1p(exp(E))``: what the texture statistics read."""
        split = self.split
        return torch.nn.functional.softplus(split.envelope(split.coefficients(split.log_spectrum(magnitude_of(log_magnitude)))))

    def content_targets(self, log_magnitude: torch.Tensor) -> FineStructureTargets:
        """The content term of this view: the content's fine structure (see :class:`FineStructureTargets`)."""
        return FineStructureTargets.from_log_magnitude(self.split, log_magnitude)


class FineStructureTargets(torch.nn.Module):
    """The content's fine structure ``F_c``, kept by a relative squared error.

    The loss is ``mean((F - F_c)^2) / mean(F_c^2)``, so its weight means the same for any
    clip, as :class:`~audiostyle.objective.ContentTargets`' does. A module: ``.to(device)``
    moves the target.
    """

    target: torch.Tensor
    scale: torch.Tensor

    def __init__(self, target: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target)
        self.register_buffer("scale", scale)

    @classmethod
    @torch.no_grad()
    def from_log_magnitude(cls, split: SourceFilterSplit, log_magnitude: torch.Tensor) -> FineStructureTargets:
        """The targets of a content ``log1p`` magnitude [shape=(batch, n_freq, frames)]."""
        target = split.fine(split.log_spectrum(magnitude_of(log_magnitude)))
        return cls(target, target.square().mean().clamp_min(EPS))

    def loss(self, fine: torch.Tensor) -> torch.Tensor:
        """Relative squared error of a fine structure ``F`` [shape like the target]."""
        return (fine - self.target).square().mean() / self.scale


def envelope_band_magnitude(envelope: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``filters @ exp(E)``: band magnitudes of an envelope [shape=(batch, bands, frames)], for the texture term."""
    return band_views(torch.exp(envelope), filters.to(envelope), 0)[1]


def log_frequency_axis(sample_rate: int, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear interpolation from STFT bins to a log-frequency axis: each point's lower bin and its weight.

    ``BINS_PER_OCTAVE`` points from ``LOWEST_HZ`` to ``HIGHEST_HZ`` (or Nyquist, if lower).
    Point ``j`` is ``(1 - weight[j]) * X[lower[j]] + weight[j] * X[lower[j] + 1]``: two rows
    gathered per point, where a dense interpolation matrix would multiply hundreds of zeros.

    Returns
    -------
    lower : torch.Tensor [shape=(points,), dtype=int64]
    weight : torch.Tensor [shape=(points,), dtype=float32]
    """
    n_freq = n_fft // 2 + 1
    top = min(HIGHEST_HZ, sample_rate / 2)
    count = max(2, int(BINS_PER_OCTAVE * math.log2(top / LOWEST_HZ)))
    position = LOWEST_HZ * 2.0 ** (torch.arange(count, dtype=torch.float64) / BINS_PER_OCTAVE) * n_fft / sample_rate
    lower = position.floor().clamp(max=n_freq - 2)
    return lower.long(), (position - lower).float()


class FineStructureStatistics(torch.nn.Module):
    """Transposition-invariant statistics of the fine structure, and their relative loss.

    The fine structure on a log-frequency axis, ``Z = L @ F``, shifts as a whole when a note
    is transposed. Its autocorrelation along that axis, averaged over frames,
    ``a(k) = mean_t mean_j Z_t(j) Z_t(j + k)``, does not move: it says how peaked the
    spectrum is between its envelope's contours (harmonic against noisy, ``a(0)``) and at
    which intervals its partials sit (an octave for the second harmonic, a twelfth for the
    third; bells and mallets elsewhere), not which notes are played. Matching the style's
    moves those qualities of the instrument, which the envelope alone leaves with the content.

    Parameters
    ----------
    target : torch.Tensor [shape=(lags,)]
        The style's (blended) autocorrelation.
    lower, upper_weight : torch.Tensor [shape=(points,)]
        The log-frequency axis (:func:`log_frequency_axis`).
    weight : float
        Its weight in the objective (0 leaves it out).
    """

    target: torch.Tensor
    lower: torch.Tensor
    upper_weight: torch.Tensor

    def __init__(self, target: torch.Tensor, lower: torch.Tensor, upper_weight: torch.Tensor, weight: float) -> None:
        super().__init__()
        self.register_buffer("target", target)
        self.register_buffer("lower", lower)
        self.register_buffer("upper_weight", upper_weight)
        self.weight = float(weight)

    @staticmethod
    def autocorrelation(fine: torch.Tensor, lower: torch.Tensor, upper_weight: torch.Tensor) -> torch.Tensor:
        """``a(k)`` of a fine structure [shape=(batch, n_freq, frames)], averaged over batch and frames [shape=(lags,)].

        Computed as the sums of the diagonals of the log-frequency Gram matrix over frames,
        ``G = Z^T Z``: ``a(k) = sum_j G[j, j + k] / (frames * points)``, one matrix product
        where per-frame FFTs of a few hundred points run far below the machine's rate.
        """
        below = fine.index_select(1, lower)
        above = fine.index_select(1, lower + 1)
        log_frequency = below + upper_weight.to(fine)[:, None] * (above - below)  # (batch, points, frames)
        points = log_frequency.shape[1]
        rows = log_frequency.transpose(0, 1).reshape(points, -1)
        gram = rows @ rows.T
        lags = min(points, int(MAX_LAG_OCTAVES * BINS_PER_OCTAVE) + 1)
        flat, lag = _diagonal_indices(points, lags, fine.device)
        sums = gram.new_zeros(lags).index_add(0, lag, gram.reshape(-1).index_select(0, flat))
        return sums / (rows.shape[1] * points)

    @classmethod
    @torch.no_grad()
    def from_log_magnitudes(
        cls, split: SourceFilterSplit, log_magnitudes: list[torch.Tensor], weights: list[float], *,
        sample_rate: int, n_fft: int, weight: float,
    ) -> FineStructureStatistics:
        """The blended statistics of the styles' fine structures (``log1p`` magnitudes, (channels, n_freq, frames))."""
        lower, upper_weight = (t.to(log_magnitudes[0].device) for t in log_frequency_axis(sample_rate, n_fft))
        total = float(sum(weights))
        target = sum(
            (w / total) * cls.autocorrelation(split.fine(split.log_spectrum(magnitude_of(m))), lower, upper_weight)
            for w, m in zip(weights, log_magnitudes)
        )
        return cls(target, lower, upper_weight, weight)

    def loss(self, fine: torch.Tensor) -> torch.Tensor:
        """``||a - a_style||^2 / ||a_style||^2`` of a fine structure [shape=(batch, n_freq, frames)]."""
        difference = self.autocorrelation(fine, self.lower, self.upper_weight) - self.target
        return difference.square().sum() / self.target.square().sum().clamp_min(EPS)


@functools.lru_cache(maxsize=8)
def _diagonal_indices(points: int, lags: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of the entries ``(j, j + k)`` of a ``points x points`` matrix for ``k < lags``, and each one's ``k`` (cached: read-only)."""
    rows = torch.arange(points)
    flat, lag = [], []
    for k in range(lags):
        flat.append(rows[: points - k] * (points + 1) + k)
        lag.append(torch.full((points - k,), k))
    return torch.cat(flat).to(device), torch.cat(lag).to(device)
