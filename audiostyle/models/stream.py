"""Block-by-block application of a style model: STFT, causal gains and colour match, overlap-add.

The one engine behind both :meth:`StyleModel.apply` (the whole signal as large blocks) and
:meth:`StyleModel.stream` (whatever blocks arrive): frames are cut from a zero-padded input as
soon as they are complete, the network carries its left context from block to block, and an
output sample is released as soon as no later frame can overlap it. So the output does not
depend on how the input was split, up to float rounding.

Latency: a frame of ``n_fft`` samples is complete only when its last sample has arrived, and
an output sample is final once every frame covering it is, so a sample leaves at most
``n_fft - 1`` samples after it came in (and at least ``n_fft - hop``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..dsp.colour import MAX_COLOUR_DB
from ..errors import ConfigError
from ..dsp.stft import hann_window
from .grid import RateGrid
from .network import TransformNet

__all__ = [
    "COLOUR_MATCH",
    "COLOUR_OCTAVES",
    "COLOUR_SECONDS",
    "MAX_COLOUR_DB",
    "NOISE_FRAMES",
    "PEAK_CEILING",
    "ModelStream",
    "colour_smoothing",
    "noise_phases",
    "soft_limit",
]

#: Frames of the fixed random-phase table the added noise cycles through (about 12 s at the
#: default hop): far too long to hear repeat, and the same for every stream of a model.
NOISE_FRAMES = 512
#: Random-phase frames overlap-added at a hop of a quarter window come back from the STFT at a
#: quarter of their power; the table is scaled so that the noise re-analyses at the level the
#: network asked for.
NOISE_SCALE = 2.0
#: Default share of the way (in dB) the output's long-term band colour is moved to the style's.
COLOUR_MATCH = 0.5
#: Time constant of the output's running colour: long enough to be the piece's colour, not a note's.
COLOUR_SECONDS = 2.0
#: Width of the colour match's frequency smoothing: a third of an octave, about a critical band.
COLOUR_OCTAVES = 1 / 3
#: Frames per vectorised step of the running colour; bounds the growth of its exponential weights.
_COLOUR_CHUNK = 256


@functools.lru_cache(maxsize=8)
def noise_phases(bins: int, seed: int = 0) -> np.ndarray:
    """The noise table, complex64 ``(bins, NOISE_FRAMES)``: seeded phases, made once per size and seed."""
    angles = np.random.default_rng(seed).random((bins, NOISE_FRAMES), dtype=np.float32) * np.float32(2 * np.pi)
    table = np.empty((bins, NOISE_FRAMES), np.complex64)
    table.real = np.cos(angles) * NOISE_SCALE
    table.imag = np.sin(angles) * NOISE_SCALE
    return table

#: The loudest a block may be once scaled by ``input_gain``: louder would overflow a float32
#: spectrum (a frame's squared magnitude grows with the square of its level times n_fft).
MAX_STREAM_LEVEL = 1e12

#: Where the soft limiter starts bending (-3 dBFS) and the level it never exceeds (-1 dBFS).
_KNEE = 10 ** (-3 / 20)
PEAK_CEILING = 10 ** (-1 / 20)


def soft_limit(audio: np.ndarray) -> np.ndarray:
    """Bend samples above -3 dBFS smoothly towards -1 dBFS, in place; sample by sample, so streams equal files."""
    over = np.abs(audio) > _KNEE
    if over.any():
        values = audio[over]
        room = PEAK_CEILING - _KNEE
        audio[over] = np.sign(values) * (_KNEE + room * np.tanh((np.abs(values) - _KNEE) / room))
    return audio


class ModelStream:
    """Stylize audio block by block with a style model.

    Made by :meth:`StyleModel.stream`. Feed ``(channels, samples)`` float blocks of any size
    to :meth:`process`, then call :meth:`flush` once; the outputs, concatenated, are the
    stylized input, of the same length.

    Attributes
    ----------
    latency_samples : int
        Most samples between a sample going in and its stylized version coming out
        (``n_fft - 1`` of the model's STFT at this rate).
    """

    def __init__(
        self,
        network: TransformNet,
        grid: RateGrid,
        channels: int,
        *,
        input_gain: float = 1.0,
        colour_match: float = COLOUR_MATCH,
        device: torch.device | None = None,
    ) -> None:
        self.network = network
        self.grid = grid
        self.channels = int(channels)
        self.input_gain = float(input_gain)
        self.device = device or next(network.parameters()).device
        n_fft = grid.n_fft
        self._window = hann_window(n_fft, self.device, torch.float32)
        # Input not yet consumed by a frame, starting at the next frame's first sample; the
        # STFT's centre padding (n_fft / 2 zeros) comes first.
        self._pending = np.zeros((self.channels, n_fft // 2), np.float32)
        self._state: list[torch.Tensor] | None = None
        # The window's square in quarters (hop-sized parts), for the overlap-add's normalisation.
        self._square = (self._window**2).cpu().reshape(n_fft // grid.hop_length, grid.hop_length)
        self._noise = torch.from_numpy(noise_phases(grid.n_bins)).T.contiguous().to(self.device)  # (frames, bins)
        # Each channel reads the table from its own row, so channels get independent noise.
        self._channel_offsets = (torch.arange(self.channels, device=self.device) * (NOISE_FRAMES // 2 + 1))[:, None]
        # Frames are brought to the network's level (input_gain) before their spectra, so that
        # no float32 square overflows however loud the input, and back to its level on release.
        self._noise_unit = 1.0 / grid.scale
        self._frames_done = 0
        self._colour = _RunningColour(
            network.style_colour, colour_smoothing(network), colour_match, COLOUR_SECONDS * grid.sample_rate / grid.hop_length
        )
        # The grid's bands read from this rate's bins, and band values spread back onto them.
        with torch.no_grad():
            self._analysis = grid.reading(network.bands)  # (bands, bins here)
            self._synthesis = grid.from_grid(network.spread)  # (bins here, bands)
        # Positions count padded samples from the stream's start: the next frame's start, and
        # the first position not yet released, where the overlap-add sums begin.
        self._cut = 0
        self._out = 0
        self._sum = torch.zeros(self.channels, 0)
        self._norm = torch.zeros(0)
        self._received = 0
        self._released = 0
        self._flushed = False

    @property
    def latency_samples(self) -> int:
        return self.grid.n_fft - 1

    def process(self, block: np.ndarray) -> np.ndarray:
        """Stylize the next block; returns the samples that are final (possibly none).

        Parameters
        ----------
        block : np.ndarray [shape=(channels, samples) or (samples,) for mono]

        Returns
        -------
        np.ndarray [shape=(channels, m)], float32
        """
        if self._flushed:
            raise ConfigError("this stream was flushed; make a new one with StyleModel.stream()")
        try:
            block = np.asarray(block, dtype=np.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"a block must be a ({self.channels}, samples) array of numbers; got {type(block).__name__}") from None
        if block.ndim == 1:
            block = block[np.newaxis]
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ConfigError(f"a block must be shaped ({self.channels}, samples); got {block.shape}")
        if not np.isfinite(block).all():
            raise ConfigError("a block contains non-finite samples (NaN or Inf)")
        peak = float(np.abs(block).max()) if block.size else 0.0
        if peak * self.input_gain > MAX_STREAM_LEVEL:
            # Its spectrum would overflow float32: the output would be NaN.
            raise ConfigError(
                f"a block peaks at {peak:.3g}, too loud at input_gain={self.input_gain:g}; "
                f"scale the input (or input_gain) so that peaks times input_gain stay under {MAX_STREAM_LEVEL:g}"
            )
        self._received += block.shape[-1]
        self._pending = np.concatenate((self._pending, block), axis=1)
        return self._run()

    def flush(self) -> np.ndarray:
        """The rest of the output, after the input's end (the STFT's closing padding)."""
        if self._flushed:
            return np.zeros((self.channels, 0), np.float32)
        n_fft, hop = self.grid.n_fft, self.grid.hop_length
        self._pending = np.concatenate((self._pending, np.zeros((self.channels, n_fft // 2), np.float32)), axis=1)
        # As torch.stft's centred frames: the last one starts at the input's end at the latest.
        last_start = (self._received // hop) * hop
        count = 0 if last_start < self._cut else (last_start - self._cut) // hop + 1
        self._flushed = True
        return self._run(count, until=n_fft // 2 + self._received)

    def _run(self, count: int | None = None, *, until: int | None = None) -> np.ndarray:
        """Cut ``count`` frames (default: every complete one), then release the final samples."""
        n_fft, hop = self.grid.n_fft, self.grid.hop_length
        if count is None:
            available = self._pending.shape[1]
            count = 0 if available < n_fft else 1 + (available - n_fft) // hop
        if count:
            self._add_frames(count)
        # Positions before the next frame's start get no more overlap.
        return self._release(self._cut if until is None else until)

    def _add_frames(self, count: int) -> None:
        n_fft, hop = self.grid.n_fft, self.grid.hop_length
        pending = torch.from_numpy(self._pending).to(self.device)
        frames = pending.unfold(-1, n_fft, hop)[:, :count]  # (channels, count, n_fft)
        with torch.no_grad():
            spectra = torch.fft.rfft(frames * self._window * self.input_gain, dim=-1)  # (channels, count, bins)
            parts = torch.view_as_real(spectra)
            magnitude = parts.square().sum(-1).sqrt_().mean(0)  # (count, bins)
            band_magnitude = (magnitude @ self._analysis.T).T[None]
            gains, noise, self._state = self.network(band_magnitude, self._state)
            rows = (torch.arange(count, device=self.device) + self._frames_done)[None, :] + self._channel_offsets
            added = torch.view_as_real(self._noise[rows % NOISE_FRAMES])  # (channels, count, bins, 2)
            # Real views: a complex spectrum times a real gain is two real products, not a complex one.
            shaped = parts * torch.exp(gains[0].T @ self._synthesis.T)[..., None]
            level = torch.exp(noise[0].T @ self._synthesis.T).mul_(self._noise_unit)
            shaped.addcmul_(added, level[..., None])
            if self._colour.active:
                power = shaped.square().sum(-1).mean(0) @ self._analysis.T  # (count, bands)
                shaped *= torch.exp(self._colour.log_gains(power) @ self._synthesis.T)[..., None]
            pieces = torch.fft.irfft(torch.view_as_complex(shaped), n=n_fft, dim=-1) * self._window  # (channels, count, n_fft)
        self._overlap_add(pieces.cpu(), count)
        self._pending = self._pending[:, count * hop :]
        self._cut += count * hop
        self._frames_done += count

    def _overlap_add(self, pieces: torch.Tensor, count: int) -> None:
        """Add ``count`` frames from the next frame's start: one strided add per quarter of a window."""
        n_fft, hop = self.grid.n_fft, self.grid.hop_length
        parts = n_fft // hop
        offset = self._cut - self._out
        span = offset + (count + parts - 1) * hop
        if self._sum.shape[1] < span:
            grow = span - self._sum.shape[1]
            self._sum = torch.nn.functional.pad(self._sum, (0, grow))
            self._norm = torch.nn.functional.pad(self._norm, (0, grow))
        quarters = pieces.reshape(self.channels, count, parts, hop)
        for part in range(parts):
            begin = offset + part * hop
            self._sum[:, begin : begin + count * hop] += quarters[:, :, part].reshape(self.channels, count * hop)
            self._norm[begin : begin + count * hop] += self._square[part].repeat(count)

    def _release(self, until: int) -> np.ndarray:
        """Hand out the overlap-added samples before padded position ``until``, less the centre padding."""
        ready = max(0, min(until - self._out, self._sum.shape[1]))
        norm = self._norm[:ready]
        done = self._sum[:, :ready] / torch.where(norm > 1e-10, norm, torch.ones_like(norm))
        self._sum = self._sum[:, ready:]
        self._norm = self._norm[ready:]
        skip = max(0, min(self.grid.n_fft // 2 - self._out, ready))
        self._out += ready
        # In float64: the input's level may be past float32's range once the limiter is not yet applied.
        out = done[:, skip:].numpy().astype(np.float64) / self.input_gain
        self._released += out.shape[1]
        return soft_limit(out).astype(np.float32)


def colour_smoothing(network: TransformNet) -> torch.Tensor:
    """(bands, bands): each band's mean over the bands within a sixth of an octave of its centre.

    Colour is a spectral envelope: compared at the mel bands' own resolution, which splits single
    harmonics at low frequencies, a colour match would impose the style's pitches as a comb.
    """
    bins = torch.arange(network.n_freq, dtype=torch.float64)
    weights = network.bands.detach().cpu().double()  # float64 on the CPU: not every device has it
    centres = (weights @ bins) / weights.sum(-1).clamp_min(1e-12)
    octaves = torch.log2(centres.clamp_min(0.5))
    near = ((octaves[:, None] - octaves[None, :]).abs() <= COLOUR_OCTAVES / 2).double()
    return (near / near.sum(-1, keepdim=True)).to(network.bands.dtype)


class _RunningColour:
    """Causal colour match: per-band gains that move the output's running colour towards the style's.

    A network that sees a fraction of a second of its content cannot know the content's
    long-term colour, which the per-clip optimisation matches over the whole clip; this stage
    can. For each frame it keeps an exponentially weighted mean of the output's band powers
    (normalised by the weight so far, so the first frames count fully) and returns the log
    magnitude gains that move that mean's shares ``strength`` of the way, in dB, to the style's.
    The state is carried from block to block, so a stream equals a file.
    """

    def __init__(self, style_colour: torch.Tensor, smoothing: torch.Tensor, strength: float, time_constant_frames: float) -> None:
        self.smoothing = smoothing
        smoothed = smoothing @ style_colour  # as the output's shares are measured, so only colour differs
        self.target = torch.log(smoothed.clamp_min(1e-30)) - torch.log(smoothed.sum().clamp_min(1e-30))
        self.active = bool(strength > 0 and style_colour.sum() > 0)
        self.exponent = 0.5 * float(strength)  # power shares -> magnitude gains
        self.decay = float(np.exp(-1.0 / max(time_constant_frames, 1.0)))
        self.limit = MAX_COLOUR_DB * np.log(10.0) / 20.0
        self._sum = torch.zeros(style_colour.shape, dtype=torch.float64)
        self._weight = 0.0

    def log_gains(self, power: torch.Tensor) -> torch.Tensor:
        """``(frames, bands)`` output band powers -> ``(frames, bands)`` natural-log magnitude gains."""
        means = torch.cat([self._advance(chunk) for chunk in power.split(_COLOUR_CHUNK)]) @ self.smoothing.T
        total = means.sum(-1, keepdim=True)
        shares = torch.log(means.clamp_min(1e-30)) - torch.log(total.clamp_min(1e-30))
        gains = (self.exponent * (self.target - shares)).clamp(-self.limit, self.limit)
        # Before anything is heard there is no colour to correct.
        return torch.where(total > 1e-20, gains, torch.zeros_like(gains)).to(power.dtype)

    def _advance(self, power: torch.Tensor) -> torch.Tensor:
        """The running means after each of these frames: one cumulative sum with exponential weights.

        In float64 on the CPU (a few hundred frames of band powers; not every device has float64).
        """
        steps = torch.arange(1, power.shape[0] + 1, dtype=torch.float64)
        growth = self.decay ** -steps  # at most decay ** -_COLOUR_CHUNK
        sums = (torch.cumsum(power.cpu().double() * growth[:, None], dim=0) + self._sum) / growth[:, None]
        weights = (self._weight + torch.cumsum(growth, dim=0)) / growth
        self._sum = sums[-1]
        self._weight = float(weights[-1])
        return (sums / weights[:, None]).to(power.device, power.dtype)
