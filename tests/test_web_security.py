"""The studio against hostile pages, hostile neighbours and hostile requests, over real HTTP.

Most cases run the app under uvicorn in a thread on a free loopback port; the shutdown, the
decompression bomb and the sweep of a killed studio's files run ``python -m audiostyle_cli
serve`` as a subprocess (the bomb under a memory limit). The raw-socket helpers come from
``benchmarks/studio_hostile.py``, which throws the same cases at the studio as a benchmark.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi", reason="the web studio needs the 'web' extra")
pytest.importorskip("multipart", reason="the web studio needs the 'web' extra")
uvicorn = pytest.importorskip("uvicorn", reason="the web studio needs the 'web' extra")
httpx = pytest.importorskip("httpx", reason="these tests speak HTTP with httpx")

from tests.support import STUDIO_PRESETS as PRESETS  # noqa: E402
from audiostyle_cli.web.app import create_app  # noqa: E402
from audiostyle_cli.web.workdir import OWNER_FILE, PREFIX, sweep_orphans  # noqa: E402
from tests.hostile_studio import (  # noqa: E402
    chunked,
    flac_bomb,
    free_port,
    multipart,
    open_event_stream,
    padded_form,
    raw_request,
    running_studio,
    studio_folders,
    wait_for_status,
    wav_bytes,
)

TOKEN = "security-test-token-0123456789"
UPLOAD_LIMIT = 200_000
#: The studio's body limit for that upload limit: two files and a MiB for the form.
BODY_LIMIT = 2 * UPLOAD_LIMIT + 2**20
#: Seconds ``audiostyle serve`` may take to exit once signalled, event stream open.
EXIT_WITHIN = 6.0


@dataclass
class Live:
    """The studio app served on 127.0.0.1:``port``."""

    app: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workdir(self) -> Path:
        return self.app.state.workdir

    def client(self, **headers: str) -> httpx.Client:
        """A client that sends the token as a script would, plus ``headers``."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"token {TOKEN}", **headers}, timeout=30)

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.workdir.iterdir() if p.name != OWNER_FILE)


@contextlib.contextmanager
def serving(tmp_path: Path, **options: Any) -> Iterator[Live]:
    settings = {"workdir": tmp_path, "presets": PRESETS, "default_preset": "tiny", "token": TOKEN, "upload_limit": UPLOAD_LIMIT}
    app = create_app(**{**settings, **options})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the studio did not start"
        time.sleep(0.02)
    try:
        yield Live(app, port)
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def live(tmp_path) -> Iterator[Live]:
    with serving(tmp_path) as studio:
        yield studio


@pytest.fixture
def uploads() -> dict[str, tuple[str, bytes, str]]:
    return {
        "content": ("voice.wav", wav_bytes(1.0, 16000, seed=1), "audio/wav"),
        "style": ("cello.wav", wav_bytes(1.0, 16000, seed=2), "audio/wav"),
    }


def wait_status(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    return wait_for_status(client, job_id, statuses, timeout)


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    return body["error"]


# -- finding 2: only its user, through its own page ------------------------------------------


@pytest.mark.parametrize(
    "foreign",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/attack.html"},
        # Another port of the same address is another origin (and another local user).
        {"Origin": "http://127.0.0.1:1"},
    ],
)
def test_changes_from_a_foreign_page_are_refused(live, uploads, foreign):
    with live.client() as client:
        job = client.post("/jobs", files=uploads, data={"preset": "slow"}).json()
        with live.client(**foreign) as attacker:
            response = attacker.post("/jobs", files=uploads, data={"preset": "tiny"})
            assert response.status_code == 403 and error_of(response) == "foreign_origin"
            response = attacker.delete(f"/jobs/{job['id']}")
            assert response.status_code == 403 and error_of(response) == "foreign_origin"
        assert [j["id"] for j in client.get("/jobs").json()] == [job["id"]]
        assert client.get(f"/jobs/{job['id']}").json()["status"] in ("queued", "running")
        # The studio's own page may.
        with live.client(Origin=live.url, Referer=live.url + "/") as page:
            assert page.delete(f"/jobs/{job['id']}").status_code == 200


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "192.168.1.5:{port}", "localhost.evil.example:{port}"])
def test_foreign_host_names_are_refused(live, host):
    """DNS rebinding: a page whose name now resolves to 127.0.0.1 still sends its own Host."""
    with live.client(Host=host.format(port=live.port)) as client:
        response = client.get("/jobs")
    assert response.status_code == 403 and error_of(response) == "bad_host"


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "127.8.9.10:{port}", "LOCALHOST"])
def test_loopback_host_names_are_answered(live, host):
    with live.client(Host=host.format(port=live.port)) as client:
        assert client.get("/jobs").status_code == 200


