"""Issue 12 (points 1-4, 10): the paths by which the request cache could pay a second time or
hold another request's artifact, tried against the fake Replicate with the real `replicate`
client and the real request cache. Each test counts paid creates per input at the fake and
checks which prediction's output each target holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from adspec.cache import RequestCache
from adspec.errors import ProviderError
from adspec.providers import replicate_provider as rp
from adspec.providers.base import ImageRequest, VideoRequest
from adspec.providers.replicate_provider import ReplicateMedia
from adspec.verify import image_verifier, video_verifier
from fakes.replicate_server import FakeReplicate, make_media

TOKEN = "r8_NEVER-TWICE-test-token-not-real-0000"
EXPIRED = "r8_NEVER-TWICE-expired-token-not-real-1111"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch):
    with FakeReplicate(latency=0.05, output_mode="url", token=TOKEN) as f:
        f.unique_outputs = True  # each input gets its own bytes: a swapped artifact shows
        monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPLICATE_BASE_URL", f.base_url)
        monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
        yield f


@pytest.fixture()
def cache(tmp_path: Path):
    c = RequestCache(tmp_path / "cache")
    yield c
    c.close()


def provider(**kw) -> ReplicateMedia:
    return ReplicateMedia(backoff_base=0.001, backoff_max=0.005, poll_error_attempts=2, **kw)


def image(prompt: str) -> ImageRequest:
    return ImageRequest(ad="ad", beat_id="hook", beat_type="hook", prompt=prompt, model="flux-dev",
                        aspect_ratio="16:9", width=1280, height=720, seed=1, style="cinematic", palette=("#112233",))


def fetch_image(cache: RequestCache, p: ReplicateMedia, prompt: str):
    return cache.fetch(p.image_recipe(image(prompt)), p.run, image_verifier(prompt), suffix=".img", label=prompt)


def held_by(fake: FakeReplicate, cache: RequestCache, recipe_key: str) -> str | None:
    """The fake's prediction id whose output bytes the cache holds for `recipe_key`."""
    entry = cache.get(recipe_key)
    if entry is None:
        return None
    data = cache.blob_path(entry.sha256).read_bytes()
    for name, (blob, _mime) in fake.outputs.items():
        if blob == data:
            return name.rsplit(".", 1)[0]
    return "unknown bytes"


def prediction_of(fake: FakeReplicate, prompt_part: str) -> list[str]:
    return [pid for pid, p in fake.predictions.items() if prompt_part in str(p["input"].get("prompt"))]


# ---- 1. an auth or routing error while resuming keeps the stored ids -------------------------


@pytest.mark.parametrize("wrong", ["401 expired token", "404 other base URL"])
@pytest.mark.parametrize("state", ["prediction id", "create-sent mark"])
def test_auth_or_routing_error_while_resuming_keeps_every_pending_request(
        fake: FakeReplicate, cache: RequestCache, monkeypatch: pytest.MonkeyPatch, wrong: str, state: str) -> None:
    prompts = [f"in flight {i}" for i in range(3)]
    if state == "prediction id":
        fake.latency = 0.5  # still starting when the run gives up waiting: each keeps its id
        first = provider(timeout_s=0.0)
    else:
        fake.create_drop, fake.list_5xx = 3, 10_000  # each answer lost, and the look-up cannot run
        first = provider()
    for prompt in prompts:
        with pytest.raises(ProviderError):
            fetch_image(cache, first, prompt)
    assert fake.paid_creates == 3
    keys = [first.image_recipe(image(p)).key for p in prompts]
    before = [cache.pending(k) for k in keys]
    assert all(before)

    # one run with the wrong settings: every target fails with one line, nothing is forgotten
    if wrong.startswith("401"):
        monkeypatch.setenv("REPLICATE_API_TOKEN", EXPIRED)
    else:
        monkeypatch.setenv("REPLICATE_BASE_URL", fake.base_url + "/elsewhere")
    fake.list_5xx = 0
    for prompt in prompts:
        with pytest.raises(ProviderError) as e:
            fetch_image(cache, provider(), prompt)
        line = e.value.one_line()
        assert ("401" in line) if wrong.startswith("401") else ("404" in line or "Not Found" in line), line
        assert EXPIRED not in line and "\n" not in str(e.value).strip()
    assert [cache.pending(k) for k in keys] == before

    # the right settings again: every prediction is resumed or adopted, none is paid twice
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.setenv("REPLICATE_BASE_URL", fake.base_url)
    fake.latency = 0.05
    for prompt, key in zip(prompts, keys):
        got = fetch_image(cache, provider(), prompt)
        assert got.entry.key == key
    assert fake.paid_creates == 3 and set(fake.creates_by_input.values()) == {1}
    for prompt, key in zip(prompts, keys):
        [pid] = prediction_of(fake, prompt)
        assert held_by(fake, cache, key) == pid  # the first, paid output is the one cached
        assert cache.pending(key) is None


