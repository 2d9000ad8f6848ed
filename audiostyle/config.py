"""StyleConfig: every setting of a run, validated once; named presets; device choice."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .validation import is_int, is_number, require, validate_stft_params

__all__ = ["HISTORY_SIZE", "MAX_HISTORY_SIZE", "PRESETS", "SOLVERS", "StyleConfig", "get_preset", "resolve_device"]

SOLVERS = ("lbfgs", "adam")
#: L-BFGS curvature pairs kept by default (scipy's default); each pair is two copies of the
#: solved tensor.
HISTORY_SIZE = 10
#: Most curvature pairs the solver accepts.
MAX_HISTORY_SIZE = 100

INITS = ("content", "noise")
PHASE_INITS = ("content", "random")
LOUDNESS_MODES = ("rms", "none")
#: What the style statistics read: the whole spectrum, or its envelope with the content's
#: fine structure kept (:mod:`audiostyle.objective.source_filter`), or ``"auto"``: the
#: envelope when both the content and the style play notes (:mod:`audiostyle.dsp.notes`).
STYLE_VIEWS = ("spectrum", "envelope", "auto")
#: ``strength`` multiplies the style/content weight ratio by ``(s / (1 - s)) ** STRENGTH_EXPONENT``.
STRENGTH_EXPONENT = 3


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda, then mps, then cpu; anything else is checked to exist.

    Raises
    ------
    ConfigError
        An unknown device name or one that is not available here.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"device={device!r} is not a device name (auto, cpu, cuda, cuda:N, mps)") from error
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={device!r}: only auto, cpu, cuda, cuda:N and mps are supported")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}: CUDA is not available here; use device='auto' or 'cpu'")
    if resolved.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ConfigError(f"device={device!r}: MPS is not available here; use device='auto' or 'cpu'")
    return resolved


@dataclass(frozen=True)
class StyleConfig:
    """All settings of one style transfer. Frozen and validated on creation.

    Parameters
    ----------
    sample_rate : int
        Working sample rate in Hz (8000..192000); inputs are resampled to it and the output
        back to the content's rate.
    n_fft, hop_length : int
        STFT size and hop (``hop_length <= n_fft // 2``).
    network : str
        ``"random"`` (seeded random CNN), ``"pretrained"`` (shipped weights) or a path to a
        ``.safetensors`` file with a JSON architecture beside it.
    filters : int
        Random network: number of filters (1..16384), shared among ``kernel_widths``.
    kernel_widths : tuple of int
        Random network: odd temporal kernel widths in frames (1..255).
    kernel_dilations : tuple of int
        Random network: the dilation of each kernel width (1..64), or empty for none. A width
        3 kernel dilated by 3 spans 7 frames with 3 taps, so its statistics see longer time
        scales at the cost of a short kernel. :meth:`replace` with new ``kernel_widths`` and
        no ``kernel_dilations`` resets them to empty.
    mel_bands : int
        Random network: 0 feeds it the ``n_fft // 2 + 1`` linear frequency bins; N > 0 averages
        the magnitudes into N mel bands first (:class:`audiostyle.networks.MelBands`), which
        shrinks the network and its products about ``n_freq / N``-fold. N at or above the
        number of bins means the linear bins. The optimised spectrogram keeps every linear bin
        either way. Other networks ignore it.
    seed : int
        Seeds the network weights and any noise initialisation.
    content_weight, style_weight : float
        Weights of the relative content and style losses (>= 0, not both 0).
    texture_weight : float
        Weight of the band-envelope texture statistics loss (>= 0; 0 turns it off), see
        :mod:`audiostyle.objective.texture`.
    envelope_weight : float
        Weight of the loudness-contour loss (>= 0; 0 turns it off): keeps the content's level
        per frame, so pauses stay pauses and accents stay accents while the spectrum takes the
        style (see :class:`audiostyle.objective.LoudnessContour`). Scaled with the content
        weight by ``strength``.
    iterations : int
        Maximum solver iterations (1..100000).
    solver : {"lbfgs", "adam"}
    learning_rate : float
        L-BFGS initial step or Adam learning rate (> 0).
    tolerance : float
        Relative loss change under which the solver stops early (0 disables).
    history_size : int
        L-BFGS curvature pairs kept (1..100), in the spectrogram solve and the refine stage.
        Each pair holds two copies of the solved tensor and costs four passes over it per
        iteration.
    init : {"content", "noise"}
        Starting point of the optimisation.
    griffin_lim_iters : int
        Phase reconstruction iterations (0..10000).
    refine_steps : int
        L-BFGS steps on the waveform itself after Griffin-Lim (0..10000; 0 skips), so that the
        output's spectrogram is one a real signal has (see :mod:`audiostyle.pipeline.waveform`).
    momentum : float
        Fast Griffin-Lim momentum in [0, 1.5); 0 is the classic algorithm.
    phase_init : {"content", "random"}
        Griffin-Lim's starting phase.
    loudness : {"rms", "none"}
        Match the output's RMS to the content's (then limit peaks to -1 dBFS in both cases).
    max_duration : float
        Longest accepted input in seconds (> 0).
    device : str
        ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    strength : float
        The content/style balance in [0, 1], one monotonic knob on top of the two weights
        (see :meth:`loss_weights`): 0 keeps the content only, 1 the style only, and the
        default 0.5 uses ``content_weight`` and ``style_weight`` unchanged. Ignored by
        texture synthesis (no content).
    loop : bool
        Texture synthesis only: make the output loop seamlessly (circular padding of the
        network in time and a circular STFT for the reconstruction).
    segment_seconds : float
        Longer content is stylized in overlapping segments of this many seconds (1..3600)
        against the same style statistics, so memory is bounded by a segment.
    full_band : bool
        When the output's rate is above ``sample_rate``, rebuild the band between the
        working rate's Nyquist frequency and the output's in the style's spectral shape
        (see :mod:`audiostyle.dsp.bandwidth`); False leaves the output band-limited there.
    style_view : {"spectrum", "envelope", "auto"}
        What the style statistics (Grams and texture) read. ``"spectrum"``: the whole
        spectrum, with the content's network features as the content term. ``"envelope"``:
        only the spectral envelope, and the content term keeps the content's fine structure
        (its harmonics, i.e. its notes), so the style's instrument moves over without its
        notes (see :mod:`audiostyle.objective.source_filter`). ``"auto"``: the envelope view
        when both the content and the style play notes (a melody on one instrument, a tune
        for another), else the spectrum view (speech, drums, textures; see
        :mod:`audiostyle.dsp.notes`); ``Result.metrics["style_view"]`` says which ran.
    envelope_resolution_hz : float
        The envelope view (``"envelope"``, or ``"auto"`` choosing it): the finest spectral
        detail the envelope keeps, in Hz;
        ``round(sample_rate / envelope_resolution_hz)`` DCT coefficients along frequency,
        from 2 to ``n_fft // 2 + 1``.
    split_floor : float
        The envelope view: the split works on ``log(magnitude + split_floor)``
        (1e-6..100, linear magnitude of the level-normalised analysis); a floor keeps the
        gaps between harmonics out of the envelope.
    fine_structure_weight : float
        The envelope view: weight of the style's transposition-invariant
        fine-structure statistics (>= 0; 0 turns them off): how peaked its partials are and
        at which intervals they sit, without which notes
        (:class:`audiostyle.objective.FineStructureStatistics`).
    onset_weight : float
        Weight of the content's onset contour (>= 0; 0 turns it off): keeps where its notes
        start while the spectrum takes the style (see :class:`audiostyle.objective.OnsetContour`).
        Scaled with the content weight by ``strength``.
    pre_echo_db : float
        Deepest cut in dB (0..60; 0 turns it off) of the pre-echo suppression after the
        waveform is rebuilt: where the output's energy starts within a window before the
        content's onsets, it is turned down to follow the content's timing (see
        :mod:`audiostyle.dsp.pre_echo`). Content runs only; loops and textures have no onsets
        to follow.
    colour_match : float
        Share of the way (0..1, in dB; 0 turns it off) the output's long-term colour, its
        spectrum smoothed over two octaves, is moved to the style's by one fixed equaliser
        over the whole output; level stays (see :mod:`audiostyle.dsp.colour`).
    band_ceiling_db : float or None
        The spectrum view (``"spectrum"``, or ``"auto"`` choosing it): how far (dB, 0..40)
        any bin of the output may stand above the style's level there, each counted from
        its own loudest band; a bin above is turned down to it, frame by frame, so the
        output stays out of bands the style leaves empty (see :mod:`audiostyle.dsp.ceiling`).
        None turns it off. The envelope view keeps the content's notes wherever they lie,
        so it never applies there.
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    network: str = "random"
    filters: int = 2048
    kernel_widths: tuple[int, ...] = (3, 7, 15)
    kernel_dilations: tuple[int, ...] = ()
    mel_bands: int = 0
    seed: int = 0
    content_weight: float = 1.0
    style_weight: float = 100.0
    texture_weight: float = 0.0
    envelope_weight: float = 0.0
    iterations: int = 60
    solver: str = "lbfgs"
    learning_rate: float = 1.0
    tolerance: float = 1e-4
    history_size: int = HISTORY_SIZE
    init: str = "content"
    griffin_lim_iters: int = 64
    refine_steps: int = 0
    momentum: float = 0.99
    phase_init: str = "content"
    loudness: str = "rms"
    max_duration: float = 1200.0
    device: str = "auto"
    strength: float = 0.5
    loop: bool = False
    segment_seconds: float = 30.0
    full_band: bool = True
    style_view: str = "spectrum"
    envelope_resolution_hz: float = 600.0
    split_floor: float = 0.3
    fine_structure_weight: float = 0.0
    onset_weight: float = 0.0
    pre_echo_db: float = 0.0
    colour_match: float = 0.0
    band_ceiling_db: float | None = None

    def __post_init__(self) -> None:
        self._store_plain_values()
        self._check_analysis_and_network()
        self._check_losses_and_solver()
        self._check_reconstruction_and_output()

    def _store_plain_values(self) -> None:
        # numpy scalars and lists (from JSON) are accepted and stored as plain Python values,
        # so that to_dict() and digest() always serialise.
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, np.integer):
                object.__setattr__(self, spec.name, int(value))
            elif isinstance(value, np.floating):
                object.__setattr__(self, spec.name, float(value))
        for name in ("kernel_widths", "kernel_dilations"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(int(v) if isinstance(v, np.integer) else v for v in value))

    def _check_analysis_and_network(self) -> None:
        require(
            is_int(self.sample_rate) and 8000 <= self.sample_rate <= 192000,
            f"sample_rate={self.sample_rate!r} must be an integer in [8000, 192000] Hz",
        )
        validate_stft_params(self.n_fft, self.hop_length)
        require(isinstance(self.network, str) and self.network != "", "network must be 'random', 'pretrained' or a .safetensors path")
        require(
            is_int(self.filters) and 1 <= self.filters <= 16384,
            f"filters={self.filters!r} must be an integer in [1, 16384]",
        )
        require(
            isinstance(self.kernel_widths, tuple)
            and 1 <= len(self.kernel_widths) <= 16
            and all(is_int(w) and 1 <= w <= 255 and w % 2 == 1 for w in self.kernel_widths),
            f"kernel_widths={self.kernel_widths!r} must be 1 to 16 odd integers in [1, 255]",
        )
        require(
            len(self.kernel_widths) <= self.filters,
            f"filters={self.filters} must be >= the number of kernel widths ({len(self.kernel_widths)})",
        )
        require(
            isinstance(self.kernel_dilations, tuple)
            and len(self.kernel_dilations) in (0, len(self.kernel_widths))
            and all(is_int(d) and 1 <= d <= 64 for d in self.kernel_dilations),
            f"kernel_dilations={self.kernel_dilations!r} must be empty (all 1) or one integer in [1, 64] "
            f"per kernel width ({len(self.kernel_widths)})",
        )
        if all(d == 1 for d in self.kernel_dilations):
            object.__setattr__(self, "kernel_dilations", ())  # one spelling of "no dilation"
        require(
            is_int(self.mel_bands) and 0 <= self.mel_bands <= 16384,
            f"mel_bands={self.mel_bands!r} must be an integer in [0, 16384] (0: linear bins)",
        )
        require(is_int(self.seed) and 0 <= self.seed < 2**63, f"seed={self.seed!r} must be an integer in [0, 2**63)")
        self._check_style_view()

    def _check_style_view(self) -> None:
        require(self.style_view in STYLE_VIEWS, f"style_view={self.style_view!r} must be one of {STYLE_VIEWS}")
        resolution = self.envelope_resolution_hz
        require(
            is_number(resolution) and 0 < resolution <= self.sample_rate / 2,
            f"envelope_resolution_hz={resolution!r} must be a number in (0, {self.sample_rate / 2:g}] Hz",
        )
        if self.style_view != "spectrum":
            # Only the envelope view splits the spectrum: its DCT needs 2 to n_freq coefficients.
            n_freq = self.n_fft // 2 + 1
            require(
                resolution * n_freq >= self.sample_rate * 0.5 and round(self.sample_rate / resolution) <= n_freq,
                f"envelope_resolution_hz={resolution!r} must be at least {self.sample_rate / n_freq:.4g} Hz "
                f"at sample_rate={self.sample_rate} and n_fft={self.n_fft}",
            )
        require(
            is_number(self.split_floor) and 1e-6 <= self.split_floor <= 100,
            f"split_floor={self.split_floor!r} must be a number in [1e-6, 100]",
        )

    def _check_losses_and_solver(self) -> None:
        for name in ("content_weight", "style_weight", "texture_weight", "envelope_weight", "fine_structure_weight", "onset_weight"):
            value = getattr(self, name)
            require(is_number(value) and 0 <= value <= 1e9, f"{name}={value!r} must be a number in [0, 1e9]")
        require(
            self.content_weight > 0 or self.style_weight > 0,
            "content_weight and style_weight must not both be 0",
        )
        require(
            is_int(self.iterations) and 1 <= self.iterations <= 100000,
            f"iterations={self.iterations!r} must be an integer in [1, 100000]",
        )
        require(self.solver in SOLVERS, f"solver={self.solver!r} must be one of {SOLVERS}")
        require(
            is_number(self.learning_rate) and 0 < self.learning_rate <= 1e3,
            f"learning_rate={self.learning_rate!r} must be a number in (0, 1000]",
        )
        require(
            is_number(self.tolerance) and 0 <= self.tolerance < 1,
            f"tolerance={self.tolerance!r} must be a number in [0, 1)",
        )
        require(
            is_int(self.history_size) and 1 <= self.history_size <= MAX_HISTORY_SIZE,
            f"history_size={self.history_size!r} must be an integer in [1, {MAX_HISTORY_SIZE}]",
        )
        require(self.init in INITS, f"init={self.init!r} must be one of {INITS}")

    def _check_reconstruction_and_output(self) -> None:
        require(
            is_int(self.griffin_lim_iters) and 0 <= self.griffin_lim_iters <= 10000,
            f"griffin_lim_iters={self.griffin_lim_iters!r} must be an integer in [0, 10000]",
        )
        require(
            is_int(self.refine_steps) and 0 <= self.refine_steps <= 10000,
            f"refine_steps={self.refine_steps!r} must be an integer in [0, 10000]",
        )
        require(
            is_number(self.momentum) and 0 <= self.momentum < 1.5,
            f"momentum={self.momentum!r} must be a number in [0, 1.5)",
        )
        require(self.phase_init in PHASE_INITS, f"phase_init={self.phase_init!r} must be one of {PHASE_INITS}")
        require(self.loudness in LOUDNESS_MODES, f"loudness={self.loudness!r} must be one of {LOUDNESS_MODES}")
        require(
            is_number(self.max_duration) and self.max_duration > 0,
            f"max_duration={self.max_duration!r} must be a positive number of seconds",
        )
        require(isinstance(self.device, str), f"device={self.device!r} must be a string")
        require(
            is_number(self.strength) and 0 <= self.strength <= 1,
            f"strength={self.strength!r} must be a number in [0, 1]",
        )
        require(
            any(weight > 0 for weight in self.loss_weights()),
            f"strength={self.strength} leaves both loss weights at 0 "
            f"(content_weight={self.content_weight}, style_weight={self.style_weight})",
        )
        require(isinstance(self.loop, bool), f"loop={self.loop!r} must be True or False")
        require(
            is_number(self.pre_echo_db) and 0 <= self.pre_echo_db <= 60,
            f"pre_echo_db={self.pre_echo_db!r} must be a number of dB in [0, 60]",
        )
        require(
            is_number(self.colour_match) and 0 <= self.colour_match <= 1,
            f"colour_match={self.colour_match!r} must be a number in [0, 1]",
        )
        require(
            self.band_ceiling_db is None or (is_number(self.band_ceiling_db) and 0 <= self.band_ceiling_db <= 40),
            f"band_ceiling_db={self.band_ceiling_db!r} must be None or a number of dB in [0, 40]",
        )
        require(isinstance(self.full_band, bool), f"full_band={self.full_band!r} must be True or False")
        require(
            is_number(self.segment_seconds) and 1 <= self.segment_seconds <= 3600,
            f"segment_seconds={self.segment_seconds!r} must be a number of seconds in [1, 3600]",
        )

    def loss_weights(self) -> tuple[float, float]:
        """``(content_weight, style_weight)`` after applying ``strength``.

        The style/content weight ratio is multiplied by ``m = (strength / (1 - strength)) ** 3``,
        which grows monotonically from 0 (content only) through 1 at ``strength=0.5`` (the
        configured weights, unchanged) to infinity (style only): 0.25 and 0.75 divide and
        multiply the ratio by 27, 0.1 and 0.9 by 729. The larger of the two weights keeps its
        configured value (``m <= 1`` scales the style weight, ``m > 1`` the content weight), so
        the solver's step sizes stay as tuned.
        """
        if self.strength >= 1:
            return 0.0, self.style_weight
        multiplier = (self.strength / (1.0 - self.strength)) ** STRENGTH_EXPONENT
        if multiplier <= 1:
            return self.content_weight, self.style_weight * multiplier
        return self.content_weight / multiplier, self.style_weight

    def envelope_loss_weight(self) -> float:
        """``envelope_weight`` after ``strength``: scaled like the content weight, whose side it is on."""
        return self._content_side(self.envelope_weight)

    def onset_loss_weight(self) -> float:
        """``onset_weight`` after ``strength``: scaled like the content weight, whose side it is on."""
        return self._content_side(self.onset_weight)

    def _content_side(self, weight: float) -> float:
        if self.content_weight == 0:
            return weight
        return weight * self.loss_weights()[0] / self.content_weight

    def replace(self, **changes: Any) -> StyleConfig:
        """A copy with some fields changed (validated again).

        New ``kernel_widths`` without ``kernel_dilations`` mean undilated kernels.

        Raises
        ------
        ConfigError
            An unknown field name or an invalid value.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown StyleConfig field(s) {unknown}; valid: {sorted(known)}")
        if "kernel_widths" in changes:
            # Dilations belong to the widths they were given with, not to new ones.
            changes.setdefault("kernel_dilations", ())
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of the fields."""
        data = asdict(self)
        data["kernel_widths"] = list(self.kernel_widths)
        data["kernel_dilations"] = list(self.kernel_dilations)
        return data

    def digest(self) -> str:
        """Short stable hash of the settings that change the output (not the device)."""
        data = self.to_dict()
        data.pop("device")
        data.pop("max_duration")
        # Added after release: configs that leave them at their old behaviour keep the
        # digests their manifests hold.
        if not data["kernel_dilations"]:
            data.pop("kernel_dilations")
        if data["history_size"] == HISTORY_SIZE:
            data.pop("history_size")
        if not data["full_band"]:
            data.pop("full_band")
        for name in ("onset_weight", "pre_echo_db", "colour_match"):
            if not data[name]:
                data.pop(name)
        if data["band_ceiling_db"] is None or data["style_view"] == "envelope":
            # Only the spectrum view applies it.
            data.pop("band_ceiling_db")
        if data["style_view"] == "spectrum":
            # Without the envelope view its settings change nothing.
            for name in ("style_view", "envelope_resolution_hz", "split_floor", "fine_structure_weight"):
                data.pop(name)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# The default: two short kernels (one dilated) over 256 mel bands, a loudness contour and
