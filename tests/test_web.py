"""The web studio's JSON API, run in-process with the framework's test client.

The hostile cases (foreign hosts and origins, tokens, framing, floods, shutdown) go through
real HTTP in ``test_web_security.py``.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import warnings
import webbrowser

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the web studio needs the 'web' extra")
pytest.importorskip("multipart", reason="the web studio needs the 'web' extra")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

with warnings.catch_warnings():  # Starlette's notice about httpx's successor, not ours to fix
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from tests.hostile_studio import wait_for_status  # noqa: E402
from tests.support import STUDIO_PRESETS as PRESETS  # noqa: E402
from tests.support import TINY  # noqa: E402
from audiostyle_cli.web.app import create_app  # noqa: E402
from audiostyle_cli.web.uploads import label  # noqa: E402
from audiostyle_cli.web.workdir import OWNER_FILE  # noqa: E402

TOKEN = "test-token-0123456789abcdef"


def studio_client(app) -> TestClient:
    """A test client that talks to the studio as its own page would: loopback host, token."""
    return TestClient(app, base_url="http://127.0.0.1", headers={"X-Audiostyle-Token": TOKEN})


def stored(workdir) -> list[str]:
    """What the studio keeps in its private folder, besides the file naming its owner."""
    return sorted(p.name for p in workdir.iterdir() if p.name != OWNER_FILE)


def wav_bytes(rng: np.random.Generator, seconds: float = 1.0, rate: int = 16000, tone: float = 220.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * tone * t) + 0.05 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, audio.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture
def client(tmp_path):
    app = create_app(upload_limit=200_000, workdir=tmp_path, presets=PRESETS, default_preset="tiny", token=TOKEN)
    with studio_client(app) as client:
        yield client


@pytest.fixture
def uploads(rng):
    return {
        "content": ("voice take 1.wav", wav_bytes(rng, tone=220.0), "audio/wav"),
        "style": ("cello.wav", wav_bytes(rng, tone=330.0), "audio/wav"),
    }


def wait_for(client: TestClient, job_id: str, statuses: tuple[str, ...], timeout: float = 30.0) -> dict:
    return wait_for_status(client, job_id, statuses, timeout)


def wait_running(client: TestClient, job_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] == "running" and job["step"] >= 1:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never took a step: {job}")


def test_page_and_options_are_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200
        # No CDN: the studio must work offline.
        assert "http://" not in response.text and "https://" not in response.text
    assert "https://" not in page.text and "http://" not in page.text
    options = client.get("/options").json()
    assert set(options["presets"]) == {"tiny", "slow"} and options["default_preset"] == "tiny"
    assert options["upload_limit"] == 200_000
    assert {s["name"] for s in options["samples"]} == {"voice.flac", "violin.wav", "rain.ogg", "drums.wav"}
    assert client.get("/samples/violin.wav").status_code == 200
    assert client.get("/samples/..%2Fpyproject.toml").status_code == 404


def test_openapi_documents_the_job_api(client):
    # No interactive docs: they load their scripts from a CDN and are blank offline.
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert "/docs" not in client.get("/").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"post", "get"} <= set(paths["/jobs"])
    assert {"get", "delete"} <= set(paths["/jobs/{job_id}"])
    for path in ("/jobs/{job_id}/events", "/jobs/{job_id}/result"):
        assert "get" in paths[path]


def test_upload_job_runs_to_a_downloadable_result(client, uploads, tmp_path):
    response = client.post("/jobs", files=uploads, data={"preset": "tiny", "strength": "0.7", "iterations": "4"})
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["inputs"] == {"content": "voice take 1.wav", "style": "cello.wav"}
    assert job["settings"]["strength"] == 0.7 and job["settings"]["iterations"] == 4

    # The event stream reports progress, then ends with the finished state.
    seen = []
    with client.stream("GET", f"/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                seen.append((event, json.loads(line[len("data: "):])))
    assert seen[-1][0] == "end" and seen[-1][1]["status"] == "done"
    assert all(event == "progress" for event, _ in seen[:-1])
    steps = [state["step"] for _, state in seen if state["status"] == "running" and state["step"]]
    assert steps == sorted(steps) and steps, "progress steps are reported in order"
    assert any(state["eta_seconds"] is not None for _, state in seen if state["step"])

    done = client.get(f"/jobs/{job['id']}").json()
    assert done["progress"] == 1.0 and done["error"] is None
    assert done["summary"]["losses_last"]["style"] < done["summary"]["losses_first"]["style"]
    assert done["summary"]["style_view"] == "spectrum"  # the tiny preset's fixed view, reported
    # The run's trade-off: how much content it kept, how much style it took.
    scores = done["summary"]["scores"]
    assert 0.0 <= scores["content"] <= 1.0 and 0.0 <= scores["style"] <= 1.0
    assert set(scores["content_parts"]) == {"chroma", "onsets", "structure"} and set(scores["style_parts"]) == {"timbre", "spectrum"}
    assert seen[-1][1]["summary"]["scores"] == scores

    wav = client.get(done["urls"]["result"]["wav"])
    assert wav.status_code == 200 and "voice%20take%201-cello.wav" in wav.headers["content-disposition"]
    audio, rate = sf.read(io.BytesIO(wav.content))
    assert rate == 16000 and audio.shape[0] == 16000 and np.isfinite(audio).all() and np.abs(audio).max() > 0
    flac = client.get(done["urls"]["result"]["flac"])
    assert sf.info(io.BytesIO(flac.content)).format == "FLAC"
    image = client.get(done["urls"]["spectrograms"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get(done["urls"]["inputs"]["content"]).content == uploads["content"][1]
    assert [j["id"] for j in client.get("/jobs").json()] == [job["id"]]

    # Stored under server-chosen names inside a private folder, never the client's names.
    workdir = client.app.state.workdir
    assert workdir.parent == tmp_path and (workdir.stat().st_mode & 0o077) == 0
    names = {p.name for p in workdir.rglob("*")}
    assert "voice take 1.wav" not in names
    assert names == {OWNER_FILE, job["id"], "content", "style", "result.wav", "result.flac", "spectrograms.png"}


def test_the_figure_titles_its_panels_with_the_file_names(client, uploads, monkeypatch):
    import audiostyle.plots

    drawn = []
    real = audiostyle.plots._draw_panels

    def spy(axes, panels):
        drawn.append([title for title, *_ in panels])
        return real(axes, panels)

    monkeypatch.setattr(audiostyle.plots, "_draw_panels", spy)
    response = client.post("/jobs", files=uploads, data={"preset": "tiny"})
    job = wait_for(client, response.json()["id"], ("done", "failed"))
    assert job["status"] == "done", job["error"]
    assert drawn == [["content: voice take 1.wav", "style: cello.wav", "output"]]
    assert stored(client.app.state.workdir / job["id"]) == ["content", "result.flac", "result.wav", "spectrograms.png", "style"]


def test_texture_job_from_the_style_alone(client, uploads):
    response = client.post(
        "/jobs",
        files={"style": uploads["style"]},
        data={"mode": "texture", "preset": "tiny", "duration": "1.0", "loop": "true"},
    )
    assert response.status_code == 201, response.text
    job = wait_for(client, response.json()["id"], ("done", "failed"))
    assert job["status"] == "done", job["error"]
    assert job["mode"] == "texture" and job["settings"]["loop"] is True
    assert "content" not in job["urls"]["inputs"] and job["urls"]["spectrograms"]
    assert job["summary"]["scores"] is None  # nothing to have kept
    audio, rate = sf.read(io.BytesIO(client.get(job["urls"]["result"]["wav"]).content))
    assert audio.shape[0] == pytest.approx(rate * 1.0, rel=0.05)


def nine_channels(rng) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * rng.standard_normal((4000, 9)), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def truncated_wav(rng) -> bytes:
    data = wav_bytes(rng)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "make", "status", "error"),
    [
        ("notes.wav", lambda rng: b"these are my notes, not audio\n" * 20, 415, "unsupported_media"),
        ("empty.wav", lambda rng: b"", 400, "empty_upload"),
        ("big.wav", lambda rng: wav_bytes(rng, seconds=8.0), 413, "too_large"),
        ("cut.wav", truncated_wav, 422, "truncated_audio"),
        ("click.wav", lambda rng: wav_bytes(rng, seconds=0.005), 422, "bad_audio"),
        ("nine.wav", nine_channels, 422, "bad_audio"),  # more than a FLAC copy can hold
    ],
)
def test_bad_uploads_are_clear_4xx_and_leave_nothing(client, uploads, rng, name, make, status, error):
    files = {"content": (name, make(rng), "audio/wav"), "style": uploads["style"]}
    response = client.post("/jobs", files=files, data={"preset": "tiny"})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and isinstance(body["detail"], str) and body["detail"]
    assert stored(client.app.state.workdir) == []
    assert client.get("/jobs").json() == []


def test_a_form_far_over_the_limit_is_refused_before_reading(client, rng):
    huge = b"\0" * 500_000
    response = client.post("/jobs", files={"content": ("a.wav", huge), "style": ("b.wav", huge)})
    assert response.status_code == 413 and response.json()["error"] == "too_large"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"preset": "warp"}, "preset='warp'"),
        ({"strength": "1.5"}, "strength"),
        ({"iterations": "0"}, "iterations"),
        ({"iterations": "2001"}, "iterations"),
        ({"network": "/etc/passwd"}, "network"),
        ({"mode": "remix"}, "mode"),
        ({"mode": "texture", "duration": "0.001"}, "must be at least"),
    ],
)
def test_bad_settings_are_422(client, uploads, data, fragment):
    response = client.post("/jobs", files=uploads, data=data)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


@pytest.mark.parametrize(
    ("files", "data", "fragment"),
    [
        ({}, {"content_sample": "drums.wav"}, "a style file"),
        ({}, {"content_sample": "../pyproject.toml", "style_sample": "drums.wav"}, "content_sample"),
        ({}, {"content_sample": "/etc/passwd", "style_sample": "drums.wav"}, "content_sample"),
    ],
)
def test_missing_or_unknown_inputs_are_422(client, files, data, fragment):
    response = client.post("/jobs", files=files, data={"preset": "tiny", **data})
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


def test_shipped_samples_as_inputs_and_unfinished_result(client, uploads):
    assert client.get("/no/such/page").json() == {"error": "not_found", "detail": "Not Found"}
    assert client.get("/jobs/nope").status_code == 404
    assert client.get("/jobs/nope").json()["error"] == "not_found"
    assert client.delete("/jobs/nope").status_code == 404
    ahead = client.post("/jobs", files=uploads, data={"preset": "slow"}).json()
    response = client.post("/jobs", data={"preset": "slow", "content_sample": "voice.flac", "style_sample": "rain.ogg"})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["inputs"] == {"content": "voice.flac", "style": "rain.ogg"}
    style = client.get(job["urls"]["inputs"]["style"])
    assert style.headers["content-type"] == "audio/ogg" and sf.info(io.BytesIO(style.content)).channels == 2
    response = client.get(f"/jobs/{job['id']}/result")
    assert response.status_code == 409 and response.json()["error"] == "not_ready"
    assert client.delete(f"/jobs/{job['id']}").json()["status"] == "cancelled"
    client.delete(f"/jobs/{ahead['id']}")


def test_cancel_a_running_job(client, uploads):
    job = client.post("/jobs", files=uploads, data={"preset": "slow"}).json()
    running = wait_running(client, job["id"])
    assert running["total"] == 2000 and running["losses"]
    response = client.delete(f"/jobs/{job['id']}")
    assert response.status_code == 200 and response.json()["status"] in ("running", "cancelled")
    assert response.json()["cancelling"] or response.json()["status"] == "cancelled"
    cancelled = wait_for(client, job["id"], ("cancelled", "done", "failed"), timeout=10)
    assert cancelled["status"] == "cancelled" and cancelled["step"] < 2000
    assert client.get(f"/jobs/{job['id']}/result").status_code == 409
    # Its uploads are deleted as soon as it stops; the job stays listed until forgotten.
    assert stored(client.app.state.workdir) == [] and "inputs" not in cancelled["urls"]
    assert client.get(f"/jobs/{job['id']}/inputs/content").status_code == 404
    assert client.delete(f"/jobs/{job['id']}").json()["deleted"] is True
    assert client.get(f"/jobs/{job['id']}").status_code == 404


def test_jobs_queue_one_at_a_time_per_device(client, uploads):
    first = client.post("/jobs", files=uploads, data={"preset": "slow"}).json()
    second = client.post("/jobs", files=uploads, data={"preset": "tiny"}).json()
    third = client.post("/jobs", files=uploads, data={"preset": "tiny"}).json()
    wait_running(client, first["id"])
    assert client.get(f"/jobs/{second['id']}").json()["status"] == "queued"
    assert client.get(f"/jobs/{second['id']}").json()["position"] == 1
    assert client.get(f"/jobs/{third['id']}").json()["position"] == 2

    # A queued job is cancelled at once, its files deleted; the ones behind it move up.
    assert client.delete(f"/jobs/{second['id']}").json()["status"] == "cancelled"
    assert second["id"] not in stored(client.app.state.workdir)
    assert client.get(f"/jobs/{third['id']}").json()["position"] == 1

    client.delete(f"/jobs/{first['id']}")
    done = wait_for(client, third["id"], ("done", "failed"))
    assert done["status"] == "done", done["error"]
    first_state = client.get(f"/jobs/{first['id']}").json()
    assert first_state["status"] == "cancelled" and done["started"] >= first_state["finished"]
    listed = client.get("/jobs").json()
    assert [j["id"] for j in listed] == [third["id"], second["id"], first["id"]]


def test_shutdown_removes_the_private_folder(tmp_path, uploads):
    app = create_app(workdir=tmp_path, presets=PRESETS, token=TOKEN)
    with studio_client(app) as client:
        job = client.post("/jobs", files=uploads, data={"preset": "slow"}).json()
        wait_running(client, job["id"])
        assert stored(app.state.workdir)
    assert not app.state.workdir.exists()
    assert app.state.jobs.get(job["id"]).status == "cancelled"


def test_client_file_names_become_harmless_labels():
    assert label("../../etc/passwd", "content") == "passwd"
    assert label("C:\\Users\\me\\take<1>.wav", "content").endswith("take_1_.wav")
    assert label("", "style") == "style" and label("..", "style") == "style"


def test_serve_command_warns_off_loopback(monkeypatch, tmp_path):
    import uvicorn

    from audiostyle_cli.app import app
    from audiostyle_cli.serve import SHUTDOWN_GRACE, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the studio's folder, and its sweep
    monkeypatch.delenv("AUDIOSTYLE_TOKEN", raising=False)
    calls = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: calls.append(server.config))
    runner = CliRunner()
    quiet = runner.invoke(app, ["serve", "--port", "9999", "--device", "cpu"])
    assert quiet.exit_code == 0, quiet.output
    config = calls[-1]
    assert (config.host, config.port, config.log_level) == ("127.0.0.1", 9999, "warning")
    assert config.timeout_graceful_shutdown == SHUTDOWN_GRACE
    assert "warning" not in quiet.output
    # A fresh random token each launch, in the printed URL.
    first = quiet.output.split("?token=")[1].split()[0]
    second = runner.invoke(app, ["serve", "--device", "cpu"]).output.split("?token=")[1].split()[0]
    assert len(first) >= 32 and first != second
    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    loud = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--device", "cpu", "--token", "a-chosen-token-of-24-chars", "--open"])
    assert loud.exit_code == 0 and "warning: listening on 0.0.0.0" in loud.output
    assert "http://127.0.0.1:8765/?token=a-chosen-token-of-24-chars" in loud.output
    assert calls[-1].host == "0.0.0.0" and calls[-1].port == 8765
    deadline = time.monotonic() + 10
    while not opened and time.monotonic() < deadline:
        time.sleep(0.05)
    assert opened == ["http://127.0.0.1:8765/?token=a-chosen-token-of-24-chars"]
    monkeypatch.setenv("AUDIOSTYLE_TOKEN", "from-the-environment-0123")
    assert "?token=from-the-environment-0123" in runner.invoke(app, ["serve", "--device", "cpu"]).output


@pytest.mark.parametrize("token", ["short", "has space in it 0123456", "semi;colon-0123456789"])
def test_serve_refuses_a_token_unfit_for_a_url_or_cookie(token):
    from audiostyle_cli.app import app

    result = CliRunner().invoke(app, ["serve", "--device", "cpu", "--token", token])
    assert result.exit_code == 2 and "--token must be" in result.output


def test_a_later_stage_is_counted_with_its_own_eta(tmp_path):
    from audiostyle_cli.web.jobs import Job, _record_step

    job = Job(id="j", content=None, style=tmp_path / "s.wav", config=TINY, preset="tiny", labels={}, folder=tmp_path)
    job.started = 100.0
    _record_step(job, 30, 30, {"style": 1.0, "total": 1.0})
    assert (job.stage, job.step, job.total) == ("solve", 30, 30) and len(job.history) == 1
    _record_step(job, 2, 20, {"style": 0.5, "total": 0.5, "stage": "refine"})
    assert (job.stage, job.step, job.total) == ("refine", 2, 20)
    assert job.losses == {"style": 0.5, "total": 0.5} and len(job.history) == 1
    assert job.eta is not None and job.eta >= 0


def test_a_failed_jobs_message_names_its_file_not_the_private_folder(tmp_path):
    from audiostyle import AudioFileError
    from audiostyle_cli.web.jobs import FAILED, Job, JobManager

    job = Job(id="j", content=None, style=tmp_path / "s.wav", config=TINY, preset="tiny", labels={}, folder=tmp_path / "j")
    error = AudioFileError(str(job.folder / "result.flac"), "could not write FLAC/PCM_16: Format not recognised")
    JobManager()._finish(job, FAILED, error)
    assert job.error["type"] == "AudioFileError"
    assert str(tmp_path) not in job.error["message"] and "result.flac" in job.error["message"]
