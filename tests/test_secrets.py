"""Secrets (issue 8, item 5): builds with recognisable fake keys in the environment, against
servers that fail in every way and quote the request's Authorization header back in their error
bodies (401, 422, 5xx, failed predictions, a throttled planner, an S3 remote that refuses). The
keys appear nowhere: not in build/ (receipts, status, cost), the cache (diskcache's sqlite, the
ledger, blobs), the beat files, doit's output, or the exception text adspec shows."""

from __future__ import annotations

import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import Project, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate
from reliability import OPENAI_KEY, REPLICATE_TOKEN, assert_no_traceback, check_final, failed_tasks, live_env

AWS_KEY_ID = "AKIARELIABILITY00042"
AWS_SECRET = "RELIABILITYawsSECRETfake0123456789abcdefXY"
SECRETS = [REPLICATE_TOKEN, OPENAI_KEY, AWS_KEY_ID, AWS_SECRET]
# distinctive inner parts too: a key shown cut or masked at its ends is still shown
FRAGMENTS = [s[4:-4] for s in SECRETS]


def _leaks(data: bytes) -> list[str]:
    return [s for s in SECRETS + FRAGMENTS if s.encode() in data]


def _scan_files(*roots: Path) -> dict[str, list[str]]:
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                leaks = _leaks(path.read_bytes())
                if leaks:
                    found[str(path)] = leaks
    return found


class _EchoS3(BaseHTTPRequestHandler):
    """An S3 endpoint that refuses everything and quotes the credentials it was sent."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _deny(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = (f"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>denied for "
                f"{self.headers.get('Authorization', '')}</Message></Error>").encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _deny


@pytest.fixture
def echo_s3():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoS3)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_keys_never_leak_through_failures(project: Project, echo_s3: str) -> None:
    spec = small_spec()
    del spec["beats"], spec["music"]  # the live planner runs too
    project.write_spec("zip", spec)
    outputs: list[str] = []
    with FakeReplicate(latency=0.05, output_mode="url") as rep, FakeOpenAI() as oai:
        live_env(project, rep, oai, ADSPEC_REMOTE_CACHE="s3://adspec-team/cache", ADSPEC_REMOTE_ENDPOINT=echo_s3,
                 AWS_ACCESS_KEY_ID=AWS_KEY_ID, AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_DEFAULT_REGION="us-east-1")
        rep.echo_auth = oai.echo_auth = True

        def run(expect_ok: bool) -> None:
            out = project.doit(check=False)
            outputs.extend([out.stdout, out.stderr])
            assert_no_traceback(out.stdout, out.stderr)
            assert (out.returncode == 0) == expect_ok, out.stdout[-3000:]
            if not expect_ok:
                assert failed_tasks(out.stdout + out.stderr), out.stdout[-3000:]

        oai.script.extend(["401"])  # the planner's key is refused (the body quotes it)
        run(False)
        rep.token = "r8_someoneelse"  # every Replicate request: 401 quoting the token sent
        run(False)
        rep.token = None
        rep.create_422 = 1  # invalid input, the body quotes the token
        run(False)
        rep.error_message = f"worker crashed; env REPLICATE_API_TOKEN={REPLICATE_TOKEN}"  # a failed prediction
        rep.outcomes.extend(["failed"])
        run(False)
        rep.download_fault, rep.download_faults = "html", 200
        run(False)
        rep.download_fault = None
        run(True)  # and finally a build, with the remote refusing every push and get
        check_final(project.build / "zip" / "final.mp4", 8)
        assert rep.count("POST", "/v1/") >= 3 and oai.count == 2  # the 401, then the plan
    for text in outputs:
        assert not [s for s in SECRETS + FRAGMENTS if s in text], text[-3000:]
    assert "401" in "".join(outputs) and "422" in "".join(outputs)
    assert _scan_files(project.build, project.cache, project.specs) == {}


def test_exception_text_of_a_failed_call_has_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: the ProviderError adspec raises, formatted as a traceback would show it (with
    its context), holds no key, whatever the server quoted back."""
    from adspec.errors import ProviderError
    from adspec.providers.base import NullJob, VideoRequest
    from adspec.providers.replicate_provider import ReplicateMedia
    from fakes.replicate_server import make_media

    first = tmp_path / "first.png"
    first.write_bytes(make_media("image"))
    with FakeReplicate(latency=0.05) as rep:
        rep.echo_auth = True
        monkeypatch.setenv("REPLICATE_API_TOKEN", REPLICATE_TOKEN)
        monkeypatch.setenv("REPLICATE_BASE_URL", rep.base_url)
        provider = ReplicateMedia(sleep=lambda s: None, max_create_attempts=2, poll_error_attempts=2)
        req = VideoRequest(ad="zip", beat_id="hook", index=0, prompt="push in", model="hailuo-2.3-fast", seconds=6,
                           aspect_ratio="16:9", width=640, height=360, fps=24, seed=1, first_frame=first)
        recipe = provider.video_recipe(req)
        for fault in ("create_422", "create_5xx", "poll_5xx", "token", "failed"):
            rep.create_422 = 1 if fault == "create_422" else 0
            rep.create_5xx = 10 if fault == "create_5xx" else 0
            rep.poll_5xx = 50 if fault == "poll_5xx" else 0
            rep.token = "r8_other" if fault == "token" else None
            rep.error_message = f"boom {REPLICATE_TOKEN}"
            rep.outcome = "failed" if fault == "failed" else "succeeded"
            with pytest.raises(ProviderError) as info:
                provider.run(recipe, NullJob(), tmp_path / "out.mp4")
            shown = "".join(traceback.format_exception(info.value)) + repr(info.value) + info.value.one_line()
            assert not [s for s in SECRETS + FRAGMENTS if s in shown], (fault, shown)
            assert "zip" in shown or "hailuo" in shown  # and it still says what failed


