"""Hostile requests against the web studio: each must get the right 4xx and cost nothing.

:func:`hostile_cases` starts ``audiostyle serve`` on a free loopback port (a subprocess under a
memory limit, its temp folder inside the folder given), throws at it what an attacker or a
careless script would, stops it with SIGTERM while an event stream is open, and yields one
``(case, None)`` per case the studio answered as it should, or ``(case, "what went wrong")``.
Every loop is bounded in count and time, and all traffic goes to 127.0.0.1.

The helpers (raw HTTP with chosen framing, multipart bodies, a FLAC decompression bomb, the
server process) live in ``tests/hostile_studio.py``, shared with ``tests/test_web_security.py``.

Run::

    python -m benchmarks.studio_hostile        # prints one line per case
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tests.hostile_studio import (
    Reply,
    Studio,
    chunked,
    flac_bomb,
    multipart,
    open_event_stream,
    padded_form,
    raw_request,
    running_studio,
    studio_folders,
    wav_bytes,
)

__all__ = ["hostile_cases"]

#: Per-file upload limit the benchmark's studio runs with, in MB (small, so the oversize
#: bodies stay cheap to send).
UPLOAD_LIMIT_MB = 1
#: Seconds the studio may take to exit after SIGTERM with an event stream open.
EXIT_DEADLINE = 8.0


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
    # A decoy boundary first: counting parts on it while the parser splits on the last one
    # would let the 200 fields through uncounted.
    content_type, body = multipart(many)
    real = content_type.rpartition("=")[2]
    headers = [*studio.auth(), ("Content-Type", f"multipart/form-data; boundary=decoy; boundary={real}"),
               ("Content-Length", str(len(body)))]
    reply = raw_request(studio.port, "POST", "/jobs", headers=headers, body=[body])
    yield refused("two boundaries", _expect(reply, [400], "ambiguous_boundary"))
    nine = ("content", "nine.wav", wav_bytes(0.6, 22050, seed=3, channels=9))
    yield refused("nine channels", _expect(studio.submit([nine, style, *cheap]), [422], "bad_audio"))

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
