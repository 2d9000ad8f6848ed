"""Imported by the forkserver of the local worker processes only (multiprocessing's preload).

It loads the library, torch included, once for every worker to fork from, and blocks SIGINT
and SIGTERM in the server, so that each worker starts with them blocked: one arriving while a
worker starts waits until :func:`~audiostyle.batch.worker.init_worker` has installed the
worker's handlers and unblocks them, and is then handled like any other. A worker that died of
it instead (Ctrl-C, or SIGTERM to the whole process group while it was starting) would break
the pool, which then fails every running job, even one whose output is being written, and
leaves that output unrecorded. The server itself ends with the batch process (when its pipe
closes), not by these signals. The server starts with both ignored (see
:func:`~audiostyle.batch.local.worker_context`), so that one arriving while it loads does not
end it with a traceback; once they are blocked their default actions are restored, which the
workers inherit instead of that ignoring.

The workers it forks report an error that ends them through ``sys.excepthook``: one forked
after its batch stopped is told so quietly (see :func:`~audiostyle.batch.worker.report_start_error`).
"""

import signal
import sys

from . import worker  # the library and torch, for the workers to inherit

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
sys.excepthook = worker.report_start_error
