"""What a batch is made of: :class:`Job`, the records the manifest holds, :class:`BatchReport`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .. import StyleConfig

#: What renders a job's output: per-clip optimisation against a style file, or a trained model.
JobKind = Literal["style", "model"]

#: ``progress(record, report)`` after each job's record is written.
BatchProgress = Callable[[dict, "BatchReport"], None]
#: How an executor hands each job's record back to the run, which writes it to the manifest.
Emit = Callable[[dict], None]


@dataclass(frozen=True)
class Job:
    """One content file stylized with one style (or one style model) into one output file.

    Attributes
    ----------
    input, output, style : str
        Paths of the content, the file to write and the style file; for a ``"model"`` job,
        ``style`` is the model file (``.safetensors``).
    config : StyleConfig
        The settings; a model job's are the model's own (``StyleModel.config``).
    config_hash : str
        Identity of the settings and the style file, or a model's digest; a finished output
        with the same hash is not redone, so a retrained model redoes its outputs.
    duration : float or None
        The input's length in seconds from its header (None if the header is unreadable).
    skip_reason : str or None
        Set when the job is not to run (finished earlier, link out of the tree, ...).
    relative : str
        ``output`` relative to the output folder (how the manifest matches it on a rerun).
    kind : {"style", "model"}
        ``"style"``: stylize with the prepared style (an optimisation per file); ``"model"``:
        apply the trained style model (one forward pass).
    replace : bool
        Whether the output may replace a file at its path: with ``overwrite``, or when the
        planner chose to make again an output that was there (an earlier run's). A file that
        appears there after planning (another run's, the user's) is otherwise never replaced.
    """

    input: str
    output: str
    style: str
    config: StyleConfig
    config_hash: str
    duration: float | None = None
    skip_reason: str | None = None
    relative: str = ""
    kind: JobKind = "style"
    replace: bool = False


def record(job: Job, status: str, **fields: Any) -> dict:
    """The manifest record of ``job`` with ``status`` (started, done, failed or skipped)."""
    return {
        "input": job.input,
        "output": job.output,
        "relative": job.relative,
        "style": job.style,
        "kind": job.kind,
        "config_hash": job.config_hash,
        "status": status,
        "duration": job.duration,
        **fields,
        # A started record says when the job began; the others when it ended.
        "started" if status == "started" else "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass
class BatchReport:
    """What :func:`run_batch` did: one record per job (as in the manifest), in finishing order."""

    records: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    interrupted: bool = False
    total: int = 0
    #: What stopped the run when ``interrupted``: the ``KeyboardInterrupt`` (or subclass, such
    #: as the CLI's SIGTERM exception) that arrived, so that a caller can tell the signals apart.
    interrupt: BaseException | None = None

    def _with(self, status: str) -> list[dict]:
        return [r for r in self.records if r["status"] == status]

    @property
    def done(self) -> list[dict]:
        return self._with("done")

    @property
    def failed(self) -> list[dict]:
        return self._with("failed")

    @property
    def skipped(self) -> list[dict]:
        return self._with("skipped")

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio stylized (finished jobs only)."""
        return sum(r.get("duration") or 0.0 for r in self.done)

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing was left unfinished."""
        return not self.failed and not self.interrupted
