"""The local web studio: a FastAPI app serving one static page and a small JSON API.

Every file the studio keeps (uploads, results, spectrogram images) lives in a private
temporary folder under names the server chooses; nothing the client sends is ever used as
a path. The folder is removed when the app shuts down.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import re
import shutil
import struct
import tempfile
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Literal, Mapping

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import audiostyle
from audiostyle import AudioFileError, AudioStyleError, ConfigError, StyleConfig
from audiostyle.audio import audio_info, load_audio

from .jobs import DONE, FINISHED, Job, JobManager, new_job_id

__all__ = ["create_app", "DEFAULT_UPLOAD_LIMIT", "find_samples"]

DEFAULT_UPLOAD_LIMIT = 100 * 1024 * 1024
STATIC = Path(__file__).parent / "static"
NETWORKS = ("random", "pretrained")
ROLES = ("content", "style")
SAMPLE_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
_CHUNK = 1024 * 1024
#: Room for the multipart framing and the form's text fields on top of two files.
_FORM_OVERHEAD = 1024 * 1024
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


def _sniff(path: Path, label: str, config: StyleConfig) -> None:
    """Check that an upload is decodable audio, complete, and long enough to analyse."""
    try:
        info = audio_info(path)
    except AudioFileError as error:
        raise ApiError(415, "unsupported_media", f"{label} {error.problem}") from None
    if _wav_truncated(path):
        raise ApiError(422, "truncated_audio", f"{label}: the WAV file is truncated (its data chunk is cut off)")
    try:
        load_audio(path, max_duration=config.max_duration)
    except AudioFileError as error:
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
            plot_result(result, job.content, job.style, job.folder / "spectrograms.png")
    except ConfigError as error:  # matplotlib missing: the page shows players without the figure
        logger.warning("job %s: no spectrograms (%s)", job.id, error)


def create_app(
    *,
    upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    workdir: str | Path | None = None,
    device: str = "auto",
    presets: Mapping[str, StyleConfig] | None = None,
    default_preset: str = "fast",
) -> FastAPI:
    """Build the studio app.

    Parameters
    ----------
    upload_limit : int
        Largest accepted upload per file, in bytes (larger ones get HTTP 413).
    workdir : path, optional
        Where the private temporary folder is made (default: the system's temp folder).
    device : str
        The device every job runs on (``auto``, ``cpu``, ``cuda``...); one job at a time each.
    presets : mapping of name to StyleConfig, optional
        The presets offered (default: :data:`audiostyle.PRESETS`).
    default_preset : str
        The preset the page selects first.
    """
    if upload_limit <= 0:
        raise ValueError(f"upload_limit={upload_limit!r} must be a positive number of bytes")
    presets = dict(audiostyle.PRESETS if presets is None else presets)
    if default_preset not in presets:
        default_preset = next(iter(presets))
    root = Path(tempfile.mkdtemp(prefix="audiostyle-studio-", dir=workdir))  # mode 0700
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    samples = find_samples()
    manager = JobManager(finisher=_finish_job)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(manager.close)
            shutil.rmtree(root, ignore_errors=True)

    app = FastAPI(
        title="audiostyle studio",
        version=audiostyle.__version__,
        summary="Neural audio style transfer in the browser: upload a content and a style, get the result.",
        lifespan=lifespan,
    )
    app.state.workdir = root
    app.state.jobs = manager
    app.state.upload_limit = upload_limit

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = getattr(error, "code", None) or {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse({"error": code, "detail": error.detail}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        # Refuse an oversized form before any of it is read; each file is checked again below.
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return JSONResponse({"error": "length_required", "detail": "uploads need a Content-Length header"}, status_code=411)
            if int(length) > 2 * upload_limit + _FORM_OVERHEAD:
                return JSONResponse(
                    {"error": "too_large", "detail": f"the upload is larger than the limit of {upload_limit} bytes per file"},
                    status_code=413,
                )
        return await call_next(request)

    def job_or_404(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job {job_id!r}")
        return job

    def describe(job: Job) -> dict[str, Any]:
        base = f"/jobs/{job.id}"
        urls: dict[str, Any] = {"self": base, "events": f"{base}/events"}
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
        iterations: Annotated[int | None, Form(ge=1, le=100000)] = None,
        network: Annotated[Literal["random", "pretrained"] | None, Form()] = None,
        seed: Annotated[int | None, Form(ge=0)] = None,
        duration: Annotated[float | None, Form(gt=0, description="Texture mode: seconds of output")] = None,
        loop: Annotated[bool, Form(description="Texture mode: make the output loop seamlessly")] = False,
    ) -> JSONResponse:
        if preset not in presets:
            raise ApiError(422, "bad_config", f"preset={preset!r} must be one of {sorted(presets)}")
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
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JSONResponse(describe(job), status_code=201, headers={"Location": f"/jobs/{job.id}"})

    @app.get("/jobs", summary="Every job since the server started, newest first")
    def list_jobs() -> list[dict[str, Any]]:
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
                if await request.is_disconnected():
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
        media = {"WAV": "audio/wav", "FLAC": "audio/flac", "OGG": "audio/ogg", "MP3": "audio/mpeg"}
        return FileResponse(path, media_type=media.get(audio_info(path).format, "application/octet-stream"))

    @app.get("/jobs/{job_id}/spectrograms.png", summary="A finished job's spectrograms (content, style, result) and losses")
    def job_spectrograms(job_id: str) -> FileResponse:
        job = job_or_404(job_id)
        image = job.folder / "spectrograms.png"
        if job.status != DONE or not image.exists():
            raise ApiError(404, "not_found", f"job {job_id} has no spectrogram figure")
        return FileResponse(image, media_type="image/png")

    @app.delete("/jobs/{job_id}", summary="Cancel a job, or forget a finished one and delete its files")
    def delete_job(job_id: str) -> dict[str, Any]:
        job = job_or_404(job_id)
        if job.status in FINISHED:
            manager.forget(job)
            shutil.rmtree(job.folder, ignore_errors=True)
            state = describe(job)
            state["deleted"] = True
            return state
        manager.cancel(job)
        return describe(job)

    return app
