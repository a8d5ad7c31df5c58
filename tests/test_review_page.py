"""The review page in a real headless Chromium (Debian's `chromium`), driven over the DevTools
protocol: the page loads without errors, the video element reports the final video's duration,
every storyboard image renders; a screenshot is kept as a test artifact
(build/test-artifacts/review-page.png in the repository)."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websocket
from PIL import Image

from adspec import media
from conftest import REPO, Project, executed_tasks, small_spec

ARTIFACTS = REPO / "build" / "test-artifacts"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("Chromium is needed for the review-page test: apt-get install chromium (see .ci/run)")


class Served:
    """A folder over http on 127.0.0.1 (video seeking needs Range requests: http.server is enough
    for Chromium to read the duration; it asks for the moov atom at the start, +faststart)."""

    def __init__(self, root: Path):
        handler = functools.partial(_Quiet, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class Browser:
    """Headless Chromium with remote debugging on an ephemeral port; one page, spoken to over CDP."""

    def __init__(self, profile: Path):
        self.proc = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,1600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                raise AssertionError("Chromium did not start")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        while True:
            try:
                targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
                page = next(t for t in targets if t["type"] == "page")
                break
            except (OSError, StopIteration):
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.time() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        self.ws.settimeout(timeout)
        while time.time() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise AssertionError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"JS error: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def problems(self) -> list[str]:
        """Errors the page raised: exceptions, console errors, failed loads, HTTP errors."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(f"console: {p.get('args')}")
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                out.append(f"load failed: {p.get('errorText')} {p.get('requestId')}")
            elif m == "Network.responseReceived" and p["response"]["status"] >= 400:
                out.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        return out

    def screenshot(self, out: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def browser(tmp_path: Path):
    b = Browser(tmp_path / "chromium-profile")
    for domain in ("Page", "Runtime", "Log", "Network"):
        b.send(f"{domain}.enable")
    yield b
    b.close()


def test_review_page_in_headless_chromium(project: Project, browser: Browser) -> None:
    spec = small_spec(duration=12)
    spec["beats"].append({"id": "end", "type": "end-card", "duration": 4, "image_prompt": "Logo on black",
                          "motion_prompt": "slow push in"})
    project.write_spec("zip", spec)
    project.write_spec("tall", small_spec(aspect_ratio="9:16", title="Tall one"))
    project.doit("-n", "2", "-P", "thread")
    ad = project.build / "zip"
    final = media.probe(ad / "final.mp4")

    # the contact sheet: one frame per beat, 3 in a row, captioned
    with Image.open(ad / "storyboard.png") as sheet:
        assert sheet.size[0] == 12 + 3 * (320 + 12)
        assert sheet.size[1] > 180 + 46
    assert json.loads((ad / "status.json").read_text())["review"] == "index.html"

    with Served(project.build) as base:
        browser.open(f"{base}/zip/index.html")
        info = browser.evaluate("""(async () => {
            const v = document.querySelector('video#final');
            if (v.readyState < 1) await new Promise((ok, bad) => {
                v.addEventListener('loadedmetadata', ok, {once: true});
                v.addEventListener('error', () => bad(new Error('video error ' + (v.error && v.error.code))), {once: true});
                setTimeout(() => bad(new Error('no metadata')), 20000);
            });
            const imgs = [...document.querySelectorAll('#storyboard img')];
            await Promise.all(imgs.map(i => i.complete ? 0 : new Promise(ok => i.addEventListener('load', ok, {once: true}))));
            return {duration: v.duration, width: v.videoWidth, height: v.videoHeight,
                    images: imgs.map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight]),
                    beats: [...document.querySelectorAll('#storyboard figure')].map(f => f.id),
                    text: document.body.innerText, state: document.querySelector('#state').textContent,
                    costRows: document.querySelectorAll('#cost tbody tr').length};
        })()""")
        shot = browser.screenshot(project.build / "review-page.png")
        assert browser.problems() == []
        assert info["duration"] == pytest.approx(final.duration, abs=0.05) == pytest.approx(12, abs=0.05)
        assert (info["width"], info["height"]) == (640, 360)
        assert info["beats"] == ["beat-hook", "beat-cta", "beat-end"]
        assert [src for src, _, _ in info["images"]] == [f"beats/{b}/storyboard.png" for b in ("hook", "cta", "end")]
        assert all((w, h) == (640, 360) for _, w, h in info["images"]), info["images"]
        assert info["state"] == "built" and info["costRows"] == 6  # 5 phases (plan, storyboard, chunks, voice, music) and the total
        for text in ("hook", "end-card", "0–3 s", "Logo on black", "slow push in", "storyboard.png"):
            assert text in info["text"], text

        browser.open(f"{base}/index.html")
        rows = browser.evaluate("""[...document.querySelectorAll('#ads tbody tr')].map(r => [r.id,
            r.querySelector('img') ? r.querySelector('img').naturalWidth : 0, r.querySelector('a').getAttribute('href')])""")
        assert browser.problems() == []
        assert rows == [["ad-tall", 360, "tall/index.html"], ["ad-zip", 640, "zip/index.html"]]  # posters render

    with Image.open(shot) as im:
        assert im.size[0] >= 1000 and im.size[1] > 600
        # not a blank page: the dark page, the frames and the text give many colours
        assert len(im.convert("RGB").resize((200, 200)).getcolors(40000) or []) > 50
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "review-page.png")

    # a no-op rebuild leaves the page alone (its task is up to date)
    before = (ad / "index.html").read_text()
    assert executed_tasks(project.doit().stdout) == []
    assert (ad / "index.html").read_text() == before


def test_review_page_says_offline_and_fits_any_aspect(project: Project, browser: Browser) -> None:
    """Issue 15, point 6: an offline build's page says it is an animatic; the player's controls
    sit below the frame (never over its bottom text); a vertical or square video fits the
    window without pushing the storyboard out of sight."""
    project.write_spec("tall", small_spec(aspect_ratio="9:16", title="Tall one"))
    project.write_spec("square", small_spec(aspect_ratio="1:1", title="Square one"))
    project.doit("-n", "2", "-P", "thread")
    status = project.adspec("status", "--json")
    assert [d["rendered"] for d in json.loads(status.stdout)] == ["offline animatic", "offline animatic"]
    assert "offline animatic" in project.adspec("status").stdout
    with Served(project.build) as base:
        for ad, ratio in (("tall", 9 / 16), ("square", 1.0)):
            browser.open(f"{base}/{ad}/index.html")
            got = browser.evaluate("""(async () => {
                const v = document.querySelector('video#final');
                if (v.readyState < 1) await new Promise(ok => v.addEventListener('loadedmetadata', ok, {once: true}));
                const r = v.getBoundingClientRect(), c = document.querySelector('#controls').getBoundingClientRect();
                return {controls: v.controls, top: r.top, bottom: r.bottom, width: r.width, height: r.height,
                        controlsTop: c.top, storyboardTop: document.querySelector('#storyboard').getBoundingClientRect().top,
                        viewport: window.innerHeight, rendered: document.querySelector('#rendered').textContent,
                        notice: document.querySelector('#offline-notice').textContent};
            })()""")
            assert browser.problems() == []
            assert got["rendered"] == "offline animatic" and "animatic, rendered offline" in got["notice"], got
            assert got["controls"] is False and got["controlsTop"] >= got["bottom"], got  # no overlay on the frame
            assert got["height"] <= 0.6 * got["viewport"] + 1, got
            assert got["width"] / got["height"] == pytest.approx(ratio, rel=0.02), got
            assert got["storyboardTop"] < got["viewport"], got  # the storyboard is in sight
            # the player works: a click on play plays
            assert browser.evaluate("""(async () => { document.querySelector('#play').click();
                await new Promise(ok => setTimeout(ok, 400)); const v = document.querySelector('video#final');
                return !v.paused || v.currentTime > 0; })()""")
