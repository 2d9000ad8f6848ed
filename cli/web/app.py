"""The local web studio: a FastAPI app serving one static page and a small JSON API.

Every file the studio keeps (uploads, results, spectrogram images) lives in a private
temporary folder under names the server chooses; nothing the client sends is ever used as
a path. The folder is removed when the app shuts down, and a studio that starts removes the
folders of studios that were killed (see :mod:`.workdir`).

Only its user drives it: :mod:`.guard` checks the Host, the origin of every change and the
launch token. What a request can make it spend is bounded before it is spent: bytes and
parts per request, bytes per file, headers-only sniffing of uploads, jobs waiting or running,
bytes stored, iterations per job; finished jobs expire after ``job_ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import re
import secrets
import shutil
import struct
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Iterable, Literal, Mapping

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import audiostyle
from audiostyle import AudioFileError, AudioStyleError, ConfigError, StyleConfig
from audiostyle.audio import (
    FLOAT_BYTES,
    MAX_CHANNELS,
    MAX_DECODED_BYTES,
    MAX_SAMPLE_RATE,
    AudioInfo,
    audio_info,
    probe_audio,
)

from .guard import AccessGuard, BodyLimit
from .jobs import CANCELLED, DONE, FINISHED, Job, JobManager, QueueFull, ShuttingDown, new_job_id
from .workdir import make_workdir, stored_bytes, sweep_orphans

__all__ = [
    "create_app",
    "find_samples",
    "DEFAULT_UPLOAD_LIMIT",
    "DEFAULT_STORAGE_LIMIT",
    "DEFAULT_JOB_TTL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_ITERATIONS",
]

DEFAULT_UPLOAD_LIMIT = 100 * 1024 * 1024
#: All the files the studio keeps at once (uploads, results, figures).
DEFAULT_STORAGE_LIMIT = 1024 * 1024 * 1024
#: Seconds a finished job (and its files) is kept.
DEFAULT_JOB_TTL = 3600.0
#: Jobs queued or running at once.
DEFAULT_MAX_PENDING = 8
#: The studio's cap on solver iterations (the library allows far more).
DEFAULT_MAX_ITERATIONS = 2000
STATIC = Path(__file__).parent / "static"
NETWORKS = ("random", "pretrained")
ROLES = ("content", "style")
SAMPLE_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
_CHUNK = 1024 * 1024
#: Room for the multipart framing and the form's text fields on top of two files.
_FORM_OVERHEAD = 1024 * 1024
#: The job form has a dozen fields; a few more for clients that send empty ones.
_MAX_PARTS = 16
_SAFE_LABEL = re.compile(r"[^A-Za-z0-9._ -]+")

logger = logging.getLogger("audiostyle.studio")


class ApiError(HTTPException):
    """An HTTP error whose JSON body is ``{"error": code, "detail": message}``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status_code=status, detail=detail)
        self.code = code


def find_samples() -> dict[str, Path]:
    """The shipped sample clips by file name (empty when installed without them)."""
    folder = Path(__file__).resolve().parents[2] / "samples"
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in SAMPLE_EXTENSIONS and p.is_file()}


def _label(name: str | None, fallback: str) -> str:
    """A client's file name reduced to a harmless display label (never a path)."""
    stem = _SAFE_LABEL.sub("_", Path(name or "").name).strip(" .")[:80]
    return stem or fallback


