"""Shared pieces of the commands: option declarations, config building, error handling."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer


from audiostyle import AudioStyleError, ConfigError, StyleConfig, get_preset

from .signals import INTERRUPTED_EXIT, TERMINATED_EXIT, Terminated, terminate_as_interrupt

# Option declarations used by every command that runs the engine, declared once.
PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Settings preset: fast, default or classic.")]
IterationsOpt = Annotated[Optional[int], typer.Option("--iterations", "-n", help="Solver iterations (overrides the preset).", show_default=False)]
ContentWeightOpt = Annotated[Optional[float], typer.Option("--content-weight", help="Weight of the content loss.", show_default=False)]
StyleWeightOpt = Annotated[Optional[float], typer.Option("--style-weight", help="Weight of the style loss.", show_default=False)]
FiltersOpt = Annotated[Optional[int], typer.Option("--filters", help="Random network: number of filters.", show_default=False)]
KernelWidthsOpt = Annotated[Optional[str], typer.Option("--kernel-widths", help="Random network: odd kernel widths in frames, comma-separated, each optionally dilated as WIDTH:DILATION, e.g. 3,3:3 or 3,7,15.", show_default=False)]
NetworkOpt = Annotated[Optional[str], typer.Option("--network", help="random, pretrained, or a .safetensors file (JSON architecture beside it).", show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of the network weights and noise.", show_default=False)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")]
SampleRateOpt = Annotated[Optional[int], typer.Option("--sample-rate", help="Working sample rate in Hz (output keeps the content's rate).", show_default=False)]
NFftOpt = Annotated[Optional[int], typer.Option("--n-fft", help="STFT size in samples.", show_default=False)]
HopLengthOpt = Annotated[Optional[int], typer.Option("--hop-length", help="STFT hop in samples (<= n_fft / 2).", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
MaxDurationOpt = Annotated[Optional[float], typer.Option("--max-duration", help="Refuse inputs longer than this many seconds (default 1200).", show_default=False)]


def parse_kernel_widths(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``"3,3:3"`` -> widths ``(3, 3)`` and dilations ``(1, 3)``; no dilation given -> ``()``."""
    widths, dilations = [], []
    try:
        for part in text.replace(" ", "").split(","):
            if part:
                width, _, dilation = part.partition(":")
                widths.append(int(width))
                dilations.append(int(dilation) if dilation else 1)
    except ValueError:
        raise ConfigError(
            f"--kernel-widths={text!r} must be comma-separated odd integers, each optionally WIDTH:DILATION, "
            "e.g. 3,7,15 or 3,3:3"
        ) from None
    return tuple(widths), (tuple(dilations) if any(d != 1 for d in dilations) else ())


def build_config(
    preset: str,
    *,
    iterations: int | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    filters: int | None = None,
    kernel_widths: str | None = None,
    network: str | None = None,
    seed: int | None = None,
    device: str = "auto",
    sample_rate: int | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
    max_duration: float | None = None,
) -> StyleConfig:
    """The preset with the options the user gave applied on top."""
    changes = {
        "iterations": iterations,
        "content_weight": content_weight,
        "style_weight": style_weight,
        "filters": filters,
        "network": network,
        "seed": seed,
        "sample_rate": sample_rate,
        "n_fft": n_fft,
        "hop_length": hop_length,
        "max_duration": max_duration,
    }
    changes = {name: value for name, value in changes.items() if value is not None}
    if kernel_widths is not None:
        changes["kernel_widths"], changes["kernel_dilations"] = parse_kernel_widths(kernel_widths)
    return get_preset(preset).replace(device=device, **changes)


def configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def fail(message: str, code: int) -> "typer.Exit":
    typer.echo(f"audiostyle: error: {message}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def guarded(debug: bool) -> Iterator[None]:
    """Turn library errors into one line on stderr and the documented exit code.

    2 usage/config, 3 input file, 4 runtime failure, 130 interrupted (Ctrl-C), 143 terminated
    (SIGTERM, which unwinds like Ctrl-C inside the block so no partial file is left).
    """
    try:
        with terminate_as_interrupt():
            yield
    except AudioStyleError as error:
        if debug:
            traceback.print_exc()
        raise fail(str(error), error.exit_code) from None
    except Terminated:
        raise fail("terminated; no partial output was left", TERMINATED_EXIT) from None
    except KeyboardInterrupt:
        raise fail("interrupted; no partial output was left", INTERRUPTED_EXIT) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except MemoryError:
        raise fail("out of memory; try --preset fast, fewer --filters or a shorter clip", 4) from None
    except OSError as error:
        if debug:
            traceback.print_exc()
        raise fail(describe_os_error(error), 4) from None
    except Exception as error:  # noqa: BLE001 - the last line of defence of a CLI
        if debug:
            traceback.print_exc()
        raise fail(f"unexpected {type(error).__name__}: {error} (rerun with --debug for details)", 4) from None


def describe_os_error(error: OSError) -> str:
    """``"out/a.wav: No space left on device"``: the file(s) and the system's reason, in one line."""
    reason = error.strerror or str(error) or type(error).__name__
    files = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(files)}: {reason}" if files else reason


def default_output_name(content: Path, style: Path) -> Path:
    """``<content>-<style>.<content's extension>`` in the current folder (.wav if unwritable)."""
    from audiostyle.audio import WRITABLE_EXTENSIONS

    suffix = content.suffix.lower() if content.suffix.lower() in WRITABLE_EXTENSIONS else ".wav"
    return Path.cwd() / f"{content.stem}-{style.stem}{suffix}"
