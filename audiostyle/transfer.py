"""stylize(): content + style(s) -> Result, composing the engine's layers.

file -> waveform -> spectrogram -> features -> optimised spectrogram -> waveform -> file.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Tuple, Union

import numpy as np
import torch

from .config import HISTORY_SIZE, StyleConfig, resolve_device
from .dsp.bandwidth import extend_bandwidth, style_band_power
from .dsp.levels import (
    all_finite,
    analysis_gain,
    fit_length,
    match_loudness,
    normalise_level,
)
from .dsp.loop import circular_griffin_lim, circular_stft, resample_loop
from .dsp.phase import griffin_lim
from .dsp.resample import resample
from .dsp.stft import analyze, spectral_convergence
from .errors import AudioFileError, ConfigError
from .io import (
    MAX_CHANNELS,
    AudioInfo,
    audio_info,
    load_audio,
    output_format,
    save_audio,
)
from .networks import build_network
from .objective import ContentTargets, LoudnessContour, Objective, StyleStatistics
from .objective.texture import TextureStatistics
from .refine import refine_waveform
from .resources import check_memory
from .segments import segment_frames, stylize_waveform_in_segments, working_length
from .solver import OptimizationResult, ProgressCallback, optimize
from .texture_start import texture_start

__all__ = ["stylize", "stylize_spectrogram", "prepare_style", "PreparedStyle", "Result", "AudioSource", "Audio"]

logger = logging.getLogger("audiostyle")

#: A path to an audio file, or ``(waveform (channels, samples), sample_rate)``.
AudioSource = Union[str, os.PathLike, Tuple[np.ndarray, int]]

#: The content weight of the waveform refinement, relative to the spectrogram solve's. The
#: solve has moved the style; refining then mostly has to keep the content while the
#: spectrogram becomes a real signal's. On the quality yardstick (5 pairs, 4 seeds) 16 raised
#: the mean margin over a plain mix from +0.061 to +0.086 and drums->mix's content from
#: 0.57 to 0.68; 32 and more put speech->strings back at the mix.
REFINE_CONTENT_EMPHASIS = 16.0


@dataclass
class Audio:
    """A waveform at the working rate with where it came from.

    ``waveform`` is float32 ``(channels, samples)`` at the working rate, level-normalised for
    analysis, or None for content stylized in segments (which is resampled one segment at a
    time); ``samples`` is its length at the working rate either way. ``original`` is the same
    audio at its own rate, float32 (an array passed in as float32 is used, not copied),
    ``info`` the file's facts when it came from a file.
    """

    name: str
    waveform: np.ndarray | None
    original: np.ndarray
    original_rate: int
    info: AudioInfo | None
    samples: int

    @property
    def channels(self) -> int:
        return int(self.original.shape[0])


def _is_segmented(working_samples: int, config: StyleConfig) -> bool:
    """Whether content this long (at the working rate) is stylized segment by segment."""
    frames = 1 + working_samples // config.hop_length
    return frames > segment_frames(config.segment_seconds, config.sample_rate, config.hop_length)


def _load_source(source: AudioSource, config: StyleConfig, role: str, *, may_segment: bool = False) -> Audio:
    """Read and check an input; resample it to the working rate unless it will be segmented.

    ``may_segment`` (the content) leaves ``waveform`` None when the input is longer than a
    segment: a full-length working-rate copy is then never made.
    """
    name, original, rate, info = _read_source(source, config, role)
    samples = working_length(original.shape[-1], rate, config.sample_rate)
    if samples < config.n_fft:
        raise AudioFileError(
            name,
            f"too short: {original.shape[-1] / rate:.3f} s; at least one FFT frame "
            f"(n_fft={config.n_fft} samples at {config.sample_rate} Hz = {config.n_fft / config.sample_rate:.3f} s) is needed",
        )
    segmented = may_segment and _is_segmented(samples, config)
    working = None if segmented else normalise_level(resample(original, rate, config.sample_rate))
    return Audio(name=name, waveform=working, original=original, original_rate=rate, info=info, samples=samples)


def _read_source(source: AudioSource, config: StyleConfig, role: str) -> tuple[str, np.ndarray, int, AudioInfo | None]:
    """``(name, float32 (channels, samples) waveform, rate, file info or None)`` of an input."""
    if isinstance(source, tuple):
        if len(source) != 2:
            raise ConfigError(f"{role} must be a path or (waveform, sample_rate); got a tuple of {len(source)}")
        waveform, rate = source
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 1000 <= rate <= 768000:
            raise ConfigError(f"{role} sample_rate={rate!r} must be an integer in [1000, 768000] Hz")
        audio = np.asarray(waveform.detach().cpu() if torch.is_tensor(waveform) else waveform)
        if audio.ndim == 1:
            audio = audio[np.newaxis]
        name = f"<{role} array>"
        if audio.ndim != 2 or not np.issubdtype(audio.dtype, np.number) or audio.shape[0] > MAX_CHANNELS:
            raise ConfigError(
                f"{role} waveform must be numeric, shaped (channels, samples) with at most "
                f"{MAX_CHANNELS} channels; got {audio.shape} (transpose a (samples, channels) array)"
            )
        if audio.shape[-1] == 0 or audio.shape[0] == 0:
            raise AudioFileError(name, "is empty (0 samples)")
        # No copy of a float32 array: a long content is read in place, never duplicated whole.
        audio = np.asarray(audio, dtype=np.float32)
        if not all_finite(audio):
            raise AudioFileError(name, "contains non-finite samples (NaN or Inf)")
        if audio.shape[-1] / rate > config.max_duration:
            raise AudioFileError(
                name, f"lasts {audio.shape[-1] / rate:.1f} s, over max_duration={config.max_duration:g} s"
            )
        info, original, rate = None, audio, int(rate)
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        info = audio_info(name)
        original, rate = load_audio(name, max_duration=config.max_duration)
    else:
        raise ConfigError(f"{role} must be a path or (waveform, sample_rate); got {type(source).__name__}")
    return name, original, rate, info


@dataclass
class Result:
    """The output of :func:`stylize`.

    Attributes
    ----------
    audio : np.ndarray [shape=(channels, samples), float32]
        The stylized waveform at ``sample_rate``, peak at most -1 dBFS.
    sample_rate : int
    log_magnitude : torch.Tensor [shape=(channels, freq, frames)] or None
        The optimised log-magnitude at the working rate (on the CPU). None for content
        longer than ``segment_seconds``, stylized per segment; compute the STFT of ``audio``
        if you need it.
    history : list of dict
        Losses per solver step (``total``, ``style``, ``content``), step 0 first.
    timings : dict
        Seconds per stage and ``total``.
    metrics : dict
        ``spectral_convergence_db`` of the reconstruction, ``evaluations``, ``stopped``...
    config : StyleConfig
    format, subtype : str or None
        The content file's format and subtype, used by :meth:`save` when the extension
        matches.
    """

    audio: np.ndarray
    sample_rate: int
    log_magnitude: torch.Tensor | None
    history: list[dict[str, float]]
    timings: dict[str, float]
    metrics: dict[str, Any]
    config: StyleConfig
    format: str | None = None
    subtype: str | None = None
    inputs: tuple[str, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the audio atomically; the format follows the extension.

        The content file's subtype (bit depth) is kept when the output has the content's
        format. Input files are never overwritten.

        Raises
        ------
        AudioFileError
            Unsupported extension, missing folder, an input's path, or a failed write.
        """
        fmt = output_format(Path(path), None)
        subtype = self.subtype if self.format is not None and fmt == self.format else None
        return save_audio(
            path,
            self.audio,
            self.sample_rate,
            format=fmt,
            subtype=subtype,
            protect=self.inputs,
            overwrite=overwrite,
        )