def _wav_truncated(path: Path) -> bool:
    """True when a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile quietly reads what is there, so a cut-off upload would otherwise pass.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return False
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mark streamed WAVs whose size was never filled in.
                return chunk_size not in (0, 0xFFFFFFFF) and offset + 8 + chunk_size > size
            offset += 8 + chunk_size + (chunk_size & 1)
    return False


def _over_limits(info: AudioInfo, config: StyleConfig) -> bool:
    """True when a header promises more than the decoder accepts (a 413, not a broken file)."""
    decoded = info.frames * info.channels * FLOAT_BYTES
    return (
        info.sample_rate > MAX_SAMPLE_RATE
        or info.channels > MAX_CHANNELS
        or info.duration > config.max_duration
        or decoded > MAX_DECODED_BYTES
    )


def _sniff(path: Path, label: str, config: StyleConfig) -> None:
    """Check that an upload is decodable audio, complete, and long enough to analyse.

    Only the header and the first seconds are decoded: a small file can promise gigabytes
    of samples (a decompression bomb), and the header's promise is checked first.
    """
    try:
        info = audio_info(path)
    except AudioFileError as error:
        raise ApiError(415, "unsupported_media", f"{label} {error.problem}") from None
    if _wav_truncated(path):
        raise ApiError(422, "truncated_audio", f"{label}: the WAV file is truncated (its data chunk is cut off)")
    try:
        probe_audio(path, max_duration=config.max_duration)
    except AudioFileError as error:
        if _over_limits(info, config):
            raise ApiError(413, "too_large", f"{label}: {error.problem}") from None
        raise ApiError(422, "bad_audio", f"{label}: {error.problem}") from None
    if info.frames / info.sample_rate * config.sample_rate < config.n_fft:
        raise ApiError(
            422, "bad_audio", f"{label}: too short ({info.duration:.3f} s); at least {config.n_fft / config.sample_rate:.3f} s is needed"
        )


#: pyplot keeps global state: one figure at a time, whatever the number of device workers.
_PLOT_LOCK = threading.Lock()


def _finish_job(job: Job, result: audiostyle.Result) -> None:
    """Beside the WAV: a FLAC copy and the run's spectrogram figure (when matplotlib is here)."""
    result.save(job.folder / "result.flac")
    try:
        from audiostyle.plots import plot_result

        with _PLOT_LOCK:
            plot_result(result, job.content, job.style, job.folder / "spectrograms.png", titles=job.labels)
    except ConfigError as error:  # matplotlib missing: the page shows players without the figure
        logger.warning("job %s: no spectrograms (%s)", job.id, error)


def _storage_full(limit: int) -> str:
    return f"the studio keeps at most {limit} bytes of files; delete or wait for finished jobs to expire"