# band-envelope texture terms, few Griffin-Lim iterations made good by refining the
# waveform; a melody on a tonal style keeps its notes (the envelope view, chosen per run).
# Why each value: docs/presets-and-tuning.md.
_DEFAULT = StyleConfig(
    filters=3072,
    kernel_widths=(3, 3),
    kernel_dilations=(1, 3),
    mel_bands=256,
    style_weight=600.0,
    texture_weight=2.0,
    envelope_weight=5.0,
    iterations=30,
    griffin_lim_iters=8,
    refine_steps=20,
    history_size=5,
    pre_echo_db=18.0,
    colour_match=0.5,
    band_ceiling_db=6.0,
    style_view="auto",
    fine_structure_weight=30.0,
)

PRESETS: dict[str, StyleConfig] = {
    # Ulyanov & Lebedev (2016): 4096 filters of width 11, L-BFGS from noise, 500 plain
    # Griffin-Lim iterations from random phase, and nothing above the working band.
    "classic": StyleConfig(
        filters=4096,
        kernel_widths=(11,),
        content_weight=1.0,
        style_weight=100.0,
        iterations=300,
        tolerance=0.0,
        init="noise",
        griffin_lim_iters=500,
        momentum=0.0,
        phase_init="random",
        full_band=False,
    ),
    "default": _DEFAULT,
    # A preview: the default with a third of its filters and two thirds of its iterations
    # and refine steps; it keeps refining, which matters most to the result.
    "fast": _DEFAULT.replace(filters=1024, iterations=20, refine_steps=10),
    # The default's envelope view for every content: the style's instrument (its spectral
    # envelope and how its partials sit) without its notes, the content's fine structure
    # kept, whatever the content. Why each value: docs/research/timbre-envelope-split.md.
    "instrument": _DEFAULT.replace(style_view="envelope"),
}


def get_preset(name: str) -> StyleConfig:
    """The preset called ``name``.

    Raises
    ------
    ConfigError
        An unknown name (the message lists the presets).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"preset={name!r} must be one of {sorted(PRESETS)}") from None
