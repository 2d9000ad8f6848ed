"""stylize(): content + style(s) -> Result, as a short sequence of named stages.

file -> waveform -> spectrogram -> features -> optimised spectrogram -> waveform -> file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import PRESETS, StyleConfig, resolve_device
from ..dsp.levels import analysis_gain, fit_length
from ..dsp.resample import resample
from ..dsp.stft import analyze, linear_magnitude
from ..errors import ConfigError
from ..solver import ProgressCallback
from ..validation import is_number
from .memory import check_memory
from .output import StyleSpectra, finish_output
from .prepared import PreparedStyle, style_targets
from .result import Result
from .segments import segment_frames, stylize_waveform_in_segments
from .solve import solver_settings
from .sources import Audio, AudioSource, load_source, load_styles, normalise_styles
from .stages import Stages
from .texture_start import FADE_SECONDS, RUN_SECONDS, frames_lasting, texture_start
from .view import choose_view, styles_play_notes

__all__ = ["stylize"]

logger = logging.getLogger("audiostyle")


def stylize(
    content: AudioSource | None,
    style: AudioSource | Sequence[AudioSource] | Sequence[tuple[AudioSource, float]],
    config: StyleConfig | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    duration: float | None = None,
    progress: ProgressCallback | None = None,
    prepared: PreparedStyle | None = None,
) -> Result:
    """Re-render ``content`` in the timbre and texture of ``style``.

    Parameters
    ----------
    content : path, (waveform, sample_rate), or None
        The sound whose structure is kept; None synthesises a texture from the style alone.
    style : path, (waveform, sample_rate), or a list of them (or of ``(source, weight)``)
        The sound(s) whose statistics are imposed; several are blended.
    config : StyleConfig, optional
        Settings (default: ``PRESETS["default"]``).
    style_weights : sequence of float, optional
        Blend weights, one per style (override weights given in pairs).
    duration : float, optional
        Length in seconds of a texture (``content=None``); default: the first style's length.
    progress : callable, optional
        ``progress(step, total, losses)`` after each solver step, then after each waveform
        refinement step with ``losses["stage"] == "refine"`` (the text ``stage`` is the one
        value of ``losses`` that is not a number).
    prepared : PreparedStyle, optional
        From :func:`prepare_style`: its style, network and statistics are used and ``style``
        and ``style_weights`` are ignored (pass None), so many contents share one style's work.

    Returns
    -------
    Result
        Audio at the content's sample rate with its channel count and length.

    Raises
    ------
    AudioFileError
        An input is missing, unreadable, empty, too short, too long or non-finite, or a style
        is silent.
    ConfigError
        A bad setting.
    WeightsError
        Unusable network weights.
    NumericalError
        The optimisation diverged.

    Notes
    -----
    Torch's CPU threads are the library's: importing :mod:`audiostyle` before torch asks
    OpenMP to let idle threads sleep (``OMP_WAIT_POLICY=PASSIVE``, unless the environment
    already sets it), which keeps a run from being starved by its own spinning threads on a
    busy machine. Import audiostyle first, or set the variable yourself, for that to apply.

    Examples
    --------
    >>> from audiostyle import stylize, PRESETS
    >>> result = stylize("samples/voice.wav", "samples/cello.flac", PRESETS["fast"])  # doctest: +SKIP
    >>> result.save("voice-cello.wav")  # doctest: +SKIP
    """
    config = PRESETS["default"] if config is None else config
    if not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig; got {type(config).__name__}")
    clock = _Stopwatch()
    device = resolve_device(config.device)
    if prepared is not None and not isinstance(prepared, PreparedStyle):
        raise ConfigError(f"prepared must be a PreparedStyle (from prepare_style) or None; got {type(prepared).__name__}")
    if content is not None and duration is not None:
        raise ConfigError(f"duration={duration!r:.40} is a texture's length (content=None); a content sets the output's")
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress={progress!r} must be a callable progress(step, total, losses) or None")
    inputs = _load_inputs(content, style, style_weights, prepared, config, device, duration)
    clock.lap("load")
    length, texture_frames = _output_length(inputs, config, duration)
    stages, view = _prepare_stages(inputs, config, device, texture_frames, clock)
    if inputs.segmented:
        output = _stylize_in_segments(inputs, stages, progress, clock)
    else:
        output = _stylize_whole(inputs, stages, length, texture_frames, progress, clock)
    spectra = inputs.prepared.spectra if inputs.prepared is not None else StyleSpectra(inputs.styles, inputs.blend)
    audio, rate = finish_output(output.audio, inputs.content, inputs.styles, spectra, config, view, clock.lap)
    clock.timings["total"] = time.perf_counter() - clock.started
    return _result(audio, rate, output, inputs, config, view, device, clock.timings)


class _Stopwatch:
    """Seconds per named stage; a stage met again adds up."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.started = self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.clock
        self.clock = now


