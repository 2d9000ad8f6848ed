"""``audiostyle serve``: the local web studio (needs the ``web`` extra)."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import webbrowser
from types import FrameType
from typing import Annotated, Any, Callable, Optional

import typer

from .exits import USAGE_EXIT, configure_logging, describe, exit_code, fail
from .options import DebugOpt, DeviceOpt
from .web.guard import is_loopback

__all__ = ["serve_command", "is_loopback", "SHUTDOWN_GRACE"]

#: Seconds the server waits for open connections once told to stop; the event streams end
#: on their own at once, so this only bounds a client that keeps a download open.
SHUTDOWN_GRACE = 3
_WILDCARDS = ("0.0.0.0", "::", "")
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")

TOKEN_HELP = (
    "Access token every request must carry (default: a new random one per launch, shown in the printed URL). "
    "The page gets it from that URL; scripts send 'Authorization: token <token>', an X-Audiostyle-Token header "
    "or ?token=<token>. 16-256 characters from A-Z a-z 0-9 . _ ~ -. Also read from $AUDIOSTYLE_TOKEN."
)


def _make_server(config: Any, on_exit: Callable[[], None]) -> Any:
    """A uvicorn server that cancels the studio's work the moment it is told to stop.

    uvicorn would first wait for open connections, and the page's event stream stays open
    while a job runs; ``on_exit`` cancels the jobs and ends the streams so the server can
    close within seconds. A second Ctrl-C skips the wait. The signal is not raised again
    after the shutdown (uvicorn's default), so stopping the studio is a normal exit.
    """
    import uvicorn

    class StudioServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_exit()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return StudioServer(config)


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; keep the loopback default unless you know why.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page (with its token) in the default browser.")] = False,
    upload_limit: Annotated[float, typer.Option("--upload-limit", min=0.001, help="Largest upload per file in MB.")] = 100.0,
    token: Annotated[Optional[str], typer.Option("--token", envvar="AUDIOSTYLE_TOKEN", help=TOKEN_HELP, show_default=False, show_envvar=False)] = None,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Start the local web studio: drop two sounds in a browser, hear and see the result.

    Only requests that carry the launch token, name a loopback host (or --host) and, for
    changes, come from the studio's own page are answered. Limits: --upload-limit per file,
    8 jobs queued or running, 1 GiB of files kept, 2000 iterations per job; finished jobs and
    their files are deleted after an hour.
    """
    configure_logging(debug)
    try:
        import uvicorn

        from .web.app import create_app
    except ImportError as error:
        raise fail(f"the web studio needs its extra ({error.name} is missing): pip install 'audiostyle[web]'", USAGE_EXIT) from None
    from audiostyle import AudioStyleError, resolve_device

    if token is not None and not _TOKEN.match(token):
        raise fail("--token must be 16-256 characters from A-Z a-z 0-9 . _ ~ -", USAGE_EXIT)
    try:
        resolve_device(device)
    except AudioStyleError as error:
        raise fail(describe(error, {"device": "--device"}), exit_code(error)) from None
    if is_loopback(host):
        allowed_hosts: tuple[str, ...] = ()
    else:
        allowed_hosts = ("*",) if host in _WILDCARDS else (host,)
        typer.echo(
            f"audiostyle: warning: listening on {host}, not loopback: anyone who can reach this machine and "
            "learns the token can upload files and use its CPU/GPU, over plain HTTP",
            err=True,
        )
    app = create_app(upload_limit=int(upload_limit * 1024 * 1024), device=device, token=token, allowed_hosts=allowed_hosts)
    # A wildcard address listens everywhere but is no place to browse to.
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{port}/?token={app.state.token}"
    typer.echo(f"audiostyle studio on {url}  (Ctrl+C to stop)", err=True)
    if open_browser:
        opener = threading.Timer(1.0, webbrowser.open, args=(url,))
        opener.daemon = True
        opener.start()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="debug" if debug else "warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    server = _make_server(config, app.state.stop)
    server.run()
    if server.should_exit and threading.current_thread() is threading.main_thread():
        # Stopped by a signal: the last clean-up (the private folder) must not be cut short
        # by another Ctrl-C, nor end in a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Done already unless a second Ctrl-C skipped the app's shutdown.
    app.state.close()
    if app.state.jobs.busy():
        # A job is cancelled at its next solver step, and one step can outlast the wait:
        # finalising the interpreter under a thread inside torch aborts the process, so
        # leave at once (the folder is gone and nothing else is pending).
        sys.stderr.flush()
        os._exit(0)
