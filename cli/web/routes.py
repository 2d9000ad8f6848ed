"""The studio's HTTP routes: the page and its files, and the job API; each hands over to :class:`.studio.Studio`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Literal

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from .errors import ApiError
from .jobs import DONE, FINISHED, Job
from .studio import JobRequest, Studio

__all__ = ["add_page_routes", "add_job_routes", "add_job_file_routes"]

STATIC = Path(__file__).parent / "static"
_MEDIA_TYPES = {"WAV": "audio/wav", "FLAC": "audio/flac", "OGG": "audio/ogg", "MP3": "audio/mpeg"}


def add_page_routes(app: FastAPI, studio: Studio) -> None:
    """The page, its static files, what it can offer, and the shipped samples."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/options", summary="What the page can offer: presets, networks, samples, limits")
    def options() -> dict[str, Any]:
        return studio.options()

    @app.get("/samples/{name}", summary="A shipped sample clip")
    def sample(name: str) -> FileResponse:
        if name not in studio.samples:
            raise ApiError(404, "not_found", f"no sample {name!r}; available: {sorted(studio.samples)}")
        return FileResponse(studio.samples[name])


def add_job_routes(app: FastAPI, studio: Studio) -> None:
    """Start, list, read and cancel or delete jobs."""

    @app.post("/jobs", status_code=201, summary="Start a style transfer (or a texture) job")
    def create_job(
        mode: Annotated[Literal["transfer", "texture"], Form()] = "transfer",
        content: Annotated[UploadFile | None, File(description="The sound to re-render (transfer mode)")] = None,
        style: Annotated[UploadFile | None, File(description="The sound whose timbre and texture to impose")] = None,
        content_sample: Annotated[str | None, Form(description="A shipped sample's name instead of a content upload")] = None,
        style_sample: Annotated[str | None, Form(description="A shipped sample's name instead of a style upload")] = None,
        preset: Annotated[str, Form()] = studio.default_preset,
        strength: Annotated[float | None, Form(ge=0, le=1)] = None,
        iterations: Annotated[int | None, Form(ge=1, description="At most the studio's limit (GET /options)")] = None,
        network: Annotated[Literal["random", "pretrained"] | None, Form()] = None,
        seed: Annotated[int | None, Form(ge=0)] = None,
        duration: Annotated[float | None, Form(gt=0, description="Texture mode: seconds of output")] = None,
        loop: Annotated[bool, Form(description="Texture mode: make the output loop seamlessly")] = False,
    ) -> JSONResponse:
        request = JobRequest(mode, content, style, content_sample, style_sample, preset, strength, iterations, network, seed, duration, loop)
        job = studio.create_job(request)
        return JSONResponse(studio.describe(job), status_code=201, headers={"Location": f"/jobs/{job.id}"})

    @app.get("/jobs", summary="The jobs of this session, newest first (finished ones expire)")
    def list_jobs() -> list[dict[str, Any]]:
        studio.expire()
        return [studio.describe(job) for job in studio.manager.all()]

    @app.get("/jobs/{job_id}", summary="A job's state, progress, losses and links")
    def get_job(job_id: str) -> dict[str, Any]:
        return studio.describe(studio.job(job_id))

    @app.delete("/jobs/{job_id}", summary="Cancel a job (its files go when it stops), or forget a finished one and delete its files")
    def delete_job(job_id: str) -> dict[str, Any]:
        job = studio.job(job_id)
        if job.status not in FINISHED:
            studio.manager.cancel(job)
            return studio.describe(job)
        studio.manager.forget(job)
        return {**studio.describe(job), "deleted": True}


def add_job_file_routes(app: FastAPI, studio: Studio) -> None:
    """A job's event stream, result, inputs and figure."""

    @app.get(
        "/jobs/{job_id}/events",
        summary="Server-sent events: the job's state after every change, until it finishes",
        response_class=StreamingResponse,
    )
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        stream = _events(studio, studio.job(job_id), request)
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/jobs/{job_id}/result", summary="Download the result as WAV or FLAC")
    def job_result(job_id: str, format: Annotated[Literal["wav", "flac"], Query()] = "wav") -> FileResponse:
        job = studio.job(job_id)
        if job.status != DONE or job.result is None:
            raise ApiError(409, "not_ready", f"job {job_id} has no result (status: {job.status})")
        return FileResponse(job.folder / f"result.{format}", media_type=f"audio/{format}", filename=f"{_result_stem(job)}.{format}")

    @app.get("/jobs/{job_id}/inputs/{role}", summary="A job's content or style input, for playback")
    def job_input(job_id: str, role: Literal["content", "style"]) -> FileResponse:
        from audiostyle.io import audio_info

        job = studio.job(job_id)
        path = job.content if role == "content" else job.style
        if path is None:
            raise ApiError(404, "not_found", f"job {job_id} has no {role} (texture mode)")
        if not path.is_file():
            raise ApiError(404, "not_found", f"job {job_id}'s {role} was deleted (status: {job.status})")
        return FileResponse(path, media_type=_MEDIA_TYPES.get(audio_info(path).format, "application/octet-stream"))

    @app.get("/jobs/{job_id}/spectrograms.png", summary="A finished job's spectrograms (content, style, result) and losses")
    def job_spectrograms(job_id: str) -> FileResponse:
        job = studio.job(job_id)
        image = job.folder / "spectrograms.png"
        if job.status != DONE or not image.exists():
            raise ApiError(404, "not_found", f"job {job_id} has no spectrogram figure")
        return FileResponse(image, media_type="image/png")


async def _events(studio: Studio, job: Job, request: Request) -> AsyncIterator[str]:
    """The job's state after each change, a keep-alive comment when idle, until it finishes."""
    seen, idle = -1, 0.0
    while True:
        if job.version != seen:
            seen, idle = job.version, 0.0
            state = studio.describe(job)
            yield f"event: {'end' if job.status in FINISHED else 'progress'}\ndata: {json.dumps(state)}\n\n"
            if job.status in FINISHED:
                return
        elif idle >= 15:
            idle = 0.0
            yield ": keep-alive\n\n"
        if studio.stopping.is_set() or await request.is_disconnected():
            return
        await asyncio.sleep(0.1)
        idle += 0.1


def _result_stem(job: Job) -> str:
    """``<content>-<style>`` or ``texture-<style>``, from the inputs' display labels."""
    stem = job.labels.get("style", "style").rsplit(".", 1)[0]
    if "content" in job.labels:
        return f"{job.labels['content'].rsplit('.', 1)[0]}-{stem}"
    return f"texture-{stem}"
