"""Long inputs: stylize overlapping segments of the content one at a time, then join them.

:func:`stylize_waveform_in_segments` (what :func:`audiostyle.stylize` uses for content longer
than ``segment_seconds``) goes end to end per segment: it analyses only that segment's slice
of the waveform, optimises it, runs Griffin-Lim on it from the slice's own phase and
overlap-adds the segment's waveform into the preallocated output with linear fades, so
memory is bounded by one segment plus the output. :func:`stylize_in_segments`, below, is the
spectrogram-domain join (one log-magnitude in, one out) for callers that hold the whole
spectrogram anyway.

The solver's memory grows with the number of frames it sees (the network's feature maps and
its unfolded input), so a 10-minute content is cut into segments of ``segment_seconds``
that overlap by an eighth of a segment. Each segment is optimised against the same style
statistics (computed once), and the optimised log-magnitudes are cross-faded over the
overlaps with weights that sum to 1 at every frame, so the joined spectrogram has no seam.
The segment waveforms are joined with linear fades that sum to 1 at every sample.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from .errors import ConfigError
from .optimize import OptimizationResult, ProgressCallback

if TYPE_CHECKING:
    from .spectral import Spectrogram

__all__ = [
    "segment_frames",
    "segment_bounds",
    "crossfade_weights",
    "stylize_in_segments",
    "stylize_waveform_in_segments",
]

#: The overlap is at least this many frames: wider than the receptive field of the shipped
#: networks (kernel widths up to 15 frames), so a segment's edge effects are faded out.
MIN_OVERLAP = 16

#: ``solve(segment_log_magnitude, progress) -> OptimizationResult``
SegmentSolver = Callable[[torch.Tensor, "ProgressCallback | None"], OptimizationResult]


def segment_frames(segment_seconds: float, sample_rate: int, hop_length: int) -> int:
    """Frames in one segment of ``segment_seconds`` (at least ``4 * MIN_OVERLAP``)."""
    return max(int(math.ceil(segment_seconds * sample_rate / hop_length)), 4 * MIN_OVERLAP)


def segment_bounds(n_frames: int, length: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``n_frames`` with segments of ``length`` frames.

    Neighbours overlap by at least ``overlap`` frames; the last segment ends at ``n_frames``
    (it may overlap its neighbour by more).
    """
    if not 0 <= overlap < length:
        raise ConfigError(f"overlap={overlap} must be in [0, segment length={length})")
    if n_frames <= length:
        return [(0, n_frames)]
    step = length - overlap
    count = 1 + math.ceil((n_frames - length) / step)
    starts = [min(index * step, n_frames - length) for index in range(count)]
    return [(start, start + length) for start in starts]


