"""Raw HTTP against the web studio, shared by its security tests and the hostile-studio benchmark.

Requests sent exactly as given (:func:`raw_request`: chosen framing, a body that stops as
soon as the server answers), multipart forms (:func:`multipart`, :func:`padded_form`), a
FLAC decompression bomb (:func:`flac_bomb`), and the studio itself as a subprocess under a
memory limit (:func:`running_studio`). All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TOKEN",
    "Reply",
    "Studio",
    "chunked",
    "flac_bomb",
    "free_port",
    "multipart",
    "open_event_stream",
    "padded_form",
    "pieces",
    "raw_request",
    "running_studio",
    "studio_folders",
    "wav_bytes",
]

TOKEN = "hostile-benchmark-token-0123456789"
#: Address space allowed to the studio process: a decoder that believed a bomb's header
#: would fail here instead of taking the machine's memory.
MEMORY_LIMIT = 3 * 2**30
_PIECE = 64 * 1024


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wav_bytes(seconds: float = 1.0, rate: int = 16000, *, seed: int = 0, channels: int = 1) -> bytes:
    """A short 16-bit WAV: a tone plus a little noise (its own noise on each channel)."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal((t.size, channels))
    audio = 0.3 * np.sin(2 * np.pi * 220.0 * t)[:, None] + 0.05 * noise
    buffer = io.BytesIO()
    sf.write(buffer, audio.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def flac_bomb(seconds: int = 1200, rate: int = 655350, channels: int = 8) -> bytes:
    """A FLAC file of a few hundred bytes whose header promises ``seconds`` of ``channels`` at ``rate``.

    A decoder that sizes its buffer from the header asks for ``seconds × rate × channels × 4``
    bytes (23.4 GiB with the defaults).
    """
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((4096, channels), np.float32), rate, format="FLAC", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    # STREAMINFO follows "fLaC" and its 4-byte block header; 10 bytes into it, 64 bits hold
    # the rate (20), channels - 1 (3), bits - 1 (5) and the total samples (36), then the MD5.
    at = 8 + 10
    packed = int.from_bytes(data[at : at + 8], "big")
    packed = (packed & ~((1 << 36) - 1)) | (seconds * rate)
    data[at : at + 8] = packed.to_bytes(8, "big")
    data[at + 8 : at + 24] = bytes(16)  # no MD5: nothing to check the claim against
    return bytes(data)


def multipart(parts: Iterable[tuple[str, str | None, bytes]]) -> tuple[str, bytes]:
    """``(content type, body)`` of a form of ``(name, file name or None, data)`` parts."""
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(body)


def padded_form(parts: Iterable[tuple[str, str | None, bytes]], padding: int) -> tuple[str, int, Iterator[bytes]]:
    """A form of ``parts`` plus a file part of ``padding`` zero bytes, made as it is sent.

    Returns the content type, the body's length and its pieces.
    """
    content_type, body = multipart([*parts, ("padding", "padding.bin", b"")])
    closing = body.rindex(b"\r\n--")  # the padding part's (empty) data ends here
    head, tail = body[:closing], body[closing:]

    def generate() -> Iterator[bytes]:
        yield head
        for start in range(0, padding, _PIECE):
            yield bytes(min(_PIECE, padding - start))
        yield tail

    return content_type, len(body) + padding, generate()


def chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces in HTTP/1.1 chunked transfer coding, with the closing empty chunk."""
    for piece in pieces:
        if piece:
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
    yield b"0\r\n\r\n"


def pieces(data: bytes, size: int = _PIECE) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@dataclass
class Reply:
    """An HTTP response read off a raw socket; ``sent`` counts the body bytes sent before it came."""

    status: int
    headers: dict[str, str]
    body: bytes
    sent: int

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"value": value}


def _read_reply(sock: socket.socket, deadline: float) -> tuple[int, dict[str, str], bytes]:
    data = b""
    length: int | None = None
    head_end = -1
    while time.monotonic() < deadline:
        try:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
        if head_end < 0 and b"\r\n\r\n" in data:
            head_end = data.index(b"\r\n\r\n")
            for line in data[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
        if head_end >= 0 and length is not None and len(data) >= head_end + 4 + length:
            break
    if head_end < 0:
        return 0, {}, data
    lines = data[:head_end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, data[head_end + 4 :]


def raw_request(
    port: int,
    method: str,
    path: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    body: Iterable[bytes] = (),
    timeout: float = 20.0,
) -> Reply:
    """Send a request exactly as given (no framing added) and read the answer.

    The body is sent piece by piece and sending stops as soon as the server answers, so
    :attr:`Reply.sent` tells how much it took in before refusing. ``headers`` must include
    ``Host`` (and the body's framing) when wanted.
    """
    deadline = time.monotonic() + timeout
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        for piece in body:
            if time.monotonic() > deadline or select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or hung up): stop sending
            try:
                sock.sendall(piece)
            except OSError:
                break
            sent += len(piece)
        status, reply_headers, reply_body = _read_reply(sock, deadline)
    return Reply(status, reply_headers, reply_body, sent)


@dataclass
class Studio:
    """A running ``audiostyle serve`` process."""

    process: subprocess.Popen
    port: int
    token: str
    temp: Path
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def auth(self) -> list[tuple[str, str]]:
        return [("Host", self.host), ("Authorization", f"token {self.token}")]

    def request(self, method: str, path: str, *, headers: Iterable[tuple[str, str]] = (), body: bytes = b"", timeout: float = 30.0) -> Reply:
        """A well-framed request (Content-Length) with the token and the loopback Host."""
        framing = [("Content-Length", str(len(body)))] if body or method in ("POST", "PUT", "PATCH") else []
        return raw_request(self.port, method, path, headers=[*self.auth(), *framing, *headers], body=pieces(body), timeout=timeout)

    def submit(self, parts: Iterable[tuple[str, str | None, bytes]], *, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        content_type, body = multipart(parts)
        return self.request("POST", "/jobs", headers=[("Content-Type", content_type), *headers], body=body)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def studio_folders(temp: Path) -> list[Path]:
    """The studios' private folders under ``temp``."""
    return sorted(p for p in temp.iterdir() if p.name.startswith("audiostyle-studio-")) if temp.is_dir() else []


def _limit_memory(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@contextlib.contextmanager
def running_studio(
    folder: Path,
    *,
    token: str = TOKEN,
    args: Iterable[str] = (),
    memory_limit: int | None = MEMORY_LIMIT,
    start_timeout: float = 90.0,
) -> Iterator[Studio]:
    """``python -m audiostyle_cli serve`` on a free loopback port, its temp folder ``folder/tmp``.

    Waits until it answers; on leaving, stops it with SIGTERM (SIGKILL after 15 s) if it
    still runs. Raises RuntimeError when it does not start.
    """
    temp = folder / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    log = folder / f"studio-{time.monotonic_ns()}.log"
    port = free_port()
    env = {**os.environ, "TMPDIR": str(temp)}
    env.pop("AUDIOSTYLE_TOKEN", None)
    command = [sys.executable, "-m", "audiostyle_cli", "serve", "--port", str(port), "--device", "cpu", "--token", token, *args]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            # The limit must hold from the child's first instruction; it sets it before exec, no threads involved.
            preexec_fn=(lambda: _limit_memory(memory_limit)) if memory_limit and sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
    studio = Studio(process, port, token, temp, log)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"audiostyle serve did not start (exit {process.poll()}):\n{studio.output()[-3000:]}")
            try:
                if studio.request("GET", "/options", timeout=2).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        yield studio
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def open_event_stream(studio: Studio, job_id: str, timeout: float = 20.0) -> socket.socket:
    """A connected ``/jobs/{id}/events`` stream, its first event read."""
    sock = socket.create_connection(("127.0.0.1", studio.port), timeout=timeout)
    head = f"GET /jobs/{job_id}/events HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in studio.auth()) + "\r\n"
    sock.sendall(head.encode())
    received = b""
    deadline = time.monotonic() + timeout
    while b"data: " not in received and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    if b" 200 " not in received.split(b"\r\n", 1)[0]:
        sock.close()
        raise RuntimeError(f"the event stream did not open: {received[:200]!r}")
    return sock


def wait_for_status(client: Any, job_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> dict:
    """Poll ``GET /jobs/{job_id}`` through an httpx-like ``client`` until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")
