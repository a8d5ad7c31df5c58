"""A paid prediction that could not be waited on or fetched is resumed by the next run, never
paid for again: the request cache and the real replicate client against the loopback fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from adspec.cache import RequestCache
from adspec.errors import ProviderError
from adspec.providers.base import ImageRequest
from adspec.providers.replicate_provider import ReplicateMedia
from adspec.verify import image_verifier
from fakes.replicate_server import FakeReplicate

TOKEN = "r8_RESUME-test-token-not-real-0000"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch):
    with FakeReplicate(latency=0.05, output_mode="url") as f:
        monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPLICATE_BASE_URL", f.base_url)
        monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
        yield f


def request() -> ImageRequest:
    return ImageRequest(ad="ad", beat_id="hook", beat_type="hook", prompt="a shoe on a rock", model="flux-dev",
                        aspect_ratio="16:9", width=1280, height=720, seed=1, style="cinematic", palette=("#112233",))


@pytest.mark.parametrize("fault", ["polling", "download"])
def test_a_paid_prediction_is_resumed_not_recreated(fake: FakeReplicate, tmp_path: Path, fault: str) -> None:
    cache = RequestCache(tmp_path / "cache")
    provider = ReplicateMedia(backoff_base=0.001, backoff_max=0.005, poll_error_attempts=2)
    recipe = provider.image_recipe(request())
    if fault == "polling":
        fake.poll_5xx = 50  # the provider keeps answering 500 while we wait
    else:
        fake.download_fault, fake.download_faults = "truncated", 50
    with pytest.raises(ProviderError) as failed:
        cache.fetch(recipe, provider.run, image_verifier("hook"), suffix=".img")
    assert failed.value.resumable
    assert fake.paid_creates == 1
    stored = cache.pending(recipe.key)["job_id"]
    assert stored

    fake.poll_5xx, fake.download_fault, fake.download_faults = 0, None, 0  # the provider recovers
    got = cache.fetch(recipe, provider.run, image_verifier("hook"), suffix=".img")
    assert fake.paid_creates == 1  # the same prediction, fetched: nothing paid twice
    assert got.entry.job_id == stored and got.hit is False
    assert cache.pending(recipe.key) is None


def test_a_failed_prediction_is_created_anew(fake: FakeReplicate, tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "cache")
    provider = ReplicateMedia(backoff_base=0.001, backoff_max=0.005)
    recipe = provider.image_recipe(request())
    fake.outcome = "failed"
    with pytest.raises(ProviderError) as failed:
        cache.fetch(recipe, provider.run, image_verifier("hook"), suffix=".img")
    assert not failed.value.resumable and "failed" in str(failed.value)
    fake.outcome = "succeeded"
    cache.fetch(recipe, provider.run, image_verifier("hook"), suffix=".img")
    assert sum(fake.creates_by_model.values()) == 2  # a failed prediction is not billed; retried once
