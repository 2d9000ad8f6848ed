"""Imported by each worker process of the local Dask cluster only (a Dask worker preload).

A Ctrl-C in a terminal reaches the whole foreground process group, and systemd or Slurm send
SIGTERM to a whole group too: the cluster's worker processes get it with the batch process.
Each would print a traceback of its event loop's KeyboardInterrupt, or die at once, which the
cluster answers by starting it again and reporting the loss. They ignore both instead: the
batch process cancels the jobs and closes the cluster, whose nannies stop their workers by
message (and SIGKILL one that does not end in time). Closing a worker that is running a job
also logs a warning that it cancelled the job, which Dask says happens only then; that one is
left out, so a stopped batch prints its one line.
"""

import logging
import signal


class _NotTheCancelAtClose(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().endswith("ended with CancelledError")


signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
logging.getLogger("distributed.worker.state_machine").addFilter(_NotTheCancelAtClose())
