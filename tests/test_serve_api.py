"""`adspec serve` over HTTP, as the seed's clients used it: generate -> poll status -> download
the final video, offline and live on the fake providers; bad requests are 4xx JSON naming the
field; safe by default (loopback, the token, other origins); --watch rebuilds a saved ad; the
build queue never runs two builds of one ad at once."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from PIL import Image

from adspec import media
from adspec.serve.builds import BuildQueue
from conftest import Project, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate
from serving import Server, free_port

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
OPENAI_KEY = "sk-FAKE-key-not-real-0000000"


def png(color: str = "#ff5a1f", size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_seed_flow_offline_generate_poll_download(project: Project) -> None:
    with Server(project) as server:
        up = server.post("/api/upload", files=[("files", ("bottle.png", png(), "image/png"))])
        assert up.status_code == 200, up.text
        (asset,) = up.json()["asset_ids"]
        again = server.post("/api/upload", files=[("files", ("same.png", png(), "image/png"))])
        assert again.json()["asset_ids"] == [asset]  # content-addressed: one asset

        r = server.post("/api/generate", json={"prompt": "A 5-second ad for the Zip water bottle", "title": "Zip launch!",
                                               "duration": 5, "aspect_ratio": "9:16", "resolution": "360p",
                                               "reference_assets": [asset]})
        assert r.status_code == 202, r.text
        assert r.json() == {"video_id": "zip-launch", "status": "queued"}
        spec = yaml.safe_load((project.specs / "zip-launch.yaml").read_text())
        assert spec["prompt"] == "A 5-second ad for the Zip water bottle" and spec["duration"] == 5
        assert spec["assets"] == {"product": f"uploads/{asset}"} and (project.specs / "uploads" / asset).is_file()
        assert project.adspec("validate").returncode == 0

        seen: list[dict] = []
        final = server.wait_status("zip-launch", seen=seen)
        assert seen[0]["status"] in ("queued", "running") and seen[0]["final_video_url"] is None
        assert final["status"] == "done" and final["error"] is None and final["progress"] == 100
        assert final["current_phase"] == "done" and final["cost_usd"] == 0.0
        plan = json.loads((project.build / "zip-launch" / "plan.json").read_text())
        assert final["total_chunks"] == sum(len(b["clips"]) for b in plan["beats"]) >= 1
        assert final["current_chunk_index"] == final["total_chunks"] - 1
        assert len(final["animatic_urls"]) == len(plan["beats"])
        assert set(final) == {"video_id", "status", "progress", "current_phase", "animatic_urls", "stitched_video_url",
                              "final_video_url", "current_chunk_index", "total_chunks", "cost_usd", "error"}

        got = server.get(final["final_video_url"])
        assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
        out = project.root / "downloaded.mp4"
        out.write_bytes(got.content)
        info = media.probe(out)
        assert (info.vcodec, info.acodec, info.width, info.height) == ("h264", "aac", 360, 640)
        assert info.duration == pytest.approx(5, abs=0.08)
        part = server.get(final["final_video_url"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == got.content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(got.content)}"
        frame = server.get(final["animatic_urls"][0])
        assert frame.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(frame.content)) as im:
            assert im.size == (360, 640)
        assert server.get(final["stitched_video_url"]).headers["content-type"] == "video/mp4"

        # the studio's list and a no-op rebuild
        ads = server.get("/api/ads").json()
        assert [(a["ad"], a["state"]) for a in ads] == [("zip-launch", "done")] and ads[0]["thumbnail"]
        schema = server.get("/openapi.json").json()
        invalid = schema["paths"]["/api/generate"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
        # /docs showed FastAPI's HTTPValidationError ({"detail": [...]}) for a body that is adspec's error object
        assert invalid == {"$ref": "#/components/schemas/Error"} and "HTTPValidationError" not in json.dumps(schema)
        refused = server.post("/api/generate", json={"prompt": "An ad", "duration": 500, "colour": "red"})
        assert refused.status_code == 422
        import jsonschema

        jsonschema.validate(refused.json(), schema["components"]["schemas"]["Error"])
        assert len(refused.json()["errors"]) == 2, refused.json()
        docs = server.get("/docs")
        assert docs.status_code == 200 and "openapi.json" in docs.text


@pytest.fixture
def live(project: Project):
    with FakeReplicate(latency=0.05) as replicate, FakeOpenAI() as openai:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                           REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url)
        yield project, replicate, openai


def test_seed_flow_live_on_the_fakes_and_the_budget(live) -> None:
    project, replicate, openai = live
    with Server(project) as server:
        r = server.post("/api/generate", json={"prompt": "A short ad for the Zip water bottle", "duration": 5,
                                               "resolution": "360p", "model": "hailuo-2.3-fast"})
        assert r.status_code == 202, r.text
        ad = r.json()["video_id"]
        final = server.wait_status(ad)
        assert final["status"] == "done", final
        assert openai.count == 1  # the planner, once
        assert replicate.paid_creates >= 3 and all(n == 1 for n in replicate.creates_by_input.values())
        assert final["cost_usd"] > 0
        got = server.get(final["final_video_url"])
        (project.root / "live.mp4").write_bytes(got.content)
        assert media.probe(project.root / "live.mp4").duration == pytest.approx(5, abs=0.08)
        # building it again pays nothing
        paid = replicate.paid_creates
        again = server.post(f"/api/ads/{ad}/build")
        assert again.status_code == 200 and again.json()["estimate"]["total_usd"] == 0
        assert server.wait_status(ad)["status"] == "done" and replicate.paid_creates == paid
        # a built ad whose spec now has an error: its build is refused, and the ad is still done, the
        # refusal said beside it (it read failed, while `adspec status` said done, and stayed so after the fix)
        spec_file = project.specs / f"{ad}.yaml"
        good = spec_file.read_text()
        spec_file.write_text(good.replace("duration: 5", "duration: 500"))
        assert server.post(f"/api/ads/{ad}/build").status_code == 422
        view = server.get(f"/api/ads/{ad}").json()
        assert view["state"] == "done" and view["error"] is None and "duration" in view["refusal"], view
        assert server.get(f"/api/status/{ad}").json()["status"] == "done"
        assert {a["ad"]: a for a in server.get("/api/ads").json()}[ad]["refusal"] == view["refusal"]
        time.sleep(0.05)
        spec_file.write_text(good)  # fixed: the refusal is of a spec that is no more
        assert server.get(f"/api/ads/{ad}").json()["refusal"] is None

    with Server(project, ADSPEC_BUDGET_USD="0.01") as poor:
        requests = len(replicate.requests)
        r = poor.post("/api/generate", json={"prompt": "Another ad for the Zip water bottle", "duration": 5,
                                             "resolution": "360p"})
        assert r.status_code == 402
        body = r.json()
        assert "over the cap of $0.010 per run (ADSPEC_BUDGET_USD); nothing was paid" in body["error"]
        assert body["video_id"] and poor.get(f"/api/status/{body['video_id']}").json()["status"] == "failed"
        time.sleep(1)
        assert len(replicate.requests) == requests and openai.count == 1  # nothing asked of the providers


def test_bad_requests_are_4xx_json_naming_the_field(project: Project) -> None:
    project.write_spec("zip", small_spec())
    with Server(project) as server:
        cases = [
            ({}, "prompt"),
            ({"prompt": ""}, "prompt"),
            ({"prompt": "   "}, "prompt"),  # it said `title` (made from the prompt's first line)
            ({"prompt": "a\u0000b"}, "prompt"),  # a NUL titled an ad
            ({"prompt": "x", "duration": 500}, "duration"),
            ({"prompt": "x", "duration": "long"}, "duration"),
            ({"prompt": "x", "duration": True}, "duration"),  # strict: it was read as 1
            ({"prompt": "x", "duration": "15"}, "duration"),
            ({"prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio"),
            ({"prompt": "x", "model": "hailou"}, "model"),
            ({"prompt": "x", "colour": "red"}, "colour"),
            ({"prompt": "x", "reference_assets": ["0123456789abcdef.png"]}, "reference_assets.0"),
            ({"prompt": "x", "reference_assets": ["../../etc/passwd"]}, "reference_assets.0"),
            ([1, 2], "body"),
        ]
        for body, field in cases:
            r = server.post("/api/generate", json=body)
            assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
            assert r.headers["content-type"] == "application/json" and r.json()["field"] == field, (body, r.text)
            assert "Traceback" not in r.text
            if r.status_code == 422:  # every 422 lists its errors (the model's and an asset's had no `errors`)
                assert r.json()["errors"][0]["field"] == field, (body, r.text)
        r = server.post("/api/generate", json={"prompt": "x" * (2 * 1024 * 1024)})
        assert r.status_code == 413 and r.json()["field"] == "body"
        r = server.post("/api/generate", content=iter([b'{"prompt": "x"}']), headers={"Content-Type": "application/json"})
        assert r.status_code == 411 and r.json()["field"] == "Content-Length"  # no unbounded bodies
        r = server.post("/api/generate", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["field"] == "body"
        assert "did you mean 'hailuo-02'" in server.post("/api/generate", json={"prompt": "x", "model": "hailou"}).json()["error"]
        # a request's fields are said in the words `adspec validate` uses for a spec's (not pydantic's)
        said = {json.dumps(body): server.post("/api/generate", json=body).json() for body in (
            {"prompt": "x", "duration": 500}, {"promt": "x"}, {"prompt": "x", "aspect_ratio": "3:2"})}
        assert [r["error"].partition("; allowed")[0] for r in said.values()] == [
            "duration: must be between 5 and 180 (got 500)", "promt: unknown field (did you mean 'prompt'?)",
            "aspect_ratio: must be one of '16:9', '9:16', '1:1' or '4:5' (got '3:2')"], said
        assert len(said[json.dumps({"promt": "x"})]["errors"]) == 1  # one mistake, one error (not also "prompt")
        assert not list(project.specs.glob("x*.yaml"))  # nothing written for a bad request

        r = server.post("/api/upload", files=[("files", ("notes.png", b"<html>not an image</html>", "image/png"))])
        assert r.status_code == 415 and r.json()["field"] == "files.0"
        truncated = png(size=(400, 300))[:200]
        assert server.post("/api/upload", files=[("files", ("cut.png", truncated, "image/png"))]).status_code == 415
        huge = io.BytesIO()
        Image.new("1", (9000, 9000)).save(huge, "PNG")  # 81 megapixels in a few kB: refused for its size
        r = server.post("/api/upload", files=[("files", ("huge.png", huge.getvalue(), "image/png"))])
        assert r.status_code == 415 and "megapixels" in r.json()["error"] and r.json()["field"] == "files.0", r.text
        big = b"\x89PNG" + b"0" * (10 * 1024 * 1024 + 10)
        r = server.post("/api/upload", files=[("files", ("big.png", big, "image/png"))])
        assert r.status_code == 413 and r.json()["field"] == "files.0"
        assert server.post("/api/upload").json()["field"] == "files"
        assert not (project.specs / "uploads").exists()

        r = server.get("/api/status/nope")
        assert r.status_code == 404 and r.json()["field"] == "video_id"
        for path in ("/files/zip/../../specs/zip.yaml", "/files/%2e%2e/specs/zip.yaml", "/files/.doit.sqlite3",
                     "/files/zip/status.json/..", "/files//etc/passwd", "/files/nothing.mp4"):
            r = server.get(path)
            assert r.status_code == 404 and r.headers["content-type"] == "application/json", (path, r.text)
        r = server.put("/api/ads/zip/beats/hook", json={"sha256": "0" * 64, "fields": {"image_prompt": 3}})
        assert r.status_code == 422 and r.json()["field"] == "fields.image_prompt"
        r = server.put("/api/ads/zip/beats/hook", json={"sha256": "0" * 64, "fields": {"duration": "9"}})
        assert r.status_code == 409 and r.json()["field"] == "sha256"  # the base is checked first
        spec_text = (project.specs / "zip.yaml").read_text()
        from adspec.beat_edit import content_sha256

        r = server.put("/api/ads/zip/beats/hook", json={"sha256": content_sha256(spec_text), "fields": {"duration": "9"}})
        assert r.status_code == 422 and r.json()["field"] == "fields.duration" and "not an editable text field" in r.json()["error"]
        r = server.put("/api/ads/zip/beats/hook", json={"sha256": content_sha256(spec_text), "fields": {"image_prompt": ""},
                                                        "build": False})
        assert r.status_code == 422 and r.json()["field"] == "fields.image_prompt"
        assert (project.specs / "zip.yaml").read_text() == spec_text  # untouched
        r = server.put("/api/ads/zip/beats/nobeat", json={"sha256": content_sha256(spec_text), "fields": {"image_prompt": "x"}})
        assert r.status_code == 404 and "no beat with id 'nobeat'" in r.json()["error"]
        assert server.get("/api/ads/nope").status_code == 404
        r = server.get("/ads/nope")  # the page of no ad
        assert r.status_code == 404 and r.json()["field"] == "ad", r.text
        (project.build / "zip").mkdir(parents=True, exist_ok=True)
        (project.build / "zip" / "probe.json").write_text("{}")
        for header, status in (("bytes=abc", 400), ("lines=0-1", 400), ("bytes=999999-", 416)):
            r = server.get("/files/zip/probe.json", headers={"Range": header})
            assert r.status_code == status and r.json()["field"] == "Range", (header, r.status_code, r.text)
        assert server.get("/files/zip/probe.json", headers={"Range": "bytes=999999-"}).headers["content-range"] == "*/2"
        assert server.get("/files/zip/probe.json", headers={"Range": "bytes=0-0"}).content == b"{"
        head = server.http.head("/files/zip/probe.json")  # was 405: `curl -I`, download tools ask HEAD first
        assert head.status_code == 200 and head.headers["content-length"] == "2" and head.content == b"", head
        # asked again with the ETag it was given: 304, no body (it sent the whole file every time)
        etag = head.headers["etag"]
        again = server.get("/files/zip/probe.json", headers={"If-None-Match": f'"other", W/{etag}'})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, again
        (project.build / "zip" / "probe.json").write_text("{ }")  # changed: the new file, with its own tag
        fresh = server.get("/files/zip/probe.json", headers={"If-None-Match": etag})
        assert fresh.status_code == 200 and fresh.content == b"{ }" and fresh.headers["etag"] != etag, fresh
        # an event stream of no ad is a 404 before it starts (it was a 200 cut short, a traceback in the log)
        r = server.get("/api/ads/nope/events")
        assert r.status_code == 404 and r.json()["field"] == "ad", r.text
        # a spec that does not validate is no budget matter: 422, not 402
        (project.specs / "bad.yaml").write_text("prompt: a short ad\nduration: 3\n")
        r = server.post("/api/ads/bad/build")
        assert r.status_code == 422 and "duration" in r.json()["error"] and r.json()["field"] == "duration", r.text
        r = server.post("/api/ads/bad/estimate")  # its answer, with the error; whether it fits is unknown
        assert r.status_code == 200 and r.json()["error_field"] == "duration" and r.json()["within_budget"] is None, r.text
        (project.specs / "bad.yaml").unlink()
        # generate never takes the name of a `.yml` spec (both would be one ad, and every call would fail)
        (project.specs / "promo.yml").write_text((project.specs / "zip.yaml").read_text())
        # a short, small ad: the accepted request queues its build, which the server waits for at close
        r = server.post("/api/generate", json={"prompt": "a lamp", "title": "promo", "duration": 5, "resolution": "360p"})
        assert r.status_code == 202 and r.json()["video_id"] == "promo-2", r.text
        # a spec of variants is no single ad: the studio and MCP say which ads it is (it said "no ad named")
        project.write_spec("multi", small_spec(variants={"matrix": {"aspect_ratio": ["16:9", "1:1"]}}))
        r = server.get("/api/ads/multi")
        assert r.status_code == 404 and "'multi' has variants and is built as them: multi@" in r.json()["error"], r.text
        (project.specs / "multi.yaml").unlink()
        # a language variant's line is a translation of the file's own: edited from its page it would change the
        # English ad's line too, so it is refused with how to write it; its prompts (every language's) are not
        spoken = small_spec(variants={"matrix": {"language": ["en", "de"]}})
        spoken["beats"][0]["voiceover"] = "Meet Zip."
        project.write_spec("lang", spoken)
        sha = server.get("/api/ads/lang@de").json()["source"]["sha256"]
        r = server.put("/api/ads/lang@de/beats/hook", json={"sha256": sha, "fields": {"voiceover": "Das ist Zip."},
                                                           "build": False})
        assert r.status_code == 422 and r.json()["field"] == "fields.voiceover", r.text
        assert "translated from" in r.json()["error"] and "voiceover: {en: ..., de: ...}" in r.json()["error"]
        assert "Meet Zip." in (project.specs / "lang.yaml").read_text()
        r = server.put("/api/ads/lang@de/beats/hook", json={"sha256": sha, "fields": {"image_prompt": "A bottle"},
                                                           "build": False})
        assert r.status_code == 200 and r.json()["changed"], r.text
        r = server.put("/api/ads/lang@en/beats/hook", json={"sha256": r.json()["sha256"],
                                                           "fields": {"voiceover": "Meet the Zip."}, "build": False})
        assert r.status_code == 200, r.text
        (project.specs / "lang.yaml").unlink()
        assert server.get("/api/ads").status_code == 200
        # ads never built: listed with their spec's title, and one that cannot be built says why
        # (both were a bare name with no title and no error)
        project.write_spec("fresh", small_spec(title="Fresh start"))
        (project.specs / "broke.yaml").write_text("title: Broke\nprompt: An ad\nduration: 500\ncolour: red\n")
        rows = {a["ad"]: a for a in server.get("/api/ads").json()}
        assert (rows["fresh"]["title"], rows["fresh"]["state"], rows["fresh"]["error"]) == ("Fresh start", "not built", None)
        assert server.get("/api/ads/fresh").json()["title"] == "Fresh start"  # the ad's own view too
        assert rows["broke"]["title"] is None and rows["broke"]["state"] == "not built"
        assert rows["broke"]["error"].startswith("specs/broke.yaml:") and "(and 1 more: adspec validate)" in \
            rows["broke"]["error"], rows["broke"]
        # a beat file that is not YAML, or holds no list of beats: the ad's view says where (it was a 500
        # with a traceback in the server's log, for the page and for an edit)
        planned = small_spec()
        del planned["beats"], planned["music"]
        project.write_spec("bb", planned)
        for text, said in (("beats: [\n  - {id: hook\n", "specs/bb.beats.yaml:2: invalid YAML"),
                           ("beats: 5\n", "specs/bb.beats.yaml: beats: no list of beats in this file"),
                           ("- a\n- b\n", "specs/bb.beats.yaml:1: a beat file must be a mapping")):
            project.beats_file("bb").write_text(text)
            view = server.get("/api/ads/bb")
            assert view.status_code == 200 and view.json()["source"]["error"].startswith(said), (text, view.text)
            sha = hashlib.sha256(text.encode()).hexdigest()
            edit = server.put("/api/ads/bb/beats/hook", json={"sha256": sha, "fields": {"image_prompt": "A mug"},
                                                              "build": False})
            assert edit.status_code in (404, 409, 422) and edit.json()["error"], (text, edit.status_code, edit.text)
        # a spec deleted while its page's event stream is open: one last event says so, and the stream
        # ends (it was a traceback in the server's log, and the page heard nothing)
        project.write_spec("gone", small_spec())
        with server.http.stream("GET", "/api/ads/gone/events", timeout=20) as stream:
            events = []
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[len("event: "):])
                    if events == ["ad"]:
                        (project.specs / "gone.yaml").unlink()
                elif line.startswith("data: ") and events[-1:] == ["gone"]:
                    assert "no ad named 'gone'" in line, line
            assert events == ["ad", "gone"], events  # and the stream ended
        assert "Traceback" not in server.log.read_text()


def test_safe_by_default_loopback_token_origin(project: Project) -> None:
    refused = subprocess.run([sys.executable, "-m", "adspec.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                             cwd=project.root, env=project.run_env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token: set ADSPEC_SERVE_TOKEN" in refused.stderr
    for port in ("99999", "-1"):  # 99999 listened on 34463 while it said 99999; -1 was a resolver's error
        bad = subprocess.run([sys.executable, "-m", "adspec.cli", "serve", "--port", port], cwd=project.root,
                             env=project.run_env(), capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and f"expected a port from 1 to 65535, got '{port}'" in bad.stderr, bad.stderr
    short = subprocess.run([sys.executable, "-m", "adspec.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                           cwd=project.root, env=project.run_env(ADSPEC_SERVE_TOKEN="abc"), capture_output=True,
                           text=True, timeout=60)  # a guessable token is no lock
    assert short.returncode == 2 and "with an ADSPEC_SERVE_TOKEN of 3 characters: use at least 16" in short.stderr
    assert "abc" not in short.stderr.replace("characters", "")

    project.write_spec("zip", small_spec())
    with Server(project) as open_server:  # no token: loopback only, same-origin writes only
        assert open_server.get("/api/ads").status_code == 200
        r = open_server.get("/api/ads", headers={"Host": "attacker.example"})
        assert r.status_code == 403 and r.json()["field"] == "Host"
        for origin in ("http://attacker.example", "null"):  # null: a sandboxed frame or a file:// page's form
            r = open_server.post("/api/generate", json={"prompt": "x"}, headers={"Origin": origin})
            assert r.status_code == 403 and r.json()["field"] == "Origin", origin
        assert not (project.specs / "x.yaml").exists()
        # a second studio on the same port: one line of ours, exit 2, and the first one still answers
        taken = subprocess.run([sys.executable, "-m", "adspec.cli", "serve", "--port", str(open_server.port)],
                               cwd=project.root, env=project.run_env(), capture_output=True, text=True, timeout=60)
        assert taken.returncode == 2 and taken.stdout == "", taken
        assert taken.stderr == (f"adspec serve: cannot listen on 127.0.0.1:{open_server.port}: address already in use "
                                f"(another server is there: stop it, or choose another port with --port "
                                f"{open_server.port + 1})\n"), taken.stderr
        assert open_server.get("/api/ads").status_code == 200

    token = "test-serve-token-0123456789"
    with Server(project, ADSPEC_SERVE_TOKEN=token) as server:
        for path in ("/api/ads", "/api/status/zip", "/", "/ads/zip", "/docs", "/openapi.json", "/files/zip/final.mp4"):
            r = server.get(path)
            assert r.status_code == 401, path
            assert r.json()["field"] == "Authorization" and r.headers["www-authenticate"].startswith("Bearer")
        assert server.post("/api/generate", json={"prompt": "x"}).status_code == 401
        assert server.get("/api/ads", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert not (project.specs / "x.yaml").exists()
        ok = server.get("/api/ads", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()[0]["ad"] == "zip"
        # the page: opened once with the token, then its cookie carries it
        r = server.get(f"/?token={token}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        import http.client  # the raw path: httpx would read `//host/x` as another host

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", f"//attacker.example/x?token={token}")
        r2 = conn.getresponse()
        assert r2.status == 303 and r2.getheader("location") == "/attacker.example/x"  # never to another site
        conn.close()
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        assert httpx.get(server.url + "/", cookies={"adspec_token": token}).status_code == 200
        assert httpx.get(server.url + "/api/ads", cookies={"adspec_token": "nope"}).status_code == 401
        assert token not in server.log.read_text()


def test_watch_rebuilds_a_saved_ad(project: Project) -> None:
    with Server(project, "--watch") as server:
        spec = small_spec()
        time.sleep(1)  # the watcher is set up
        project.write_spec("zip", spec)  # a new spec saved: built
        assert server.wait_status("zip", timeout=300)["status"] == "done"
        receipts = {b: json.loads((project.build / "zip" / "beats" / b / "chunk-0.receipt.json").read_text())["key"]
                    for b in ("hook", "cta")}
        final = (project.build / "zip" / "final.mp4").stat().st_mtime_ns
        spec["beats"][1]["motion_prompt"] = "orbit around the bottle"
        project.write_spec("zip", spec)  # saved in an editor
        deadline = time.time() + 300
        while (project.build / "zip" / "final.mp4").stat().st_mtime_ns == final:
            assert time.time() < deadline, "no rebuild after the save"
            time.sleep(0.2)
        assert server.wait_status("zip")["status"] == "done"
        after = {b: json.loads((project.build / "zip" / "beats" / b / "chunk-0.receipt.json").read_text())["key"]
                 for b in ("hook", "cta")}
        assert after["hook"] == receipts["hook"] and after["cta"] != receipts["cta"]  # that beat's chunk only
        said = server.log.read_text()  # its terminal says what it does (it printed nothing after its start)
        assert "adspec serve --watch: zip changed, rebuilding" in said and "adspec serve: zip built" in said, said


class _Recorded(BuildQueue):
    """The real queue, with each build recorded instead of run (the queue's logic is under test)."""

    def __init__(self) -> None:
        super().__init__(Path("."))
        self.spans: list[tuple[str, float, float]] = []
        self.release = threading.Event()

    def _build(self, run):  # type: ignore[override]
        start = time.time()
        self.release.wait(10)
        self.release.clear()
        self.spans.append((run.ad, start, time.time()))
        return None


def test_the_queue_runs_one_build_per_ad_and_the_next_after_it() -> None:
    q = _Recorded()
    q.start()
    q.request("a")
    deadline = time.time() + 10
    while q.get("a").state != "running" and time.time() < deadline:
        time.sleep(0.01)
    for _ in range(3):  # saved three times during the build: one more build, after it
        q.request("a")
    q.request("b")
    assert q.get("a").state == "running" and q.get("a").again
    for _ in range(3):
        time.sleep(0.1)
        q.release.set()
    assert q.wait_idle(10)
    q.stop()
    assert [ad for ad, _, _ in q.spans] == ["a", "b", "a"]
    (_, s1, e1), (_, s2, e2), (_, s3, e3) = q.spans
    assert e1 <= s2 and e2 <= s3  # never two at once
    assert q.get("a").state == "done" and q.get("b").state == "done"


def test_an_ad_waiting_for_approval_is_not_a_failed_build(project: Project) -> None:
    """`approval: required` and no beat approved yet: the build makes the storyboards and stops
    there on purpose; the studio and agents must not call that build failed."""
    from adspec.serve.builds import _outcome

    spec = small_spec(seed=4)
    spec["approval"] = "required"
    project.write_spec("zip", spec)
    built = project.adspec("build", "zip", "--json")
    [row] = json.loads(built.stdout)["ads"]
    assert built.returncode == 0 and row["status"] == "waiting", built.stdout + built.stderr
    assert _outcome("zip", built.returncode, built.stdout, built.stderr) is None
    spec["beats"][0]["image_prompt"] = "{{ nope }}"  # a real failure still is one
    project.write_spec("zip", spec)
    failed = project.adspec("build", "zip", "--json")
    assert "unknown variable 'nope'" in (_outcome("zip", failed.returncode, failed.stdout, failed.stderr) or "")


def test_stopping_the_server_leaves_the_build_in_flight_to_finish(project: Project) -> None:
    """Ctrl-C on `adspec serve` never interrupts a build: its child ran with pipes to the server,
    so its next write failed once the server was gone and the build ended "interrupted" at the mix."""
    import signal

    project.write_spec("zip", small_spec())
    server = Server(project)
    status = project.build / "zip" / "status.json"
    try:
        assert server.post("/api/ads/zip/build").status_code == 200
        deadline = time.time() + 120
        while not (status.exists() and json.loads(status.read_text()).get("state") == "running"):
            assert time.time() < deadline, "the build never started"
            time.sleep(0.1)
    finally:
        server.http.close()
        server.proc.send_signal(signal.SIGINT)  # the server only, as Ctrl-C in its terminal would
        server.proc.wait(30)
    deadline = time.time() + 300
    while json.loads(status.read_text()).get("state") == "running":
        assert time.time() < deadline, "the build did not finish"
        time.sleep(0.2)
    d = json.loads(status.read_text())
    assert d["state"] == "done" and (project.build / "zip" / "final.mp4").is_file(), d
