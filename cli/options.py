"""The options the commands share, declared once, and the one builder of their ``StyleConfig``.

A command lists the groups it takes (``@shared(ENGINE, WEIGHTS, OUTPUT)``); the decorator adds
those options to its signature, for Typer to parse, and hands the values to the command as one
:class:`Given`, whose :meth:`Given.config` builds the ``StyleConfig``. Nothing here imports
the library at import time: ``audiostyle --help`` must not wait for torch.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Mapping, Optional, Sequence

import typer

if TYPE_CHECKING:
    from audiostyle import StyleConfig

__all__ = [
    "ENGINE",
    "WEIGHTS",
    "CREATIVE",
    "EXTRAS",
    "STFT",
    "OUTPUT",
    "DeviceOpt",
    "DebugOpt",
    "Given",
    "shared",
    "optional",
    "output_option",
    "build_config",
    "parse_kernel_widths",
    "parse_weighted",
]


def optional(kind: Any, *names: str, help: str) -> Any:
    """The annotated type of an option that is None unless given: ``optional(int, "--seed", help=...)``."""
    return Annotated[Optional[kind], typer.Option(*names, help=help, show_default=False)]


def output_option(default: str) -> Any:
    """The ``--output/-o`` audio file option, with what it defaults to."""
    return optional(Path, "--output", "-o", help=f"Output file; the extension picks the format. Default: {default}.")


PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Settings preset: default (a melody on a tonal style keeps its notes), fast, instrument (always keeps the notes) or classic.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")]
IterationsOpt = optional(int, "--iterations", "-n", help="Solver iterations (overrides the preset).")
ContentWeightOpt = optional(float, "--content-weight", help="Weight of the content loss.")
StyleWeightOpt = optional(float, "--style-weight", help="Weight of the style loss.")
FiltersOpt = optional(int, "--filters", help="Random network: number of filters.")
KernelWidthsOpt = optional(
    str,
    "--kernel-widths",
    help="Random network: odd kernel widths in frames, comma-separated, each optionally dilated as WIDTH:DILATION, e.g. 3,3:3 or 3,7,15.",
)
NetworkOpt = optional(
    str,
    "--network",
    help="random, pretrained, or a .safetensors file (JSON architecture beside it). pretrained scores below random: "
    "further from a rendered ground truth (log-mel 13.2 vs 11.3 dB) and 0.29 vs 0.60 on the quality yardstick, see docs/limits.md.",
)
SeedOpt = optional(int, "--seed", help="Seed of the network weights and noise.")
SampleRateOpt = optional(int, "--sample-rate", help="Working sample rate in Hz (the output keeps its input's rate).")
NFftOpt = optional(int, "--n-fft", help="STFT size in samples.")
HopLengthOpt = optional(int, "--hop-length", help="STFT hop in samples (<= n_fft / 2).")
MaxDurationOpt = optional(float, "--max-duration", help="Refuse inputs longer than this many seconds (default 1200).")
StrengthOpt = optional(
    float, "--strength", help="Content/style balance in [0, 1]: 0 content only, 1 style only; 0.5 uses the weights as set."
)
StyleViewOpt = optional(
    str,
    "--style-view",
    help="What the style lends: auto (default/fast presets: its instrument without its notes when both files play notes, "
    "else its whole sound), spectrum (its whole sound, notes included) or envelope (its instrument only, always).",
)
SegmentOpt = optional(float, "--segment-seconds", help="Stylize longer content in overlapping segments of this many seconds (default 30).")
PlotOpt = optional(Path, "--plot", help="Also write a figure (.png/.pdf/.svg): the spectrograms of the inputs and the output, and the losses.")
ReportOpt = optional(Path, "--report", help="Also write a JSON report: config, versions, device, losses per step, timings, quality.")
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]


def _group(*options: tuple[str, Any, Any]) -> tuple[inspect.Parameter, ...]:
    """Keyword parameters ``(name, annotated type, default)`` for a command's signature."""
    return tuple(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default) for name, kind, default in options)


#: The engine's settings every stylizing command takes.
ENGINE = _group(
    ("preset", PresetOpt, "default"),
    ("iterations", IterationsOpt, None),
    ("filters", FiltersOpt, None),
    ("kernel_widths", KernelWidthsOpt, None),
    ("network", NetworkOpt, None),
    ("seed", SeedOpt, None),
    ("device", DeviceOpt, "auto"),
    ("sample_rate", SampleRateOpt, None),
    ("n_fft", NFftOpt, None),
    ("hop_length", HopLengthOpt, None),
    ("max_duration", MaxDurationOpt, None),
)
#: The balance of content and style: only for commands that have a content.
WEIGHTS = _group(("content_weight", ContentWeightOpt, None), ("style_weight", StyleWeightOpt, None))
#: The creative controls of a transfer.
CREATIVE = _group(("strength", StrengthOpt, None), ("style_view", StyleViewOpt, None), ("segment_seconds", SegmentOpt, None))
#: Files written beside the audio.
EXTRAS = _group(("plot", PlotOpt, None), ("report", ReportOpt, None))
#: The analysis settings alone (commands that only draw).
STFT = _group(("n_fft", NFftOpt, None), ("hop_length", HopLengthOpt, None))
#: Writing files and talking to the terminal.
OUTPUT = _group(("overwrite", OverwriteOpt, False), ("quiet", QuietOpt, False), ("debug", DebugOpt, False))

