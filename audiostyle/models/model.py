"""StyleModel: a trained transformation network for one style, applied in one pass or streamed."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import StyleConfig, resolve_device
from ..dsp.levels import analysis_gain
from ..errors import ConfigError, WeightsError
from ..io.write import atomic_write
from ..networks.weights_file import check_file_size, checked_tensors, read_json, read_tensors
from ..pipeline import Result
from ..pipeline.sources import AudioSource, read_source
from ..validation import is_number
from .grid import RateGrid
from .network import TransformNet, expected_shapes, validate_architecture
from .stream import COLOUR_MATCH, ModelStream

__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "StyleModel"]

MODEL_FORMAT = "audiostyle.style_model"
MODEL_VERSION = 2
#: Largest sidecar we read: settings, names and training figures are a few kB.
MAX_SIDECAR_BYTES = 1024 * 1024
#: Seconds of content per block when a whole file is applied: bounds memory for any length.
APPLY_BLOCK_SECONDS = 30.0
#: ... and at most this many samples (all channels) per block: a block's working memory is some
#: twenty times its samples', so many channels at a high rate would otherwise take gigabytes.
MAX_BLOCK_SAMPLES = 2**21


class StyleModel:
    """A style model: one forward pass turns any content into the style it was trained on.

    Made by :func:`~audiostyle.models.train_style_model` or :meth:`load`. Picklable, so batch
    workers receive it whole.

    Attributes
    ----------
    network : TransformNet
    config : StyleConfig
        The settings whose objective it was trained against (analysis, weights, strength).
    style_names : tuple of str
    style_weights : tuple of float
    training : dict
        What training measured: ``steps``, ``seconds``, ``clips``, losses first and last,
        ``validation`` first and last.
    """

    def __init__(
        self,
        network: TransformNet,
        config: StyleConfig,
        *,
        style_names: Sequence[str] = (),
        style_weights: Sequence[float] = (),
        training: Mapping[str, Any] | None = None,
    ) -> None:
        self.network = network.eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.config = config
        self.style_names = tuple(style_names)
        self.style_weights = tuple(float(w) for w in style_weights)
        self.training = dict(training or {})

    @functools.cached_property
    def digest(self) -> str:
        """16 hex characters naming the weights and settings: a changed model has another.

        Made once: the weights are frozen when the model is made, and every applied file
        reports it.
        """
        hasher = hashlib.sha256(json.dumps(self._description(), sort_keys=True).encode())
        for name, tensor in sorted(self.network.weight_tensors().items()):
            hasher.update(name.encode())
            hasher.update(tensor.float().numpy().tobytes())
        return hasher.hexdigest()[:16]

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> StyleModel:
        """Move the network to ``device`` (``"auto"`` allowed), in place; returns self."""
        self.network.to(resolve_device(device))
        return self

    def rate_grid(self, sample_rate: int) -> RateGrid:
        """The STFT and frequency mapping of this model for audio at ``sample_rate``."""
        return RateGrid.at(
            int(sample_rate),
            grid_rate=self.config.sample_rate,
            grid_n_fft=self.config.n_fft,
            grid_hop=self.config.hop_length,
        )

    def stream(
        self, sample_rate: int, channels: int = 1, *, input_gain: float = 1.0, colour_match: float = COLOUR_MATCH
    ) -> ModelStream:
        """A stream that stylizes blocks of audio at ``sample_rate`` as they come.

        Parameters
        ----------
        sample_rate : int
            The audio's rate (any; nothing is resampled).
        channels : int
            Channels of every block.
        input_gain : float
            The model reads the content at ``input_gain`` times its level. :meth:`apply` uses
            the gain that brings a whole file to the training level; a live stream cannot know
            it in advance, and the default 1 suits material around -20 dBFS RMS (the model was
            trained over +-15 dB around that level).
        colour_match : float
            In [0, 1]: how far (in dB) the output's running long-term colour, over about
            ``COLOUR_SECONDS``, is moved towards the style's (0: the network's output as it is).
            The network sees a fraction of a second and cannot know a piece's overall colour;
            this causal stage can.

        Returns
        -------
        ModelStream
            ``process(block)`` then ``flush()``; ``latency_samples`` says its delay.
        """
        if not isinstance(sample_rate, (int, np.integer)) or not 1000 <= sample_rate <= 768000:
            raise ConfigError(f"sample_rate={sample_rate!r} must be an integer in [1000, 768000] Hz")
        if not isinstance(channels, (int, np.integer)) or not 1 <= channels <= 64:
            raise ConfigError(f"channels={channels!r} must be an integer in [1, 64]")
        # Outside it the level's square or its reciprocal leaves float32's range.
        if not is_number(input_gain) or not 1e-40 <= float(input_gain) <= 1e30:
            raise ConfigError(f"input_gain={input_gain!r} must be a number in [1e-40, 1e30]")
        if not is_number(colour_match) or not 0 <= colour_match <= 1:
            raise ConfigError(f"colour_match={colour_match!r} must be a number in [0, 1]")
        return ModelStream(
            self.network, self.rate_grid(sample_rate), int(channels), input_gain=input_gain, colour_match=colour_match
        )

    def apply(
        self,
        content: AudioSource,
        *,
        block_seconds: float | None = None,
        colour_match: float = COLOUR_MATCH,
        max_duration: float | None = None,
    ) -> Result:
        """Stylize a whole content in one pass (block by block, so memory is bounded).

        Parameters
        ----------
        content : str, os.PathLike or (np.ndarray, int)
            A file, or a ``(channels, samples)`` (or ``(samples,)``) waveform and its rate.
        block_seconds : float, optional
            Feed the model this many seconds at a time (default 30, and never more than
            :data:`MAX_BLOCK_SAMPLES` samples over all channels); the output is the same for
            any value, up to float rounding.
        colour_match : float
            As for :meth:`stream`.
        max_duration : float, optional
            Refuse a content longer than this many seconds before decoding it (default: the
            model's settings', 1200 unless trained otherwise). The whole content is decoded
            into memory, as for :func:`~audiostyle.stylize`.

        Returns
        -------
        Result
            ``audio`` float32 ``(channels, samples)`` at the content's rate and length;
            ``log_magnitude`` None, ``history`` empty, ``metrics["model"]`` the model's digest.

        Raises
        ------
        AudioFileError
            A missing, unreadable, empty, too long or non-finite content.
        ConfigError
            A ``max_duration`` that is not a positive number.
        """
        started = time.perf_counter()
        limits = self.config if max_duration is None else self.config.replace(max_duration=max_duration)
        name, audio, rate, info = read_source(content, limits, "content")
        loaded = time.perf_counter()
        seconds = APPLY_BLOCK_SECONDS if block_seconds is None else block_seconds
        if not is_number(seconds) or seconds <= 0:
            raise ConfigError(f"block_seconds={block_seconds!r:.40} must be a positive number")
        stream = self.stream(rate, audio.shape[0], input_gain=analysis_gain(audio), colour_match=colour_match)
        # Past the whole content a block is the whole content (and int(1e308 * rate) would overflow).
        block = max(1, min(int(min(seconds, audio.shape[-1] / rate + 1.0) * rate), MAX_BLOCK_SAMPLES // audio.shape[0]))
        pieces = [stream.process(audio[:, begin : begin + block]) for begin in range(0, audio.shape[-1], block)]
        pieces.append(stream.flush())
        output = np.concatenate(pieces, axis=1)
        finished = time.perf_counter()
        return Result(
            audio=output,
            sample_rate=rate,
            log_magnitude=None,
            history=[],
            timings={"load": loaded - started, "apply": finished - loaded, "total": finished - started},
            metrics={"model": self.digest, "latency_samples": stream.latency_samples},
            config=self.config,
            format=info.format if info is not None else None,
            subtype=info.subtype if info is not None else None,
            inputs=(name,) if info is not None else (),
        )

    # -- files --------------------------------------------------------------------------

    def _description(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "architecture": self.network.architecture,
            "config": self.config.to_dict(),
            "config_digest": self.config.digest(),
            "styles": list(self.style_names),
            "style_weights": list(self.style_weights),
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write ``path`` (safetensors) and its JSON sidecar ``path.with_suffix(".json")``, atomically.

        Raises
        ------
        ConfigError
            ``path`` does not end in ``.safetensors``.
        AudioFileError
            The folder is missing or not writable, or the file exists and ``overwrite`` is False.
        """
        from safetensors.torch import save

        path = Path(path)
        if path.suffix.lower() != ".safetensors":
            raise ConfigError(f"{path}: a style model is saved as .safetensors (the JSON sidecar goes beside it)")
        sidecar = dict(self._description(), digest=self.digest, training=self.training)
        data = save(self.network.weight_tensors(), metadata={"format": MODEL_FORMAT})
        text = json.dumps(sidecar, indent=2, sort_keys=True).encode()
        # The sidecar first: a model file never stands beside a stale description.
        for target, payload in ((path.with_suffix(".json"), text), (path, data)):
            with atomic_write(target, overwrite=overwrite) as temporary:
                temporary.write_bytes(payload)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "auto") -> StyleModel:
        """Read a model file and its sidecar, checked before anything is trusted.

        Raises
        ------
        WeightsError
            A missing file, a file that is not safetensors (nothing is ever unpickled), a
            missing, oversized or invalid sidecar, an unknown format or version, settings that
            do not validate, tensors missing, unexpected, misshapen or non-finite. The message
            names the file.
        """
        path = Path(path)
        if path.suffix.lower() != ".safetensors":
            raise WeightsError(f"{path}: a style model is a .safetensors file (with a .json sidecar)")
        if not path.is_file():
            raise WeightsError(f"{path}: model file not found")
        sidecar_path = path.with_suffix(".json")
        sidecar = read_json(sidecar_path, max_bytes=MAX_SIDECAR_BYTES, what="model description")
        if not isinstance(sidecar, dict) or sidecar.get("format") != MODEL_FORMAT:
            raise WeightsError(f"{sidecar_path}: not a style model description (format must be {MODEL_FORMAT!r})")
        if sidecar.get("version") != MODEL_VERSION:
            raise WeightsError(
                f"{sidecar_path}: model version {sidecar.get('version')!r} is not one this audiostyle reads ({MODEL_VERSION})"
            )
        architecture = validate_architecture(sidecar.get("architecture"), source=str(sidecar_path))
        config = _config_from(sidecar.get("config"), sidecar_path)
        if (architecture["sample_rate"], architecture["n_fft"]) != (config.sample_rate, config.n_fft):
            raise WeightsError(f"{sidecar_path}: the architecture's grid does not match its settings")
        expected = expected_shapes(architecture)
        check_file_size(path, expected)
        tensors = checked_tensors(path, read_tensors(path), expected)
        if not (tensors["band_std"] > 0).all():
            raise WeightsError(f"{path}: tensor 'band_std' must be > 0")
        colour = tensors["style_colour"]
        if (colour < 0).any() or not (float(colour.sum()) == 0 or abs(float(colour.sum()) - 1) < 1e-3):
            raise WeightsError(f"{path}: tensor 'style_colour' must be shares (>= 0, summing to 1) or all zero")
        network = TransformNet(architecture)
        network.load_state_dict(tensors, strict=False)
        names = sidecar.get("styles", [])
        weights = sidecar.get("style_weights", [])
        training = sidecar.get("training", {})
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise WeightsError(f"{sidecar_path}: styles must be a list of names")
        if not isinstance(weights, list) or not all(isinstance(w, (int, float)) for w in weights):
            raise WeightsError(f"{sidecar_path}: style_weights must be a list of numbers")
        model = cls(
            network, config, style_names=names, style_weights=weights, training=training if isinstance(training, dict) else {}
        )
        return model.to(device)


def _config_from(data: Any, source: Path) -> StyleConfig:
    if not isinstance(data, dict):
        raise WeightsError(f"{source}: config must be a JSON object")
    try:
        known = {name: value for name, value in data.items() if name in StyleConfig.__dataclass_fields__}
        for name in ("kernel_widths", "kernel_dilations"):
            if isinstance(known.get(name), list):
                known[name] = tuple(known[name])
        return StyleConfig(**known)
    except (ConfigError, TypeError) as error:
        raise WeightsError(f"{source}: its settings do not validate ({error})") from error
