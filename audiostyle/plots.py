"""Spectrogram figures: a run's content, style(s) and output on one dB scale, plus its losses.

matplotlib is an optional dependency (``pip install "audiostyle[plot]"``), imported only when
a figure is drawn, with the non-interactive Agg backend so it works on a server.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .dsp.resample import resample
from .dsp.stft import stft
from .errors import ConfigError
from .io import atomic_write, audio_info, load_audio
from .system import format_gib
from .validation import is_int, validate_stft_params

__all__ = ["plot_result", "plot_files", "check_figure_path", "DYNAMIC_RANGE_DB", "MAX_PLOT_CELLS"]

#: Every panel shows the same range: from the loudest bin of all panels down this many dB.
DYNAMIC_RANGE_DB = 80.0

#: The most spectrogram cells (frequency bins times frames, all panels together) one figure may
#: hold: four panels of a 20-minute 48 kHz clip at the default STFT fit, and a panel at 80 dpi
#: is a few hundred pixels wide, so finer frames than that add nothing visible.
MAX_PLOT_CELLS = 2**29
#: Memory per cell, measured peaks rounded up (docs/limits.md): what each panel keeps until the
#: figure is saved, and what drawing one panel takes while it is drawn.
_KEPT_BYTES_PER_CELL = 12
_DRAW_BYTES_PER_CELL = 72


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError('plots need matplotlib: pip install "audiostyle[plot]"') from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _waveform(source: Any, sample_rate: int) -> np.ndarray:
    """A path or ``(waveform, rate)`` -> mono float32 at ``sample_rate``."""
    if isinstance(source, tuple):
        audio, rate = source
        audio = np.asarray(audio, dtype=np.float32)
        audio = audio[np.newaxis] if audio.ndim == 1 else audio
        audio = resample(audio, int(rate), sample_rate)
    else:
        audio, _ = load_audio(source, sample_rate, mono=True)
    return audio.mean(axis=0)


def _length_at(source: Any, sample_rate: int) -> int:
    """Samples of a path or ``(waveform, rate)`` once at ``sample_rate``, from the header alone."""
    if isinstance(source, tuple):
        shape = np.shape(source[0]) if len(source) == 2 else ()
        if len(shape) not in (1, 2) or 0 in shape or not is_int(source[1]) or not 1000 <= source[1] <= 768000:
            raise ConfigError(
                "a clip to plot must be a path or (waveform, sample_rate): a (samples,) or (channels, samples) "
                "array and an integer rate in [1000, 768000] Hz"
            )
        samples, rate = shape[-1], int(source[1])
    else:
        info = audio_info(source)
        samples, rate = info.frames, info.sample_rate
    return math.ceil(samples * sample_rate / rate)


def _spectrogram_cells(samples: int, n_fft: int, hop_length: int) -> int:
    """Cells of :func:`_spectrum_db` of ``samples`` (padded to ``n_fft``): bins times centred frames."""
    return (n_fft // 2 + 1) * (1 + max(samples, n_fft) // hop_length)


def _check_plot_size(lengths: Sequence[int], sample_rate: int, n_fft: int, hop_length: int, *, settings: tuple[int, int]) -> int:
    """Refuse a figure of panels ``lengths`` samples long before any STFT is computed.

    ``settings`` are the ``(n_fft, hop_length)`` to name in the message (a run's, before they
    are scaled to the plot's rate). Returns the estimated bytes.

    Raises
    ------
    ConfigError
        The figure would hold more than :data:`MAX_PLOT_CELLS` spectrogram cells, or need
        more memory than is free.
    """
    from .pipeline.memory import available_memory

    cells = [_spectrogram_cells(n, n_fft, hop_length) for n in lengths]
    total = sum(cells)
    needed = _KEPT_BYTES_PER_CELL * total + _DRAW_BYTES_PER_CELL * max(cells)
    fix = (
        f"raise hop_length (now {settings[1]}) or lower n_fft (now {settings[0]}), "
        f"or plot fewer or shorter clips ({len(lengths)} of {sum(lengths) / sample_rate:.1f} s in all)"
    )
    if total > MAX_PLOT_CELLS:
        raise ConfigError(f"the figure would hold {total:,} spectrogram cells, over the limit of {MAX_PLOT_CELLS:,}; {fix}")
    free = available_memory("cpu")
    if free is not None and needed > free:
        raise ConfigError(
            f"the figure needs about {format_gib(needed)} of memory ({total:,} spectrogram cells) "
            f"but only {format_gib(free)} is free; {fix}"
        )
    return needed


def _decoded(source: Any, lengths: list[int], index: int, sample_rate: int, n_fft: int, hop_length: int, settings: tuple[int, int]) -> np.ndarray:
    """:func:`_waveform` of panel ``index``, checked again if its header understated its length."""
    wave = _waveform(source, sample_rate)
    if wave.shape[-1] > lengths[index]:
        lengths[index] = wave.shape[-1]
        _check_plot_size(lengths, sample_rate, n_fft, hop_length, settings=settings)
    return wave


def _decibels(magnitude: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.maximum(magnitude, 1e-10))


def _spectrum_db(waveform: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    if waveform.shape[-1] < n_fft:
        waveform = np.pad(waveform, (0, n_fft - waveform.shape[-1]))
    return _decibels(stft(torch.from_numpy(np.ascontiguousarray(waveform)), n_fft=n_fft, hop_length=hop_length).abs().numpy())


def _styles_and_weights(style: Any) -> tuple[list[Any], list[float]]:
    """As :func:`stylize` takes them: a source, a list of sources or of ``(source, weight)``."""
    items = [style] if isinstance(style, (str, os.PathLike, tuple)) else list(style)
    styles, weights = [], []
    for item in items:
        weighted = isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (int, float)) and not isinstance(item[0], np.ndarray)
        styles.append(item[0] if weighted else item)
        weights.append(float(item[1]) if weighted else 1.0)
    return styles, weights


def _label(source: Any, fallback: str) -> str:
    return Path(source).name if isinstance(source, (str, os.PathLike)) else fallback


def _draw_panels(axes: Sequence[Any], panels: list[tuple[str, np.ndarray, float, int]]) -> Any:
    """imshow each ``(title, dB (freq, frames), seconds, sample_rate)`` on one colour scale."""
    top = max(float(db.max()) for _, db, _, _ in panels)
    image = None
    for axis, (title, db, seconds, rate) in zip(axes, panels):
        image = axis.imshow(
            db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=top - DYNAMIC_RANGE_DB,
            vmax=top,
            extent=(0.0, seconds, 0.0, rate / 2000),
            interpolation="nearest",
        )
        axis.set_title(title, fontsize=9)
        axis.set_ylabel("kHz")
        axis.set_xlabel("seconds")
    return image


def check_figure_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it names a figure format (.png, .pdf or .svg); else ConfigError."""
    target = Path(path)
    if target.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"figure path {os.fspath(path)!r} must end in .png, .pdf or .svg")
    return target


