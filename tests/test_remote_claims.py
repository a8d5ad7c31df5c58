"""One payment per request across machines (issue 19, point 4): runners with their own local
caches over one S3 store (moto's server on 127.0.0.1) claim each new paid request with a
conditional write; the others wait for the entry. A runner SIGKILLed while it holds claims is
taken over after the claims go stale, and its predictions are resumed by id, never created again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate
from reliability import check_final
from test_remote_cache import bucket, objects, runner, s3_endpoint  # noqa: F401 - fixtures

from conftest import small_spec


def _spec() -> dict:
    return small_spec()


def _claims(client, bucket_name: str) -> dict[str, bytes]:
    """The claims in the store now (one released between listing and reading is left out)."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix="team/cache/claims/"):
        for obj in page.get("Contents", []):
            try:
                out[obj["Key"]] = client.get_object(Bucket=bucket_name, Key=obj["Key"])["Body"].read()
            except client.exceptions.NoSuchKey:
                continue
    return out


def _start(project, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args], cwd=project.root,
                            env=project.run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_three_runners_at_once_pay_once_per_request(tmp_path: Path, s3_endpoint: str, bucket) -> None:  # noqa: F811
    bucket_name, client = bucket
    with FakeReplicate(latency=1.0) as replicate, FakeOpenAI() as openai:
        runners = [runner(tmp_path / f"runner-{i}", s3_endpoint, bucket_name, (replicate, openai), _spec())
                   for i in range(3)]
        procs = [_start(r) for r in runners]
        for r, p in zip(runners, procs):
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, (out[-2000:], err[-2000:])
            check_final(r.build / "zip" / "final.mp4", 8)
        assert replicate.paid_creates >= 5
        assert all(n == 1 for n in replicate.creates_by_input.values()), replicate.creates_by_input
        # every claim was released once its entry was in the store
        assert not [k for k in objects(client, bucket_name, "team/cache/claims/")]
        finals = {(r.build / "zip" / "final.mp4").read_bytes() for r in runners}
        assert len(finals) == 1


def test_a_runner_killed_holding_claims_is_taken_over_and_its_predictions_resumed(
        tmp_path: Path, s3_endpoint: str, bucket) -> None:  # noqa: F811
    bucket_name, client = bucket
    with FakeReplicate(latency=4.0) as replicate, FakeOpenAI() as openai:
        first = runner(tmp_path / "runner-1", s3_endpoint, bucket_name, (replicate, openai), _spec())
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

        second = runner(tmp_path / "runner-2", s3_endpoint, bucket_name, (replicate, openai), _spec())
        second.env["ADSPEC_CLAIM_STALE"] = "3"
        out = second.doit()
        check_final(second.build / "zip" / "final.mp4", 8)
        # the dead runner's predictions were resumed by id: no second create for any input
        assert all(n == 1 for n in replicate.creates_by_input.values()), replicate.creates_by_input
        assert replicate.paid_creates >= created
        got = {r["path"].rsplit("/", 1)[-1] for r in replicate.requests if r["method"] == "GET"}
        assert held <= got  # runner 2 asked for each held prediction by its id
        assert "taking it over" in out.stdout + out.stderr
        assert not objects(client, bucket_name, "team/cache/claims/")
