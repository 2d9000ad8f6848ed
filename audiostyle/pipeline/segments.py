"""Long inputs: stylize overlapping segments of the content one at a time, end to end.

:func:`stylize_waveform_in_segments` is what :func:`audiostyle.stylize` uses for content
longer than ``segment_seconds``. The solver's memory grows with the number of frames it sees
(the network's feature maps and their gradients, the L-BFGS history), so the content is
cut into segments of ``segment_seconds`` that overlap by an eighth of a segment, and each
segment goes through the whole pipeline on its own: its span of the waveform (at the
content's own rate, with a margin of context on both sides) is resampled to the working rate,
analysed, optimised against the same style statistics (computed once), reconstructed by
Griffin-Lim from its own phase, refined as a waveform when the config asks for it, resampled
back to the content's rate, trimmed to its span and overlap-added into one preallocated
output with linear fades that sum to 1 at every sample.

Nothing of full length exists at the working rate: what grows with the content is the
content itself and the output, both at the content's rate. The segments' optimised
log-magnitudes are not joined (``Result.log_magnitude`` is None for such runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..dsp.resample import resample
from ..dsp.stft import Spectrogram, linear_magnitude
from ..errors import ConfigError
from ..solver import OptimizationResult, ProgressCallback

__all__ = [
    "segment_frames",
    "segment_bounds",
    "crossfade_weights",
    "working_length",
    "SegmentStages",
    "SegmentedResult",
    "stylize_waveform_in_segments",
]

#: The overlap is at least this many frames: wider than the receptive field of the shipped
#: networks (kernel widths up to 15 frames), so a segment's edge effects are faded out.
MIN_OVERLAP = 16

#: Hops of context analysed and solved on each side of a segment's span, then trimmed: half
#: the overlap, wider than the receptive field's half (7 frames) and than the edge transients
#: of the STFT (``n_fft / 2``) and of the resampler, so neither reaches the kept span.
MARGIN_HOPS = MIN_OVERLAP // 2



class SegmentStages(Protocol):
    """The stages each segment goes through (:class:`audiostyle.pipeline.stages.Stages` is one)."""

    def analyze(self, waveform: np.ndarray) -> Spectrogram:
        """The spectrogram of a ``(channels, n)`` working-rate slice."""
        ...

    def solve(self, log_magnitude: torch.Tensor, progress: ProgressCallback | None) -> OptimizationResult:
        """The optimised log-magnitude of one segment."""
        ...

    def reconstruct(
        self, magnitude: torch.Tensor, length: int, content_phase: torch.Tensor | None
    ) -> tuple[torch.Tensor, float]:
        """A waveform of ``length`` samples for ``magnitude``, and its spectral convergence in dB."""
        ...

    def refine(
        self,
        waveform: torch.Tensor,
        content_log_magnitude: torch.Tensor,
        magnitude: torch.Tensor,
        progress: ProgressCallback | None = None,
    ) -> tuple[torch.Tensor, float, dict[str, float]]:
        """A better waveform, its spectral convergence in dB and its final losses."""
        ...

    def follow_onsets(self, waveform: torch.Tensor, content: np.ndarray) -> torch.Tensor:
        """The waveform with its pre-echo before the content's onsets turned down."""
        ...


def segment_frames(segment_seconds: float, sample_rate: int, hop_length: int) -> int:
    """Frames in one segment of ``segment_seconds`` (at least ``4 * MIN_OVERLAP``)."""
    return max(int(math.ceil(segment_seconds * sample_rate / hop_length)), 4 * MIN_OVERLAP)


def working_length(samples: int, sample_rate: int, working_rate: int) -> int:
    """Samples of a ``samples``-long waveform once resampled to ``working_rate``.

    The length :func:`audiostyle.dsp.resample.resample` returns (``ceil(samples * ratio)``), known
    without resampling.
    """
    if sample_rate == working_rate:
        return int(samples)
    return int(np.ceil(samples * (float(working_rate) / sample_rate)))


