"""The studio's state and its work: limits, presets, samples, the job queue and the private folder.

:class:`Studio` is what the routes call: it turns a request into a job (checking every limit
before it spends anything), describes jobs as JSON, and stops and cleans up. It knows
nothing of HTTP beyond raising :class:`~.errors.ApiError`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from .errors import ApiError
from .jobs import CANCELLED, DONE, FINISHED, Job, JobManager, QueueFull, ShuttingDown, new_job_id
from .uploads import label, sniff, store_upload
from .workdir import stored_bytes

if TYPE_CHECKING:
    from fastapi import UploadFile

    from audiostyle import Result, StyleConfig
    from audiostyle.io import AudioInfo

__all__ = ["Limits", "JobRequest", "Studio", "find_samples", "result_bytes", "ROLES", "NETWORKS"]

NETWORKS = ("random", "pretrained")
ROLES = ("content", "style")
SAMPLE_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}

logger = logging.getLogger("audiostyle.studio")

#: pyplot keeps global state: one figure at a time, whatever the number of device workers.
_PLOT_LOCK = threading.Lock()
#: Bytes per sample of a WAV result, by the subtype it keeps from a WAV input (others: PCM_16;
#: an unknown subtype counts as the widest).
_WAV_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
#: The FLAC copy holds at most 24-bit samples.
_FLAC_SAMPLE_BYTES = 3
#: Room for a job's spectrogram figure (at 80 dpi it has fewer pixels than this has bytes).
_FIGURE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What the studio's users may make it spend."""

    #: Largest upload per file, in bytes (larger: HTTP 413).
    upload_bytes: int = 100 * 1024 * 1024
    #: Jobs queued or running at once (more: HTTP 429).
    pending_jobs: int = 8
    #: All the files kept at once: uploads, results, figures, and the most the results of the
    #: jobs not yet finished can take (more: HTTP 507).
    storage_bytes: int = 1024 * 1024 * 1024
    #: Seconds a finished job and its files are kept.
    job_ttl: float = 3600.0
    #: Solver iterations per job (the library allows far more; more: HTTP 422).
    iterations: int = 2000

    def __post_init__(self) -> None:
        if self.upload_bytes <= 0:
            raise ValueError(f"upload_limit={self.upload_bytes!r} must be a positive number of bytes")
        if self.storage_bytes <= 0 or self.job_ttl <= 0 or self.iterations < 1:
            raise ValueError(
                f"storage_limit={self.storage_bytes!r}, job_ttl={self.job_ttl!r} and "
                f"max_iterations={self.iterations!r} must be positive"
            )


@dataclass(frozen=True)
class JobRequest:
    """The fields of a job form: inputs (uploads or shipped samples) and settings."""

    mode: Literal["transfer", "texture"]
    content: "UploadFile | None"
    style: "UploadFile | None"
    content_sample: str | None
    style_sample: str | None
    preset: str
    strength: float | None
    iterations: int | None
    network: str | None
    seed: int | None
    duration: float | None
    loop: bool

    def inputs(self) -> dict[str, tuple["UploadFile | None", str | None]]:
        """Each role this mode needs, with its upload and its sample name (one of them given)."""
        roles = {"style": (self.style, self.style_sample)}
        if self.mode == "transfer":
            roles["content"] = (self.content, self.content_sample)
        return roles


def find_samples() -> dict[str, Path]:
    """The shipped sample clips by file name (empty when installed without them)."""
    folder = Path(__file__).resolve().parents[2] / "samples"
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in SAMPLE_EXTENSIONS and p.is_file()}


def result_bytes(infos: Mapping[str, "AudioInfo"], config: "StyleConfig", duration: float | None) -> int:
    """The most a job's result files (WAV, FLAC copy, figure) can take on disk.

    ``infos`` are its inputs' headers by role; the result is as long as the content, or the
    texture's ``duration`` (else the style's), at the highest of their rates and channel counts.
    """
    source = infos.get("content", infos["style"])
    seconds = source.duration if "content" in infos else (duration if duration is not None else source.duration)
    rate = max(config.sample_rate, *(info.sample_rate for info in infos.values()))
    channels = max(info.channels for info in infos.values())
    wav = _WAV_SAMPLE_BYTES.get(source.subtype or "", 8) if source.format == "WAV" else 2
    return int(seconds * rate + config.n_fft) * channels * (wav + _FLAC_SAMPLE_BYTES) + _FIGURE_BYTES