def test_planner_errors_have_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adspec.errors import ProviderError
    from adspec.providers.base import NullJob, PlanRequest
    from adspec.providers.openai_planner import OpenAIPlanner

    with FakeOpenAI() as oai:
        oai.echo_auth = True
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", oai.base_url)
        planner = OpenAIPlanner(max_retries=0)
        recipe = planner.plan_recipe(PlanRequest(ad="zip", shaping={"prompt": "a bottle", "duration": 15, "seed": 1},
                                                 clip_lengths=(6, 10), planner_model="gpt-4.1"))
        for mode in ("401", "500", "429"):
            oai.script.append(mode)
            with pytest.raises(ProviderError) as info:
                planner.run(recipe, NullJob(), tmp_path / "plan.json")
            shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
            assert not [s for s in SECRETS + FRAGMENTS if s in shown], (mode, shown)
            assert "openai planner" in shown


# ---- issue 12, point 9 ------------------------------------------------------------------------


def test_planner_replies_that_quote_the_key_are_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that repeats what it was sent: its refusal, and a plan whose prompt quotes the
    key. Neither the error nor the plan (the beat file, the cache, the prompts sent to Replicate
    later) holds the key."""
    from adspec.errors import ProviderError
    from adspec.providers.base import NullJob, PlanRequest
    from adspec.providers.openai_planner import OpenAIPlanner

    with FakeOpenAI() as oai:
        oai.quote_auth = True
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", oai.base_url)
        planner = OpenAIPlanner()
        recipe = planner.plan_recipe(PlanRequest(ad="zip", shaping={"prompt": "a bottle", "duration": 15, "seed": 1},
                                                 clip_lengths=(6, 10), planner_model="gpt-4.1"))
        oai.script.extend(["refusal", "refusal"])
        with pytest.raises(ProviderError) as info:
            planner.run(recipe, NullJob(), tmp_path / "refused.json")
        shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
        assert "refused" in shown and "you sent Bearer ***" in shown
        assert not [s for s in SECRETS + FRAGMENTS if s in shown], shown
        assert OPENAI_KEY not in oai.requests[1]["messages"][-1]["content"]  # nor is it sent back in the re-ask
        planner.run(recipe, NullJob(), tmp_path / "plan.json")
        plan = (tmp_path / "plan.json").read_text()
        assert "you sent Bearer ***" in plan and _leaks(plan.encode()) == []


def test_signed_output_urls_are_not_stored(project: Project) -> None:
    """Output URLs that carry a token (a signed delivery URL) are stored without it: receipts,
    the cache's records and the ledger hold the path only."""
    token = "SIGNEDurlTOKEN-7f3a9c0e5b1d"
    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=0.02, output_mode="url") as rep:
        rep.output_query = f"X-Amz-Signature={token}&token={token}&expires=1893456000"
        live_env(project, rep)
        project.doit()
        check_final(project.build / "zip" / "final.mp4", 8)
        assert rep.count("GET", "/outputs/") >= 5  # the outputs were downloaded from their signed URLs
        base = rep.base_url
    from adspec.cache import RequestCache

    metas = [e.meta for e in RequestCache(project.cache).entries()]
    assert len(metas) == 5 and all(m["output_url"].startswith(base + "/outputs/") and "?" not in m["output_url"]
                                   for m in metas)
    found = {str(p) for p in (*project.build.rglob("*"), *project.cache.rglob("*"))
             if p.is_file() and token.encode() in p.read_bytes()}
    assert found == set()


def test_children_get_no_provider_keys(project: Project, tmp_path: Path) -> None:
    """Every ffmpeg adspec starts (through ADSPEC_FFMPEG, a wrapper that records its environment)
    runs without the provider keys and other credentials, and still works."""
    from adspec.media import ffmpeg_exe

    real = ffmpeg_exe()
    seen = tmp_path / "envs"
    seen.mkdir()
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(f"#!/bin/sh\nenv -0 > '{seen}'/$$.env\nexec '{real}' \"$@\"\n")
    wrapper.chmod(0o755)
    secrets = {"OPENAI_API_KEY": OPENAI_KEY, "REPLICATE_API_TOKEN": REPLICATE_TOKEN, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
               "AWS_ACCESS_KEY_ID": AWS_KEY_ID, "ADSPEC_SERVE_TOKEN": "serve-TOKEN-0123456789"}
    project.write_spec("zip", small_spec())
    project.doit(ADSPEC_FFMPEG=str(wrapper), ADSPEC_BACKEND="offline", **secrets)
    check_final(project.build / "zip" / "final.mp4", 8)
    import json

    envs = [dict(item.split("=", 1) for item in p.read_text().split("\0") if "=" in item) for p in seen.iterdir()]
    assert len(envs) >= 5  # storyboards, chunks, stitch, music, mix all ran ffmpeg
    for env in envs:
        assert not set(secrets) & set(env), sorted(set(secrets) & set(env))
        assert not [v for v in secrets.values() if v in json.dumps(env)]
        assert env.get("PATH") and env.get("ADSPEC_FFMPEG") == str(wrapper)