def _save(figure: Any, path: str | os.PathLike, protect: Sequence[Any]) -> Path:
    target = check_figure_path(path)
    fmt = target.suffix[1:].lower()
    with atomic_write(target, protect=protect) as temporary:
        if fmt != "png":
            figure.savefig(temporary, format=fmt, dpi=80)
        else:
            # A 256-colour palette keeps a spectrogram figure small enough to commit (several
            # times smaller than RGBA, and the colour map has at most 256 shades anyway).
            import io

            from PIL import Image

            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80)
            buffer.seek(0)
            with Image.open(buffer) as image:
                image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
                    temporary, format="PNG", optimize=True
                )
    return target


def plot_result(
    result: Any,
    content: Any,
    style: Any,
    path: str | os.PathLike,
    *,
    titles: Mapping[str, str] | None = None,
) -> Path:
    """One figure of a run: content, style(s) and output log-spectrograms, then the losses.

    All spectrograms are analysed at the higher of the run's working rate and its output's
    rate (so a full-band output shows its whole band), with the run's ``n_fft`` and
    ``hop_length`` scaled to that rate, so they share the frequency axis, and drawn on one dB
    scale (the loudest bin of all panels down :data:`DYNAMIC_RANGE_DB`).

    Parameters
    ----------
    result : Result
        What :func:`audiostyle.stylize` returned.
    content : path, (waveform, sample_rate) or None
        The content as given to :func:`stylize` (None for a texture).
    style : path, (waveform, sample_rate), or a list of them or of ``(source, weight)``
        The style(s) as given to :func:`stylize`.
    path : str or os.PathLike
        A ``.png``, ``.pdf`` or ``.svg`` file, written atomically.
    titles : mapping of str to str, optional
        Display names by role (``"content"``, ``"style"``) for inputs whose file name is not
        the name to show (uploads stored under other names); default: the file names.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConfigError
        matplotlib is missing, the extension is not a figure format, or the spectrograms
        would hold more than :data:`MAX_PLOT_CELLS` cells or need more memory than is free
        (checked from the inputs' headers before anything is decoded).
    AudioFileError
        An input is unreadable, or the figure would overwrite an input.
    """
    if not all(hasattr(result, name) for name in ("audio", "sample_rate", "config")):
        raise ConfigError(f"result must be the Result of stylize(); got {type(result).__name__}")
    if titles is not None and not isinstance(titles, dict):
        raise ConfigError(f"titles must be a dict of role -> title; got {type(titles).__name__}")
    config = result.config
    titles = dict(titles or {})
    scale = 2 ** max(0, round(math.log2(result.sample_rate / config.sample_rate)))
    rate = max(config.sample_rate, result.sample_rate)
    n_fft, hop = config.n_fft * scale, config.hop_length * scale
    styles, weights = _styles_and_weights(style)
    sources = ([content] if content is not None else []) + styles
    lengths = [_length_at(source, rate) for source in sources] + [_length_at((result.audio, result.sample_rate), rate)]
    settings = (config.n_fft, config.hop_length)
    _check_plot_size(lengths, rate, n_fft, hop, settings=settings)
    plt = _pyplot()
    panels: list[tuple[str, np.ndarray, float, int]] = []
    if content is not None:
        wave = _decoded(content, lengths, len(panels), rate, n_fft, hop, settings)
        name = titles.get("content") or _label(content, "array")
        panels.append((f"content: {name}", _spectrum_db(wave, n_fft, hop), wave.shape[-1] / rate, rate))
    for index, (source, weight) in enumerate(zip(styles, weights)):
        wave = _decoded(source, lengths, len(panels), rate, n_fft, hop, settings)
        name = titles.get("style") if index == 0 and titles.get("style") else _label(source, f"array {index + 1}")
        title = f"style: {name}"
        if len(styles) > 1:
            title += f" (weight {weight / sum(weights):.2f})"
        panels.append((title, _spectrum_db(wave, n_fft, hop), wave.shape[-1] / rate, rate))
    output = np.asarray(result.audio, dtype=np.float32)
    output_wave = resample(output, result.sample_rate, rate).mean(axis=0)
    panels.append(("output", _spectrum_db(output_wave, n_fft, hop), output_wave.shape[-1] / rate, rate))

    figure, axes = plt.subplots(len(panels) + 1, 1, figsize=(8, 2.1 * (len(panels) + 1)), constrained_layout=True)
    image = _draw_panels(axes[:-1], panels)
    figure.colorbar(image, ax=list(axes[:-1]), label="dB", shrink=0.9)
    losses = axes[-1]
    for name in ("total", "style", "content", "texture"):
        values = [step[name] for step in result.history if name in step]
        if values:
            losses.plot(range(len(values)), values, label=name)
    losses.set_yscale("log")
    losses.set_xlabel("solver step")
    losses.set_ylabel("loss")
    losses.set_title("losses", fontsize=9)
    losses.legend(fontsize=8)
    protect = [s for s in [content, *styles] if isinstance(s, (str, os.PathLike))]
    try:
        return _save(figure, path, protect)
    finally:
        plt.close(figure)


