"""Signal deferral: an output and its manifest record are written together or not at all."""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any


class SignalHold:
    """Holds Ctrl-C and SIGTERM while in its block, then delivers the first that came.

    Used around writing an output and appending its record: an interrupt between the two
    would leave a finished file that the manifest does not know, which a rerun then refuses
    to overwrite. Writing one short output takes milliseconds, so nobody waits on it.
    Re-entrant (an inner block holds nothing more); a no-op outside the main thread, since
    only it may set handlers. Signal handlers belong to the process: use the one
    :data:`hold_signals`.
    """

    #: Signals held while an output is written and recorded.
    signals = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._depth = 0
        self._previous: dict[int, Any] = {}
        self._received: list[int] = []

    def __enter__(self) -> SignalHold:
        if threading.current_thread() is threading.main_thread():
            if self._depth == 0:
                self._received = []
                self._previous = {signum: signal.signal(signum, self._hold) for signum in self.signals}
            self._depth += 1
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._depth -= 1
        if self._depth > 0:
            return
        previous, received = self._previous, self._received
        for signum, handler in previous.items():
            # None: a handler not set from Python, which cannot be put back; the default is closest.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if received:
            _deliver(received[0], previous[received[0]])

    def _hold(self, signum: int, frame: Any) -> None:
        self._received.append(signum)


def _deliver(signum: int, handler: Any) -> None:
    """Run the handler a held signal would have run (SIG_DFL: the default action)."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)


#: The process's one hold: nested blocks anywhere in the batch share it.
hold_signals = SignalHold()
