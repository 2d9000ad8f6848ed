"""``audiostyle serve``: the local web studio (needs the ``web`` extra)."""

from __future__ import annotations

import ipaddress
import threading
import webbrowser
from typing import Annotated

import typer

from .common import DebugOpt, DeviceOpt, configure_logging, fail


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; keep the loopback default unless you know why.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    upload_limit: Annotated[float, typer.Option("--upload-limit", min=0.001, help="Largest upload per file in MB.")] = 100.0,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Start the local web studio: drop two sounds in a browser, hear and see the result."""
    configure_logging(debug)
    try:
        import uvicorn

        from .web.app import create_app
    except ImportError as error:
        raise fail(f"the web studio needs its extra ({error.name} is missing): pip install 'audiostyle[web]'", 2) from None
    from audiostyle import AudioStyleError
    from audiostyle.config import resolve_device

    try:
        resolve_device(device)
    except AudioStyleError as error:
        raise fail(str(error), error.exit_code) from None
    if not is_loopback(host):
        typer.echo(
            f"audiostyle: warning: listening on {host}, not loopback: anyone who can reach this machine "
            "can upload files and use its CPU/GPU; the studio has no login",
            err=True,
        )
    app = create_app(upload_limit=int(upload_limit * 1024 * 1024), device=device)
    # A wildcard address listens everywhere but is no place to browse to.
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{port}/"
    typer.echo(f"audiostyle studio on {url}  (Ctrl+C to stop)", err=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="debug" if debug else "warning")
