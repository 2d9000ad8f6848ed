"""How a command ends: the library's errors become one line on stderr and a documented exit code.

Exit codes: 0 success, 1 some batch jobs failed, 2 usage, settings or network weights,
3 an input or output file, 4 a failure at run time, 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM). The library's errors name settings (``max_duration``); here they gain the flag
of this command that changes them (``--max-duration``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import traceback
from typing import Any, Iterable, Iterator, Mapping

import typer

from .signals import INTERRUPTED_EXIT, TERMINATED_EXIT, Terminated, terminate_as_interrupt

__all__ = [
    "USAGE_EXIT",
    "FILE_EXIT",
    "RUNTIME_EXIT",
    "INTERRUPTED_EXIT",
    "TERMINATED_EXIT",
    "exit_code",
    "describe",
    "describe_os_error",
    "fail",
    "guarded",
    "configure_logging",
]

USAGE_EXIT = 2
FILE_EXIT = 3
RUNTIME_EXIT = 4

#: ``name=value`` or ``name (now value)`` in a message: the library's ways of naming a setting.
_SETTING = re.compile(r"\b([a-z][a-z0-9_]*)(?:=| \(now )")
#: A snake_case word: a setting's name even without a value.
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")
#: Settings that a command's option of another name sets.
_OPTION_OF = {"kernel_dilations": "kernel_widths"}


def _errors() -> Any:
    """The library's error module, or None before the library is imported.

    An error of its family exists only once the library is imported, and importing it here
    could fail in turn while a failed import is being reported.
    """
    return sys.modules.get("audiostyle.errors")


def exit_code(error: BaseException) -> int:
    """The exit code of a command that failed with ``error``: the one table of them."""
    errors = _errors()
    codes: list[tuple[type[BaseException], int]] = [(Terminated, TERMINATED_EXIT), (KeyboardInterrupt, INTERRUPTED_EXIT)]
    if errors is not None:
        codes += [(errors.ConfigError, USAGE_EXIT), (errors.WeightsError, USAGE_EXIT), (errors.AudioFileError, FILE_EXIT)]
    return next((code for kind, code in codes if isinstance(error, kind)), RUNTIME_EXIT)


def _named_settings(text: str, parameters: Iterable[str], flags: Mapping[str, str]) -> list[str]:
    """Settings with a flag here that an error names: its ``parameters``, ``name=`` or a snake_case name in ``text``."""
    named = [*parameters, *_SETTING.findall(text), *(word for word in _SNAKE.findall(text) if word in flags)]
    return [name for name in dict.fromkeys(_OPTION_OF.get(name, name) for name in named) if name in flags]


def _with_flags(text: str, parameters: Iterable[str], flags: Mapping[str, str]) -> str:
    """``text`` in this command's terms: a setting named with a plain value becomes its flag
    (``overwrite=True`` -> ``--overwrite``, ``n_fft=3`` -> ``--n-fft 3``, ``executor='dask'`` ->
    ``--executor dask``); the flags of the other settings it names follow in parentheses."""
    see = []
    for name in _named_settings(text, parameters, flags):
        flag = flags[name]
        text = re.sub(rf"\b{name}=True\b", flag, text)
        text = re.sub(rf"\b{name}=(?:'([\w.:/+-]*)'|(-?[\d.]+(?:e-?\d+)?|inf|nan)\b)", lambda m, flag=flag: f"{flag} {m.group(1) or m.group(2)}", text)
        if flag not in text:
            see.append(flag)
    return f"{text} (see {', '.join(see)})" if see else text


def describe(error: BaseException, flags: Mapping[str, str]) -> str:
    """The error's message in this command's terms: ``flags`` are its options by setting name."""
    parameters = getattr(error, "parameters", ())
    problem = getattr(error, "problem", None)
    if isinstance(problem, str):  # a file's error: the path is left as it is
        return f"{getattr(error, 'path', '')}: {_with_flags(problem, parameters, flags)}"
    return _with_flags(str(error), parameters, flags)


def describe_os_error(error: OSError) -> str:
    """``"out/a.wav: No space left on device"``: the file(s) and the system's reason, in one line."""
    reason = error.strerror or str(error) or type(error).__name__
    files = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(files)}: {reason}" if files else reason


def fail(message: str, code: int) -> typer.Exit:
    """Print ``audiostyle: error: <message>`` on stderr; returns the Exit to raise."""
    typer.echo(f"audiostyle: error: {message}", err=True)
    return typer.Exit(code)


def configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@contextlib.contextmanager
def guarded(debug: bool, flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Run a command's work: errors become one line and their exit code, SIGTERM unwinds like Ctrl-C.

    ``flags`` are the command's options by setting name, for the hints of :func:`describe`.

    Inside the block SIGTERM raises :class:`~.signals.Terminated`, so that ``finally`` clauses
    remove partial files as they do for Ctrl-C; tracebacks are printed only with ``debug``.
    """
    configure_logging(debug)
    try:
        with terminate_as_interrupt():
            yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Terminated:
        raise fail("terminated; no partial output was left", TERMINATED_EXIT) from None
    except KeyboardInterrupt:
        raise fail("interrupted; no partial output was left", INTERRUPTED_EXIT) from None
    except MemoryError:
        raise fail("out of memory; try --preset fast, fewer --filters or a shorter clip", RUNTIME_EXIT) from None
    except Exception as error:  # noqa: BLE001 - the last line of defence of a CLI
        if debug:
            traceback.print_exc()
        raise fail(_message(error, flags or {}), exit_code(error)) from None


def _message(error: Exception, flags: Mapping[str, str]) -> str:
    errors = _errors()
    if errors is not None and isinstance(error, errors.AudioStyleError):
        return describe(error, flags)
    if isinstance(error, OSError):
        return describe_os_error(error)
    return f"unexpected {type(error).__name__}: {error} (rerun with --debug for details)"