def finish_job(job: Job, result: "Result") -> None:
    """Beside the WAV: a FLAC copy and the run's spectrogram figure (when matplotlib is here)."""
    from audiostyle import ConfigError

    result.save(job.folder / "result.flac")
    try:
        from audiostyle.plots import plot_result

        with _PLOT_LOCK:
            plot_result(result, job.content, job.style, job.folder / "spectrograms.png", titles=job.labels)
    except ConfigError as error:  # matplotlib missing: the page shows players without the figure
        logger.warning("job %s: no spectrograms (%s)", job.id, error)


class Studio:
    """The jobs of one studio, kept in ``root``, within ``limits``."""

    def __init__(
        self,
        root: Path,
        *,
        presets: Mapping[str, "StyleConfig"],
        default_preset: str,
        device: str,
        limits: Limits,
    ) -> None:
        self.root = root
        self.presets = dict(presets)
        self.default_preset = default_preset if default_preset in self.presets else next(iter(self.presets))
        self.device = device
        self.limits = limits
        self.samples = find_samples()
        self.manager = JobManager(finisher=finish_job, max_pending=limits.pending_jobs)
        #: Set on SIGINT/SIGTERM (via stop()) or at shutdown: ends the event streams at once.
        self.stopping = threading.Event()
        self._closed = threading.Event()
        # One admission at a time: the storage check and the queueing it allows are one step.
        self._admitting = threading.Lock()

    # -- life ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel all work and end the event streams; the server calls it when told to exit."""
        self.stopping.set()
        self.manager.stop()

    def close(self) -> None:
        """:meth:`stop`, wait a few seconds for the workers, remove the private folder; once."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.stop()
        self.manager.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def expire(self) -> None:
        self.manager.expire(self.limits.job_ttl)

    # -- reading -------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job:
        job = self.manager.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job {job_id!r}")
        return job

    def options(self) -> dict[str, Any]:
        """What the page can offer: presets, networks, samples, limits."""
        limits = self.limits
        return {
            "presets": {name: {"iterations": c.iterations, "strength": c.strength} for name, c in self.presets.items()},
            "default_preset": self.default_preset,
            "networks": list(NETWORKS),
            "samples": [{"name": name, "url": f"/samples/{name}"} for name in self.samples],
            "upload_limit": limits.upload_bytes,
            "device": self.device,
            "limits": {
                "upload_bytes": limits.upload_bytes,
                "pending_jobs": limits.pending_jobs,
                "storage_bytes": limits.storage_bytes,
                "job_ttl_seconds": limits.job_ttl,
                "iterations": limits.iterations,
            },
        }

    def describe(self, job: Job) -> dict[str, Any]:
        """A job's state, progress, settings, summary and links, as JSON."""
        return {
            "id": job.id,
            "mode": job.mode,
            "status": job.status,
            "cancelling": job.status not in FINISHED and job.cancel_requested.is_set(),
            "position": self.manager.position(job),
            "device": job.device,
            "stage": job.stage,
            "step": job.step,
            "total": job.total,
            "progress": (job.step / job.total if job.total else 0.0) if job.status != DONE else 1.0,
            "losses": job.losses,
            "eta_seconds": job.eta,
            "error": job.error,
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "inputs": job.labels,
            "settings": {
                "preset": job.preset,
                "strength": job.config.strength,
                "iterations": job.config.iterations,
                "network": job.config.network,
                "duration": job.duration,
                "loop": job.config.loop,
            },
            "summary": job.summary,
            "urls": _urls(job),
        }

    # -- new jobs ------------------------------------------------------------------------------
    def create_job(self, request: JobRequest) -> Job:
        """Check the request against every limit, store its inputs, queue the job."""
        config = self._config(request)
        self.expire()
        with _as_api_errors():  # before storing anything; submit() checks again, for requests that raced
            self.manager.check_room()
        self._check_storage(before=True)
        folder = self.root / new_job_id()
        folder.mkdir()
        try:
            with _as_api_errors():
                return self._new_job(request, folder, config)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _new_job(self, request: JobRequest, folder: Path, config: "StyleConfig") -> Job:
        """Store and check the inputs in ``folder``, then queue the job."""
        paths, labels, infos = self._store_inputs(request, folder, config)
        if request.mode == "texture" and request.duration is not None and request.duration > config.max_duration:
            raise ApiError(422, "bad_config", f"duration={request.duration} must be at most {config.max_duration:g} s")
        if request.mode == "texture" and request.duration is not None and request.duration * config.sample_rate < config.n_fft:
            raise ApiError(422, "bad_config", f"duration={request.duration} must be at least {config.n_fft / config.sample_rate:.3f} s")
        duration = request.duration if request.mode == "texture" else None
        job = Job(
            id=folder.name,
            content=paths.get("content"),
            style=paths["style"],
            config=config,
            preset=request.preset,
            labels=labels,
            folder=folder,
            duration=duration,
            result_bytes=result_bytes(infos, config, duration),
        )
        with self._admitting:
            self._check_storage(before=False, adding=job.result_bytes)
            return self.manager.submit(job)

    def _config(self, request: JobRequest) -> "StyleConfig":
        from audiostyle import AudioStyleError

        if request.preset not in self.presets:
            raise ApiError(422, "bad_config", f"preset={request.preset!r} must be one of {sorted(self.presets)}")
        preset = self.presets[request.preset]
        if (request.iterations or preset.iterations) > self.limits.iterations:
            raise ApiError(
                422, "bad_config", f"iterations={request.iterations or preset.iterations} must be at most {self.limits.iterations} in the studio"
            )
        changes = {"strength": request.strength, "iterations": request.iterations, "network": request.network, "seed": request.seed}
        changes = {name: value for name, value in changes.items() if value is not None}
        if request.mode == "texture":
            changes["loop"] = request.loop
        try:
            return preset.replace(device=self.device, **changes)
        except AudioStyleError as error:
            raise ApiError(422, "bad_config", str(error)) from None

    def _check_storage(self, *, before: bool, adding: int = 0) -> None:
        """Refuse when the files kept, the results still to come and ``adding`` reach the
        limit (before storing) or pass it (after)."""
        pending = sum(job.result_bytes for job in self.manager.all() if job.status not in FINISHED)
        used, limit = stored_bytes(self.root) + pending + adding, self.limits.storage_bytes
        if used > limit or (before and used == limit):
            raise ApiError(
                507, "storage_full",
                f"the studio keeps at most {limit} bytes of files and results to come; delete or wait for finished jobs to expire",
            )

    def _store_inputs(
        self, request: JobRequest, folder: Path, config: "StyleConfig"
    ) -> tuple[dict[str, Path], dict[str, str], dict[str, "AudioInfo"]]:
        """Each input in ``folder`` under its role's name (or a shipped sample), checked; its
        label and its header."""
        from audiostyle.io import audio_info

        paths: dict[str, Path] = {}
        labels: dict[str, str] = {}
        infos: dict[str, AudioInfo] = {}
        for role, (upload, sample_name) in request.inputs().items():
            if upload is not None and sample_name:
                raise ApiError(422, "invalid_request", f"give either a {role} file or {role}_sample, not both")
            if upload is not None:
                labels[role] = label(upload.filename, role)
                paths[role] = store_upload(upload.file, folder / role, limit=self.limits.upload_bytes, role=role)
                infos[role] = sniff(paths[role], labels[role], config)
            elif sample_name:
                if sample_name not in self.samples:
                    raise ApiError(422, "invalid_request", f"{role}_sample={sample_name!r} must be one of {sorted(self.samples)}")
                labels[role], paths[role] = sample_name, self.samples[sample_name]
                infos[role] = audio_info(paths[role])
            else:
                raise ApiError(422, "invalid_request", f"a {role} file (or {role}_sample) is required in {request.mode} mode")
        return paths, labels, infos


@contextlib.contextmanager
def _as_api_errors() -> Iterator[None]:
    """The library's and the queue's refusals as HTTP errors."""
    from audiostyle import AudioStyleError

    try:
        yield
    except AudioStyleError as error:  # e.g. an unavailable device
        raise ApiError(422, "bad_config", str(error)) from None
    except QueueFull as error:
        raise ApiError(429, "queue_full", str(error)) from None
    except ShuttingDown as error:
        raise ApiError(503, "shutting_down", str(error)) from None


def _urls(job: Job) -> dict[str, Any]:
    """Where a job's events, inputs, result and figure are (those that exist)."""
    base = f"/jobs/{job.id}"
    urls: dict[str, Any] = {"self": base, "events": f"{base}/events"}
    if job.status != CANCELLED:  # a cancelled job's files are gone
        urls["inputs"] = {role: f"{base}/inputs/{role}" for role in ROLES if role != "content" or job.content is not None}
    if job.status == DONE:
        urls["result"] = {"wav": f"{base}/result?format=wav", "flac": f"{base}/result?format=flac"}
        if (job.folder / "spectrograms.png").exists():
            urls["spectrograms"] = f"{base}/spectrograms.png"
    return urls
