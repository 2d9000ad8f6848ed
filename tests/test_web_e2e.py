"""End to end: ``audiostyle serve`` on a free loopback port, driven in headless Chromium.

Opens the page through the link with the launch token that ``serve`` prints, checks that no
broken image shows before the first result, uploads two shipped samples through the page,
starts a job, waits for the result player, downloads the result and saves a screenshot (to ``$AUDIOSTYLE_SCREENSHOT`` when set, which
is how ``docs/studio.png`` is made). Skips, saying why, where Chromium, chromedriver or
Selenium is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")

pytest.importorskip("fastapi", reason="the web studio needs the 'web' extra")
pytest.importorskip("uvicorn", reason="the web studio needs the 'web' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the end-to-end test needs selenium")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium chromium-driver)"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="no chromedriver here (Debian: apt-get install chromium-driver)"),
    pytest.mark.skipif(not (SAMPLES / "voice.flac").exists(), reason="the shipped samples are not in this checkout"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """``audiostyle serve`` in a subprocess whose temporary files go under tmp_path/tmp.

    Yields ``(url, the link it printed, that folder, the process)``.
    """
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    env.pop("AUDIOSTYLE_TOKEN", None)
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "audiostyle_cli", "serve", "--port", str(port), "--device", "cpu"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        link = re.search(r"http://\S+\?token=\S+", log.read_text())
        try:
            if link:
                urllib.request.urlopen(url + "/options?" + link.group(0).split("?", 1)[1], timeout=2).close()
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"audiostyle serve did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield url, link.group(0), temp, process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    # The system's chromedriver and Chromium, named explicitly, and Selenium's own manager
    # told to stay offline: nothing is downloaded.
    monkeypatch.setenv("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(condition, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(message)


#: The ids of images that are displayed but show nothing (a broken-image icon).
BROKEN_IMAGES = """
return [...document.images]
  .filter((img) => img.getClientRects().length > 0 && !(img.complete && img.naturalWidth > 0))
  .map((img) => img.id || img.src);
"""


def test_upload_start_listen_download(server, browser, tmp_path):
    url, link, temp, process = server
    # Without the token the page only says where to find it.
    browser.get(url + "/")
    assert "?token=" in browser.find_element("tag name", "body").text
    browser.get(link)
    assert browser.current_url == url + "/", "the token should leave the address bar"
    find = browser.find_element
    wait_until(lambda: len(find("id", "preset").find_elements("tag name", "option")) > 0, 10, "options never loaded")
    assert find("id", "start").get_attribute("disabled") is not None, "Start needs two inputs"
    assert browser.execute_script(BROKEN_IMAGES) == [], "a broken image shows before any result"
    assert not find("id", "error").is_displayed()
    icon = browser.execute_async_script("fetch('/favicon.ico').then((r) => arguments[0](r.status), () => arguments[0](0))")
    assert icon == 200
    assert not browser.find_elements("css selector", "a[href='/docs']"), "/docs needs a CDN and shows a blank page offline"

    find("id", "file-content").send_keys(str(SAMPLES / "voice.flac"))
    find("id", "file-style").send_keys(str(SAMPLES / "violin.wav"))
    iterations = find("id", "iterations")
    iterations.clear()
    iterations.send_keys("3")
    assert find("id", "chosen-content").text.startswith("voice.flac")
    find("id", "start").click()

    # The result player gets its source once the job has finished and the event stream ended.
    wait_until(
        lambda: browser.execute_script(
            "const p = document.getElementById('player-result');"
            "return p.getAttribute('src') && p.readyState >= 1;"
        ),
        240,
        "no result: " + find("id", "status-text").text + " " + find("id", "error").text,
    )
    assert find("id", "status-text").text.startswith("Done")
    assert browser.execute_script("return document.getElementById('player-result').duration") == pytest.approx(5.0, abs=0.05)
    wait_until(
        lambda: browser.execute_script("return document.getElementById('spectrograms').naturalWidth > 0"),
        20,
        "the spectrograms did not load",
    )
    scores = find("id", "scores")
    assert scores.is_displayed(), "the run's figures are not shown"
    assert re.search(r"Content kept \d\.\d\d.*Style taken \d\.\d\d.*\(strength 0\.50\)", scores.text.replace("\n", " ")), scores.text
    assert "voice.flac × violin.wav" in find("id", "results").text
    assert browser.execute_script(BROKEN_IMAGES) == []

    find("id", "download-wav").click()
    downloaded = wait_until(
        lambda: [p for p in browser.downloads.iterdir() if p.suffix == ".wav"], 30, "the download never arrived"
    )[0]
    assert downloaded.name == "voice-violin.wav"
    info = sf.info(str(downloaded))
    assert info.samplerate == 16000 and info.duration == pytest.approx(5.0, abs=0.01)

    browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight") + 120)
    shot = tmp_path / "studio.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("AUDIOSTYLE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["AUDIOSTYLE_SCREENSHOT"])

    # The server keeps its files in one private folder, removed when it stops.
    def private_folders() -> list[Path]:
        return [p for p in temp.iterdir() if p.name.startswith("audiostyle-studio-")]

    assert len(private_folders()) == 1 and any(private_folders()[0].iterdir())
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert private_folders() == []