def crossfade_weights(bounds: list[tuple[int, int]], index: int, device: torch.device | None = None) -> torch.Tensor:
    """Unnormalised fade of segment ``index``: linear ramps where it overlaps a neighbour."""
    start, stop = bounds[index]
    weights = torch.ones(stop - start, device=device)
    if index > 0:
        fade_in = bounds[index - 1][1] - start
        weights[:fade_in] = (torch.arange(fade_in, device=device) + 0.5) / fade_in
    if index < len(bounds) - 1:
        fade_out = stop - bounds[index + 1][0]
        weights[-fade_out:] = torch.minimum(
            weights[-fade_out:], (torch.arange(fade_out, 0, -1, device=device) - 0.5) / fade_out
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


def stylize_in_segments(
    content_log_magnitude: torch.Tensor,
    solve: SegmentSolver,
    *,
    segment_length: int,
    overlap: int | None = None,
    progress: ProgressCallback | None = None,
) -> OptimizationResult:
    """Optimise a long log-magnitude in overlapping segments and cross-fade them together.

    Parameters
    ----------
    content_log_magnitude : torch.Tensor [shape=(channels, freq, frames)]
    solve : callable
        ``solve(segment, progress) -> OptimizationResult`` for one ``(channels, freq, n)``
        segment, e.g. :func:`audiostyle.stylize_spectrogram` with the shared style statistics.
    segment_length : int
        Frames per segment.
    overlap : int, optional
        Frames shared by neighbours (default: an eighth of a segment, at least 16).
    progress : callable, optional
        ``progress(step, total, losses)`` over all segments' steps.

    Returns
    -------
    OptimizationResult
        ``solution`` shaped like the content; ``history`` is the frame-weighted mean of the
        segments' losses per step; ``evaluations`` their sum.
    """
    n_frames = content_log_magnitude.shape[-1]
    if overlap is None:
        overlap = min(max(MIN_OVERLAP, segment_length // 8), segment_length // 2)
    bounds = segment_bounds(n_frames, segment_length, overlap)
    joined = torch.zeros_like(content_log_magnitude)
    coverage = torch.zeros(n_frames, dtype=joined.dtype, device=joined.device)
    histories, sizes, evaluations, converged = [], [], 0, True
    for index, (start, stop) in enumerate(bounds):
        segment_progress = None
        if progress is not None:
            def segment_progress(step, total, losses, _index=index):
                progress(_index * total + step, len(bounds) * total, losses)
        solved = solve(content_log_magnitude[..., start:stop], segment_progress)
        weights = crossfade_weights(bounds, index, joined.device).to(joined.dtype)
        joined[..., start:stop] += solved.solution * weights
        coverage[start:stop] += weights
        histories.append(solved.history)
        sizes.append(stop - start)
        evaluations += solved.evaluations
        converged = converged and solved.stopped == "converged"
        del solved
    joined /= coverage
    return OptimizationResult(
        solution=joined,
        history=_merge_histories(histories, sizes),
        evaluations=evaluations,
        stopped="converged" if converged else "iterations",
    )


def stylize_waveform_in_segments(
    waveform: np.ndarray,
    *,
    hop_length: int,
    segment_length: int,
    analyse: Callable[[np.ndarray], "Spectrogram"],
    solve: SegmentSolver,
    reconstruct: Callable[[torch.Tensor, int, "torch.Tensor | None"], tuple[torch.Tensor, float]],
    overlap: int | None = None,
    progress: ProgressCallback | None = None,
    stage: Callable[[str], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, OptimizationResult, float]:
    """Stylize a long waveform segment by segment, end to end, with bounded memory.

    Each segment of ``segment_length`` frames is cut from ``waveform`` (samples
    ``[start * hop, stop * hop)``), analysed on its own, optimised, reconstructed (Griffin-Lim
    from that slice's own phase) and its waveform overlap-added into one preallocated output
    with linear fades that sum to exactly 1 over each overlap. Only one segment's spectrogram,
    phase and Griffin-Lim state are alive at a time; what grows with the length is the output
    waveform and the joined log-magnitude (float32 on the CPU, ``n_fft // 2 + 1`` values per
    hop) returned for :attr:`Result.log_magnitude`.

    Parameters
    ----------
    waveform : np.ndarray [shape=(channels, samples)]
    hop_length, segment_length : int
        STFT hop in samples; frames per segment.
    analyse : callable
        ``analyse(slice) -> Spectrogram`` of a ``(channels, n)`` waveform slice.
    solve : callable
        ``solve(log_magnitude, progress) -> OptimizationResult`` for one segment.
    reconstruct : callable
        ``reconstruct(magnitude, length, init_phase) -> (waveform, spectral_convergence_db)``.
    overlap : int, optional
        Frames shared by neighbours (default: an eighth of a segment, at least 16).
    progress : callable, optional
        ``progress(step, total, losses)`` over all segments' steps.
    stage : callable, optional
        ``stage(name)`` after each segment's ``"analyze"``, ``"optimize"`` and ``"griffin_lim"``.

    Returns
    -------
    (waveform, log_magnitude, OptimizationResult, convergence)
        The joined ``(channels, samples)`` waveform (CPU float32), the cross-faded optimised
        log-magnitude ``(channels, freq, 1 + samples // hop)`` (CPU float32), the merged
        history (``solution`` is that log-magnitude) and the frame-weighted mean spectral
        convergence of the segments' reconstructions in dB.
    """
    channels, n_samples = waveform.shape
    n_frames = 1 + n_samples // hop_length
    if overlap is None:
        overlap = min(max(MIN_OVERLAP, segment_length // 8), segment_length // 2)
    bounds = segment_bounds(n_frames, segment_length, overlap)
    spans = [(start * hop_length, min(stop * hop_length, n_samples)) for start, stop in bounds]
    output = torch.zeros(channels, n_samples, dtype=torch.float32)
    joined: torch.Tensor | None = None
    coverage = torch.zeros(n_frames, dtype=torch.float32)
    histories, sizes, evaluations, converged, convergence = [], [], 0, True, 0.0
    for index, ((start, stop), (first, last)) in enumerate(zip(bounds, spans)):
        segment_progress = None
        if progress is not None:
            def segment_progress(step, total, losses, _index=index):
                progress(_index * total + step, len(bounds) * total, losses)
        spec = analyse(np.ascontiguousarray(waveform[:, first:last]))
        if stage is not None:
            stage("analyze")
        solved = solve(spec.log_magnitude, segment_progress)
        if stage is not None:
            stage("optimize")
        magnitude = torch.expm1(solved.solution.detach()).clamp_min(0)
        piece, segment_convergence = reconstruct(magnitude, last - first, spec.phase)
        del magnitude, spec
        if stage is not None:
            stage("griffin_lim")
        piece = piece.detach().to("cpu", torch.float32).reshape(channels, last - first)
        # Linear fades over the overlaps: the previous segment's fade-out is 1 - this fade-in.
        gain = torch.ones(last - first)
        if index > 0:
            span = spans[index - 1][1] - first
            gain[:span] = (torch.arange(span) + 0.5) / span
        if index < len(bounds) - 1:
            span = last - spans[index + 1][0]
            gain[-span:] = 1 - (torch.arange(span) + 0.5) / span
        output[:, first:last] += piece * gain
        # The joined log-magnitude, cross-faded per frame as in stylize_in_segments.
        solution = solved.solution.detach().to("cpu", torch.float32)[..., : stop - start]
        if joined is None:
            joined = torch.zeros(*solution.shape[:-1], n_frames, dtype=torch.float32)
        weights = crossfade_weights(bounds, index)
        joined[..., start:stop] += solution * weights
        coverage[start:stop] += weights
        histories.append(solved.history)
        sizes.append(stop - start)
        evaluations += solved.evaluations
        converged = converged and solved.stopped == "converged"
        convergence += segment_convergence * (stop - start)
        del solved, solution, piece
    joined /= coverage
    convergence /= sum(sizes)
    result = OptimizationResult(
        solution=joined,
        history=_merge_histories(histories, sizes),
        evaluations=evaluations,
        stopped="converged" if converged else "iterations",
    )
    return output, joined, result, convergence
