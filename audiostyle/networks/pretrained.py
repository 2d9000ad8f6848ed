"""A trained 1-D timbre CNN, and loading of shipped or user-supplied network weights.

The network sees a log-mel view computed differentiably from the engine's linear
``log1p(|STFT|)``, so one set of weights serves every sample rate and FFT size. Weights are
read from safetensors (or from ``.pt``/``.pth`` with ``torch.load(weights_only=True)``);
pickled code is never executed.

Front end (exact)::

    magnitude = expm1(log_magnitude).clamp_min(0) * (reference_n_fft / n_fft)
    log_mel   = log1p(mel_fb @ magnitude / mel_floor)   # librosa.filters.mel(norm="slaney")
    x         = (log_mel - band_mean) / band_std    # fixed per-band normalisation, from the weights

``mel_fb`` has band edges fixed in Hz (``fmin`` .. ``fmax``, independent of the sample rate),
so band *k* means the same frequencies at 16, 22.05 or 44.1 kHz; bands above a low sample
rate's Nyquist are empty (zero input). The ``reference_n_fft / n_fft`` factor keeps a
sinusoid's mel value independent of the FFT size (a Hann-windowed peak grows with ``n_fft``).
``mel_floor`` sets where ``log1p`` turns from linear to logarithmic: slaney-normalised mel
values of full-scale audio are only about 1 to 10, so without it ``log1p`` would stay nearly
linear and the quiet half of the dynamic range would vanish; ``1e-3`` gives about 80 dB.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..dsp.mel import mel_filters
from ..dsp.stft import linear_magnitude
from ..errors import ConfigError, WeightsError
from ..validation import is_int, is_number
from .weights_file import check_file_size, checked_tensors, read_json, read_tensors

__all__ = [
    "TimbreCNN",
    "load_network",
    "validate_architecture",
    "expected_tensor_shapes",
    "mel_filterbank",
    "PRETRAINED_NAME",
    "WEIGHTS_DIR",
]

PRETRAINED_NAME = "timbre_cnn"
WEIGHTS_DIR = Path(__file__).parent / "weights"
ARCHITECTURE_FORMAT = "audiostyle.timbre_cnn"
ACTIVATIONS = {"relu": torch.relu, "gelu": torch.nn.functional.gelu}

# Bounds on what a weights file and its JSON may make us allocate. The tensors themselves are
# bounded by the file's size; these bound what small numbers in the JSON could inflate: the
# mel filterbank (n_mels x n_fft / 2 floats), the padding of a dilated convolution, the layers.
MAX_ARCHITECTURE_BYTES = 1024 * 1024
MAX_MELS = 1024
MAX_CONV_LAYERS = 64
MAX_KERNEL_SIZE = 255
MAX_DILATION = 64


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    *,
    n_mels: int,
    fmin: float,
    fmax: float,
    reference_n_fft: int,
    mel_floor: float,
) -> torch.Tensor:
    """Mel filterbank [shape=(n_mels, n_fft // 2 + 1)], float32, scaled by ``reference_n_fft / (n_fft * mel_floor)``.

    Band edges are fixed in Hz; bands above ``sample_rate / 2`` come out empty on purpose.
    """
    bank = mel_filters(sample_rate, n_fft, n_mels, fmin=fmin, fmax=fmax, norm="slaney")
    return torch.from_numpy((bank * (reference_n_fft / (n_fft * mel_floor))).astype(np.float32))


def _positive_int(value: Any) -> bool:
    return is_int(value) and value >= 1


def validate_architecture(architecture: Any, *, source: str = "architecture") -> dict:
    """Check an architecture description and return it; raise WeightsError naming the bad key.

    Expected keys: ``format`` (``"audiostyle.timbre_cnn"``), ``front_end`` (``n_mels``,
    ``fmin``, ``fmax``, ``reference_n_fft``, ``mel_floor``), ``conv_layers`` (list of ``channels``,
    ``kernel_size`` (odd), ``dilation``), ``activation`` (``relu`` or ``gelu``),
    ``content_layers``, ``style_layers`` (indices into the conv layers) and optionally
    ``heads`` (``{"program": n_classes, "family": n_classes}``, the training classifier).
    """
    if not isinstance(architecture, dict):
        raise WeightsError(f"{source}: must be a JSON object, got {type(architecture).__name__}")
    missing = [
        key
        for key in ("format", "front_end", "conv_layers", "activation", "content_layers", "style_layers")
        if key not in architecture
    ]
    if missing:
        raise WeightsError(f"{source}: missing key(s) {missing}")
    if architecture["format"] != ARCHITECTURE_FORMAT:
        raise WeightsError(
            f"{source}: format={architecture['format']!r} must be {ARCHITECTURE_FORMAT!r}"
        )
    front = architecture["front_end"]
    if not isinstance(front, dict):
        raise WeightsError(f"{source}: front_end must be an object")
    for key in ("n_mels", "reference_n_fft"):
        if not _positive_int(front.get(key)):
            raise WeightsError(f"{source}: front_end.{key}={front.get(key)!r} must be a positive integer")
    if front["n_mels"] > MAX_MELS:
        raise WeightsError(f"{source}: front_end.n_mels={front['n_mels']} must be at most {MAX_MELS}")
    for key in ("fmin", "fmax"):
        value = front.get(key)
        if not is_number(value) or value < 0:
            raise WeightsError(f"{source}: front_end.{key}={value!r} must be a finite number >= 0")
    floor = front.get("mel_floor")
    if not is_number(floor) or floor <= 0:
        raise WeightsError(f"{source}: front_end.mel_floor={floor!r} must be a finite number > 0")
    if not front["fmin"] < front["fmax"]:
        raise WeightsError(f"{source}: front_end.fmin={front['fmin']} must be < fmax={front['fmax']}")
    layers = architecture["conv_layers"]
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_CONV_LAYERS:
        raise WeightsError(f"{source}: conv_layers must be a list of 1 to {MAX_CONV_LAYERS} layers")
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise WeightsError(f"{source}: conv_layers[{index}] must be an object")
        for key in ("channels", "kernel_size", "dilation"):
            if not _positive_int(layer.get(key)):
                raise WeightsError(
                    f"{source}: conv_layers[{index}].{key}={layer.get(key)!r} must be a positive integer"
                )
        if layer["kernel_size"] % 2 == 0:
            raise WeightsError(
                f"{source}: conv_layers[{index}].kernel_size={layer['kernel_size']} must be odd "
                "(so output frames stay aligned with input frames)"
            )
        for key, most in (("kernel_size", MAX_KERNEL_SIZE), ("dilation", MAX_DILATION)):
            if layer[key] > most:
                raise WeightsError(f"{source}: conv_layers[{index}].{key}={layer[key]} must be at most {most}")
    if not isinstance(architecture["activation"], str) or architecture["activation"] not in ACTIVATIONS:
        raise WeightsError(
            f"{source}: activation={architecture['activation']!r} must be one of {sorted(ACTIVATIONS)}"
        )
    for key in ("content_layers", "style_layers"):
        indices = architecture[key]
        if (
            not isinstance(indices, list)
            or not indices
            or not all(is_int(i) and 0 <= i < len(layers) for i in indices)
        ):
            raise WeightsError(
                f"{source}: {key}={indices!r} must be a non-empty list of indices in [0, {len(layers) - 1}]"
            )
    heads = architecture.get("heads", {})
    if not isinstance(heads, dict) or not all(
        isinstance(name, str) and _positive_int(count) for name, count in heads.items()
    ):
        raise WeightsError(f"{source}: heads={heads!r} must map head names to class counts")
    return architecture


def expected_tensor_shapes(architecture: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor name the weights file must hold, with its shape."""
    n_mels = architecture["front_end"]["n_mels"]
    shapes: dict[str, tuple[int, ...]] = {"band_mean": (n_mels,), "band_std": (n_mels,)}
    in_channels = n_mels
    for index, layer in enumerate(architecture["conv_layers"]):
        shapes[f"convs.{index}.weight"] = (layer["channels"], in_channels, layer["kernel_size"])
        shapes[f"convs.{index}.bias"] = (layer["channels"],)
        in_channels = layer["channels"]
    # Heads read mean and standard deviation over time of the last map.
    for name, count in architecture.get("heads", {}).items():
        shapes[f"heads.{name}.weight"] = (count, 2 * in_channels)
        shapes[f"heads.{name}.bias"] = (count,)
    return shapes


class TimbreCNN(torch.nn.Module):
    """1-D CNN over time on a log-mel view of the engine's log-magnitude (a FeatureNetwork).

    Parameters
    ----------
    architecture : dict
        The JSON architecture description (see :func:`validate_architecture`).
    sample_rate : int
        Sample rate of the spectrograms it will see, in Hz.
    n_fft : int
        Their FFT size; the input has ``n_fft // 2 + 1`` frequency bins.

    Attributes
    ----------
    content_layers, style_layers : tuple of int
        Indices into the list ``forward`` returns.

    Notes
    -----
    Each block is ``Conv1d(kernel_size, dilation, 'same' zero padding) -> activation``; the
    output keeps the input's frame count. Weights start random (seeded by torch's global
    generator only in training); use :func:`load_network` for trained weights.
    """

    def __init__(self, architecture: Mapping[str, Any], *, sample_rate: int, n_fft: int) -> None:
        super().__init__()
        architecture = validate_architecture(dict(architecture))
        if not _positive_int(sample_rate) or not 1000 <= sample_rate <= 768000:
            raise ConfigError(f"sample_rate={sample_rate!r} must be an integer in [1000, 768000]")
        if not _positive_int(n_fft) or not 16 <= n_fft <= 65536:
            raise ConfigError(f"n_fft={n_fft!r} must be an integer in [16, 65536]")
        self.architecture = architecture
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.n_freq = n_fft // 2 + 1
        front = architecture["front_end"]
        self.n_mels = front["n_mels"]
        self.register_buffer(
            "mel_fb",
            mel_filterbank(
                sample_rate,
                n_fft,
                n_mels=front["n_mels"],
                fmin=float(front["fmin"]),
                fmax=float(front["fmax"]),
                reference_n_fft=front["reference_n_fft"],
                mel_floor=float(front["mel_floor"]),
            ),
        )
        self.register_buffer("band_mean", torch.zeros(self.n_mels))
        self.register_buffer("band_std", torch.ones(self.n_mels))
        self.convs = torch.nn.ModuleList()
        in_channels = self.n_mels
        for layer in architecture["conv_layers"]:
            self.convs.append(
                torch.nn.Conv1d(
                    in_channels,
                    layer["channels"],
                    layer["kernel_size"],
                    dilation=layer["dilation"],
                    padding=layer["dilation"] * (layer["kernel_size"] - 1) // 2,
                )
            )
            in_channels = layer["channels"]
        self.heads = torch.nn.ModuleDict(
            {name: torch.nn.Linear(2 * in_channels, count) for name, count in architecture.get("heads", {}).items()}
        )
        self.activation = ACTIVATIONS[architecture["activation"]]
        self.content_layers = tuple(architecture["content_layers"])
        self.style_layers = tuple(architecture["style_layers"])

    def log_mel(self, log_magnitude: torch.Tensor) -> torch.Tensor:
        """Un-normalised log-mel [shape=(batch, n_mels, frames)] of ``log_magnitude`` [shape=(batch, n_freq, frames)]."""
        if log_magnitude.ndim != 3 or log_magnitude.shape[1] != self.n_freq:
            raise ConfigError(
                f"input shape {tuple(log_magnitude.shape)} must be (batch, {self.n_freq}, frames) "
                f"for n_fft={self.n_fft}"
            )
        magnitude = linear_magnitude(log_magnitude)
        return torch.log1p(torch.matmul(self.mel_fb.to(magnitude.dtype), magnitude))

    def maps_from_log_mel(self, log_mel: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps from an un-normalised log-mel [shape=(batch, n_mels, frames)]."""
        x = (log_mel - self.band_mean[:, None]) / self.band_std[:, None]
        maps = []
        for conv in self.convs:
            x = self.activation(conv(x))
            maps.append(x)
        return maps

    def forward(self, log_magnitude: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps, one per conv block (after its activation).

        Parameters
        ----------
        log_magnitude : torch.Tensor [shape=(batch, n_fft // 2 + 1, frames)]
            ``log1p(|STFT|)`` of the engine.

        Returns
        -------
        list of torch.Tensor [shape=(batch, channels_i, frames)]
        """
        return self.maps_from_log_mel(self.log_mel(log_magnitude))

    def classify(self, maps: list[torch.Tensor], *, dropout: float = 0.0) -> dict[str, torch.Tensor]:
        """Logits of each head [shape=(batch, n_classes)] from the last map's mean and std over time.

        The heads exist for training (and for checking a model card's accuracy); style
        transfer only needs :meth:`forward`. ``dropout`` applies in training mode only.
        """
        if not self.heads:
            raise ConfigError("this network has no classifier heads")
        last = maps[-1]
        pooled = torch.cat([last.mean(dim=-1), last.std(dim=-1, unbiased=False)], dim=1)
        pooled = torch.nn.functional.dropout(pooled, dropout, training=self.training)
        return {name: head(pooled) for name, head in self.heads.items()}

    def weight_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors a weights file holds (names of :func:`expected_tensor_shapes`)."""
        state = self.state_dict()
        return {name: state[name].detach().contiguous() for name in expected_tensor_shapes(self.architecture)}


def _read_architecture(path: Path) -> dict:
    architecture = read_json(path, max_bytes=MAX_ARCHITECTURE_BYTES, what="architecture description")
    return validate_architecture(architecture, source=str(path))


def load_network(spec: str | os.PathLike = "pretrained", *, sample_rate: int, n_fft: int) -> TimbreCNN:
    """Load the shipped timbre CNN or user weights, checked against their architecture.

    Parameters
    ----------
    spec : str or os.PathLike
        ``"pretrained"`` for the shipped weights, or the path of ``X.safetensors``
        (or ``X.pt`` / ``X.pth``, loaded with ``weights_only=True``) with ``X.json`` beside it.
    sample_rate : int
        Sample rate of the spectrograms the network will see.
    n_fft : int
        Their FFT size.

    Returns
    -------
    TimbreCNN
        In eval mode, parameters frozen (``requires_grad=False``); gradients still flow to
        the input.

    Raises
    ------
    WeightsError
        Missing file, unsupported extension, pickled payload, a file that cannot be read as
        weights (damaged, truncated, any garbage) or is larger than its architecture's tensors,
        missing/invalid/out-of-bounds JSON, a tensor missing, unexpected, misshapen or
        non-finite. The message names the file.
    ConfigError
        ``sample_rate`` or ``n_fft`` out of range.

    Examples
    --------
    >>> net = load_network("pretrained", sample_rate=22050, n_fft=2048)
    >>> maps = net(torch.zeros(1, 1025, 40))
    """
    if isinstance(spec, str) and spec == "pretrained":
        weights_path = WEIGHTS_DIR / f"{PRETRAINED_NAME}.safetensors"
    else:
        weights_path = Path(spec)
    if not weights_path.is_file():
        raise WeightsError(f"{weights_path}: weights file not found")
    if weights_path.suffix.lower() not in (".safetensors", ".pt", ".pth"):
        raise WeightsError(
            f"{weights_path}: unsupported weights format {weights_path.suffix!r}; use .safetensors, .pt or .pth"
        )
    architecture = _read_architecture(weights_path.with_suffix(".json"))
    expected = expected_tensor_shapes(architecture)
    check_file_size(weights_path, expected)
    checked = checked_tensors(weights_path, read_tensors(weights_path), expected)
    if not (checked["band_std"] > 0).all():
        raise WeightsError(f"{weights_path}: tensor 'band_std' must be > 0")
    network = TimbreCNN(architecture, sample_rate=sample_rate, n_fft=n_fft)
    network.load_state_dict(checked, strict=False)
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network