#: Options that are ``StyleConfig`` fields of the same name (``preset`` and ``kernel_widths`` are parsed).
_CONFIG_FIELDS = (
    "iterations",
    "content_weight",
    "style_weight",
    "filters",
    "network",
    "seed",
    "device",
    "sample_rate",
    "n_fft",
    "hop_length",
    "max_duration",
    "strength",
    "style_view",
    "segment_seconds",
    "loop",
)


def parse_kernel_widths(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``"3,3:3"`` -> widths ``(3, 3)`` and dilations ``(1, 3)``; no dilation given -> ``()``."""
    from audiostyle import ConfigError

    widths, dilations = [], []
    try:
        for part in text.replace(" ", "").split(","):
            if part:
                width, _, dilation = part.partition(":")
                widths.append(int(width))
                dilations.append(int(dilation) if dilation else 1)
    except ValueError:
        raise ConfigError(
            f"kernel_widths={text!r} must be comma-separated odd integers, each optionally WIDTH:DILATION, e.g. 3,7,15 or 3,3:3",
            parameters=("kernel_widths",),
        ) from None
    return tuple(widths), (tuple(dilations) if any(d != 1 for d in dilations) else ())


def build_config(preset: str = "default", **settings: Any) -> "StyleConfig":
    """The preset with the settings the user gave applied on top (None: not given).

    ``settings`` are ``StyleConfig`` fields, except ``kernel_widths``, given as the option's
    text (``"3,3:3"``) and parsed into widths and dilations.
    """
    from audiostyle import get_preset

    changes = {name: value for name, value in settings.items() if value is not None}
    if "kernel_widths" in changes:
        changes["kernel_widths"], changes["kernel_dilations"] = parse_kernel_widths(changes["kernel_widths"])
    return get_preset(preset).replace(**changes)


def parse_weighted(text: str) -> tuple[Path, float]:
    """``FILE`` or ``FILE:WEIGHT`` -> (path, weight); the weight defaults to 1.

    A suffix that is not a number is part of the file name; the library checks the weights.
    """
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return Path(head), float(tail)
        except ValueError:
            pass
    return Path(text), 1.0


@dataclass(frozen=True)
class Given:
    """The shared options one command was given, by parameter name."""

    values: Mapping[str, Any]
    #: The command's options by parameter name, as their longest flag (for error hints).
    flags: Mapping[str, str]

    @property
    def quiet(self) -> bool:
        return bool(self.values.get("quiet", False))

    @property
    def debug(self) -> bool:
        return bool(self.values.get("debug", False))

    @property
    def overwrite(self) -> bool:
        return bool(self.values.get("overwrite", False))

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def config(self, **extra: Any) -> "StyleConfig":
        """The ``StyleConfig`` of the preset and the engine options given, plus ``extra`` fields."""
        settings = {name: self.values[name] for name in (*_CONFIG_FIELDS, "kernel_widths") if name in self.values}
        return build_config(self.values.get("preset", "default"), **settings, **extra)


def _flags(parameters: Sequence[inspect.Parameter]) -> dict[str, str]:
    """Each option's longest flag by parameter name, from the ``typer.Option`` in its annotation."""
    flags = {}
    for parameter in parameters:
        for meta in getattr(parameter.annotation, "__metadata__", ()):
            # In Annotated, typer.Option's first name sits in ``default``, the others in ``param_decls``.
            names = [getattr(meta, "default", None), *(getattr(meta, "param_decls", None) or ())]
            declared = [name for name in names if isinstance(name, str) and name.startswith("--")]
            if declared:
                flags[parameter.name] = max(declared, key=len).split("/")[0]
    return flags


def shared(*groups: Sequence[inspect.Parameter]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the options of ``groups`` to a command; it receives their values as ``given: Given``.

    The command's own parameters come first in ``--help``, then the groups' in order; an
    option in two groups is added once.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(command, eval_str=True)
        added: dict[str, inspect.Parameter] = {}
        for parameter in (p for group in groups for p in group):
            added.setdefault(parameter.name, parameter)
        kept = [p for name, p in own.parameters.items() if name != "given"]

        parameters = [*kept, *added.values()]
        flags = _flags(parameters)

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            given = Given({name: values.pop(name) for name in added}, flags)
            return command(**values, given=given)

        run.__signature__ = own.replace(parameters=parameters, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate
