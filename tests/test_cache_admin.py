"""The cache made visible and bounded (issue 12, points 8 and 4): `adspec cache du`, `gc
[--dry-run] [--older-than DAYS]`, `show KEY`, `forget KEY`, and `adspec estimate` writing nothing.

Paid requests are counted at the fake Replicate: gc never makes a build pay again for what a
receipt uses; forget says it may pay again, and the next build does ask again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from adspec.cache import RequestCache
from conftest import REPO, Project, small_spec
from reliability import assert_no_traceback, check_final, live_env, snapshot


def _receipt_keys(build: Path) -> set[str]:
    return {json.loads(p.read_text())["key"] for p in build.rglob("*.receipt.json")}


def _cache_json(project: Project, *args: str) -> dict:
    out = project.adspec("cache", *args, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


# ---- estimate writes nothing ------------------------------------------------------------------

def test_estimate_writes_nothing(project: Project) -> None:
    from fakes.replicate_server import FakeReplicate

    project.write_spec("zip", small_spec())
    before = snapshot([project.root])
    out = project.adspec("estimate", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ads"][0]["ad"] == "zip"
    assert not project.cache.exists() and not project.build.exists()  # no cache database created
    assert snapshot([project.root]) == before
    with FakeReplicate() as rep:  # live: paid items are looked up too (their pending requests)
        out = project.adspec("estimate", "--json", ADSPEC_BACKEND="", REPLICATE_API_TOKEN="r8_fake-estimate-token",
                             REPLICATE_BASE_URL=rep.base_url)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["total_usd"] > 0 and rep.requests == []
    assert not project.cache.exists() and snapshot([project.root]) == before
    # with a cache and a build present: every file as it was (bytes and mtimes)
    project.doit()
    project.write_spec("zip", small_spec(seed=4))
    before = snapshot([project.root])
    out = project.adspec("estimate", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ads"][0]["up_to_date"] < 9  # the new seed makes work: it did look
    assert snapshot([project.root]) == before


# ---- du and gc ----------------------------------------------------------------------------------

def test_du_and_gc_keep_what_receipts_use_and_remove_the_rest(project: Project) -> None:
    from adspec.cache_view import CacheView
    from fakes.replicate_server import FakeReplicate

    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=0.05) as rep:
        rep.unique_outputs = True  # each request its own bytes: old and new artifacts are distinct blobs
        live_env(project, rep)
        project.doit()
        first_keys = _receipt_keys(project.build)
        project.write_spec("zip", small_spec(seed=4))  # every paid target changes: new requests
        project.doit()
        paid = rep.paid_creates
        used = _receipt_keys(project.build)
        old = first_keys - used
        assert old, "the seed change left no artifact unused"

        view = CacheView(project.cache)
        entries = {e.key: e for e in view.entries()}
        view.close()
        usage = _cache_json(project, "du")
        assert {"image", "video", "music"} <= set(usage["by_kind"])
        assert usage["by_kind"]["video"]["paid_usd"] > 0
        zip_blobs = {entries[k].sha256 for k in used if k in entries}
        assert usage["by_ad"]["zip"]["artifacts"] == len(zip_blobs)
        assert usage["by_ad"]["zip"]["bytes"] == sum(os.path.getsize(project.cache / "blobs" / s[:2] / s) for s in zip_blobs)
        assert usage["by_ad"]["(no receipt under build/)"]["artifacts"] == len({entries[k].sha256 for k in old} - zip_blobs)
        assert usage["lock_files"] > 0
        # all the cache ever paid, both builds' requests: what `adspec status` no longer shows once
        # an ad's files are others (it said "spent (all runs)" for its current files only)
        billed = [x for x in project.ledger() if x["cost_usd"] > 0]
        assert usage["ledger"] == {"paid_calls": len(billed), "paid_usd": round(sum(x["cost_usd"] for x in billed), 6)}
        assert usage["ledger"]["paid_calls"] == paid  # one ledger line per create the fake billed

        # leftovers of a killed run, a blob nobody names, both a day old; and a lock a build holds
        day_ago = time.time() - 2 * 86400
        leftover = project.cache / "tmp" / ".abc.killed.mp4"
        leftover.write_bytes(b"half a clip")
        orphan = project.cache / "blobs" / "00" / ("00" * 32)
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"nobody names me")
        for p in (leftover, orphan):
            os.utime(p, (day_ago, day_ago))
        for k in old:  # made two days ago and not used since (a cache hit touches its blob)
            blob = project.cache / "blobs" / entries[k].sha256[:2] / entries[k].sha256
            os.utime(blob, (day_ago, day_ago))

        # the default age limit (30 days) keeps everything paid today, used or not
        default = _cache_json(project, "gc", "--dry-run")
        assert default["paid_entries"] == [] and default["entries"] == []

        cache_files = snapshot([project.cache])
        dry = _cache_json(project, "gc", "--dry-run", "--older-than", "0")
        assert set(dry["entries"]) == old and set(dry["paid_entries"]) == {k for k in old if entries[k].cost_usd > 0}
        assert dry["paid_usd"] > 0 and orphan.name in dry["orphans"] and leftover.name in dry["leftovers"]
        assert snapshot([project.cache]) == cache_files  # --dry-run changes nothing
        said = project.adspec("cache", "gc", "--dry-run", "--older-than", "0").stdout
        assert "nothing used in the last hour (always kept)" in said and "; run without --dry-run to remove" in said, said

        holder = RequestCache(project.cache)
        held_key = next(iter(used))
        with holder.claim(held_key):
            done = project.adspec("cache", "gc", "--older-than", "0")
        holder.close()
        assert done.returncode == 0, done.stderr
        assert_no_traceback(done.stdout, done.stderr)
        assert "were paid for" in done.stdout and "pays again" in done.stdout
        assert not orphan.exists() and not leftover.exists()
        for k in old:
            e = entries[k]
            if e.sha256 not in zip_blobs:
                assert not (project.cache / "blobs" / e.sha256[:2] / e.sha256).exists()
        locks = {p.name for p in (project.cache / "locks").iterdir()}
        assert locks == {f"{held_key}.lock"}, locks  # the held one stays, the stale ones are gone

        # nothing the build uses was removed: a rebuild from a clean build folder pays nothing
        cache = RequestCache(project.cache)
        assert all(cache.get(k) is not None for k in used)
        cache.close()
        import shutil

        shutil.rmtree(project.build)
        again = project.doit()
        assert rep.paid_creates == paid
        assert_no_traceback(again.stdout, again.stderr)
    check_final(project.build / "zip" / "final.mp4", 8)


# ---- show and forget -------------------------------------------------------------------------

def test_show_and_forget_a_stuck_request(project: Project) -> None:
    from adspec.cache_view import CacheView
    from fakes.replicate_server import FakeReplicate

    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=120) as rep:  # the first prediction stays in flight
        live_env(project, rep)
        proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")], cwd=project.root,
                                env=project.run_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            key = job = None
            deadline = time.monotonic() + 120
            while job is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
                if (project.cache / "requests" / "cache.db").exists():
                    view = CacheView(project.cache)
                    for k in view.pending_keys():
                        job = (view.pending(k) or {}).get("job_id") or None
                        key = k if job else None
                    view.close()
            assert key and job in rep.predictions, "no prediction went in flight"

            shown = project.adspec("cache", "show", key[:10])
            assert shown.returncode == 0, shown.stderr
            assert f"pending: prediction {job} is paid for and pending" in shown.stdout and "claimed" in shown.stdout, shown.stdout
            refused = project.adspec("cache", "forget", key[:10])
            assert refused.returncode == 1 and "claimed by a running build" in refused.stderr, refused.stderr
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

        info = _cache_json(project, "show", key)
        assert info["pending"]["job_id"] == job and not info["claimed"] and info["entry"] is None
        assert info["state"].startswith(f"pending: prediction {job} is paid for and pending")

        forgot = project.adspec("cache", "forget", key)
        assert forgot.returncode == 0, forgot.stderr
        assert "MAY PAY AGAIN" in forgot.stdout and job in forgot.stdout, forgot.stdout
        view = CacheView(project.cache)
        assert view.pending(key) is None
        view.close()
        nothing = project.adspec("cache", "forget", key)
        assert nothing.returncode == 1 and not nothing.stdout and nothing.stderr.count("\n") == 1  # nothing left

        inputs = rep.predictions[job]["input"]
        rep.latency = 0.05
        seen = len(rep.requests)
        project.doit()
        # the forgotten request was asked again (as forget said); the first prediction was never fetched
        assert rep.creates_by_input[rep.input_hash(inputs)] == 2
        assert not any(r["path"].endswith(job) for r in rep.requests[seen:] if r["method"] == "GET")

    # a corrupt artifact: show says so and changes nothing
    info = _cache_json(project, "show", key)
    blob = Path(info["artifact"])
    blob.chmod(0o644)
    blob.write_bytes(b"not the artifact any more")
    before = snapshot([project.cache])
    info = _cache_json(project, "show", key)
    assert info["state"].startswith("corrupt: its artifact's bytes do not match")
    assert snapshot([project.cache]) == before
    assert info["used_by"] and info["used_by"][0]["recipe"]["kind"] == info["entry"]["kind"]


def test_cache_commands_on_an_empty_project(project: Project) -> None:
    usage = _cache_json(project, "du")
    assert usage["artifacts"] == 0 and usage["by_kind"] == {}
    assert not project.cache.exists()  # du reads only
    out = project.adspec("cache", "show", "abcdef")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "no cache record" in out.stderr
    assert_no_traceback(out.stderr)


def test_a_lock_file_removed_between_open_and_flock_is_not_a_second_lock(tmp_path: Path, monkeypatch) -> None:
    """gc removes lock files nobody holds. A build that opened the lock file just before it was
    removed, and locks it just after, must not think it holds the key while another build holds
    the new lock file: `claim` re-checks that the path still names the file it locked."""
    import threading

    import adspec.file_locks as cache_module  # the flock every key claim goes through

    cache = RequestCache(tmp_path / "cache")
    key = "k" * 64
    with cache.claim(key):
        pass  # the lock file exists, nobody holds it
    opened, go = threading.Event(), threading.Event()
    real_flock = cache_module.fcntl.flock
    waiter = threading.get_ident()
    events: list[str] = []

    def flock(fd, op):
        if threading.get_ident() == waiter and op == cache_module.fcntl.LOCK_EX and not opened.is_set():
            opened.set()  # the waiter has opened the old lock file and is about to lock it
            go.wait(10)
        return real_flock(fd, op)

    monkeypatch.setattr(cache_module.fcntl, "flock", flock)

    def waiting_build() -> None:
        nonlocal waiter
        waiter = threading.get_ident()
        with cache.claim(key):
            events.append("waiter holds the key")

    t = threading.Thread(target=waiting_build)
    t.start()
    assert opened.wait(10)
    assert cache.remove_stale_lock(key)  # gc: nobody holds it
    with cache.claim(key):  # another build takes the new lock file
        go.set()  # the waiter now locks the old, removed file
        time.sleep(0.5)
        events.append("other build releases")
    t.join(10)
    assert events == ["other build releases", "waiter holds the key"]
    cache.close()


def test_gc_keeps_what_a_build_just_made_or_used_whatever_the_age_limit(project: Project) -> None:
    """Two ways gc took paid artifacts a build needed: during a build, between a clip's arrival and
    its receipt (`--older-than 0` removed it, the next build paid again); and an artifact made long
    ago but served from the cache a minute ago ("made or used in the last DAYS days")."""
    import dataclasses

    from fakes.replicate_server import FakeReplicate

    a, b = small_spec(), small_spec()
    b["beats"][0]["image_prompt"] = "A bottle on a cliff"
    with FakeReplicate(latency=0.05) as rep:
        rep.unique_outputs = True
        live_env(project, rep)
        project.write_spec("zip", a)
        project.doit()
        paid = dict(rep.creates_by_input)
        # a chunk just made whose receipt is not written yet (the build is conforming it)
        receipt = project.build / "zip" / "beats" / "cta" / "chunk-0.receipt.json"
        key = json.loads(receipt.read_text())["key"]
        receipt.unlink()
        gc = project.adspec("cache", "gc", "--older-than", "0")
        assert gc.returncode == 0, gc.stderr
        cache = RequestCache(project.cache)
        assert cache.get(key) is not None, gc.stdout
        # made 40 days ago (records, ledger and blobs aged), used today by a build of A, then unused
        for e in list(cache.entries()):
            cache._put_entry(e.key, dataclasses.replace(e, created_at=e.created_at - 40 * 86400))
            blob = cache.blob_path(e.sha256)
            os.utime(blob, (blob.stat().st_mtime - 40 * 86400,) * 2)
        cache.close()
        ledger = project.cache / "ledger.jsonl"
        lines = [json.loads(x) for x in ledger.read_text().splitlines() if x.strip()]
        ledger.write_text("".join(json.dumps({**x, "time": x["time"] - 40 * 86400}) + "\n" for x in lines))
        project.write_spec("zip", b)
        project.doit()
        project.write_spec("zip", a)
        project.doit()  # A again: served from the cache, so used today
        project.write_spec("zip", b)
        project.doit()
        gc = project.adspec("cache", "gc")
        assert gc.returncode == 0, gc.stderr
        project.write_spec("zip", a)
        project.doit()
        again = {k: n for k, n in rep.creates_by_input.items() if n > 1}
        assert not again, f"{len(again)} requests paid again after gc: {gc.stdout}"
        assert set(paid) < set(rep.creates_by_input)  # B's own new requests were paid, once each


def test_gc_without_a_build_folder_removes_nothing(project: Project) -> None:
    """Receipts under build/ are what keep paid artifacts; run where there is no build folder,
    `gc` would take every artifact past the age limit: it refuses (and --dry-run says where it looked)."""
    project.write_spec("zip", small_spec())
    project.doit()
    before = sorted(p.name for p in (project.cache / "blobs").rglob("*") if p.is_file())
    elsewhere = str(project.root / "nowhere" / "build")
    out = project.adspec("cache", "gc", "--older-than", "0", ADSPEC_BUILD=elsewhere)
    assert out.returncode == 1 and "no build folder at" in out.stderr and "Traceback" not in out.stderr, out
    assert sorted(p.name for p in (project.cache / "blobs").rglob("*") if p.is_file()) == before
    dry = project.adspec("cache", "gc", "--dry-run", "--older-than", "0", ADSPEC_BUILD=elsewhere)
    assert dry.returncode == 0 and "(there is none)" in dry.stdout, dry.stdout + dry.stderr