def plot_files(
    paths: Sequence[str | os.PathLike],
    path: str | os.PathLike,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> Path:
    """Log-spectrograms of audio files side by side, on one dB scale and frequency axis.

    Each file is analysed at the highest sample rate among them (the others are resampled),
    so the frequency axes match.

    Parameters
    ----------
    paths : sequence of path
        Audio files (at least one).
    path : str or os.PathLike
        The figure (``.png``, ``.pdf`` or ``.svg``), written atomically.
    n_fft, hop_length : int
        STFT settings.

    Returns
    -------
    pathlib.Path
        The figure written.

    Raises
    ------
    ConfigError
        No files, bad STFT settings, missing matplotlib or a bad extension, or spectrograms
        of more than :data:`MAX_PLOT_CELLS` cells or of more memory than is free (checked
        from the headers before any file is decoded): a larger ``hop_length`` fixes it.
    AudioFileError
        A file is missing or unreadable.
    """
    if not paths:
        raise ConfigError("plot_files needs at least one audio file")
    validate_stft_params(n_fft, hop_length)
    infos = [audio_info(p) for p in paths]
    rate = max(info.sample_rate for info in infos)
    lengths = [math.ceil(info.frames * rate / info.sample_rate) for info in infos]
    _check_plot_size(lengths, rate, n_fft, hop_length, settings=(n_fft, hop_length))
    plt = _pyplot()
    panels = []
    for index, source in enumerate(paths):
        wave = _decoded(source, lengths, index, rate, n_fft, hop_length, (n_fft, hop_length))
        panels.append((Path(source).name, _spectrum_db(wave, n_fft, hop_length), wave.shape[-1] / rate, rate))
    figure, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels) + 1, 3.2), sharey=True, constrained_layout=True, squeeze=False
    )
    image = _draw_panels(axes[0], panels)
    figure.colorbar(image, ax=list(axes[0]), label="dB")
    try:
        return _save(figure, path, list(paths))
    finally:
        plt.close(figure)