def test_the_configured_host_is_answered_too(tmp_path):
    with serving(tmp_path, allowed_hosts=["studio.lan"]) as live:
        with live.client(Host=f"studio.lan:{live.port}") as client:
            assert client.get("/jobs").status_code == 200
        with live.client(Host=f"other.lan:{live.port}") as client:
            assert client.get("/jobs").status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs"),
        ("GET", "/options"),
        ("GET", "/openapi.json"),
        ("GET", "/samples/violin.wav"),
        ("POST", "/jobs"),
    ],
)
@pytest.mark.parametrize("credentials", [{}, {"Authorization": "token wrong"}, {"X-Audiostyle-Token": TOKEN[:-1]}])
def test_every_api_request_needs_the_token(live, method, path, credentials):
    with httpx.Client(base_url=live.url, headers=credentials) as stranger:
        response = stranger.request(method, path)
    assert response.status_code == 401 and error_of(response) == "unauthorized"


def test_another_local_user_cannot_read_or_delete_a_job(live, uploads):
    with live.client() as owner:
        job = owner.post("/jobs", files=uploads, data={"preset": "tiny"}).json()
        done = wait_status(owner, job["id"], ("done", "failed"))
        assert done["status"] == "done", done["error"]
    with httpx.Client(base_url=live.url) as stranger:
        for url in (f"/jobs/{job['id']}", done["urls"]["result"]["wav"], done["urls"]["inputs"]["content"], "/jobs"):
            assert stranger.get(url).status_code == 401, url
        assert stranger.delete(f"/jobs/{job['id']}").status_code == 401
    assert job["id"] in live.stored() and (live.workdir / job["id"] / "content").exists()


@pytest.mark.parametrize(
    "credentials",
    [
        {"headers": {"Authorization": f"token {TOKEN}"}},
        {"headers": {"Authorization": f"Bearer {TOKEN}"}},
        {"headers": {"X-Audiostyle-Token": TOKEN}},
        {"params": {"token": TOKEN}},
    ],
)
def test_scripts_pass_the_token_as_a_header_or_query(live, credentials):
    with httpx.Client(base_url=live.url) as script:
        assert script.get("/options", **credentials).status_code == 200


