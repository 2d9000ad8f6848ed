"""Run reports: everything needed to reproduce and compare a run, as one JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import ConfigError
from .io import atomic_write
from .io.formats import as_path
from .scores import score_output

__all__ = ["build_report", "write_report", "REPORT_VERSION"]

#: Bumped when a key changes meaning or disappears.
REPORT_VERSION = 1


def _plain(value: Any) -> Any:
    """JSON-safe: numpy/torch scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if torch.is_tensor(value) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _versions() -> dict[str, str]:
    from . import __version__

    versions = {
        "audiostyle": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    for name in ("soundfile", "librosa"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def build_report(
    result: Any,
    *,
    content: str | os.PathLike | None = None,
    styles: Sequence[tuple[str | os.PathLike, float]] = (),
    output: str | os.PathLike | None = None,
    duration: float | None = None,
) -> dict[str, Any]:
    """The report of a finished run as a JSON-serialisable dict.

    Parameters
    ----------
    result : Result
        What :func:`audiostyle.stylize` returned.
    content : path, optional
        The content file; None for a texture (whose loss weights ignore ``strength`` and
        which has no scores).
    styles : sequence of (path, weight)
        The style files and their blend weights.
    output : path, optional
        Where the audio was written.
    duration : float, optional
        A texture's requested length in seconds.

    Returns
    -------
    dict
        Keys: ``report_version``, ``created``, ``inputs``, ``output``, ``config`` (every
        field), ``config_digest``, ``loss_weights`` (after ``strength``), ``versions``,
        ``device``, ``losses`` (one dict per solver step), ``final_losses``, ``timings``
        (seconds per stage), ``quality`` (reconstruction metrics), ``audio`` (rate,
        channels, seconds, peak, RMS), ``scores`` (how much content the output kept and how
        much style it took: ``content``, ``style``, ``content_parts``, ``style_parts``,
        ``seconds`` analysed, see :mod:`audiostyle.scores`; None for a texture).

    Raises
    ------
    AudioFileError
        The content or a style file can no longer be read for the scores.
    """
    config = result.config
    audio = np.asarray(result.audio, dtype=np.float64)
    # A texture (no content) ignores strength.
    content_weight, style_weight = (config.content_weight, config.style_weight) if content is None else config.loss_weights()
    report = {
        "report_version": REPORT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            "content": os.fspath(content) if content is not None else None,
            "styles": [{"path": os.fspath(path), "weight": float(weight)} for path, weight in styles],
            "texture_duration": duration,
        },
        "output": os.fspath(output) if output is not None else None,
        "config": config.to_dict(),
        "config_digest": config.digest(),
        "loss_weights": {"content": content_weight, "style": style_weight, "strength": config.strength},
        "versions": _versions(),
        "device": result.metrics.get("device"),
        "losses": result.history,
        "final_losses": result.history[-1] if result.history else {},
        "timings": result.timings,
        "quality": {k: v for k, v in result.metrics.items() if k != "device"},
        "audio": {
            "sample_rate": result.sample_rate,
            "channels": int(audio.shape[0]),
            "seconds": result.duration,
            "peak": float(np.max(np.abs(audio))) if audio.size else 0.0,
            "rms": float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0,
        },
        "scores": _scores(result, content, styles),
    }
    return _plain(report)


def _scores(result: Any, content: str | os.PathLike | None, styles: Sequence[tuple[str | os.PathLike, float]]) -> dict[str, Any] | None:
    """The run's content and style figures; None for a texture (nothing to have kept)."""
    if content is None or not styles:
        return None
    return score_output((result.audio, result.sample_rate), content, list(styles)).to_dict()


def write_report(report: dict[str, Any], path: str | os.PathLike, *, protect: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``report`` as indented JSON, atomically (never over an input in ``protect``).

    Raises
    ------
    AudioFileError
        Missing folder, an input's path, or a failed write.
    ConfigError
        ``report`` holds what JSON cannot (NaN or Inf, arrays, other objects).
    """
    target = as_path(path)
    try:  # before the file: a report JSON cannot hold leaves nothing behind
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the report cannot be written as JSON: {error}") from None
    with atomic_write(target, protect=protect) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return target