def _texture_at_rate(audio: np.ndarray, config: StyleConfig, rate: int) -> np.ndarray:
    """A texture solved at the working rate, brought to ``rate`` (a loop stays a loop)."""
    if rate == config.sample_rate:
        return audio
    if config.loop:
        return resample_loop(audio, config.sample_rate, rate)
    length = max(1, round(audio.shape[-1] * rate / config.sample_rate))
    return np.ascontiguousarray(fit_length(resample(audio, config.sample_rate, rate), length))


def _full_band(
    audio: np.ndarray, rate: int, style_audio: Sequence[Audio], blend: Sequence[float], config: StyleConfig
) -> np.ndarray:
    """The output with its band above the working rate rebuilt in the styles' shape (if asked and needed)."""
    if not config.full_band or rate <= config.sample_rate:
        return audio
    power = style_band_power([(style.original, style.original_rate) for style in style_audio], blend, rate)
    return extend_bandwidth(audio, rate, config.sample_rate, power, circular=config.loop)


def _normalise_styles(style: AudioSource | Sequence, weights: Sequence[float] | None) -> tuple[list, list[float]]:
    """A style, a list of styles, or a list of (style, weight) pairs -> (sources, weights)."""
    if isinstance(style, (str, os.PathLike, tuple)):
        sources, pair_weights = [style], [1.0]
    elif isinstance(style, Sequence) and len(style) > 0:
        sources, pair_weights = [], []
        for item in style:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (int, float)) and not isinstance(item[0], np.ndarray):
                sources.append(item[0])
                pair_weights.append(float(item[1]))
            else:
                sources.append(item)
                pair_weights.append(1.0)
    else:
        raise ConfigError("style must be a path, (waveform, sample_rate), or a non-empty list of them")
    if weights is not None:
        if len(weights) != len(sources):
            raise ConfigError(f"style_weights has {len(weights)} entries for {len(sources)} styles")
        pair_weights = [float(w) for w in weights]
    if any(not math.isfinite(w) or w < 0 for w in pair_weights) or sum(pair_weights) <= 0:
        raise ConfigError(f"style weights {pair_weights} must be finite, >= 0 and not all 0")
    return sources, pair_weights


