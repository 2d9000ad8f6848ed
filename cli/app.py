"""The ``audiostyle`` command: ``audiostyle CONTENT STYLE`` plus subcommands.

Importing this module imports neither torch nor the library: ``--help`` and ``--version``
answer at once, and each command imports what it needs when its work starts.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from .apply import EXAMPLES as APPLY_EXAMPLES, apply_command
from .batch import EPILOG as BATCH_EXAMPLES, batch_command
from .plot import plot_command
from .serve import serve_command
from .stylize import EXAMPLES, stylize_command
from .texture import EXAMPLES as TEXTURE_EXAMPLES, texture_command
from .train import EXAMPLES as TRAIN_EXAMPLES, train_command

__all__ = ["app", "main", "version"]

DEFAULT_COMMAND = "stylize"


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument may be a file: then the default command runs.

    ``audiostyle CONTENT STYLE`` stays the main form while subcommands (``batch``,
    ``texture``, ...) live beside it.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=DefaultCommandGroup,
    name="audiostyle",
    help="Neural audio style transfer: re-render CONTENT in the timbre and texture of STYLE.\n\n"
    "Main form: audiostyle CONTENT STYLE [OPTIONS]  (see 'audiostyle stylize --help').",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    """The installed distribution's version, read from its metadata (not by importing torch)."""
    from importlib import metadata

    try:
        return metadata.version("audiostyle")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        import audiostyle

        return audiostyle.__version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"audiostyle {version()}")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Neural audio style transfer."""


app.command(DEFAULT_COMMAND, epilog=EXAMPLES)(stylize_command)
app.command("texture", epilog=TEXTURE_EXAMPLES)(texture_command)
app.command("batch", epilog=BATCH_EXAMPLES)(batch_command)
app.command("train", epilog=TRAIN_EXAMPLES)(train_command)
app.command("apply", epilog=APPLY_EXAMPLES)(apply_command)
app.command("plot")(plot_command)
app.command("serve")(serve_command)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="audiostyle")


if __name__ == "__main__":
    main()