def segment_bounds(n_frames: int, length: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``n_frames`` with segments of ``length`` frames.

    Neighbours overlap by exactly ``overlap`` frames and only neighbours overlap (so a linear
    fade between two segments is all a join needs); the last segment ends at ``n_frames``
    and may be shorter than ``length``, but it is always longer than ``overlap``.
    """
    if not 0 <= overlap < length:
        raise ConfigError(f"overlap={overlap} must be in [0, segment length={length})")
    if n_frames <= length:
        return [(0, n_frames)]
    step = length - overlap
    count = 1 + math.ceil((n_frames - length) / step)
    return [(index * step, min(index * step + length, n_frames)) for index in range(count)]


def crossfade_weights(bounds: list[tuple[int, int]], index: int, device: torch.device | None = None) -> torch.Tensor:
    """Fade of segment ``index`` of ``bounds`` (frames or samples): linear ramps over overlaps.

    Over the overlap of two neighbours the earlier one's fade-out is one minus the later
    one's fade-in, so the two sum to 1 at every point; elsewhere the weight is 1.
    """
    start, stop = bounds[index]
    weights = torch.ones(stop - start, device=device)
    fade_in = bounds[index - 1][1] - start if index > 0 else 0
    if fade_in > 0:
        weights[:fade_in] = (torch.arange(fade_in, device=device) + 0.5) / fade_in
    fade_out = stop - bounds[index + 1][0] if index < len(bounds) - 1 else 0
    if fade_out > 0:
        weights[-fade_out:] = torch.minimum(
            weights[-fade_out:], 1 - (torch.arange(fade_out, device=device) + 0.5) / fade_out
        )
    return weights


def _merge_histories(histories: list[list[dict[str, float]]], sizes: list[int]) -> list[dict[str, float]]:
    """Frame-weighted mean of the segments' losses per step (a stopped segment keeps its last)."""
    steps = max(len(h) for h in histories)
    total = float(sum(sizes))
    merged = []
    for step in range(steps):
        entry: dict[str, float] = {}
        for history, size in zip(histories, sizes):
            for name, value in history[min(step, len(history) - 1)].items():
                entry[name] = entry.get(name, 0.0) + value * size / total
        merged.append(entry)
    return merged


@dataclass
class SegmentedResult:
    """What :func:`stylize_waveform_in_segments` returns.

    Attributes
    ----------
    audio : np.ndarray [shape=(channels, samples), float32]
        The joined waveform at the content's rate, shaped like the content.
    history : list of dict
        Frame-weighted mean of the segments' losses per solver step.
    evaluations : int
        The segments' loss evaluations, summed.
    stopped : str
        ``"converged"`` when every segment converged, else ``"iterations"``.
    convergence : float
        Frame-weighted mean spectral convergence of the segments' reconstructions in dB.
    refined_convergence : float or None
        The same after the segments' refinement; None without one.
    """

    audio: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: int = 0
    stopped: str = "iterations"
    convergence: float = 0.0
    refined_convergence: float | None = None


def _original_sample(working_sample: int, sample_rate: int, working_rate: int, n_samples: int) -> int:
    # The nearest sample at the content's rate, in integers so every segment rounds alike.
    return min(n_samples, (working_sample * sample_rate + working_rate // 2) // working_rate)


def _spans(
    n_samples: int, sample_rate: int, working_rate: int, hop_length: int, bounds: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Segment frame bounds as ``[(first, last), ...]`` sample spans at the content's rate.

    Every boundary goes through the same monotonic rounding, so the spans tile
    ``[0, n_samples)`` exactly and two neighbours agree on where their overlap begins and ends.
    """
    working = working_length(n_samples, sample_rate, working_rate)
    return [
        (
            _original_sample(start * hop_length, sample_rate, working_rate, n_samples),
            _original_sample(min(stop * hop_length, working), sample_rate, working_rate, n_samples),
        )
        for start, stop in bounds
    ]


def stylize_waveform_in_segments(
    waveform: np.ndarray,
    stages: SegmentStages,
    *,
    sample_rate: int,
    working_rate: int,
    gain: float,
    hop_length: int,
    segment_length: int,
    refine: bool = False,
    overlap: int | None = None,
    margin: int | None = None,
    progress: ProgressCallback | None = None,
    stage: Callable[[str], None] | None = None,
) -> SegmentedResult:
    """Stylize a long waveform segment by segment, end to end, with bounded memory.

    Segments of ``segment_length`` frames at the working rate are mapped to sample spans at
    the content's rate. Each span, widened by ``margin`` on both sides, is resampled to
    ``working_rate``, scaled by ``gain``, analysed, optimised, reconstructed (Griffin-Lim
    from its own phase) and resampled back; the span is then cut out at the content's rate
    (so the margins absorb the resampler's and the STFT's edge effects, and nothing depends
    on the two rates sharing a sample grid) and overlap-added into the output with linear
    fades that sum to 1 over each overlap. Only one segment's slices, spectrogram and
    Griffin-Lim state are alive at a time; the output (shaped like ``waveform``, float32) is
    the only buffer that grows with the length.

    Parameters
    ----------
    waveform : np.ndarray [shape=(channels, samples)]
        The content at its own rate; read, never modified or copied whole.
    sample_rate, working_rate : int
        The rate of ``waveform``; the rate at which segments are analysed.
    gain : float
        Analysis gain applied to each resampled slice (see :func:`audiostyle.dsp.levels.analysis_gain`).
    hop_length, segment_length : int
        STFT hop in working-rate samples; frames per segment.
    stages : SegmentStages
        The per-clip stages of :func:`~audiostyle.stylize`, applied to each segment.
    refine : bool
        Refine each segment's reconstruction as a waveform (``stages.refine``) before it
        is joined.
    overlap : int, optional
        Frames shared by neighbours (default: an eighth of a segment, at least 16).
    margin : int, optional
        Working-rate samples of context on each side of a span (default
        ``MARGIN_HOPS * hop_length``), analysed and solved but trimmed from the output.
    progress : callable, optional
        ``progress(step, total, losses)`` over all segments' steps.
    stage : callable, optional
        ``stage(name)`` after each segment's ``"analyze"``, ``"optimize"``, ``"griffin_lim"``,
        ``"refine"`` (with ``refine``), ``"pre_echo"`` and ``"join"`` (resampling back and the
        overlap-add).

    Returns
    -------
    SegmentedResult
        The joined waveform, the merged loss history and the mean spectral convergence.
    """
    channels, n_samples = waveform.shape
    n_frames = 1 + working_length(n_samples, sample_rate, working_rate) // hop_length
    if overlap is None:
        overlap = min(max(MIN_OVERLAP, segment_length // 8), segment_length // 2)
    if margin is None:
        margin = MARGIN_HOPS * hop_length
    bounds = segment_bounds(n_frames, segment_length, overlap)
    spans = _spans(n_samples, sample_rate, working_rate, hop_length, bounds)
    context = int(math.ceil(margin * sample_rate / working_rate))
    output = np.zeros((channels, n_samples), dtype=np.float32)
    histories, sizes, evaluations, converged, convergence, refined = [], [], 0, True, 0.0, 0.0
    for index, ((start, stop), (first, last)) in enumerate(zip(bounds, spans)):
        segment_progress = None
        if progress is not None:
            def segment_progress(step, total, losses, _index=index):
                # Each stage counts its steps over all segments: segment i's step s of n is i * n + s.
                progress(_index * total + step, len(bounds) * total, losses)
        low, high = max(first - context, 0), min(last + context, n_samples)
        # A new array: resample returns a view of the content when the rates are equal.
        part = np.multiply(resample(waveform[:, low:high], sample_rate, working_rate), gain, dtype=np.float32)
        spec = stages.analyze(part)
        if stage is not None:
            stage("analyze")
        solved = stages.solve(spec.log_magnitude, segment_progress)
        if stage is not None:
            stage("optimize")
        magnitude = linear_magnitude(solved.solution.detach())
        piece, segment_convergence = stages.reconstruct(magnitude, part.shape[-1], spec.phase)
        if stage is not None:
            stage("griffin_lim")
        if refine:
            piece, segment_refined = stages.refine(piece, spec.log_magnitude, magnitude, segment_progress)[:2]
            refined += segment_refined * (stop - start)
            if stage is not None:
                stage("refine")
        piece = stages.follow_onsets(piece, part)
        if stage is not None:
            stage("pre_echo")
        del magnitude, spec, part
        piece = piece.detach().to("cpu", torch.float32).reshape(channels, -1).numpy()
        piece = resample(piece, working_rate, sample_rate)[:, first - low : last - low]
        weights = crossfade_weights(spans, index).numpy()
        output[:, first:last] += piece * weights
        if stage is not None:
            stage("join")
        histories.append(solved.history)
        sizes.append(stop - start)
        evaluations += solved.evaluations
        converged = converged and solved.stopped == "converged"
        convergence += segment_convergence * (stop - start)
        del solved, piece
    return SegmentedResult(
        audio=output,
        history=_merge_histories(histories, sizes),
        evaluations=evaluations,
        stopped="converged" if converged else "iterations",
        convergence=convergence / sum(sizes),
        refined_convergence=refined / sum(sizes) if refine else None,
    )