@dataclass
class _Inputs:
    """A run's loaded inputs: ``content`` is None for a texture."""

    content: Audio | None
    styles: list[Audio]
    blend: list[float]
    prepared: PreparedStyle | None

    @property
    def segmented(self) -> bool:
        """Content longer than a segment: it is never held whole at the working rate."""
        return self.content is not None and self.content.waveform is None


@dataclass
class _Output:
    """What the solve and reconstruction stages made, before the output's rate and level."""

    audio: np.ndarray
    log_magnitude: torch.Tensor | None
    history: list[dict[str, float]]
    evaluations: int
    stopped: str
    convergence: float
    refined_convergence: float | None = None
    refined_losses: dict[str, float] | None = None


def _load_inputs(
    content: AudioSource | None,
    style: Any,
    style_weights: Sequence[float] | None,
    prepared: PreparedStyle | None,
    config: StyleConfig,
    device: torch.device,
    duration: float | None,
) -> _Inputs:
    """Read and check every input, then refuse a run the memory free cannot hold."""
    if prepared is None:
        style_sources, blend = normalise_styles(style, style_weights)
    content_audio = load_source(content, config, "content", may_segment=True) if content is not None else None
    if prepared is None:
        style_audio = load_styles(style_sources, config)
    else:
        prepared = prepared.to(device)
        prepared.check(config)
        style_audio = prepared.styles
        blend = prepared.blend
    # Fail now with advice, not in an hour when the operating system kills the run.
    check_memory(
        config,
        (content_audio.channels, content_audio.samples) if content_audio else None,
        [audio.waveform for audio in style_audio],
        texture_seconds=duration,
        device=device,
    )
    return _Inputs(content_audio, style_audio, blend, prepared)


def _output_length(inputs: _Inputs, config: StyleConfig, duration: float | None) -> tuple[int, int | None]:
    """Samples of the output at the working rate, and a texture's frames (None with a content)."""
    if inputs.content is not None:
        if config.loop:
            raise ConfigError("loop=True is for texture synthesis (content=None)")
        return inputs.content.samples, None
    seconds = duration if duration is not None else inputs.styles[0].waveform.shape[-1] / config.sample_rate
    if not (is_number(seconds) and 0 < seconds <= config.max_duration):
        raise ConfigError(f"duration={duration!r:.40} must be in (0, max_duration={config.max_duration:g}] seconds")
    length = int(round(seconds * config.sample_rate))
    if length < config.n_fft:
        raise ConfigError(
            f"duration={duration!r:.40} is shorter than one FFT frame; a texture lasts at least "
            f"{config.n_fft / config.sample_rate:.3f} s (n_fft={config.n_fft} at {config.sample_rate} Hz)"
        )
    if config.loop:  # a whole number of hops: the circular STFT has length // hop frames
        length = max(1, round(length / config.hop_length)) * config.hop_length
        return length, length // config.hop_length
    return length, 1 + length // config.hop_length


def _prepare_stages(
    inputs: _Inputs, config: StyleConfig, device: torch.device, texture_frames: int | None, clock: _Stopwatch
) -> tuple[Stages, str]:
    """The style view read, and its network and style statistics (made here or taken from
    ``prepared``) bound to the settings."""
    view = choose_view(config, inputs.content, _styles_have_notes(inputs, config))
    clock.lap("view")
    if inputs.prepared is None:
        analysis = dict(n_fft=config.n_fft, hop_length=config.hop_length, device=device)
        specs = [analyze(audio.waveform, config.sample_rate, **analysis) for audio in inputs.styles]
        clock.lap("analyze")
        network, statistics, texture = style_targets(
            [s.log_magnitude for s in specs], inputs.blend, config, device, view=view
        )
        del specs  # the statistics are all that is needed of the styles from here on
    else:
        network, statistics, texture = inputs.prepared.targets(view)
    clock.lap("targets")
    settings = solver_settings(config, texture, content=inputs.content is not None)
    if inputs.content is None:
        settings.update(_texture_settings(inputs, config, device, texture_frames))
    # The stages see the view that runs, not "auto".
    return Stages(config.replace(style_view=view), device, network, statistics, texture, settings), view


def _styles_have_notes(inputs: _Inputs, config: StyleConfig) -> bool | None:
    """With ``style_view="auto"`` and a content: whether the styles play notes (else None)."""
    if config.style_view != "auto" or inputs.content is None:
        return None
    if inputs.prepared is not None:
        return inputs.prepared.plays_notes
    return styles_play_notes(inputs.styles, inputs.blend, config)


