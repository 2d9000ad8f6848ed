"""Many jobs: plan a sample library's stylization, prepare each style once, run on an executor.

:func:`plan_batch` turns input files and folders plus one or more styles into a list of
:class:`Job` (one content x one style -> one output file, mirroring the input tree), already
marking what an earlier run finished. :func:`run_batch` runs them in this process, in local
worker processes, or on a Dask cluster, and appends JSON lines to the manifest (one per job
as it starts, one as it ends), from which a later run resumes.

Every style's network and statistics are made once (:func:`audiostyle.prepare_style`) in the
calling process and shipped to the workers, so each worker builds nothing per job.

Modules: ``jobs`` (Job, records, BatchReport), ``manifest``, ``plan``, ``signals`` (an output
and its record go together), ``execute`` (one job), ``worker`` and ``local`` (this process
or worker processes), ``dask``, ``run`` (run_batch).
"""

from .jobs import BatchReport, Job
from .manifest import MANIFEST_NAME, read_manifest
from .plan import DEFAULT_PATTERNS, estimate_rate, plan_batch, summarize_plan
from .run import EXECUTORS, check_executor, run_batch

__all__ = [
    "DEFAULT_PATTERNS",
    "EXECUTORS",
    "MANIFEST_NAME",
    "BatchReport",
    "Job",
    "check_executor",
    "estimate_rate",
    "plan_batch",
    "read_manifest",
    "run_batch",
    "summarize_plan",
]