# ---- 2. the look-up adopts a candidate only if every input matches, files by content ---------


@pytest.fixture()
def photos(tmp_path: Path) -> dict[str, Path]:
    """Two first frames over the data-URI limit (uploaded), differing only in their pixels."""
    out = {}
    for colour, tint in (("red", 0), ("blue", 200)):
        p = tmp_path / f"{colour}.png"
        p.write_bytes(make_media("image", "16:9", tint=tint) + b"\0" * 300_000)
        out[colour] = p
    return out


def clip(frame: Path) -> VideoRequest:
    return VideoRequest(ad="ad", beat_id="hook", index=0, prompt="slow push-in", model="hailuo-2.3-fast", seconds=6,
                        aspect_ratio="16:9", width=1280, height=720, fps=24, seed=1, first_frame=frame)


@pytest.mark.parametrize("fault", ["create 5xx", "answer lost"])
def test_lookup_never_adopts_a_prediction_of_another_uploaded_file(
        fake: FakeReplicate, cache: RequestCache, photos: dict[str, Path], fault: str) -> None:
    p = provider()
    red, blue = p.video_recipe(clip(photos["red"])), p.video_recipe(clip(photos["blue"]))
    assert red.params == blue.params and red.files != blue.files  # the same but for the photo
    if fault == "create 5xx":
        cache.fetch(red, p.run, video_verifier("red", 6), suffix=".mp4")
        fake.create_5xx = 1  # refused before a prediction exists: the look-up must find nothing
    else:
        fake.create_drop, fake.list_5xx = 1, 10_000  # blue's made, its answer lost, the list down
        with pytest.raises(ProviderError):
            cache.fetch(blue, p.run, video_verifier("blue", 6), suffix=".mp4")
        fake.list_5xx = 0
        cache.fetch(red, p.run, video_verifier("red", 6), suffix=".mp4")  # newer than blue's
    got = cache.fetch(blue, provider().run, video_verifier("blue", 6), suffix=".mp4")
    assert fake.uploads == 2
    assert fake.paid_creates == 2 and sorted(fake.creates_by_input.values()) == [1, 1]
    [red_pid] = [pid for pid, q in fake.predictions.items() if fake.files[q["input"]["first_frame_image"].rsplit("/", 1)[1]][0] == photos["red"].read_bytes()]
    [blue_pid] = [pid for pid in fake.predictions if pid != red_pid]
    assert held_by(fake, cache, red.key) == red_pid
    assert held_by(fake, cache, blue.key) == blue_pid and got.entry.job_id == blue_pid


