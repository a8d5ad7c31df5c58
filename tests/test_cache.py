"""The request cache: a hit never pays, a key is paid once however many ask, a stored job id is
resumed, a damaged entry is never served."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from adspec.cache import RequestCache
from adspec.errors import CacheError, MediaError, ProviderError
from adspec.providers.base import RunResult
from adspec.recipes import FileRef, Recipe


def recipe(prompt: str = "a shoe", **params) -> Recipe:
    return Recipe(provider="test", kind="image", model="m", version="v1", params={"prompt": prompt, **params})


def no_check(path: Path) -> None:
    assert path.stat().st_size > 0


class Counter:
    def __init__(self, delay: float = 0.0):
        self.calls = 0
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, recipe, job, out: Path) -> RunResult:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        out.write_bytes(b"artifact:" + job.__class__.__name__.encode())
        return RunResult(job_id=f"job-{self.calls}", cost_usd=0.025)


def test_key_covers_every_input_and_file_bytes(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(b"one")
    r1 = Recipe("p", "video", "m", "v", {"x": 1}, {"image": FileRef.of(a)})
    r2 = Recipe("p", "video", "m", "v", {"x": 1}, {"image": FileRef(r1.files["image"].sha256, tmp_path / "elsewhere.png")})
    assert r1.key == r2.key  # the path is not the identity, the bytes are
    b = tmp_path / "b.png"
    b.write_bytes(b"two")
    assert Recipe("p", "video", "m", "v", {"x": 1}, {"image": FileRef.of(b)}).key != r1.key
    assert Recipe("p", "video", "m", "v", {"x": 2}, {"image": FileRef.of(a)}).key != r1.key
    assert Recipe("p", "video", "m", "v2", {"x": 1}, {"image": FileRef.of(a)}).key != r1.key
    assert Recipe("p", "video", "m", "v", {"x": 1}, {"image": FileRef.of(a)}).key == r1.key


def test_miss_then_hit_pays_once(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c")
    run = Counter()
    first = cache.fetch(recipe(), run, no_check, suffix=".bin")
    second = cache.fetch(recipe(), run, no_check, suffix=".bin")
    assert run.calls == 1
    assert (first.hit, second.hit) == (False, True)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert second.entry.cost_usd == 0.025 and second.entry.job_id == "job-1"
    assert [e["key"] for e in cache.ledger()] == [recipe().key]
    cache.fetch(recipe("another"), run, no_check, suffix=".bin")
    assert run.calls == 2


def test_threads_asking_one_key_make_one_call(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c")
    run = Counter(delay=0.3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.fetch(recipe(), run, no_check, suffix=".bin"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run.calls == 1
    assert sorted(r.hit for r in results) == [False] + [True] * 7


def _process_fetch(root: str, out: str) -> None:
    cache = RequestCache(root)

    def run(recipe, job, path: Path) -> RunResult:
        with open(out, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        path.write_bytes(b"x")
        return RunResult()

    cache.fetch(recipe(), run, no_check, suffix=".bin")


def test_processes_asking_one_key_make_one_call(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_fetch, args=(str(tmp_path / "c"), str(calls))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(calls.read_text().splitlines()) == 1


def test_job_id_is_stored_before_waiting_and_resumed(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c")
    seen = []

    def dies_while_waiting(recipe, job, out: Path) -> RunResult:
        job.sending()
        job.started("pred-123")
        raise KeyboardInterrupt  # the build is killed while waiting on the provider

    with pytest.raises(KeyboardInterrupt):
        cache.fetch(recipe(), dies_while_waiting, no_check, suffix=".bin")
    assert cache.pending(recipe().key)["job_id"] == "pred-123"

    def resumes(recipe, job, out: Path) -> RunResult:
        seen.append((job.resume_id, job.sent_before))
        out.write_bytes(b"done")
        return RunResult(job_id=job.resume_id)

    got = cache.fetch(recipe(), resumes, no_check, suffix=".bin")
    assert seen == [("pred-123", False)]
    assert got.entry.job_id == "pred-123"
    assert cache.pending(recipe().key) is None


def looks_up_first(flags: list[bool]):
    """A provider run that records whether the cache told it a create may have been sent (it then
    looks the prediction up by its inputs) and finds it."""

    def run(recipe, job, out: Path) -> RunResult:
        flags.append(job.sent_before)
        out.write_bytes(b"found it")
        return RunResult(job_id="found")

    return run


def test_create_of_unknown_outcome_is_flagged_not_resent(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c")

    def times_out_after_sending(recipe, job, out: Path) -> RunResult:
        job.sending()
        raise TimeoutError("read timed out")

    with pytest.raises(TimeoutError):
        cache.fetch(recipe(), times_out_after_sending, no_check, suffix=".bin")
    flags: list[bool] = []
    cache.fetch(recipe(), looks_up_first(flags), no_check, suffix=".bin")
    assert flags == [True]


def test_a_merge_carries_a_create_whose_answer_was_lost(tmp_path: Path) -> None:
    """A runner killed between sending a create and its answer leaves "sent, no job id": `adspec
    cache merge` (the CI workflow's step) left it out, and the next runner paid again; carried
    over, that runner looks the prediction up by its inputs first."""
    killed = RequestCache(tmp_path / "killed")

    def killed_after_sending(recipe, job, out: Path) -> RunResult:
        job.sending()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        killed.fetch(recipe(), killed_after_sending, no_check, suffix=".bin")
    paid = RequestCache(tmp_path / "paid")
    assert paid.absorb(killed)["pending"] == 1
    nxt = RequestCache(tmp_path / "next")
    assert nxt.absorb(paid)["pending"] == 1
    flags: list[bool] = []
    nxt.fetch(recipe(), looks_up_first(flags), no_check, suffix=".bin")
    assert flags == [True]  # found by its inputs, not created again


def test_failed_job_is_forgotten_so_a_retry_creates_anew(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c")

    def fails(recipe, job, out: Path) -> RunResult:
        job.started("pred-bad")
        raise ProviderError("prediction failed: NSFW", ended=True)  # the provider's terminal answer

    with pytest.raises(ProviderError):
        cache.fetch(recipe(), fails, no_check, suffix=".bin")
    assert cache.pending(recipe().key) is None

    def poll_broke(recipe, job, out: Path) -> RunResult:
        job.started("pred-slow")
        raise ProviderError("polling failed", resumable=True)

    with pytest.raises(ProviderError):
        cache.fetch(recipe(), poll_broke, no_check, suffix=".bin")
    assert cache.pending(recipe().key)["job_id"] == "pred-slow"

    def refused(recipe, job, out: Path) -> RunResult:
        raise ProviderError("401 Unauthorized while resuming", retryable=False)  # says nothing of the job

    with pytest.raises(ProviderError):
        cache.fetch(recipe(), refused, no_check, suffix=".bin")
    assert cache.pending(recipe().key)["job_id"] == "pred-slow"


def test_bad_artifact_is_not_cached(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c")
    run = Counter()

    def reject(path: Path) -> None:
        raise MediaError("not a video")

    with pytest.raises(MediaError):
        cache.fetch(recipe(), run, reject, suffix=".bin")
    assert cache.get(recipe().key) is None
    assert list((tmp_path / "c" / "rejected").iterdir())  # kept aside for inspection, not served
    cache.fetch(recipe(), run, no_check, suffix=".bin")
    assert run.calls == 2


@pytest.mark.parametrize("damage", ["delete", "edit"])
def test_damaged_blob_is_reported_and_regenerated(tmp_path: Path, damage: str) -> None:
    cache = RequestCache(tmp_path / "c")
    run = Counter()
    got = cache.fetch(recipe(), run, no_check, suffix=".bin")
    if damage == "delete":
        got.path.unlink()
    else:
        got.path.write_bytes(b"tampered")
    again = cache.fetch(recipe(), run, no_check, suffix=".bin")
    assert run.calls == 2 and again.hit is False
    assert again.path.read_bytes().startswith(b"artifact:")
    assert any(recipe().key[:12] in p for p in cache.problems)


def test_eviction_is_off(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c")
    assert cache._db.eviction_policy == "none"


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match="ADSPEC_CACHE_DIR"):
        RequestCache(blocker / "cache")