def create_app(
    *,
    upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    workdir: str | Path | None = None,
    device: str = "auto",
    presets: Mapping[str, StyleConfig] | None = None,
    default_preset: str = "fast",
    token: str | None = None,
    allowed_hosts: Iterable[str] = (),
    max_pending: int = DEFAULT_MAX_PENDING,
    storage_limit: int = DEFAULT_STORAGE_LIMIT,
    job_ttl: float = DEFAULT_JOB_TTL,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> FastAPI:
    """Build the studio app.

    Parameters
    ----------
    upload_limit : int
        Largest accepted upload per file, in bytes (larger ones get HTTP 413).
    workdir : path, optional
        Where the private temporary folder is made (default: the system's temp folder).
        Folders there left by studios that are no longer running are removed first.
    device : str
        The device every job runs on (``auto``, ``cpu``, ``cuda``...); one job at a time each.
    presets : mapping of name to StyleConfig, optional
        The presets offered (default: :data:`audiostyle.PRESETS`).
    default_preset : str
        The preset the page selects first.
    token : str, optional
        The token every API request must carry (default: a new random one, in
        ``app.state.token``).
    allowed_hosts : iterable of str
        Host names answered besides the loopback ones (``"*"``: any).
    max_pending : int
        Most jobs queued or running at once; more get HTTP 429.
    storage_limit : int
        Most bytes of files kept at once; a job past it gets HTTP 507.
    job_ttl : float
        Seconds a finished job and its files are kept.
    max_iterations : int
        Most solver iterations a request may ask for (more get HTTP 422).
    """
    if upload_limit <= 0:
        raise ValueError(f"upload_limit={upload_limit!r} must be a positive number of bytes")
    if storage_limit <= 0 or job_ttl <= 0 or max_iterations < 1:
        raise ValueError(f"storage_limit={storage_limit!r}, job_ttl={job_ttl!r} and max_iterations={max_iterations!r} must be positive")
    presets = dict(audiostyle.PRESETS if presets is None else presets)
    if default_preset not in presets:
        default_preset = next(iter(presets))
    token = token or secrets.token_urlsafe(32)
    sweep_orphans(workdir)
    root = make_workdir(workdir)
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    samples = find_samples()
    manager = JobManager(finisher=_finish_job, max_pending=max_pending)
    # Set on SIGINT/SIGTERM (via stop()) or at shutdown: ends the event streams at once.
    stopping = threading.Event()

    def stop() -> None:
        """Cancel all work and end the event streams; the server calls it when told to exit."""
        stopping.set()
        manager.stop()

    closed = threading.Event()

    def close() -> None:
        """:func:`stop`, wait a few seconds for the workers, remove the private folder; once."""
        if closed.is_set():
            return
        closed.set()
        stop()
        manager.close()
        shutil.rmtree(root, ignore_errors=True)

    async def expire_old_jobs() -> None:
        while True:
            await asyncio.sleep(min(60.0, max(0.1, job_ttl / 4)))
            await asyncio.to_thread(manager.expire, job_ttl)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        expiry = asyncio.create_task(expire_old_jobs())
        try:
            yield
        finally:
            expiry.cancel()
            await asyncio.to_thread(close)

    app = FastAPI(
        title="audiostyle studio",
        version=audiostyle.__version__,
        summary="Neural audio style transfer in the browser: upload a content and a style, get the result.",
        lifespan=lifespan,
        # The interactive docs load their scripts from a CDN: offline they are a blank page.
        docs_url=None,
        redoc_url=None,
    )
    app.state.workdir = root
    app.state.jobs = manager
    app.state.upload_limit = upload_limit
    app.state.token = token
    app.state.stop = stop
    app.state.close = close
    app.add_middleware(
        BodyLimit,
        max_bytes=2 * upload_limit + _FORM_OVERHEAD,
        max_parts=_MAX_PARTS,
        too_large=f"the upload is larger than the limit of {upload_limit} bytes per file",
    )
    # Added last, so it runs first: nothing is read from a request it refuses.
    app.add_middleware(AccessGuard, token=token, allowed_hosts=allowed_hosts)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = getattr(error, "code", None) or {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse({"error": code, "detail": error.detail}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)

    def job_or_404(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job {job_id!r}")
        return job

    def describe(job: Job) -> dict[str, Any]:
        base = f"/jobs/{job.id}"
        urls: dict[str, Any] = {"self": base, "events": f"{base}/events"}
        if job.status != CANCELLED:  # a cancelled job's files are gone
            urls["inputs"] = {role: f"{base}/inputs/{role}" for role in ROLES if role != "content" or job.content is not None}
        if job.status == DONE:
            urls["result"] = {"wav": f"{base}/result?format=wav", "flac": f"{base}/result?format=flac"}
            if (job.folder / "spectrograms.png").exists():
                urls["spectrograms"] = f"{base}/spectrograms.png"
        return {
            "id": job.id,
            "mode": job.mode,
            "status": job.status,
            "cancelling": job.status not in FINISHED and job.cancel_requested.is_set(),
            "position": manager.position(job),
            "device": job.device,
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
            "urls": urls,
        }

    def store_upload(upload: UploadFile, folder: Path, role: str) -> Path:
        target = folder / role
        written = 0
        with open(target, "wb") as out:
            while chunk := upload.file.read(_CHUNK):
                written += len(chunk)
                if written > upload_limit:
                    raise ApiError(413, "too_large", f"{role}: larger than the upload limit of {upload_limit} bytes")
                out.write(chunk)
        if written == 0:
            raise ApiError(400, "empty_upload", f"{role}: the uploaded file is empty")
        return target

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/options", summary="What the page can offer: presets, networks, samples, limits")
    def options() -> dict[str, Any]:
        return {
            "presets": {name: {"iterations": c.iterations, "strength": c.strength} for name, c in presets.items()},
            "default_preset": default_preset,
            "networks": list(NETWORKS),
            "samples": [{"name": name, "url": f"/samples/{name}"} for name in samples],
            "upload_limit": upload_limit,
            "device": device,
            "limits": {
                "upload_bytes": upload_limit,
                "pending_jobs": max_pending,
                "storage_bytes": storage_limit,
                "job_ttl_seconds": job_ttl,
                "iterations": max_iterations,
            },
        }

    @app.get("/samples/{name}", summary="A shipped sample clip")
    def sample(name: str) -> FileResponse:
        if name not in samples:
            raise ApiError(404, "not_found", f"no sample {name!r}; available: {sorted(samples)}")
        return FileResponse(samples[name])

    @app.post("/jobs", status_code=201, summary="Start a style transfer (or a texture) job")
    def create_job(
        mode: Annotated[Literal["transfer", "texture"], Form()] = "transfer",
        content: Annotated[UploadFile | None, File(description="The sound to re-render (transfer mode)")] = None,
        style: Annotated[UploadFile | None, File(description="The sound whose timbre and texture to impose")] = None,
        content_sample: Annotated[str | None, Form(description="A shipped sample's name instead of a content upload")] = None,
        style_sample: Annotated[str | None, Form(description="A shipped sample's name instead of a style upload")] = None,
        preset: Annotated[str, Form()] = default_preset,
        strength: Annotated[float | None, Form(ge=0, le=1)] = None,
        iterations: Annotated[int | None, Form(ge=1, description="At most the studio's limit (GET /options)")] = None,
        network: Annotated[Literal["random", "pretrained"] | None, Form()] = None,
        seed: Annotated[int | None, Form(ge=0)] = None,
        duration: Annotated[float | None, Form(gt=0, description="Texture mode: seconds of output")] = None,
        loop: Annotated[bool, Form(description="Texture mode: make the output loop seamlessly")] = False,
    ) -> JSONResponse:
        if preset not in presets:
            raise ApiError(422, "bad_config", f"preset={preset!r} must be one of {sorted(presets)}")
        if (iterations or presets[preset].iterations) > max_iterations:
            raise ApiError(422, "bad_config", f"iterations={iterations or presets[preset].iterations} must be at most {max_iterations} in the studio")
        manager.expire(job_ttl)
        try:  # before storing anything; submit() checks again, for requests that raced
            manager.check_room()
        except QueueFull as error:
            raise ApiError(429, "queue_full", str(error)) from None
        if stored_bytes(root) >= storage_limit:
            raise ApiError(507, "storage_full", _storage_full(storage_limit))
        changes = {"strength": strength, "iterations": iterations, "network": network, "seed": seed}
        changes = {name: value for name, value in changes.items() if value is not None}
        if mode == "texture":
            changes["loop"] = loop
        try:
            config = presets[preset].replace(device=device, **changes)
        except AudioStyleError as error:
            raise ApiError(422, "bad_config", str(error)) from None

        inputs: dict[str, tuple[UploadFile | None, str | None]] = {"style": (style, style_sample)}
        if mode == "transfer":
            inputs["content"] = (content, content_sample)
        job_id = new_job_id()
        folder = root / job_id
        folder.mkdir()
        try:
            paths: dict[str, Path] = {}
            labels: dict[str, str] = {}
            for role, (upload, sample_name) in inputs.items():
                if upload is not None and sample_name:
                    raise ApiError(422, "invalid_request", f"give either a {role} file or {role}_sample, not both")
                if upload is not None:
                    labels[role] = _label(upload.filename, role)
                    paths[role] = store_upload(upload, folder, role)
                    _sniff(paths[role], labels[role], config)
                elif sample_name:
                    if sample_name not in samples:
                        raise ApiError(422, "invalid_request", f"{role}_sample={sample_name!r} must be one of {sorted(samples)}")
                    labels[role], paths[role] = sample_name, samples[sample_name]
                else:
                    raise ApiError(422, "invalid_request", f"a {role} file (or {role}_sample) is required in {mode} mode")
            if mode == "texture" and duration is not None and duration > config.max_duration:
                raise ApiError(422, "bad_config", f"duration={duration} must be at most {config.max_duration:g} s")
            if stored_bytes(root) > storage_limit:
                raise ApiError(507, "storage_full", _storage_full(storage_limit))
            job = Job(
                id=job_id,
                content=paths.get("content"),
                style=paths["style"],
                config=config,
                preset=preset,
                labels=labels,
                folder=folder,
                duration=duration if mode == "texture" else None,
            )
            manager.submit(job)
        except AudioStyleError as error:  # an unavailable device
            shutil.rmtree(folder, ignore_errors=True)
            raise ApiError(422, "bad_config", str(error)) from None
        except QueueFull as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise ApiError(429, "queue_full", str(error)) from None
        except ShuttingDown as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise ApiError(503, "shutting_down", str(error)) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse(describe(job), status_code=201, headers={"Location": f"/jobs/{job.id}"})

    @app.get("/jobs", summary="The jobs of this session, newest first (finished ones expire)")
    def list_jobs() -> list[dict[str, Any]]:
        manager.expire(job_ttl)
        return [describe(job) for job in manager.all()]

    @app.get("/jobs/{job_id}", summary="A job's state, progress, losses and links")
    def get_job(job_id: str) -> dict[str, Any]:
        return describe(job_or_404(job_id))

    @app.get(
        "/jobs/{job_id}/events",
        summary="Server-sent events: the job's state after every change, until it finishes",
        response_class=StreamingResponse,
    )
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        job = job_or_404(job_id)

        async def stream() -> AsyncIterator[str]:
            seen, idle = -1, 0.0
            while True:
                if job.version != seen:
                    seen, idle = job.version, 0.0
                    state = describe(job)
                    yield f"event: {'end' if job.status in FINISHED else 'progress'}\ndata: {json.dumps(state)}\n\n"
                    if job.status in FINISHED:
                        return
                elif idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                if stopping.is_set() or await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)
                idle += 0.1

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/jobs/{job_id}/result", summary="Download the result as WAV or FLAC")
    def job_result(job_id: str, format: Annotated[Literal["wav", "flac"], Query()] = "wav") -> FileResponse:
        job = job_or_404(job_id)
        if job.status != DONE or job.result is None:
            raise ApiError(409, "not_ready", f"job {job_id} has no result (status: {job.status})")
        stem = job.labels.get("style", "style").rsplit(".", 1)[0]
        if "content" in job.labels:
            stem = f"{job.labels['content'].rsplit('.', 1)[0]}-{stem}"
        else:
            stem = f"texture-{stem}"
        return FileResponse(job.folder / f"result.{format}", media_type=f"audio/{format}", filename=f"{stem}.{format}")

    @app.get("/jobs/{job_id}/inputs/{role}", summary="A job's content or style input, for playback")
    def job_input(job_id: str, role: Literal["content", "style"]) -> FileResponse:
        job = job_or_404(job_id)
        path = job.content if role == "content" else job.style
        if path is None:
            raise ApiError(404, "not_found", f"job {job_id} has no {role} (texture mode)")
        if not path.is_file():
            raise ApiError(404, "not_found", f"job {job_id}'s {role} was deleted (status: {job.status})")
        media = {"WAV": "audio/wav", "FLAC": "audio/flac", "OGG": "audio/ogg", "MP3": "audio/mpeg"}
        return FileResponse(path, media_type=media.get(audio_info(path).format, "application/octet-stream"))

    @app.get("/jobs/{job_id}/spectrograms.png", summary="A finished job's spectrograms (content, style, result) and losses")
    def job_spectrograms(job_id: str) -> FileResponse:
        job = job_or_404(job_id)
        image = job.folder / "spectrograms.png"
        if job.status != DONE or not image.exists():
            raise ApiError(404, "not_found", f"job {job_id} has no spectrogram figure")
        return FileResponse(image, media_type="image/png")

    @app.delete("/jobs/{job_id}", summary="Cancel a job (its files go when it stops), or forget a finished one and delete its files")
    def delete_job(job_id: str) -> dict[str, Any]:
        job = job_or_404(job_id)
        if job.status in FINISHED:
            manager.forget(job)
            state = describe(job)
            state["deleted"] = True
            return state
        manager.cancel(job)
        return describe(job)

    return app
