"""The studio in a real headless Chromium (Debian's, over the DevTools protocol, as the review
page's test drives it), against `adspec serve` and a live build on the fake providers: the page
updates while the build runs (progress, storyboards, chunks, then the final video); editing a
beat's prompt in the page writes the beat file like a hand edit and leads to exactly that beat's
requests at the fake; an edit made on a page older than the file is refused, file untouched."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from test_review_page import Browser

from conftest import Project, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate
from serving import Server

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
OPENAI_KEY = "sk-FAKE-key-not-real-0000000"

SNAPSHOT = """(() => ({
  state: document.querySelector('#state').textContent,
  progress: Number(document.querySelector('#progress').value),
  frames: [...document.querySelectorAll('#storyboard .frame img')].filter(i => i.complete && i.naturalWidth > 0).length,
  chunksDone: document.querySelectorAll('#storyboard .chunks li.done').length,
  chunks: document.querySelectorAll('#storyboard .chunks li').length,
  final: !document.querySelector('#final').hidden && document.querySelector('#final').getAttribute('src'),
  cards: document.querySelectorAll('#storyboard figure').length,
  error: document.querySelector('#error').textContent,
}))()"""


@pytest.fixture
def browser(tmp_path: Path):
    b = Browser(tmp_path / "chromium-profile")
    for domain in ("Page", "Runtime", "Log", "Network"):
        b.send(f"{domain}.enable")
    yield b
    b.close()


def _watch(browser: Browser, until: str, timeout: float = 300) -> list[dict]:
    """Snapshots of the page every 0.1 s until the JS condition `until` (on snapshot `s`) holds."""
    seen = []
    deadline = time.time() + timeout
    while True:
        s = browser.evaluate(SNAPSHOT)
        seen.append(s)
        if browser.evaluate(f"(s => {until})({json.dumps(s)})"):
            return seen
        assert time.time() < deadline, seen[-3:]
        time.sleep(0.1)


def _save(browser: Browser, beat: str, field: str, text: str) -> str:
    """Type `text` into the beat's field and press its save button; the beat's message after."""
    browser.evaluate(f"""(() => {{
        const fig = document.getElementById({json.dumps('beat-' + beat)});
        const ta = fig.querySelector('textarea[data-field={field}]');
        ta.value = {json.dumps(text)};
        ta.dispatchEvent(new Event('input'));
        fig.querySelector('button.save').click();
    }})()""")
    return browser.evaluate(f"""(async () => {{
        const msg = document.querySelector({json.dumps('#beat-' + beat + ' .msg')});
        for (let i = 0; i < 600 && (msg.textContent === '' || msg.textContent.startsWith('saving')); i++)
            await new Promise(ok => setTimeout(ok, 100));
        return msg.textContent;
    }})()""")


def test_live_page_updates_and_edits_one_beat(project: Project, browser: Browser) -> None:
    spec = small_spec(duration=10)
    del spec["beats"], spec["music"]  # planned: the planner writes specs/zip.beats.yaml
    project.write_spec("zip", spec)
    with FakeReplicate(latency=0.05) as replicate, FakeOpenAI() as openai:
        replicate.latency_by_model["minimax/hailuo-2.3-fast"] = 1.0  # chunks take a moment: the page shows them come
        replicate.unique_outputs = True  # a new storyboard is a new picture (so its chunks are new requests)
        # one prediction at a time: the chunks finish a second apart, not all in the same instant
        # (a page polled on a loaded machine could miss a moment with some done and some not)
        env = dict(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                   REPLICATE_POLL_INTERVAL="0.02", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url,
                   ADSPEC_MAX_INFLIGHT="1")
        with Server(project, **env) as server:
            browser.open(f"{server.url}/ads/zip")
            assert _watch(browser, "s.state !== ''", timeout=30)[-1]["state"] == "not built"
            # no final yet: no player shown (the review page's `video {display: block}` overrode `hidden`)
            assert browser.evaluate("getComputedStyle(document.querySelector('#final')).display") == "none"
            price = browser.evaluate("""(async () => {
                const c = document.querySelector('#build-cost');
                for (let i = 0; i < 300 && !c.textContent; i++) await new Promise(ok => setTimeout(ok, 100));
                return c.textContent; })()""")
            assert price.startswith("a build now pays about $") and price.endswith("to make)"), price  # before any build
            browser.evaluate("document.querySelector('#build').click()")
            seen = _watch(browser, "s.state === 'done' && s.final")
            # it moved while the build ran: running with partial progress, frames before the video
            running = [s for s in seen if s["state"] == "running"]
            assert running and any(0 < s["progress"] < 100 for s in running), seen
            assert any(s["frames"] > 0 and not s["final"] for s in seen), seen
            assert any(0 < s["chunksDone"] < s["chunks"] for s in seen), seen
            assert len({(s["progress"], s["frames"], s["chunksDone"]) for s in seen}) >= 4
            last = seen[-1]
            assert last["frames"] == last["cards"] >= 2 and last["chunksDone"] == last["chunks"] and last["error"] == ""
            duration = browser.evaluate("""(async () => {
                const v = document.querySelector('#final');
                if (v.readyState < 1) await new Promise((ok, bad) => { v.addEventListener('loadedmetadata', ok, {once: true});
                    setTimeout(() => bad(new Error('no metadata')), 20000); });
                return v.duration; })()""")
            assert duration == pytest.approx(10, abs=0.08)
            assert openai.count == 1
            assert browser.problems() == []

            # edit one beat's image prompt in a freshly loaded page
            beats_file = project.beats_file("zip")
            before = beats_file.read_text()
            plan = json.loads((project.build / "zip" / "plan.json").read_text())
            target = plan["beats"][1]
            paid = len(replicate.create_bodies)
            browser.open(f"{server.url}/ads/zip")
            _watch(browser, "s.cards > 0 && s.state === 'done'", timeout=30)
            msg = _save(browser, target["id"], "image_prompt", "A close-up of the bottle on wet granite")
            assert msg == "saved to specs/zip.beats.yaml", msg
            time.sleep(1)  # the page's own save is not an edit on disk by someone else (its update may come first)
            assert browser.evaluate("document.querySelector('#notice').hidden"), \
                browser.evaluate("document.querySelector('#notice').textContent")
            estimate = browser.evaluate("document.querySelector('#estimate').textContent")
            assert estimate.startswith("This build pays $") and estimate.endswith("started.")
            _watch(browser, "s.state === 'done' && s.final")
            server.wait_status("zip")
            new = replicate.create_bodies[paid:]
            assert Counter(b["slug"] for b in new) == Counter({"black-forest-labs/flux-dev": 1,
                                                               "minimax/hailuo-2.3-fast": len(target["clips"])})
            assert "wet granite" in new[0]["body"]["input"]["prompt"] and openai.count == 1
            after = beats_file.read_text()
            changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
            assert len(before.splitlines()) - len(after.splitlines()) >= 0 and changed, (before, after)
            assert all("image_prompt" in b or b.startswith(" ") for _, b in changed)
            assert "A close-up of the bottle on wet granite" in after
            assert [x for x in before.splitlines() if x.lstrip().startswith("#")] == \
                   [x for x in after.splitlines() if x.lstrip().startswith("#")]  # comments kept

            # a page older than the file: its edit is refused and the file is left as it is
            browser.open(f"{server.url}/ads/zip")
            _watch(browser, "s.cards > 0", timeout=30)
            hand = after.replace("beats:\n", "beats:\n  # edited in an editor meanwhile\n", 1)
            beats_file.write_text(hand)
            requests = len(replicate.requests)
            notice = browser.evaluate("""(async () => {
                const n = document.querySelector('#notice');
                for (let i = 0; i < 100 && n.hidden; i++) await new Promise(ok => setTimeout(ok, 100));
                return n.textContent; })()""")
            assert "changed on disk since this page loaded" in notice
            msg = _save(browser, target["id"], "motion_prompt", "whip pan to the summit")
            assert "changed on disk since it was read" in msg and "nothing was written" in msg
            assert beats_file.read_text() == hand
            time.sleep(1)
            assert len(replicate.requests) == requests
            shot = browser.screenshot(project.root / "studio.png")
            assert shot.stat().st_size > 10_000

            # the list of ads: status, cost, thumbnail
            browser.open(f"{server.url}/")
            rows = browser.evaluate("""(async () => {
                for (let i = 0; i < 100 && !document.querySelector('#ad-zip img'); i++) await new Promise(ok => setTimeout(ok, 100));
                const img = document.querySelector('#ad-zip img');
                if (!img.complete) await new Promise(ok => img.addEventListener('load', ok, {once: true}));
                return [...document.querySelectorAll('#ads tbody tr')].map(r => [r.id, r.querySelector('.pill').textContent,
                    r.querySelector('.spent').textContent, r.querySelector('img').naturalWidth,
                    r.querySelector('a').getAttribute('href')]); })()""")
            spent = json.loads((project.build / "zip" / "status.json").read_text())["cost"]["spent_usd"]
            assert rows == [["ad-zip", "done", f"${spent:.2f}", 640, "/ads/zip"]] and spent > 0
            assert browser.problems() == []

            # a spec with errors: listed in order, its page shows each error on its own line and offers no build
            (project.specs / "broken.yaml").write_text("promt: x\nduration: 500\n")
            listed = browser.evaluate("""(async () => {
                for (let i = 0; i < 100 && !document.querySelector('#ad-broken'); i++) await new Promise(ok => setTimeout(ok, 100));
                return [...document.querySelectorAll('#ads tbody tr')].map(r => r.id); })()""")
            assert listed == ["ad-broken", "ad-zip"], listed  # in the list's order
            browser.open(f"{server.url}/ads/broken")
            cost = browser.evaluate("""(async () => {
                const c = document.querySelector('#build-cost');
                for (let i = 0; i < 300 && !c.textContent; i++) await new Promise(ok => setTimeout(ok, 100));
                return [c.textContent, document.querySelector('#build').disabled,
                        document.querySelector('#error').innerText]; })()""")
            assert cost[:2] == ["cannot be built as it is: fix the errors above", True], cost
            assert len(cost[2].splitlines()) == 2, cost
            browser.open(f"{server.url}/")
            (project.specs / "broken.yaml").unlink()  # its row goes with it
            left = browser.evaluate("""(async () => {
                for (let i = 0; i < 100 && document.querySelector('#ad-broken'); i++) await new Promise(ok => setTimeout(ok, 100));
                for (let i = 0; i < 100 && !document.querySelector('#ad-zip'); i++) await new Promise(ok => setTimeout(ok, 100));
                return [...document.querySelectorAll('#ads tbody tr')].map(r => r.id); })()""")
            assert left == ["ad-zip"], left

            # the API's description, rendered by Swagger UI served from the package (no CDN)
            browser.open(f"{server.url}/docs")
            ops = browser.evaluate("""(async () => {
                for (let i = 0; i < 100 && !document.querySelector('.opblock'); i++) await new Promise(ok => setTimeout(ok, 100));
                return [...document.querySelectorAll('.opblock-summary-path')].map(e => e.textContent.replace(/\u200b/g, '')); })()""")
            assert {"/api/generate", "/api/status/{video_id}", "/api/upload"} <= set(ops), ops
            assert browser.problems() == []