def stylize_spectrogram(
    content_log_magnitude: torch.Tensor | None,
    style_log_magnitude: torch.Tensor | Sequence[torch.Tensor] | StyleStatistics,
    network: torch.nn.Module,
    *,
    content_weight: float = 1.0,
    style_weight: float = 100.0,
    style_weights: Sequence[float] | None = None,
    texture: TextureStatistics | None = None,
    texture_weight: float = 0.0,
    envelope_weight: float = 0.0,
    iterations: int = 60,
    solver: str = "lbfgs",
    learning_rate: float = 1.0,
    tolerance: float = 1e-4,
    history_size: int = HISTORY_SIZE,
    init: str | torch.Tensor = "content",
    frames: int | None = None,
    channels: int = 1,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> OptimizationResult:
    """Optimise a log-magnitude spectrogram towards the content's features and the style's Grams.

    Parameters
    ----------
    content_log_magnitude : torch.Tensor or None [shape=(freq, frames) or (batch, freq, frames)]
        ``log1p`` STFT magnitude of the content; None synthesises a texture (``frames``
        then gives its length).
    style_log_magnitude : torch.Tensor, sequence of torch.Tensor, or StyleStatistics
        One style ``(freq, frames)``/``(channels, freq, frames)``, several (blended with
        ``style_weights``), or precomputed statistics.
    network : torch.nn.Module
        A :class:`~audiostyle.networks.FeatureNetwork` on the tensors' device.
    content_weight, style_weight : float
        Weights of the relative content and style losses.
    style_weights : sequence of float, optional
        Blend weights when several styles are given.
    texture : TextureStatistics, optional
        Band-envelope statistics of the style (:mod:`audiostyle.objective.texture`), matched with
        ``texture_weight``.
    envelope_weight : float
        Weight of the content's loudness contour (:class:`audiostyle.objective.LoudnessContour`);
        0 turns it off.
    iterations, solver, learning_rate, tolerance, history_size
        See :func:`audiostyle.solver.optimize`.
    init : {"content", "noise"} or torch.Tensor
        Starting point; noise is small, non-negative and seeded.
    frames : int, optional
        Output length in frames for texture synthesis.
    channels : int
        Channels of a texture (its batch size); ignored with a content.
    seed : int
        Seed of the noise initialisation.
    progress : callable, optional
        ``progress(step, total, losses)``.

    Returns
    -------
    OptimizationResult
        ``solution`` is shaped like the content (``(batch, freq, frames)`` when batched).

    Examples
    --------
    >>> import torch
    >>> from audiostyle.networks import RandomCNN
    >>> net = RandomCNN(65, filters=32, kernel_widths=(3,))
    >>> content, style = torch.rand(65, 40), torch.rand(65, 50)
    >>> out = stylize_spectrogram(content, style, net, iterations=3)
    >>> out.solution.shape
    torch.Size([65, 40])
    """

    def batched(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.ndim == 2:
            return tensor.unsqueeze(0)
        if tensor.ndim != 3:
            raise ConfigError(f"a log-magnitude must be shaped (freq, frames) or (batch, freq, frames); got {tuple(tensor.shape)}")
        return tensor

    if isinstance(style_log_magnitude, StyleStatistics):
        style = style_log_magnitude
    else:
        styles = [style_log_magnitude] if torch.is_tensor(style_log_magnitude) else list(style_log_magnitude)
        style = StyleStatistics.from_log_magnitudes(network, [batched(s) for s in styles], style_weights)

    if content_log_magnitude is not None:
        squeeze = content_log_magnitude.ndim == 2
        content = batched(content_log_magnitude)
        targets = ContentTargets.from_log_magnitude(network, content)
        contour = LoudnessContour.from_log_magnitude(content) if envelope_weight > 0 else None
        shape, device = content.shape, content.device
    else:
        if frames is None or isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ConfigError(f"texture synthesis (no content) needs frames >= 1; got {frames!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"texture synthesis needs channels >= 1; got {channels!r}")
        squeeze, content, targets, contour = False, None, None, None
        shape, device = (channels, style.n_freq, frames), style.layers[0].gram.device

    if torch.is_tensor(init):
        if tuple(init.shape) != tuple(shape):
            raise ConfigError(f"init tensor shape {tuple(init.shape)} must be {tuple(shape)}")
        start = init
    elif init == "content" and content is not None:
        start = content
    elif init in ("noise", "content"):
        # A texture has no content to start from: both start from seeded small noise.
        generator = torch.Generator().manual_seed(seed)
        start = (torch.randn(shape, generator=generator).abs() * 1e-3).to(device)
    else:
        raise ConfigError(f"init={init!r} must be 'content', 'noise' or a tensor")

    objective = Objective(
        network,
        style,
        targets,
        content_weight=content_weight,
        style_weight=style_weight,
        texture=texture,
        texture_weight=texture_weight,
        envelope=contour,
        envelope_weight=envelope_weight,
    )
    result = optimize(
        start,
        objective,
        iterations=iterations,
        solver=solver,
        learning_rate=learning_rate,
        tolerance=tolerance,
        history_size=history_size,
        progress=progress,
    )
    result.solution = result.solution.clamp_min(0)
    if squeeze:
        result.solution = result.solution.squeeze(0)
    return result


def solver_settings(config: StyleConfig, texture: TextureStatistics | None, *, content: bool) -> dict[str, Any]:
    """The :func:`stylize_spectrogram` keyword arguments that ``config`` means.

    ``strength`` maps onto the content/style balance (and the loudness contour, which is on
    the content side); a texture (``content=False``) has no content to balance.
    """
    content_weight, style_weight = (
        config.loss_weights() if content else (config.content_weight, config.style_weight)
    )
    return dict(
        content_weight=content_weight,
        style_weight=style_weight,
        texture=texture,
        texture_weight=config.texture_weight,
        envelope_weight=config.envelope_loss_weight() if content else 0.0,
        iterations=config.iterations,
        solver=config.solver,
        learning_rate=config.learning_rate,
        tolerance=config.tolerance,
        history_size=config.history_size,
        init=config.init,
        seed=config.seed,
    )


def _loop_convergence(waveform: torch.Tensor, magnitude: torch.Tensor, config: StyleConfig) -> float:
    """Spectral convergence in dB of a loop, measured with the circular STFT it was built with."""
    rebuilt = circular_stft(waveform, n_fft=config.n_fft, hop_length=config.hop_length).abs()
    error = torch.linalg.vector_norm(rebuilt - magnitude)
    return float(20 * torch.log10((error / torch.linalg.vector_norm(magnitude).clamp_min(1e-12)).clamp_min(1e-12)))


def _load_styles(sources: Sequence[AudioSource], config: StyleConfig) -> list[Audio]:
    style_audio = [_load_source(source, config, "style") for source in sources]
    for audio in style_audio:
        if not np.any(audio.waveform):
            raise AudioFileError(audio.name, "is silent (all samples are 0): a style needs sound")
    return style_audio


def _style_targets(
    log_magnitudes: list[torch.Tensor], blend: list[float], config: StyleConfig, device: torch.device
) -> tuple[torch.nn.Module, StyleStatistics, TextureStatistics | None]:
    """The feature network and the style's statistics under it: what every content reuses."""
    network = build_network(
        config.network,
        n_freq=config.n_fft // 2 + 1,
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        filters=config.filters,
        kernel_widths=config.kernel_widths,
        kernel_dilations=config.kernel_dilations,
        seed=config.seed,
        padding="circular" if config.loop else "same",
        mel_bands=config.mel_bands,
    ).to(device)
    style_stats = StyleStatistics.from_log_magnitudes(network, log_magnitudes, blend)
    texture_stats = (
        TextureStatistics.from_log_magnitudes(
            log_magnitudes,
            blend,
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
        )
        if config.texture_weight > 0
        else None
    )
    return network, style_stats, texture_stats


#: The fields a PreparedStyle's network and statistics depend on.
_PREPARED_FIELDS = (
    "sample_rate", "n_fft", "hop_length", "network", "filters", "kernel_widths", "kernel_dilations", "mel_bands",
    "seed", "loop",
)


@dataclass
class PreparedStyle:
    """A style's loaded audio, the feature network and the style statistics, made once.

    Build with :func:`prepare_style` and pass to :func:`stylize` as ``prepared=`` to stylize
    many contents with one style without rebuilding the network or recomputing the Grams.
    Picklable, so it can be sent to worker processes.

    Attributes
    ----------
    styles : list of Audio
        The style inputs at the working rate.
    network : torch.nn.Module
    statistics : StyleStatistics
    texture : TextureStatistics or None
    config : StyleConfig
        The settings it was made with.
    weights : tuple of float
        The styles' blend weights (empty: equal).
    """

    styles: list[Audio]
    network: torch.nn.Module
    statistics: StyleStatistics
    texture: TextureStatistics | None
    config: StyleConfig
    weights: tuple[float, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The style inputs' names (file paths, or ``<style array>``)."""
        return tuple(audio.name for audio in self.styles)

    def to(self, device: torch.device | str) -> "PreparedStyle":
        """A copy whose network and statistics live on ``device``."""
        return PreparedStyle(
            styles=self.styles,
            network=self.network.to(device),
            statistics=self.statistics.to(device),
            texture=self.texture.to(device) if self.texture is not None else None,
            config=self.config,
            weights=self.weights,
        )

    def check(self, config: StyleConfig) -> None:
        """Raise ConfigError unless it was made with settings compatible with ``config``."""
        changed = [name for name in _PREPARED_FIELDS if getattr(config, name) != getattr(self.config, name)]
        if config.texture_weight > 0 and self.texture is None:
            changed.append("texture_weight")
        if changed:
            raise ConfigError(
                f"prepared style was made with other settings ({', '.join(changed)}); "
                "call prepare_style(style, config) with this config"
            )


def prepare_style(
    style: AudioSource | Sequence[AudioSource] | Sequence[tuple[AudioSource, float]],
    config: StyleConfig | None = None,
    *,
    style_weights: Sequence[float] | None = None,
) -> PreparedStyle:
    """Load a style (or blend), build the feature network and compute the style statistics.

    Parameters
    ----------
    style, style_weights
        As for :func:`stylize`.
    config : StyleConfig, optional
        Settings (default: ``PRESETS["default"]``); only the analysis and network settings
        matter here.

    Returns
    -------
    PreparedStyle
        Reusable by :func:`stylize` (``prepared=``) for every content with these settings.

    Raises
    ------
    AudioFileError
        A style is missing, unreadable, empty, too short, too long or silent.
    ConfigError
        A bad setting.

    Examples
    --------
    >>> prepared = prepare_style("samples/cello.flac", PRESETS["fast"])  # doctest: +SKIP
    >>> results = [stylize(path, None, PRESETS["fast"], prepared=prepared) for path in paths]  # doctest: +SKIP
    """
    from .config import PRESETS

    config = PRESETS["default"] if config is None else config
    if not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig; got {type(config).__name__}")
    device = resolve_device(config.device)
    sources, blend = _normalise_styles(style, style_weights)
    style_audio = _load_styles(sources, config)
    specs = [
        analyze(audio.waveform, config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length, device=device)
        for audio in style_audio
    ]
    network, statistics, texture = _style_targets([s.log_magnitude for s in specs], blend, config, device)
    return PreparedStyle(
        styles=style_audio, network=network, statistics=statistics, texture=texture, config=config, weights=tuple(blend)
    )


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
        ``progress(step, total, losses)`` after each solver step.
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

    Examples
    --------
    >>> from audiostyle import stylize, PRESETS
    >>> result = stylize("samples/voice.wav", "samples/cello.flac", PRESETS["fast"])  # doctest: +SKIP
    >>> result.save("voice-cello.wav")  # doctest: +SKIP
    """
    from .config import PRESETS

    config = PRESETS["default"] if config is None else config
    if not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig; got {type(config).__name__}")
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - clock
        clock = now

    device = resolve_device(config.device)
    if prepared is None:
        style_sources, blend = _normalise_styles(style, style_weights)
    content_audio = _load_source(content, config, "content", may_segment=True) if content is not None else None
    if prepared is None:
        style_audio = _load_styles(style_sources, config)
    else:
        prepared = prepared.to(device)
        prepared.check(config)
        style_audio = prepared.styles
        blend = list(prepared.weights) or [1.0] * len(style_audio)
    # Fail now with advice, not in an hour when the operating system kills the run.
    check_memory(
        config,
        (content_audio.channels, content_audio.samples) if content_audio else None,
        [audio.waveform for audio in style_audio],
        texture_seconds=duration,
        device=device,
    )
    lap("load")

    analysis = dict(n_fft=config.n_fft, hop_length=config.hop_length, device=device)
    per_segment = segment_frames(config.segment_seconds, config.sample_rate, config.hop_length)
    # Content longer than a segment is resampled, analysed, solved and reconstructed one
    # segment at a time (segments.stylize_waveform_in_segments): neither its working-rate
    # waveform nor its full-length STFT is ever held.
    segmented = content_audio is not None and content_audio.waveform is None
    content_spec = (
        analyze(content_audio.waveform, config.sample_rate, **analysis)
        if content_audio is not None and not segmented
        else None
    )
    if prepared is None:
        style_specs = [analyze(audio.waveform, config.sample_rate, **analysis) for audio in style_audio]
    if content_audio is None:
        seconds = duration if duration is not None else style_audio[0].waveform.shape[-1] / config.sample_rate
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= config.max_duration):
            raise ConfigError(f"duration={duration!r} must be in (0, max_duration={config.max_duration:g}] seconds")
        length = max(int(round(seconds * config.sample_rate)), config.n_fft)
        if config.loop:  # a whole number of hops: the circular STFT has length // hop frames
            length = max(1, round(length / config.hop_length)) * config.hop_length
        texture_frames = length // config.hop_length if config.loop else 1 + length // config.hop_length
    elif config.loop:
        raise ConfigError("loop=True is for texture synthesis (content=None)")
    else:
        length = content_audio.samples
    lap("analyze")

    if prepared is None:
        network, style_stats, texture_stats = _style_targets(
            [s.log_magnitude for s in style_specs], blend, config, device
        )
        del style_specs  # the statistics are all that is needed of the styles from here on
    else:
        network, style_stats, texture_stats = prepared.network, prepared.statistics, prepared.texture
    lap("targets")

    settings = solver_settings(config, texture_stats, content=content_audio is not None)
    if content_audio is None:
        settings["channels"] = style_audio[0].channels
        if config.init == "content":
            settings["init"] = texture_start(
                [audio.waveform for audio in style_audio],
                blend,
                frames=texture_frames,
                channels=style_audio[0].channels,
                n_fft=config.n_fft,
                hop_length=config.hop_length,
                seed=config.seed,
                device=device,
            )
    content_weight, style_weight = settings["content_weight"], settings["style_weight"]
    reconstruction = dict(n_iter=config.griffin_lim_iters, momentum=config.momentum, seed=config.seed)
    refined_convergence = None

    refined_losses = None

    def refine_stage(
        waveform: torch.Tensor, content_log_magnitude: torch.Tensor | None, magnitude: torch.Tensor
    ) -> tuple[torch.Tensor, float, dict[str, float]]:
        """The refined waveform, its spectral convergence against ``magnitude``, its final losses."""
        # Griffin-Lim only approximates an inconsistent spectrogram; optimising the waveform
        # itself lands on one a real signal has.
        objective = Objective(
            network,
            style_stats,
            ContentTargets.from_log_magnitude(network, content_log_magnitude) if content_log_magnitude is not None else None,
            content_weight=content_weight * REFINE_CONTENT_EMPHASIS,
            style_weight=style_weight,
            texture=texture_stats,
            texture_weight=config.texture_weight,
            # No loudness contour here: Griffin-Lim's output already follows it, and keeping
            # the term in this stage cost 0.002-0.017 combined quality on every speech/drums
            # pair (and 0.03 on speech->strings with the mel-band network).
        )
        refined = refine_waveform(
            waveform, objective, n_fft=config.n_fft, hop_length=config.hop_length, steps=config.refine_steps,
            history_size=config.history_size,
        )
        convergence = spectral_convergence(refined.solution, magnitude, n_fft=config.n_fft, hop_length=config.hop_length)
        return refined.solution, convergence, refined.history[-1]

    if segmented:

        def reconstruct(magnitude, samples, phase):
            phase = phase if config.phase_init == "content" else None
            wave = griffin_lim(
                magnitude, n_fft=config.n_fft, hop_length=config.hop_length, length=samples, init_phase=phase, **reconstruction
            )
            return wave, spectral_convergence(wave, magnitude, n_fft=config.n_fft, hop_length=config.hop_length)

        # The content is read at its own rate, segment by segment, and the output is joined at
        # that rate: the analysis gain is the one normalise_level would apply to the whole.
        solved = stylize_waveform_in_segments(
            content_audio.original,
            sample_rate=content_audio.original_rate,
            working_rate=config.sample_rate,
            gain=analysis_gain(content_audio.original),
            hop_length=config.hop_length,
            segment_length=per_segment,
            analyse=lambda part: analyze(part, config.sample_rate, **analysis),
            solve=lambda part, report: stylize_spectrogram(part, style_stats, network, progress=report, **settings),
            reconstruct=reconstruct,
            refine=(lambda *segment: refine_stage(*segment)[:2]) if config.refine_steps > 0 else None,
            progress=progress,
            stage=lap,
        )
        audio, log_mag, convergence = solved.audio, None, solved.convergence
        refined_convergence = solved.refined_convergence
    else:
        solved = stylize_spectrogram(
            content_spec.log_magnitude if content_spec is not None else None,
            style_stats,
            network,
            frames=texture_frames if content_audio is None else None,
            progress=progress,
            **settings,
        )
        log_mag = solved.solution
        lap("optimize")
        magnitude = torch.expm1(log_mag).clamp_min(0)
        phase = content_spec.phase if (content_spec is not None and config.phase_init == "content") else None
        content_log_magnitude = content_spec.log_magnitude if content_spec is not None else None
        content_spec = None  # its phase is only for Griffin-Lim's start: not held through refining
        if config.loop:
            waveform = circular_griffin_lim(magnitude, n_fft=config.n_fft, hop_length=config.hop_length, **reconstruction)
            convergence = _loop_convergence(waveform, magnitude, config)
        else:
            waveform = griffin_lim(
                magnitude, n_fft=config.n_fft, hop_length=config.hop_length, length=length, init_phase=phase, **reconstruction
            )
            convergence = spectral_convergence(waveform, magnitude, n_fft=config.n_fft, hop_length=config.hop_length)
        del phase
        lap("griffin_lim")

    if config.refine_steps > 0 and not config.loop and not segmented:
        waveform, refined_convergence, refined_losses = refine_stage(waveform, content_log_magnitude, magnitude)
        lap("refine")

    if not segmented:
        audio = waveform.detach().cpu().numpy().astype(np.float32)
        if content_audio is not None:
            audio = fit_length(resample(audio, config.sample_rate, content_audio.original_rate), content_audio.original.shape[-1])
        # Contiguous and our own: match_loudness scales it in place.
        audio = np.ascontiguousarray(audio)
    if content_audio is not None:
        rate, reference = content_audio.original_rate, content_audio.original
    else:
        # A texture takes the first style's rate and channels, and its level.
        rate, reference = style_audio[0].original_rate, style_audio[0].original
        audio = _texture_at_rate(audio, config, rate)
    audio = _full_band(audio, rate, style_audio, blend, config)
    lap("full_band")
    audio = match_loudness(audio, reference, config.loudness)
    if not all_finite(audio):
        from .errors import NumericalError

        raise NumericalError("the reconstructed audio holds NaN or Inf; nothing was written")
    lap("finish")
    timings["total"] = time.perf_counter() - started

    history = solved.history
    metrics = {
        "spectral_convergence_db": convergence,
        "refined_spectral_convergence_db": refined_convergence,
        "refined_losses": refined_losses,
        "evaluations": solved.evaluations,
        "iterations": len(history) - 1,
        "stopped": solved.stopped,
        "device": str(device),
    }
    logger.info(
        "stylized %s in %.1f s (%d steps, style %.3g -> %.3g, SC %.1f dB)",
        content_audio.name if content_audio else "texture",
        timings["total"],
        metrics["iterations"],
        history[0]["style"],
        history[-1]["style"],
        convergence,
    )
    info = content_audio.info if content_audio is not None else None
    inputs = tuple(a.name for a in ([content_audio] if content_audio else []) + style_audio if a.info is not None)
    return Result(
        audio=audio,
        sample_rate=rate,
        log_magnitude=log_mag.detach().cpu() if log_mag is not None else None,
        history=history,
        timings=timings,
        metrics=metrics,
        config=config,
        format=info.format if info else None,
        subtype=info.subtype if info else None,
        inputs=inputs,
    )
