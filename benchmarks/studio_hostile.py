"""Hostile requests against the web studio: each must get the right 4xx and cost nothing.

:func:`hostile_cases` starts ``audiostyle serve`` on a free loopback port (a subprocess under a
memory limit, its temp folder inside the folder given), throws at it what an attacker or a
careless script would, stops it with SIGTERM while an event stream is open, and yields one
``(case, None)`` per case the studio answered as it should, or ``(case, "what went wrong")``.
Every loop is bounded in count and time, and all traffic goes to 127.0.0.1.

The helpers (raw HTTP with chosen framing, multipart bodies, a FLAC decompression bomb, the
server process) are shared with ``tests/test_web_security.py``.

Run::

    python -m benchmarks.studio_hostile        # prints one line per case
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
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

__all__ = [
    "hostile_cases",
    "Reply",
    "Studio",
    "running_studio",
    "raw_request",
    "multipart",
    "chunked",
    "flac_bomb",
    "wav_bytes",
    "free_port",
    "studio_folders",
    "open_event_stream",
    "padded_form",
]

TOKEN = "hostile-benchmark-token-0123456789"
#: Per-file upload limit the benchmark's studio runs with, in MB (small, so the oversize
#: bodies stay cheap to send).
UPLOAD_LIMIT_MB = 1
#: Address space allowed to the studio process: a decoder that believed a bomb's header
#: would fail here instead of taking the machine's memory.
MEMORY_LIMIT = 3 * 2**30
#: Seconds the studio may take to exit after SIGTERM with an event stream open.
EXIT_DEADLINE = 8.0
_PIECE = 64 * 1024


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wav_bytes(seconds: float = 1.0, rate: int = 16000, *, seed: int = 0) -> bytes:
    """A short mono 16-bit WAV: a tone plus a little noise."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.05 * np.random.default_rng(seed).standard_normal(t.size)
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
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
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
            preexec_fn=(lambda: _limit_memory(memory_limit)) if memory_limit and sys.platform.startswith("linux") else None,
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


def _expect(reply: Reply, statuses: Iterable[int], code: str | None = None) -> str | None:
    """None when ``reply`` has one of ``statuses`` and the studio's JSON error body."""
    statuses = tuple(statuses)
    body = reply.json()
    if reply.status not in statuses:
        return f"HTTP {reply.status or 'no answer'} (wanted {'/'.join(map(str, statuses))}): {reply.body[:200]!r}"
    if code is not None and body.get("error") != code:
        return f"HTTP {reply.status} but error {body.get('error')!r}, wanted {code!r}: {reply.body[:200]!r}"
    if not isinstance(body.get("detail"), str) or not body.get("detail"):
        return f"HTTP {reply.status} without the JSON error body: {reply.body[:200]!r}"
    return None


def _job_folders(studio: Studio) -> set[str]:
    return {p.name for folder in studio_folders(studio.temp) for p in folder.iterdir() if p.is_dir()}