def test_the_page_link_keeps_the_token_in_a_strict_cookie(live):
    with httpx.Client(base_url=live.url) as browser:
        page = browser.get("/")
        assert page.status_code == 401 and "text/html" in page.headers["content-type"] and "?token=" in page.text
        assert browser.get("/", params={"token": "wrong"}).status_code == 401
        entered = browser.get("/", params={"token": TOKEN})
        assert entered.status_code == 303 and entered.headers["location"] == "/"
        cookie = entered.headers["set-cookie"]
        assert cookie.startswith(f"audiostyle-token-{live.port}={TOKEN};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # The cookie now opens the page and the API, from the page itself only.
        assert browser.get("/").status_code == 200
        assert browser.get("/jobs", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
        embedded = browser.get("/jobs", headers={"Sec-Fetch-Site": "same-site"})
        assert embedded.status_code == 403 and error_of(embedded) == "foreign_origin"
        assert browser.get("/jobs", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_assets_are_public_and_every_response_forbids_framing(live):
    with httpx.Client(base_url=live.url) as anyone:
        responses = [anyone.get("/static/app.js"), anyone.get("/favicon.ico"), anyone.get("/"), anyone.get("/jobs")]
        responses.append(anyone.get("/jobs", headers={"Host": "evil.example"}))
    with live.client() as client:
        responses += [client.get("/jobs"), client.get("/no/such/page")]
    assert [r.status_code for r in responses] == [200, 200, 401, 401, 403, 200, 404]
    assert responses[1].headers["content-type"].startswith("image/svg+xml")
    for response in responses:
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"


# -- finding 3: the body limit counts what arrives ---------------------------------------------


def form_headers(live: Live, content_type: str, *framing: tuple[str, str]) -> list[tuple[str, str]]:
    return [("Host", f"127.0.0.1:{live.port}"), ("Authorization", f"token {TOKEN}"), ("Content-Type", content_type), *framing]


def test_content_length_with_chunked_is_refused_before_the_body(live, uploads):
    parts = [(role, name, data) for role, (name, data, _) in uploads.items()]
    content_type, total, body = padded_form(parts, 64 * 2**20)
    framing = [("Content-Length", "1000"), ("Transfer-Encoding", "chunked")]
    reply = raw_request(live.port, "POST", "/jobs", headers=form_headers(live, content_type, *framing), body=chunked(body))
    assert reply.status == 400 and reply.json()["error"] == "ambiguous_framing"
    assert reply.sent < total, "the server read the whole body before answering"
    assert live.stored() == []


def test_a_chunked_body_is_cut_off_at_the_limit(live, uploads):
    parts = [(role, name, data) for role, (name, data, _) in uploads.items()]
    content_type, total, body = padded_form(parts, 64 * 2**20)
    reply = raw_request(live.port, "POST", "/jobs", headers=form_headers(live, content_type, ("Transfer-Encoding", "chunked")), body=chunked(body))
    assert reply.status == 413 and reply.json()["error"] == "too_large"
    assert reply.sent < total, "the server read the whole body before answering"
    assert live.stored() == []
    # A chunked upload within the limits is fine.
    content_type, body = multipart([*parts, ("preset", None, b"tiny")])
    reply = raw_request(live.port, "POST", "/jobs", headers=form_headers(live, content_type, ("Transfer-Encoding", "chunked")), body=chunked([body]))
    assert reply.status == 201, reply.body


def test_conflicting_content_lengths_are_refused(live):
    headers = form_headers(live, "multipart/form-data; boundary=x", ("Content-Length", "10"), ("Content-Length", "20"))
    reply = raw_request(live.port, "POST", "/jobs", headers=headers, body=[b"0123456789"])
    assert reply.status == 400


def test_a_form_with_too_many_parts_is_refused(live, uploads):
    parts = [(role, name, data) for role, (name, data, _) in uploads.items()]
    content_type, body = multipart([*parts, *((f"field{i}", None, b"x") for i in range(100))])
    reply = raw_request(live.port, "POST", "/jobs", headers=form_headers(live, content_type, ("Content-Length", str(len(body)))), body=[body])
    assert reply.status == 413 and reply.json()["error"] == "too_many_parts"
    assert live.stored() == []


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=decoy; boundary={real}",  # one parser reads the first, another the last
        "multipart/form-data; BOUNDARY=decoy; boundary={real}",
        'multipart/form-data; boundary="decoy"; boundary*={real}',
    ],
)
def test_a_form_with_several_boundaries_is_refused(live, uploads, content_type):
    parts = [(role, name, data) for role, (name, data, _) in uploads.items()]
    real, body = multipart([*parts, *((f"field{i}", None, b"x") for i in range(100))])
    header = content_type.format(real=real.rpartition("=")[2])
    reply = raw_request(live.port, "POST", "/jobs", headers=form_headers(live, header, ("Content-Length", str(len(body)))), body=[body])
    assert reply.status == 400 and reply.json()["error"] == "ambiguous_boundary"
    assert live.stored() == []


def test_two_content_types_are_refused(live, uploads):
    parts = [(role, name, data) for role, (name, data, _) in uploads.items()]
    content_type, body = multipart(parts)
    headers = [*form_headers(live, content_type, ("Content-Length", str(len(body)))), ("Content-Type", "text/plain")]
    reply = raw_request(live.port, "POST", "/jobs", headers=headers, body=[body])
    assert reply.status == 400 and reply.json()["error"] == "ambiguous_boundary"


def test_parts_are_counted_on_the_boundary_the_parser_uses(live, uploads):
    # A quoted boundary with a separator inside: split naively, ';' would cut it short.
    parts = [(role, name, data) for role, (name, data, _) in uploads.items()]
    plain, body = multipart([*parts, *((f"field{i}", None, b"x") for i in range(100))])
    boundary = plain.rpartition("=")[2]
    quoted = boundary[:8] + ";" + boundary[8:]
    body = body.replace(boundary.encode(), quoted.encode())
    header = f'multipart/form-data; boundary="{quoted}"'
    reply = raw_request(live.port, "POST", "/jobs", headers=form_headers(live, header, ("Content-Length", str(len(body)))), body=[body])
    assert reply.status == 413 and reply.json()["error"] == "too_many_parts"


# -- finding 4: bounded queue, storage, lifetime and iterations --------------------------------


def test_the_queue_is_bounded(tmp_path, uploads):
    with serving(tmp_path, max_pending=2) as live, live.client() as client:
        first, second = (client.post("/jobs", files=uploads, data={"preset": "slow"}) for _ in range(2))
        assert first.status_code == second.status_code == 201
        for _ in range(3):
            refused = client.post("/jobs", files=uploads, data={"preset": "tiny"})
            assert refused.status_code == 429 and error_of(refused) == "queue_full"
        assert len(client.get("/jobs").json()) == 2 and len(live.stored()) == 2
        assert client.get("/options").json()["limits"]["pending_jobs"] == 2
        # Room again once one has stopped.
        client.delete(f"/jobs/{first.json()['id']}")
        wait_status(client, first.json()["id"], ("cancelled",))
        assert client.post("/jobs", files=uploads, data={"preset": "slow"}).status_code == 201


def test_stored_bytes_are_bounded(tmp_path, uploads):
    # One job's two uploads and the room its result may take fit; a second's do not.
    with serving(tmp_path, storage_limit=3 * 2**20) as live, live.client() as client:
        assert client.post("/jobs", files=uploads, data={"preset": "slow"}).status_code == 201
        refused = client.post("/jobs", files=uploads, data={"preset": "slow"})
        assert refused.status_code == 507 and error_of(refused) == "storage_full"
        assert f"{3 * 2**20} bytes" in refused.json()["detail"]
        assert len(live.stored()) == 1


def test_a_result_is_counted_before_it_is_written(tmp_path, uploads):
    # Tiny inputs asking for a long texture: refused for the result it would write.
    style = {"style": uploads["style"]}
    with serving(tmp_path, storage_limit=3 * 2**20) as live, live.client() as client:
        refused = client.post("/jobs", files=style, data={"mode": "texture", "duration": "60", "preset": "slow"})
        assert refused.status_code == 507 and error_of(refused) == "storage_full"
        assert live.stored() == []
        # Once a job is done its files count as they are, and the room held for it is free.
        job = client.post("/jobs", files=uploads, data={"preset": "tiny"}).json()
        assert wait_status(client, job["id"], ("done", "failed"))["status"] == "done"
        again = client.post("/jobs", files=uploads, data={"preset": "tiny"})
        assert again.status_code == 201, again.text


def test_result_bytes_bound_what_a_job_writes(tmp_path):
    import numpy as np
    import soundfile as sf

    from audiostyle import get_preset
    from audiostyle.io import audio_info
    from audiostyle_cli.web.studio import result_bytes

    config = get_preset("fast")
    rate = 16000
    content, style = tmp_path / "c.wav", tmp_path / "s.wav"
    sf.write(content, np.zeros((2 * rate, 2)), rate, subtype="FLOAT")
    sf.write(style, np.zeros(rate), rate, subtype="PCM_16")
    infos = {"content": audio_info(content), "style": audio_info(style)}
    # 2 s, stereo, at the working rate (above 16 kHz), float WAV plus a 24-bit FLAC, plus a figure.
    samples = 2 * config.sample_rate + config.n_fft
    assert result_bytes(infos, config, None) >= samples * 2 * (4 + 3)
    texture = {"style": infos["style"]}
    assert result_bytes(texture, config, 60.0) > 60 * config.sample_rate * (2 + 3)
    # Without a duration a texture is as long as its style (1 s).
    assert result_bytes(texture, config, 60.0) - result_bytes(texture, config, None) >= 59 * config.sample_rate * (2 + 3)


def test_finished_jobs_expire_with_their_files(tmp_path, uploads):
    with serving(tmp_path, job_ttl=1.0) as live, live.client() as client:
        job = client.post("/jobs", files=uploads, data={"preset": "tiny"}).json()
        assert wait_status(client, job["id"], ("done", "failed"))["status"] == "done"
        # Expiry needs no request: the folder goes by itself.
        deadline = time.monotonic() + 10
        while job["id"] in live.stored() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live.stored() == []
        assert client.get(f"/jobs/{job['id']}").status_code == 404


@pytest.mark.parametrize(("cap", "asked"), [(None, 2001), (None, 100_000), (50, 51)])
def test_iterations_are_capped(tmp_path, uploads, cap, asked):
    options = {} if cap is None else {"max_iterations": cap}
    with serving(tmp_path, **options) as live, live.client() as client:
        response = client.post("/jobs", files=uploads, data={"preset": "tiny", "iterations": str(asked)})
        assert response.status_code == 422 and "iterations" in response.json()["detail"]
        assert client.get("/options").json()["limits"]["iterations"] == (cap or 2000)
        assert live.stored() == []


# -- finding 1 (studio half): uploads are sniffed, not decoded ---------------------------------


def test_a_decompression_bomb_is_refused_by_its_header(tmp_path):
    """A 120-byte FLAC promising 23 GiB, posted to a studio limited to 3 GiB of address space.

    Then the studio is killed outright (SIGKILL): the next one to start removes its folder.
    """
    style = ("style", "style.wav", wav_bytes(0.6, 22050))
    huge_wav = bytearray(wav_bytes(0.6, 22050))
    huge_wav[40:44] = (0xFFFFFFF0).to_bytes(4, "little")  # the data chunk claims 4 GiB
    with running_studio(tmp_path, memory_limit=3 * 2**30) as studio:
        reply = studio.submit([("content", "bomb.flac", flac_bomb()), style])
        assert reply.status in (413, 422), reply.body
        assert "bomb.flac" in reply.json()["detail"] and "384000 Hz" in reply.json()["detail"]
        reply = studio.submit([("content", "huge.wav", bytes(huge_wav)), style])
        assert reply.status in (413, 422), reply.body
        assert "huge.wav" in reply.json()["detail"]
        assert studio.request("GET", "/options").status == 200, "the studio died"
        assert [p.name for folder in studio_folders(studio.temp) for p in folder.iterdir()] == [OWNER_FILE]

        job = studio.submit([("content", "c.wav", wav_bytes(1.0)), style, ("preset", None, b"classic")])
        assert job.status == 201
        studio.process.kill()
        studio.process.wait()
        left = studio_folders(studio.temp)
        assert len(left) == 1 and (left[0] / job.json()["id"]).is_dir()
    with running_studio(tmp_path) as second:
        now = studio_folders(second.temp)
        assert left[0] not in now and len(now) == 1


# -- finding 5: shutdown is quick, cancels the work and leaves nothing --------------------------


def start_classic_job(studio) -> str:
    """A classic job (300 iterations of 4 s of audio), once it runs."""
    content = ("content", "voice.wav", wav_bytes(4.0, 22050, seed=1))
    style = ("style", "violin.wav", wav_bytes(4.0, 22050, seed=2))
    reply = studio.submit([content, style, ("preset", None, b"classic")])
    assert reply.status == 201, reply.body
    job_id = reply.json()["id"]
    deadline = time.monotonic() + 120
    while studio.request("GET", f"/jobs/{job_id}").json().get("status") != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    return job_id


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT], [signal.SIGINT, signal.SIGINT]], ids=["TERM", "INT", "INT-INT"])
def test_a_signal_stops_the_studio_within_seconds(tmp_path, signals):
    with running_studio(tmp_path) as studio:
        stream = open_event_stream(studio, start_classic_job(studio))
        try:
            started = time.monotonic()
            for sent in signals:
                studio.process.send_signal(sent)
                time.sleep(0.3)
            code = studio.process.wait(timeout=30)
            took = time.monotonic() - started
        finally:
            stream.close()
    assert took < EXIT_WITHIN, f"took {took:.1f} s to exit"
    assert code == 0, studio.output()
    assert "Traceback" not in studio.output()
    assert studio_folders(studio.temp) == [], "the private folder was left behind"