def test_lookup_needs_every_input_not_only_the_recipes_own(fake: FakeReplicate, cache: RequestCache) -> None:
    """A candidate with this recipe's inputs plus one more (another request) is not adopted."""
    p = provider()
    recipe = p.image_recipe(image("extra input"))
    fake.create_drop, fake.list_5xx = 1, 10_000  # ours is made, its answer lost, the list down
    with pytest.raises(ProviderError):
        cache.fetch(recipe, p.run, image_verifier("x"), suffix=".img")
    fake.list_5xx = 0
    fake.create_prediction("black-forest-labs/flux-dev", None, dict(recipe.params, output_quality=50))  # newer
    got = cache.fetch(recipe, provider().run, image_verifier("x"), suffix=".img")
    assert fake.paid_creates == 2 and sorted(fake.creates_by_input.values()) == [1, 1]
    [own] = [pid for pid, q in fake.predictions.items() if q["input"] == recipe.params]
    assert got.entry.job_id == own and held_by(fake, cache, recipe.key) == own


# ---- 3. the look-up window is the time the create was sent, not the 300 newest ---------------


def test_lookup_finds_the_create_behind_more_than_300_other_predictions(
        fake: FakeReplicate, cache: RequestCache) -> None:
    p = provider()
    fake.create_drop, fake.list_5xx = 1, 10_000  # the answer is lost and the list is down
    with pytest.raises(ProviderError):
        fetch_image(cache, p, "busy account")
    [pid] = prediction_of(fake, "busy account")
    fake.add_traffic(350)  # the account's other apps keep creating
    fake.list_5xx = 0
    got = fetch_image(cache, provider(), "busy account")
    assert fake.paid_creates == 1 and got.entry.job_id == pid
    assert held_by(fake, cache, got.entry.key) == pid
    assert fake.count("GET", "/v1/predictions?cursor=300") == 1  # it listed back to the send


def test_lookup_that_cannot_decide_stops_the_target_and_sends_nothing(
        fake: FakeReplicate, cache: RequestCache, monkeypatch: pytest.MonkeyPatch) -> None:
    p = provider()
    recipe = p.image_recipe(image("undecided"))
    # a list that keeps failing
    fake.create_drop, fake.list_5xx = 1, 10_000
    for _ in range(2):
        with pytest.raises(ProviderError) as e:
            fetch_image(cache, provider(), "undecided")
        line = e.value.one_line()
        assert "a paid prediction may exist" in line and "nothing is sent on a guess" in line, line
        assert f"adspec cache forget {recipe.key}" in line and "listing predictions failed" in line, line
    assert fake.paid_creates == 1 and cache.pending(recipe.key)["sending"] is True
    # a window longer than the look-up may list
    fake.list_5xx = 0
    fake.add_traffic(350)
    monkeypatch.setattr(rp, "LOOKUP_MAX_PAGES", 2, raising=False)
    with pytest.raises(ProviderError) as e:
        fetch_image(cache, provider(), "undecided")
    assert "may exist" in e.value.one_line() and "without reaching the time it was sent" in e.value.one_line()
    assert fake.paid_creates == 1
    # forgetting it (the user's call) is the one way to pay again
    assert cache.forget(recipe.key)
    fetch_image(cache, provider(), "undecided")
    assert fake.paid_creates == 2


def test_lookup_lists_only_back_to_the_send(fake: FakeReplicate, cache: RequestCache) -> None:
    """The bound is time, not traffic: 1000 older predictions are not listed."""
    fake.add_traffic(1000, age_s=2 * 3600)  # made two hours before the create
    fake.create_5xx = 1  # refused before creating: the look-up must decide "none" and retry
    fetch_image(cache, provider(), "quiet account")
    assert fake.paid_creates == 1
    assert fake.count("GET", "/v1/predictions") - fake.count("GET", "/v1/predictions/") == 1  # one page


# ---- 4. a corrupt output is re-requested once, counted as a paid retry ----------------------