def _cases(studio: Studio) -> Iterator[tuple[str, str | None]]:
    """The request cases against a running studio (the shutdown cases follow in :func:`hostile_cases`)."""
    options = studio.request("GET", "/options")
    limits = options.json().get("limits", {})
    cap = 2 * UPLOAD_LIMIT_MB * 2**20 + 2**20  # the studio's per-request body limit (for messages)
    style = ("style", "style.wav", wav_bytes(0.6, 22050, seed=1))
    content = ("content", "content.wav", wav_bytes(0.6, 22050, seed=2))
    cheap = [("preset", None, b"fast"), ("iterations", None, b"1")]

    kept = [_job_folders(studio)]

    def refused(name: str, reply_problem: str | None) -> tuple[str, str | None]:
        now = _job_folders(studio)
        if reply_problem is None and now != kept[0]:
            reply_problem = "a refused request left files behind"
        kept[0] = now
        return name, reply_problem
    yield refused("missing token", _expect(raw_request(studio.port, "GET", "/jobs", headers=[("Host", studio.host)]), [401], "unauthorized"))
    wrong = [("Host", studio.host), ("Authorization", "token not-the-token")]
    yield refused("wrong token", _expect(raw_request(studio.port, "GET", "/jobs", headers=wrong), [401], "unauthorized"))
    rebinding = [("Host", f"evil.example:{studio.port}"), ("Authorization", f"token {studio.token}")]
    yield refused("foreign Host", _expect(raw_request(studio.port, "GET", "/jobs", headers=rebinding), [403], "bad_host"))
    yield refused(
        "foreign Origin",
        _expect(studio.submit([content, style, *cheap], headers=[("Origin", "http://evil.example")]), [403], "foreign_origin"),
    )
    yield refused("bomb upload", _expect(studio.submit([("content", "bomb.flac", flac_bomb()), style, *cheap]), [413, 422]))
    yield refused("huge iterations", _expect(studio.submit([content, style, ("iterations", None, b"100000")]), [422]))

    # Far more than the limit and than what the kernel buffers between client and server
    # (tens of MB on loopback), so an answer before the end means the server stopped reading.
    padding = 96 * 2**20
    for name, framing, status, code in (
        ("CL+chunked framing", [("Content-Length", "1000"), ("Transfer-Encoding", "chunked")], 400, "ambiguous_framing"),
        ("oversize chunked body", [("Transfer-Encoding", "chunked")], 413, "too_large"),
    ):
        content_type, total, body = padded_form([content, style, *cheap], padding)
        headers = [*studio.auth(), ("Content-Type", content_type), *framing]
        reply = raw_request(studio.port, "POST", "/jobs", headers=headers, body=chunked(body))
        problem = _expect(reply, [status], code)
        if problem is None and reply.sent >= total:
            problem = f"answered only after the whole {total}-byte body (the limit is {cap})"
        yield refused(name, problem)

    many = [content, style, *cheap, *((f"field{i}", None, b"x") for i in range(200))]
    yield refused("too many parts", _expect(studio.submit(many), [413], "too_many_parts"))

    pending = int(limits.get("pending_jobs", 0))
    if pending <= 0:
        yield "flood past the queue bound", f"/options does not say the queue bound: {options.body[:200]!r}"
        return
    # Classic runs 300 iterations: the first job is still running when the flood ends.
    slow = [("preset", None, b"classic")]
    accepted, refusals, problem = [], 0, None
    for index in range(pending + 4):
        reply = studio.submit([content, style, *slow])
        if reply.status == 201:
            accepted.append(reply.json().get("id"))
        elif _expect(reply, [429], "queue_full") is None:
            refusals += 1
        else:
            problem = f"submission {index + 1}: {_expect(reply, [201, 429])}"
            break
    if problem is None and len(accepted) > pending:
        problem = f"{len(accepted)} jobs accepted, over the bound of {pending}"
    elif problem is None and refusals < 4 - max(0, pending - len(accepted)):
        problem = f"only {refusals} of {pending + 4} submissions refused"
    yield "flood past the queue bound", problem
    alive = studio.request("GET", "/options", timeout=10)
    yield "still alive after the cases", None if alive.status == 200 else f"/options answered HTTP {alive.status or 'nothing'}"


def hostile_cases(folder: Path) -> Iterator[tuple[str, str | None]]:
    """Run the hostile cases against a fresh studio whose files go under ``folder``.

    Yields ``(case, None)`` for each case answered as it should be, ``(case, problem)`` for
    each that was not. Takes some ten seconds, most of it starting the server.
    """
    folder = Path(folder)
    try:
        with running_studio(folder, args=("--upload-limit", str(UPLOAD_LIMIT_MB))) as studio:
            names = set()
            for name, problem in _cases(studio):
                names.add(name)
                yield name, problem
            # Shutdown with the page's live stream open and jobs queued: within seconds.
            jobs = studio.request("GET", "/jobs").json().get("value", [])
            running = [job["id"] for job in jobs if job.get("status") in ("queued", "running")]
            stream = open_event_stream(studio, running[0]) if running else None
            try:
                started = time.monotonic()
                studio.process.send_signal(signal.SIGTERM)
                try:
                    studio.process.wait(timeout=EXIT_DEADLINE + 10)
                except subprocess.TimeoutExpired:
                    pass
                took = time.monotonic() - started
            finally:
                if stream is not None:
                    stream.close()
            if studio.process.poll() is None:
                yield "SIGTERM with an open event stream", f"still running {took:.0f} s after SIGTERM"
            elif took > EXIT_DEADLINE:
                yield "SIGTERM with an open event stream", f"took {took:.1f} s to exit (limit {EXIT_DEADLINE:g} s)"
            elif "Traceback" in studio.output():
                yield "SIGTERM with an open event stream", "printed a traceback: " + studio.output()[-500:]
            else:
                yield "SIGTERM with an open event stream", None
        left = studio_folders(studio.temp)
        yield "no files left behind", None if not left else f"left {[str(p) for p in left]}"
    except Exception as error:  # noqa: BLE001 - a harness failure is a finding, not a crash of the benchmark
        yield "studio harness", f"{type(error).__name__}: {error}"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="studio-hostile-") as folder:
        failures = 0
        for name, problem in hostile_cases(Path(folder)):
            failures += problem is not None
            print(f"{'ok  ' if problem is None else 'FAIL'} {name}" + (f": {problem}" if problem else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
