"""Result: what :func:`~audiostyle.stylize` returns, and how it is saved."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import StyleConfig
from ..io import output_format, save_audio

__all__ = ["Result"]


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
