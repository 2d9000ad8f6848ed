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
import secrets
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Iterable, Mapping

from fastapi import FastAPI

from .errors import add_error_handlers
from .guard import AccessGuard, BodyLimit
from .routes import add_job_file_routes, add_job_routes, add_page_routes
from .studio import Limits, Studio
from .workdir import make_workdir, sweep_orphans

if TYPE_CHECKING:
    from audiostyle import StyleConfig

__all__ = [
    "create_app",
    "DEFAULT_UPLOAD_LIMIT",
    "DEFAULT_STORAGE_LIMIT",
    "DEFAULT_JOB_TTL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_ITERATIONS",
]

DEFAULT_UPLOAD_LIMIT = Limits.upload_bytes
DEFAULT_STORAGE_LIMIT = Limits.storage_bytes
DEFAULT_JOB_TTL = Limits.job_ttl
DEFAULT_MAX_PENDING = Limits.pending_jobs
DEFAULT_MAX_ITERATIONS = Limits.iterations
#: Room for the multipart framing and the form's text fields on top of two files.
_FORM_OVERHEAD = 1024 * 1024
#: The job form has a dozen fields; a few more for clients that send empty ones.
_MAX_PARTS = 16


def create_app(
    *,
    upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    workdir: str | Path | None = None,
    device: str = "auto",
    presets: Mapping[str, "StyleConfig"] | None = None,
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
    import audiostyle

    limits = Limits(upload_limit, max_pending, storage_limit, job_ttl, max_iterations)
    sweep_orphans(workdir)
    root = make_workdir(workdir)
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    studio = Studio(
        root, presets=audiostyle.PRESETS if presets is None else presets, default_preset=default_preset, device=device, limits=limits
    )
    app = FastAPI(
        title="audiostyle studio",
        version=audiostyle.__version__,
        summary="Neural audio style transfer in the browser: upload a content and a style, get the result.",
        lifespan=_lifespan(studio),
        # The interactive docs load their scripts from a CDN: offline they are a blank page.
        docs_url=None,
        redoc_url=None,
    )
    app.state.workdir = root
    app.state.jobs = studio.manager
    app.state.upload_limit = upload_limit
    app.state.token = token or secrets.token_urlsafe(32)
    app.state.stop = studio.stop
    app.state.close = studio.close
    _add_guards(app, upload_limit=upload_limit, token=app.state.token, allowed_hosts=allowed_hosts)
    add_error_handlers(app)
    add_page_routes(app, studio)
    add_job_routes(app, studio)
    add_job_file_routes(app, studio)
    return app


def _add_guards(app: FastAPI, *, upload_limit: int, token: str, allowed_hosts: Iterable[str]) -> None:
    """Who may drive the studio (checked first), then how much each request may send."""
    app.add_middleware(
        BodyLimit,
        max_bytes=2 * upload_limit + _FORM_OVERHEAD,
        max_parts=_MAX_PARTS,
        too_large=f"the upload is larger than the limit of {upload_limit} bytes per file",
    )
    # Added last, so it runs first: nothing is read from a request it refuses.
    app.add_middleware(AccessGuard, token=token, allowed_hosts=allowed_hosts)


def _lifespan(studio: Studio):  # noqa: ANN202 - FastAPI's lifespan type is private
    """Expire old jobs while the app runs; at shutdown, cancel the work and remove the files."""

    async def expire_old_jobs() -> None:
        while True:
            await asyncio.sleep(min(60.0, max(0.1, studio.limits.job_ttl / 4)))
            await asyncio.to_thread(studio.expire)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        expiry = asyncio.create_task(expire_old_jobs())
        try:
            yield
        finally:
            expiry.cancel()
            await asyncio.to_thread(studio.close)

    return lifespan
