"""The request cache shared between machines (ADSPEC_REMOTE_CACHE=s3://bucket/prefix), against a
real S3-compatible HTTP server on 127.0.0.1 (moto's server mode) and the loopback fakes of the
providers: a second runner with its own local cache pays for nothing; a corrupt remote blob is
caught by its sha256, never used, paid for once and healed; secrets never reach an output."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from adspec import media
from adspec.cache import Entry, RequestCache
from adspec.errors import AdspecError
from adspec.remote import RemoteCache, RemoteConfigError, describe_error, from_env, parse_url
from conftest import Project, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
OPENAI_KEY = "sk-FAKE-key-not-real-0000000"
AWS_KEY_ID = "AKIAFAKEKEYID0000042"
AWS_SECRET = "FAKEsecretFAKEsecretFAKEsecretFAKEsecret42"


@pytest.fixture(scope="module")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, object]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"adspec-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name, client


def runner(root: Path, s3_endpoint: str, bucket_name: str, fakes: tuple[FakeReplicate, FakeOpenAI] | None,
           spec: dict) -> Project:
    """A CI runner: its own checkout (specs), build folder and local cache; the shared remote."""
    project = Project(root)
    project.write_spec("zip", spec)
    project.env.update(ADSPEC_REMOTE_CACHE=f"s3://{bucket_name}/team/cache", ADSPEC_REMOTE_ENDPOINT=s3_endpoint,
                       AWS_ACCESS_KEY_ID=AWS_KEY_ID, AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_DEFAULT_REGION="us-east-1")
    if fakes is not None:
        replicate, openai = fakes
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                           REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url)
    return project


def planned_spec() -> dict:
    spec = small_spec()
    del spec["beats"], spec["music"]
    return spec


def objects(client, bucket_name: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=bucket_name, Key=obj["Key"])["Body"].read()
    return out


def no_secrets(*projects: Project, texts: list[str]) -> None:
    secrets = [AWS_SECRET, AWS_KEY_ID, REPLICATE_TOKEN, OPENAI_KEY]
    for p in projects:
        for root in (p.build, p.cache, p.specs):
            for path in root.rglob("*"):
                if path.is_file():
                    data = path.read_bytes()
                    assert not any(s.encode() in data for s in secrets), path
    for text in texts:
        assert not any(s in text for s in secrets)


def test_second_runner_pays_for_nothing(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    bucket_name, client = bucket
    with FakeReplicate(latency=0.02) as replicate, FakeOpenAI() as openai:
        first = runner(tmp_path / "runner-1", s3_endpoint, bucket_name, (replicate, openai), planned_spec())
        out1 = first.doit("-n", "2", "-P", "thread")
        paid = replicate.paid_creates
        assert paid >= 4 and openai.count == 1
        ran = first.ledger()
        # every request the first runner ran is in the remote: an entry per key, a blob per sha256
        stored = objects(client, bucket_name, "team/cache/")
        assert {k for k in stored if "/entries/" in k} == {f"team/cache/entries/{e['key']}.json" for e in ran}
        for name, data in stored.items():
            if "/blobs/" in name:
                assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]

        # runner 2: a fresh checkout (no beat file), its own empty local cache: pays for nothing
        second = runner(tmp_path / "runner-2", s3_endpoint, bucket_name, (replicate, openai), planned_spec())
        out2 = second.doit("-n", "2", "-P", "thread")
        assert replicate.paid_creates == paid and openai.count == 1
        assert second.ledger() == []  # nothing was run by runner 2
        assert second.beats_file("zip").read_text() == first.beats_file("zip").read_text()
        final1, final2 = first.build / "zip" / "final.mp4", second.build / "zip" / "final.mp4"
        assert final2.read_bytes() == final1.read_bytes()
        assert media.probe(final2).duration == pytest.approx(8, abs=0.08)
        no_secrets(first, second, texts=[out1.stdout, out1.stderr, out2.stdout, out2.stderr])


def test_corrupt_remote_blob_is_never_used_paid_once_and_healed(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    bucket_name, client = bucket
    with FakeReplicate(latency=0.02) as replicate, FakeOpenAI() as openai:
        replicate.unique_outputs = True  # each still its own blob
        first = runner(tmp_path / "runner-1", s3_endpoint, bucket_name, (replicate, openai), small_spec())
        first.doit()
        music = next(e for e in first.ledger() if e["kind"] == "music")
        entry = client.get_object(Bucket=bucket_name, Key=f"team/cache/entries/{music['key']}.json")["Body"].read()
        import json

        sha = json.loads(entry)["sha256"]
        blob_key = f"team/cache/blobs/{sha}"
        good = client.get_object(Bucket=bucket_name, Key=blob_key)["Body"].read()
        client.put_object(Bucket=bucket_name, Key=blob_key, Body=b"RIFF" + b"\x00" * (len(good) - 4))  # same size
        still = next(e for e in first.ledger() if e["kind"] == "image")  # and a storyboard's
        still_sha = json.loads(client.get_object(Bucket=bucket_name,
                                                 Key=f"team/cache/entries/{still['key']}.json")["Body"].read())["sha256"]
        client.put_object(Bucket=bucket_name, Key=f"team/cache/blobs/{still_sha}", Body=b"not a png")
        paid = Counter(replicate.creates_by_model)

        second = runner(tmp_path / "runner-2", s3_endpoint, bucket_name, (replicate, openai), small_spec())
        # the estimate prices the storyboard it cannot use, and still finds the rest in the store (it
        # had it backwards: the bad still as cached, and, having stopped asking, the rest as paid)
        est = json.loads(second.adspec("estimate", "--json").stdout)["ads"][0]["targets"]
        states = {t["target"]: t["action"] for t in est if t["key"]}
        assert sorted(states[t] for t in states if t.startswith("storyboard:")) == ["cache", "pay"], states
        assert states["music:zip"] == "cache"  # (its artifact is found bad when the build fetches it)
        # the chunk of the good still is the store's; the other's first frame is not known yet
        assert sorted(states[t] for t in states if t.startswith("chunk:")) == ["cache", "pay"], states
        out = second.doit()
        new = Counter(replicate.creates_by_model) - paid
        # only the corrupt artifacts are paid for again (the new still is the same picture: its chunk is not)
        assert new == Counter({"meta/musicgen": 1, "black-forest-labs/flux-dev": 1}), new
        said = [x for x in (out.stdout + out.stderr).splitlines() if "does not match its sha256" in x]
        assert len(said) == 2 and len({x.split("artifact of ")[1][:12] for x in said}) == 2, said  # once each
        assert sorted(e["kind"] for e in second.ledger()) == ["image", "music"]
        assert media.probe(second.build / "zip" / "final.mp4").acodec == "aac"
        # the good artifact replaced the corrupt one: a third runner pays for nothing
        healed = client.get_object(Bucket=bucket_name, Key=blob_key)["Body"].read()
        entry_now = json.loads(client.get_object(Bucket=bucket_name, Key=f"team/cache/entries/{music['key']}.json")["Body"].read())
        named = client.get_object(Bucket=bucket_name, Key=f"team/cache/blobs/{entry_now['sha256']}")["Body"].read()
        assert hashlib.sha256(named).hexdigest() == entry_now["sha256"]
        assert healed == good or entry_now["sha256"] != sha
        third = RemoteCache(f"s3://{bucket_name}/team/cache", endpoint_url=s3_endpoint).get(music["key"], tmp_path / "t")
        assert third is not None and third[0]["sha256"] == entry_now["sha256"]  # served again, verified


def test_a_remote_that_fails_costs_only_the_sharing(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    """A bucket that does not exist: every request is still made and the build succeeds; the
    problem is reported without a credential in sight."""
    with FakeReplicate(latency=0.02) as replicate, FakeOpenAI() as openai:
        project = runner(tmp_path / "runner", s3_endpoint, "no-such-bucket-here", (replicate, openai), small_spec())
        out = project.doit()
        assert replicate.paid_creates == 5
    assert "NoSuchBucket" in out.stdout + out.stderr
    assert len(project.ledger()) == 5
    assert media.probe(project.build / "zip" / "final.mp4").duration == pytest.approx(8, abs=0.08)
    no_secrets(project, texts=[out.stdout, out.stderr])


def test_an_offline_build_puts_nothing_in_the_shared_cache(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    """The animatic and your own media are made here for free: nothing to share (it uploaded
    every offline still and clip, filling the bucket)."""
    bucket_name, client = bucket
    project = runner(tmp_path / "runner", s3_endpoint, bucket_name, None, small_spec())
    project.doit()
    assert (project.build / "zip" / "final.mp4").exists() and len(project.ledger()) == 5
    assert objects(client, bucket_name, "team/cache/") == {}


# ---- the remote on its own -----------------------------------------------------------------------


def entry_for(key: str, blob: Path, **kw) -> Entry:
    data = blob.read_bytes()
    return Entry(key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data), provider="offline", kind="image",
                 model="flux-dev", job_id=kw.get("job_id"), cost_usd=0.0, created_at=time.time(), seconds=0.1,
                 suffix=".img")


def test_two_writers_of_one_key_are_harmless(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    bucket_name, client = bucket
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"first answer")
    b.write_bytes(b"second answer")
    key = "k" * 64
    one = RemoteCache(f"s3://{bucket_name}/p", endpoint_url=s3_endpoint)
    two = RemoteCache(f"s3://{bucket_name}/p", endpoint_url=s3_endpoint)
    assert one.get(key, tmp_path / "tmp") is None  # a miss is not a problem
    assert one.put(entry_for(key, a, job_id="j1"), a) and two.put(entry_for(key, b, job_id="j2"), b)
    got = RemoteCache(f"s3://{bucket_name}/p", endpoint_url=s3_endpoint).get(key, tmp_path / "tmp")
    assert got is not None
    raw, local = got
    assert local.read_bytes() in (b"first answer", b"second answer")
    assert hashlib.sha256(local.read_bytes()).hexdigest() == raw["sha256"]
    assert one.problems == two.problems == []
    # both blobs are kept: content-addressed, never overwritten
    names = set(objects(client, bucket_name, "p/blobs/"))
    assert names == {f"p/blobs/{hashlib.sha256(x).hexdigest()}" for x in (b"first answer", b"second answer")}


def test_local_cache_takes_remote_hits_and_checks_them(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    """Through RequestCache.fetch: a remote hit is served without running the provider; an entry
    whose artifact fails the verifier is not used."""
    from adspec.providers.base import RunResult
    from adspec.recipes import Recipe

    bucket_name, _ = bucket
    url = f"s3://{bucket_name}/fetch"
    recipe = Recipe(provider="replicate", kind="image", model="flux-dev", version="t/1", params={"p": 1})
    runs = []

    def run(recipe, job, out: Path) -> RunResult:
        runs.append(recipe.key)
        out.write_bytes(b"an artifact")
        return RunResult(job_id="job-1", cost_usd=0.25)

    ok = lambda p: None  # noqa: E731
    one = RequestCache(tmp_path / "c1", remote=RemoteCache(url, endpoint_url=s3_endpoint))
    first = one.fetch(recipe, run, ok, suffix=".img")
    assert not first.hit and runs == [recipe.key]
    two = RequestCache(tmp_path / "c2", remote=RemoteCache(url, endpoint_url=s3_endpoint))
    second = two.fetch(recipe, run, ok, suffix=".img")
    assert second.hit and runs == [recipe.key] and second.path.read_bytes() == b"an artifact"
    assert second.entry.cost_usd == 0.25 and second.entry.job_id == "job-1"
    assert two.ledger() == []  # a remote hit runs nothing
    assert two.get(recipe.key) is not None  # and is now in the local cache too

    def reject(p: Path) -> None:
        raise AdspecError("not an image")

    three = RequestCache(tmp_path / "c3", remote=RemoteCache(url, endpoint_url=s3_endpoint))
    with pytest.raises(AdspecError):
        three.fetch(recipe, run, reject, suffix=".img")
    assert any("rejected: not an image" in p for p in three.problems)
    assert len(runs) == 2  # the remote's artifact was not taken: the request was made


def test_unreachable_remote_is_reported_once_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    remote = RemoteCache("s3://bucket-x/p", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    started = time.monotonic()
    assert remote.get("a" * 64, tmp_path) is None
    assert remote.get("b" * 64, tmp_path) is None  # skipped: no second wait
    blob = tmp_path / "x"
    blob.write_bytes(b"x")
    assert remote.put(entry_for("c" * 64, blob), blob) is False
    assert len(remote.problems) == 1 and "cannot be reached (EndpointConnectionError)" in remote.problems[0]
    assert time.monotonic() - started < 30
    assert AWS_SECRET not in remote.problems[0]
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    anonymous = RemoteCache("s3://bucket-x/p", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    assert anonymous.get("a" * 64, tmp_path) is None
    assert "no AWS credentials" in anonymous.problems[0]


def test_remote_url_and_errors_never_carry_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_url("s3://bucket/team/cache/") == ("bucket", "team/cache")
    assert parse_url("s3://bucket") == ("bucket", "")
    for bad in ("http://bucket/x", "bucket/x", "s3:///x"):
        with pytest.raises(RemoteConfigError, match="s3://bucket/prefix"):
            parse_url(bad)
    with pytest.raises(RemoteConfigError) as info:
        parse_url(f"s3://{AWS_KEY_ID}:{AWS_SECRET}@bucket/x")
    assert AWS_SECRET not in str(info.value) and AWS_KEY_ID not in str(info.value)
    assert from_env({}) is None
    remote = from_env({"ADSPEC_REMOTE_CACHE": "s3://b-1/x", "ADSPEC_REMOTE_ENDPOINT": "http://127.0.0.1:1",
                       "AWS_REGION": "eu-west-1"})
    assert (remote.bucket, remote.prefix, remote.endpoint_url, remote.region) == ("b-1", "x", "http://127.0.0.1:1", "eu-west-1")
    assert AWS_SECRET not in repr(remote)

    from botocore.exceptions import ClientError

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    err = ClientError({"Error": {"Code": "SignatureDoesNotMatch", "Message": f"bad signature for {AWS_SECRET}"},
                       "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    assert describe_error(err) == ("SignatureDoesNotMatch (HTTP 403): check the AWS credentials (AWS_ACCESS_KEY_ID, "
                                   "AWS_SECRET_ACCESS_KEY or a profile) and that they may use this bucket")
    head = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                       "HeadObject")  # a HEAD's answer has no body: was "403 (HTTP 403)", naming no cause
    assert describe_error(head).startswith("HTTP 403: check the AWS credentials")  # the code is the status: once
    err = ClientError({"Error": {"Code": AWS_SECRET}}, "GetObject")
    assert AWS_SECRET not in describe_error(err)


def test_credentials_in_the_store_url_stop_a_live_doit_in_one_line(tmp_path: Path) -> None:
    """`adspec estimate` said it in one line; a live `doit` crashed with a traceback in the budget
    task's up-to-date check (exit 3, no FAILED line). Now: the budget task fails with that line,
    nothing is asked of any provider, and the secret is nowhere."""
    project = Project(tmp_path / "p")
    project.write_spec("zip", small_spec())
    with FakeReplicate() as replicate:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                           ADSPEC_REMOTE_CACHE=f"s3://{AWS_KEY_ID}:{AWS_SECRET}@bucket/prefix")
        proc = project.doit(check=False)
        assert len(replicate.requests) == 0
    out = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 3) and "Traceback" not in out, out
    failed = [ln for ln in out.splitlines() if ln.startswith("FAILED ")]
    assert failed == ["FAILED budget: ADSPEC_REMOTE_CACHE must not carry credentials; use the AWS environment "
                      "variables or a profile"], out
    assert AWS_SECRET not in out and AWS_KEY_ID not in out


def test_estimate_consults_the_shared_cache(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    """Runner 2's estimate counts what runner 1 paid for as free (issue 19, point 5), the
    planner's answer too (its beat file is not committed: it priced the plan and every beat of the
    offline stand-in, and the budget refused a run that pays nothing), sends no request, and
    writes nothing to the store or its own cache."""
    import json as _json

    bucket_name, client = bucket
    with FakeReplicate(latency=0.02) as replicate, FakeOpenAI() as openai:
        first = runner(tmp_path / "runner-1", s3_endpoint, bucket_name, (replicate, openai), planned_spec())
        first.doit()
        paid, stored = replicate.paid_creates, objects(client, bucket_name, "team/cache/")
        second = runner(tmp_path / "runner-2", s3_endpoint, bucket_name, (replicate, openai), planned_spec())
        assert not second.beats_file("zip").exists() and openai.count == 1
        alone = second.adspec("estimate", "--json", ADSPEC_REMOTE_CACHE="")
        assert alone.returncode == 0, alone.stderr
        assert _json.loads(alone.stdout)["total_usd"] > 0  # without the store: it would pay
        shared = second.adspec("estimate", "--json")
        assert shared.returncode == 0, shared.stderr
        run = _json.loads(shared.stdout)
        assert run["total_usd"] == 0 and run["exact"], run
        phases = run["ads"][0]["phases"]
        assert phases["plan"]["cached"] == 1 and openai.count == 1, phases  # the planner's answer, not asked
        assert sum(p["cached"] for p in phases.values()) >= 5  # storyboards, chunks, the music...
        assert sum(p["to_pay"] for p in phases.values()) == 0
        assert replicate.paid_creates == paid and replicate.count("POST") == paid  # asked the store, not the provider
        assert objects(client, bucket_name, "team/cache/") == stored
        assert not second.cache.exists() or not any(second.cache.rglob("*.db"))


def test_estimate_says_the_shared_cache_bucket_is_not_there(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    """A misspelt bucket: every HEAD answers 404, which read as an empty store (the estimate said
    nothing, the build said it). The estimate now names it, and still prices every request."""
    import json as _json

    project = runner(tmp_path / "runner", s3_endpoint, "adspec-no-such-bucket", None, small_spec())
    project.env.update(REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL="http://127.0.0.1:9", ADSPEC_BACKEND="")
    out = project.adspec("estimate", "--json")
    assert out.returncode == 0, out.stderr
    run = _json.loads(out.stdout)
    assert run["total_usd"] > 0
    assert any("bucket 'adspec-no-such-bucket' does not exist" in n for n in run["ads"][0]["notes"]), run
    fine = runner(tmp_path / "other", s3_endpoint, bucket[0], None, small_spec())  # a real, empty bucket: no word
    fine.env.update(REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL="http://127.0.0.1:9", ADSPEC_BACKEND="")
    notes = _json.loads(fine.adspec("estimate", "--json").stdout)["ads"][0]["notes"]
    assert not any("shared cache" in n or "does not exist" in n for n in notes), notes


@contextmanager
def silent_store() -> Iterator[str]:
    """The endpoint of a store that accepts connections and never answers."""
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])  # keep it open, say nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        silent.close()


def test_estimate_never_hangs_on_a_store_that_does_not_answer(tmp_path: Path) -> None:
    """A store that accepts connections and never answers: the estimate ends, says so, and
    prices every request (a paid one is never hidden)."""
    import json as _json

    with silent_store() as endpoint:
        project = runner(tmp_path / "runner", endpoint, "adspec-silent", None, small_spec())
        project.env.update(REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL="http://127.0.0.1:9", ADSPEC_BACKEND="")
        started = time.monotonic()
        out = project.adspec("estimate", "--json")
        took = time.monotonic() - started
        assert out.returncode == 0, out.stderr
        run = _json.loads(out.stdout)
        assert run["total_usd"] > 0
        assert any("shared cache was not consulted" in n for n in run["ads"][0]["notes"])
        assert took < 120  # bounded (the store's own timeouts alone would be minutes across many keys)


def test_a_store_that_never_answers_is_not_asked_again_for_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build against a store that takes connections and never answers hung: the claims' probe
    asked it again (3 tries of each of a put and a delete) after a read had found it down."""
    from botocore.config import Config

    from adspec.remote_claims import Claims

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)

    def store(endpoint: str) -> RemoteCache:  # adspec's client, with a 1 s read timeout for the test's sake
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1, s3={"addressing_style": "path"}))
        return RemoteCache("s3://silent/p", endpoint_url=endpoint, client=client)

    with silent_store() as endpoint:
        found_down = store(endpoint)
        assert found_down.get("a" * 64, tmp_path) is None  # a read finds it down
        started = time.monotonic()
        assert Claims(found_down, "r1").supported() is False
        assert time.monotonic() - started < 0.5  # not asked again
        probed = store(endpoint)  # the probe is the first to ask: down, and no claims for now, not for good
        claims = Claims(probed, "r2")
        assert claims.supported() is False and claims._supported is None and not probed._available()
        assert len(probed.problems) == 1 and "cannot be reached" in probed.problems[0], probed.problems