def test_sweep_removes_only_this_users_orphans(tmp_path):
    def folder(name: str, owner: str | None) -> Path:
        path = tmp_path / f"{PREFIX}{name}"
        path.mkdir()
        (path / "content").write_bytes(b"x")
        if owner is not None:
            (path / OWNER_FILE).write_text(owner)
        return path

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead = folder("dead", gone.stdout.strip())
    alive = folder("alive", str(os.getppid()))
    unowned = folder("unowned", None)  # an older studio's, or one starting now
    garbled = folder("garbled", "not a pid")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / OWNER_FILE).write_text(gone.stdout.strip())
    (tmp_path / f"{PREFIX}link").symlink_to(elsewhere)
    old_unowned = folder("old", None)
    os.utime(old_unowned, (time.time() - 3 * 86400, time.time() - 3 * 86400))

    removed = sweep_orphans(tmp_path)
    assert sorted(removed) == sorted([dead, old_unowned])
    assert not dead.exists() and not old_unowned.exists()
    assert alive.exists() and unowned.exists() and garbled.exists() and elsewhere.exists()
    if os.geteuid() == 0:  # only root can make a folder that belongs to someone else
        foreign = folder("foreign", gone.stdout.strip())
        os.chown(foreign, 12345, 12345)
        assert sweep_orphans(tmp_path) == [] and foreign.exists()
