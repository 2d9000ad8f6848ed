"""Many jobs: plan a sample library's stylization, prepare each style once, run on an executor.

:func:`plan_batch` turns input files and folders plus one or more styles into a list of
:class:`Job` (one content x one style -> one output file, mirroring the input tree), already
marking what an earlier run finished; :func:`plan_model_batch` does the same for one trained
style model. :func:`run_batch` runs them in this process, in local worker processes, or on a
Dask cluster, and appends JSON lines to the manifest (one per job as it starts, one as it
ends), from which a later run resumes.

Each job's output is made by a renderer, one per config hash, made once in the calling
process and shipped to the workers, so each worker builds nothing per job: a style's network
and statistics (:func:`audiostyle.prepare_style`), or a loaded style model.

Modules: ``jobs`` (Job, records, BatchReport), ``manifest``, ``plan``, ``signals`` (an output
and its record go together), ``execute`` (renderers, one job), ``worker`` and ``local`` (this
process or worker processes), ``dask``, ``run`` (run_batch).
"""

from .jobs import BatchReport, Job
from .manifest import MANIFEST_NAME, read_manifest
from .plan import DEFAULT_PATTERNS, estimate_rate, plan_batch, plan_model_batch, summarize_plan
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
    "plan_model_batch",
    "read_manifest",
    "run_batch",
    "summarize_plan",
]