def test_corrupt_output_is_rerequested_once_and_counted(fake: FakeReplicate, cache: RequestCache) -> None:
    p = provider()
    recipe = p.image_recipe(image("corrupt once"))
    fake.corrupt_outputs = 1
    with pytest.raises(ProviderError) as e:
        fetch_image(cache, p, "corrupt once")
    assert "media" in e.value.one_line() and "next run downloads" in e.value.one_line()
    [bad] = prediction_of(fake, "corrupt once")
    assert cache.pending(recipe.key)["job_id"] == bad and fake.paid_creates == 1
    from adspec.cache import describe_pending

    assert "re-requests it once (a paid retry)" in describe_pending(cache.pending(recipe.key))  # the estimate's note
    got = fetch_image(cache, p, "corrupt once")  # the same bad file again: re-requested once
    assert fake.paid_creates == 2
    [good] = [pid for pid in prediction_of(fake, "corrupt once") if pid != bad]
    assert got.entry.job_id == good and held_by(fake, cache, recipe.key) == good
    lines = [x for x in cache.ledger() if x["key"] == recipe.key]
    assert [(x["job_id"], x.get("outcome"), x.get("paid_retry")) for x in lines] == [
        (bad, "corrupt output", None), (good, None, 1)]
    assert lines[0]["cost_usd"] > 0 and lines[0]["cost_usd"] == lines[1]["cost_usd"]
    fetch_image(cache, p, "corrupt once")
    assert fake.paid_creates == 2  # a hit from now on


def test_corrupt_output_twice_stops_without_a_third_payment(fake: FakeReplicate, cache: RequestCache) -> None:
    p = provider()
    recipe = p.image_recipe(image("corrupt twice"))
    fake.corrupt_outputs = 2
    messages = []
    for _ in range(5):
        with pytest.raises(ProviderError) as e:
            fetch_image(cache, p, "corrupt twice")
        messages.append(e.value.one_line())
    assert fake.paid_creates == 2  # the first and its one re-request
    assert "does not pay a third time" in messages[-1] and f"adspec cache forget {recipe.key}" in messages[-1]
    assert sum(x.get("outcome") == "corrupt output" for x in cache.ledger()) == 2  # each counted once
    cache.forget(recipe.key)
    got = fetch_image(cache, p, "corrupt twice")
    assert fake.paid_creates == 3 and held_by(fake, cache, recipe.key) == got.entry.job_id


# ---- 10. one client per process, its connections reused --------------------------------------


def test_one_client_per_process_reuses_its_connection(fake: FakeReplicate, cache: RequestCache) -> None:
    p = provider()
    for i in range(6):
        fetch_image(cache, p, f"shot {i}")
        fetch_image(cache, provider(), f"other provider {i}")  # another instance: the same client
    assert fake.paid_creates == 12
    assert fake.count("GET", "/outputs/") == 12
    assert fake.connections <= 2, fake.connections  # was one (never closed) per request
    rp.close_clients()


# ---- 1, as a user meets it: a killed live build, a run with an expired token, a good run -------


def test_killed_build_then_expired_token_then_good_run_pays_once(project) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO, small_spec
    from reliability import (
        REPLICATE_TOKEN,
        assert_no_traceback,
        check_final,
        live_env,
        lost_artifacts,
        paid_twice,
    )

    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=2.0, output_mode="url", token=REPLICATE_TOKEN) as rep:
        live_env(project, rep)
        cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-n", "4", "-P", "thread"]
        proc = subprocess.Popen(cmd, cwd=project.root, env=project.run_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while rep.paid_creates < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        in_flight = rep.paid_creates
        assert in_flight >= 3 and proc.poll() is None  # both storyboards and the music are being waited on
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        rep.latency = 0.05

        expired = project.doit("--continue", check=False, REPLICATE_API_TOKEN="r8_EXPIRED-token-not-real-9999")
        assert expired.returncode != 0
        assert_no_traceback(expired.stdout, expired.stderr)
        assert "401" in expired.stdout + expired.stderr and rep.paid_creates == in_flight

        project.doit()
        check_final(project.build / "zip" / "final.mp4", 8)
        assert rep.paid_creates == 5 and set(rep.creates_by_input.values()) == {1}  # 2 images, 2 chunks, music
        assert paid_twice(rep) == {} and lost_artifacts(rep, project.cache) == set()
