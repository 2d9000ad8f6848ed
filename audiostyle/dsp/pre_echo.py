"""Pre-echo suppression: keep a new sound from starting before the content's does.

The engine changes magnitudes frame by frame with a window of ``n_fft`` samples. Where a
frame's window straddles a note's start, the new magnitude is spread over the whole window
when the waveform is rebuilt, so the note sounds up to a window early: a smeared, early
attack (pre-echo). The content itself has the right timing at a finer resolution than the
engine can control. This stage looks at both at that finer resolution (a window a quarter
of ``n_fft`` long), in mel bands, and turns down a band of the output where its energy
rises ahead of the content's within an engine window before one of the content's onsets.
It only ever attenuates, and only just before the content's energy rises in that band, so
sustained sounds and the style's textures elsewhere are left alone.

For each band ``b`` and short frame ``t``, with ``P`` the band powers and ``S`` a
window-shaped smoothing that sees what one engine frame sees:

* ``r_out = P_out / S(P_out)`` and ``r_content = P_content / S(P_content)`` say how far each
  rises above its own local level at ``t``;
* the gain is ``min(1, r_content / r_out)`` in power, never below ``-max_cut_db``;
* it is applied in proportion to how much the content's band rises within the next engine
  window (none below :data:`ONSET_RISE_DB`, fully from :data:`FULL_RISE_DB`);
* or, with ``everywhere=True``, in full at every frame: the output then rises above its local
  level no more than the content does anywhere, which removes onsets the content does not have
  (the frame-to-frame flutter of a solved spectrogram reads as extra onsets). The rise is also
  judged against the level of the engine window just before, and the stricter gain of the two
  taken: the local level around a note's start includes the note, which hides an early rise
  from the centred comparison but not from the one with the past. Once made, a cut eases off
  no faster than :data:`RELEASE_DB_PER_SECOND` plus the content's own rise, so that an output
  turned down while the content decays does not come back up as a second onset. A level gate
  comes with it: no frame of the output is more than :data:`LEVEL_MARGIN_DB` louder, against
  the output's loudest, than the content's frame is against the content's loudest, down to
  90 dB below, so the content's pauses and its end stay silent. That is for outputs meant to
  keep the content's dynamics, not for a style whose own texture moves.

The bands are a quarter as many as the short window's bins (at most 64): an output whose
partials are the style's lines up with the content only band by band. With ``partials=True``,
for an output that keeps the content's partials, they are about one per bin up to a few kHz,
so that where one note runs into the next the new partials' early rise is not hidden under
the held partials of the note before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .mel import mel_filters
from .stft import istft, stft

__all__ = ["FULL_RISE_DB", "LEVEL_MARGIN_DB", "ONSET_RISE_DB", "RELEASE_DB_PER_SECOND", "suppress_pre_echo"]

#: A band counts as just before an onset once the content's power in it rises by this many
#: dB within one engine window ahead ...
ONSET_RISE_DB = 6.0
#: ... and the cut applies in full from this rise.
FULL_RISE_DB = 15.0
#: With ``everywhere=True``: how fast (dB per second) a cut may ease off where the content does
#: not rise.
RELEASE_DB_PER_SECOND = 170.0
#: With ``everywhere=True``: how much louder (dB, each against its own loudest frame) a frame
#: of the output may be than the content's.
LEVEL_MARGIN_DB = 6.0
# Band powers are compared down to this far below a clip's loudest; the floor keeps ratios
# finite in digital silence. A swell 60-80 dB under the loudest note still starts a note early
# at high playback level, and reads so to an onset detector working over 80 dB.
_RANGE_DB = 90.0
_POWER_FLOOR = 1e-20
_MAX_BANDS = 64
# With ``partials=True``, mel bands per bin of the short STFT: below about 2.5 kHz at 22050 Hz
# they are then a bin apart.
_PARTIAL_BANDS_PER_BIN = 0.75


def suppress_pre_echo(
    output: torch.Tensor,
    content: torch.Tensor,
    sample_rate: int,
    *,
    n_fft: int,
    max_cut_db: float,
    everywhere: bool = False,
    partials: bool = False,
) -> torch.Tensor:
    """Turn down the output's energy that comes before the content's onsets.

    Parameters
    ----------
    output : torch.Tensor [shape=(channels, samples)]
        The rebuilt waveform at the working rate.
    content : torch.Tensor [shape=(channels, samples)]
        The content at the same rate (any level; channels may differ; cut or padded with
        silence to the output's length).
    sample_rate : int
        Their rate, in Hz.
    n_fft : int
        The engine's window, in samples: it sets how far ahead pre-echo reaches.
    max_cut_db : float
        The deepest cut in dB (> 0).
    everywhere : bool
        Turn down every rise the content does not have (above the level around it or the
        engine window before it), not only those before its onsets, and keep each frame's
        level within :data:`LEVEL_MARGIN_DB` of the content's (so its pauses stay silent).
    partials : bool
        Compare the two in bands about a bin wide up to a few kHz, for an output whose partials
        are the content's.

    Returns
    -------
    torch.Tensor [shape=(channels, samples)]
        The output, the same gain on every channel so that the stereo image stays.
    """
    samples = output.shape[-1]
    content = content.to(output)[..., :samples]
    if content.shape[-1] < samples:
        content = F.pad(content, (0, samples - content.shape[-1]))
    short = max(16, n_fft // 4)
    hop = short // 4
    spec = stft(output, n_fft=short, hop_length=hop)  # (channels, bins, frames)
    filters = _band_filters(sample_rate, short, output.device, output.dtype, partials=partials)
    frames = spec.shape[-1]
    # Frames whose window hangs over an end see the cut as a click in every band, which
    # would read as an onset: they take the powers of the nearest frame inside the clip.
    first = min(short // (2 * hop), frames - 1)
    inside = torch.arange(frames, device=output.device).clamp(first, max(first, (samples - short // 2) // hop))
    out_raw = _raw_band_power(spec, filters)[:, inside]
    content_raw = _raw_band_power(stft(content, n_fft=short, hop_length=hop), filters)[:, inside]
    out_power, content_power = _floored(out_raw), _floored(content_raw)

    reach = max(1, n_fft // hop)
    rise = _relative(content_power, reach) / _relative(out_power, reach)
    if everywhere:
        rise = torch.minimum(rise, _relative_to_past(content_power, reach) / _relative_to_past(out_power, reach))
    gain = rise.clamp(min=10.0 ** (-max_cut_db / 10.0), max=1.0)
    if everywhere:
        # A cut made while the content decays faster than the output, let go as soon as the
        # content's decay slows, would bring the output back up: a second onset.
        gain = _held(gain, content_power, RELEASE_DB_PER_SECOND * hop / sample_rate)
        band_gain = (gain * _level_gate(out_raw, content_raw)).sqrt()  # amplitude
    else:
        ahead = F.max_pool1d(F.pad(content_power[None], (0, reach), mode="replicate"), reach + 1, stride=1)[0]
        rise_db = 10.0 * torch.log10(ahead / content_power)
        share = ((rise_db - ONSET_RISE_DB) / (FULL_RISE_DB - ONSET_RISE_DB)).clamp(0.0, 1.0)
        band_gain = gain.pow(share).sqrt()

    # Each bin takes the mean gain of the bands that cover it, weighted by their filters.
    weights = filters / filters.sum(dim=0, keepdim=True).clamp_min(1e-12)
    bin_gain = weights.T @ band_gain
    uncovered = filters.sum(dim=0) <= 0
    bin_gain[uncovered] = 1.0
    return istft(spec * bin_gain, n_fft=short, hop_length=hop, length=samples)


def _band_filters(
    sample_rate: int, n_fft: int, device: torch.device, dtype: torch.dtype, *, partials: bool = False
) -> torch.Tensor:
    bins = n_fft // 2 + 1
    bands = max(8, int(_PARTIAL_BANDS_PER_BIN * bins) if partials else min(_MAX_BANDS, bins // 4))
    return torch.as_tensor(mel_filters(sample_rate, n_fft, bands, fmin=30.0), device=device, dtype=dtype)


def _raw_band_power(spec: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Channel-summed mel band powers [shape=(bands, frames)] of a complex STFT."""
    return filters @ (spec.real.square() + spec.imag.square()).sum(dim=0)


def _floored(power: torch.Tensor) -> torch.Tensor:
    """``power`` floored :data:`_RANGE_DB` under its largest value."""
    return power.clamp_min(power.amax() * 10.0 ** (-_RANGE_DB / 10.0) + _POWER_FLOOR)


def _level_gate(out_power: torch.Tensor, content_power: torch.Tensor) -> torch.Tensor:
    """Power gain [shape=(1, frames)] that keeps each output frame's level, against its loudest,
    within :data:`LEVEL_MARGIN_DB` of the content's, floored :data:`_RANGE_DB` down.

    From the unfloored band powers: the per-band floor, summed over the bands, would read a
    pause as much louder than it is.
    """
    floor = 10.0 ** (-_RANGE_DB / 10.0)

    def level(power: torch.Tensor) -> torch.Tensor:
        frames = power.sum(dim=0)
        return (frames / frames.amax().clamp_min(_POWER_FLOOR)).clamp_min(floor)

    allowed = level(content_power) * 10.0 ** (LEVEL_MARGIN_DB / 10.0)
    return (allowed / level(out_power)).clamp(min=floor, max=1.0)[None]


def _relative(power: torch.Tensor, reach: int) -> torch.Tensor:
    """``power`` over its local level: a Hann-squared average over ``2 * reach`` frames.

    A sample's magnitude reaches the frames within half a window either side, and each of
    those frames spreads it over its own window again: two windows in all.
    """
    length = 2 * reach + 1
    kernel = torch.hann_window(length + 2, periodic=False, device=power.device, dtype=power.dtype)[1:-1].square()
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    padded = F.pad(power[:, None], (reach, reach), mode="replicate")
    local = F.conv1d(padded, kernel)[:, 0]
    return power / local


def _held(gain: torch.Tensor, content_power: torch.Tensor, release_db: float) -> torch.Tensor:
    """``gain`` [shape=(bands, frames)] that comes back up after a cut no faster than
    ``release_db`` per frame plus the content's own rise in that band.

    ``G(t) = min over s <= t of g(s) + A(t) - A(s)`` in dB, with ``A`` the allowance summed
    over frames: one cumulative minimum, no loop over frames.
    """
    gain_db = 10.0 * torch.log10(gain)
    rise = F.pad((10.0 * torch.log10(content_power)).diff(dim=-1), (1, 0)).clamp_min(0.0)
    allowance = (rise + release_db).cumsum(dim=-1)
    held_db = allowance + torch.cummin(gain_db - allowance, dim=-1).values
    return 10.0 ** (held_db.clamp(max=0.0) / 10.0)


def _relative_to_past(power: torch.Tensor, reach: int) -> torch.Tensor:
    """``power`` over its mean over the ``reach`` frames before (the first frame stands for
    those before the clip)."""
    padded = F.pad(power[:, None], (reach, 0), mode="replicate")[..., :-1]
    kernel = torch.full((1, 1, reach), 1.0 / reach, device=power.device, dtype=power.dtype)
    return power / F.conv1d(padded, kernel)[:, 0]