def _texture_settings(
    inputs: _Inputs, config: StyleConfig, device: torch.device, frames: int | None
) -> dict[str, Any]:
    """A texture's channels (the first style's) and, with ``init="content"``, its start."""
    channels = inputs.styles[0].channels
    if config.init != "content":
        return {"channels": channels}
    start = texture_start(
        [audio.waveform for audio in inputs.styles],
        inputs.blend,
        frames=frames,
        channels=channels,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        seed=config.seed,
        run_frames=frames_lasting(RUN_SECONDS, config.sample_rate, config.hop_length),
        fade_frames=frames_lasting(FADE_SECONDS, config.sample_rate, config.hop_length),
        device=device,
    )
    return {"channels": channels, "init": start}


def _stylize_whole(
    inputs: _Inputs,
    stages: Stages,
    length: int,
    texture_frames: int | None,
    progress: ProgressCallback | None,
    clock: _Stopwatch,
) -> _Output:
    """Solve, reconstruct and refine a whole content (or texture); the audio at the content's rate."""
    config, content = stages.config, inputs.content
    spec = stages.analyze(content.waveform) if content is not None else None
    clock.lap("analyze")
    solved = stages.solve(spec.log_magnitude if spec is not None else None, progress, frames=texture_frames)
    clock.lap("optimize")
    magnitude = linear_magnitude(solved.solution)
    content_log_magnitude = spec.log_magnitude if spec is not None else None
    # The content's phase is only Griffin-Lim's start: not held through refining.
    waveform, convergence = stages.reconstruct(magnitude, length, spec.phase if spec is not None else None)
    del spec
    clock.lap("griffin_lim")
    output = _Output(None, solved.solution, solved.history, solved.evaluations, solved.stopped, convergence)
    if config.refine_steps > 0 and not config.loop:
        waveform, output.refined_convergence, output.refined_losses = stages.refine(
            waveform, content_log_magnitude, magnitude, progress
        )
        clock.lap("refine")
    if content is not None and not config.loop:
        waveform = stages.follow_onsets(waveform, content.waveform)
        clock.lap("pre_echo")
    audio = waveform.detach().cpu().numpy().astype(np.float32)
    if content is not None:
        audio = fit_length(resample(audio, config.sample_rate, content.original_rate), content.original.shape[-1])
    # Contiguous and our own: the output's level is matched in place.
    output.audio = np.ascontiguousarray(audio)
    return output


def _stylize_in_segments(
    inputs: _Inputs, stages: Stages, progress: ProgressCallback | None, clock: _Stopwatch
) -> _Output:
    """The same stages, one segment of a long content at a time (see :mod:`.segments`).

    The content is read at its own rate, segment by segment, and the output is joined at that
    rate: the analysis gain is the one ``normalise_level`` would apply to the whole.
    """
    config, content = stages.config, inputs.content
    solved = stylize_waveform_in_segments(
        content.original,
        stages,
        sample_rate=content.original_rate,
        working_rate=config.sample_rate,
        gain=analysis_gain(content.original),
        hop_length=config.hop_length,
        segment_length=segment_frames(config.segment_seconds, config.sample_rate, config.hop_length),
        refine=config.refine_steps > 0,
        progress=progress,
        stage=clock.lap,
    )
    return _Output(
        solved.audio, None, solved.history, solved.evaluations, solved.stopped, solved.convergence,
        refined_convergence=solved.refined_convergence,
    )


def _result(
    audio: np.ndarray,
    rate: int,
    output: _Output,
    inputs: _Inputs,
    config: StyleConfig,
    view: str,
    device: torch.device,
    timings: dict[str, float],
) -> Result:
    """The Result, with the run's metrics, logged in one line."""
    history = output.history
    metrics = {
        "spectral_convergence_db": output.convergence,
        "refined_spectral_convergence_db": output.refined_convergence,
        "refined_losses": output.refined_losses,
        "evaluations": output.evaluations,
        "iterations": len(history) - 1,
        "stopped": output.stopped,
        "device": str(device),
        "style_view": view,
    }
    content = inputs.content
    logger.info(
        "stylized %s in %.1f s (%d steps, style %.3g -> %.3g, SC %.1f dB)",
        content.name if content else "texture",
        timings["total"],
        metrics["iterations"],
        history[0]["style"],
        history[-1]["style"],
        output.convergence,
    )
    info = content.info if content is not None else None
    named = ([content] if content else []) + inputs.styles
    return Result(
        audio=audio,
        sample_rate=rate,
        log_magnitude=output.log_magnitude.detach().cpu() if output.log_magnitude is not None else None,
        history=history,
        timings=timings,
        metrics=metrics,
        config=config,
        format=info.format if info else None,
        subtype=info.subtype if info else None,
        inputs=tuple(a.name for a in named if a.info is not None),
    )
