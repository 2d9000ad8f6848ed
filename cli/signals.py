"""SIGTERM handled like Ctrl-C, so that a killed run cleans up after itself.

Python turns SIGINT into :class:`KeyboardInterrupt`, which unwinds through
``atomic_write`` and removes its temporary file. SIGTERM (what ``kill``, systemd, Docker and
batch schedulers send) would end the process on the spot and leave a ``.part`` file behind;
:func:`terminate_as_interrupt` makes it raise :class:`Terminated` instead, a
``KeyboardInterrupt`` that the CLI maps to exit code 143 (128 + 15) rather than 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["Terminated", "terminate_as_interrupt", "INTERRUPTED_EXIT", "TERMINATED_EXIT"]

#: 128 + SIGINT, the shell's convention.
INTERRUPTED_EXIT = 130
#: 128 + SIGTERM.
TERMINATED_EXIT = 143


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; unwinds like Ctrl-C so every ``finally`` runs."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"received signal {signum}")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; the previous handler comes back after.

    A no-op outside the main thread (only it may set signal handlers), e.g. under a web
    server's worker threads.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
