"""Imported by each worker process of the local Dask cluster only (a Dask worker preload).

A Ctrl-C in a terminal reaches the whole foreground process group, and systemd or Slurm send
SIGTERM to a whole group too: the cluster's worker processes get it with the batch process.
Each would print a traceback of its event loop's KeyboardInterrupt, or die at once, which the
cluster answers by starting it again and reporting the loss. They ignore both instead: the
batch process cancels the jobs and closes the cluster, whose nannies stop their workers by
message (and SIGKILL one that does not end in time). Two messages of that close are left
out, so that a stopped batch prints its one line: the warning that a running job was cancelled
(which Dask says happens only at close), and the error of a heartbeat that found the scheduler
gone (this cluster's scheduler lives in the batch process, which is stopping: it is never lost
while the batch goes on).
"""

import logging
import signal


class _NotTheCloseMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.endswith("ended with CancelledError")
            or message.startswith("Failed to communicate with scheduler during heartbeat")
        )


signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for name in ("distributed.worker.state_machine", "distributed.worker"):
    logging.getLogger(name).addFilter(_NotTheCloseMessages())
