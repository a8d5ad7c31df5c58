"""Issue 12 repro figures, before and after: `PYTHONPATH=<repo with adspec>:tests python tests/issue12_repro.py`
(run it with an old checkout first on PYTHONPATH to see the old figures). One line per case."""
import os
import tempfile
import warnings
from pathlib import Path

from adspec.cache import RequestCache
from adspec.errors import ProviderError
from adspec.providers import replicate_provider as rp
from adspec.providers.base import ImageRequest, VideoRequest
from adspec.verify import image_verifier, video_verifier
from fakes.replicate_server import FakeReplicate, make_media

warnings.simplefilter("ignore")
TOKEN = "r8_REPRO-token-not-real-0000"

def image(prompt):
    return ImageRequest(ad="ad", beat_id="hook", beat_type="hook", prompt=prompt, model="flux-dev", aspect_ratio="16:9",
                        width=1280, height=720, seed=1, style="cinematic", palette=("#112233",))

def prov(**kw):
    return rp.ReplicateMedia(backoff_base=0.001, backoff_max=0.005, poll_error_attempts=2, **kw)

def fetch(cache, p, prompt):
    return cache.fetch(p.image_recipe(image(prompt)), p.run, image_verifier(prompt), suffix=".img")

def held(fake, cache, key):
    e = cache.get(key)
    if e is None:
        return None
    data = cache.blob_path(e.sha256).read_bytes()
    for name, (blob, _) in fake.outputs.items():
        if blob == data:
            return name.rsplit(".", 1)[0]
    return "?"

def env(fake, token=TOKEN, base=None):
    os.environ.update(REPLICATE_API_TOKEN=token, REPLICATE_BASE_URL=base or fake.base_url, REPLICATE_POLL_INTERVAL="0.01")

def tries(f, n=1):
    fails = 0
    for _ in range(n):
        try:
            f()
        except ProviderError:
            fails += 1
    return fails

def case1(wrong, state):
    with FakeReplicate(latency=0.05, output_mode="url", token=TOKEN) as fake, tempfile.TemporaryDirectory() as d:
        fake.unique_outputs = True
        env(fake)
        cache = RequestCache(Path(d))
        prompts = [f"in flight {i}" for i in range(3)]
        if state == "id":
            fake.latency = 0.5
            first = prov(timeout_s=0.0)
        else:
            fake.create_drop, fake.list_5xx = 3, 10_000
            first = prov()
        for pr in prompts:
            tries(lambda pr=pr: fetch(cache, first, pr))
        if wrong == "401":
            env(fake, token="r8_EXPIRED-not-real")
        else:
            env(fake, base=fake.base_url + "/elsewhere")
        fake.list_5xx = 0
        for pr in prompts:
            tries(lambda pr=pr: fetch(cache, prov(), pr))
        env(fake)
        fake.latency = 0.05
        keys = [first.image_recipe(image(pr)).key for pr in prompts]
        for pr in prompts:
            tries(lambda pr=pr: fetch(cache, prov(), pr))
        firsts = {pr: min((p for p in fake.predictions.values() if p["input"]["prompt"].startswith(pr)), key=lambda p: p["created"])["id"] for pr in prompts}
        kept = sum(held(fake, cache, k) == firsts[pr] for k, pr in zip(keys, prompts))
        print(f"1 {wrong} resuming a stored {state}: creates {fake.paid_creates} for 3 inputs, "
              f"first (paid) output cached for {kept} of 3")

def case2():
    with FakeReplicate(latency=0.05, output_mode="url", token=TOKEN) as fake, tempfile.TemporaryDirectory() as d:
        fake.unique_outputs = True
        env(fake)
        cache = RequestCache(Path(d) / "c")
        frames = {}
        for c, t in (("red", 0), ("blue", 200)):
            f = Path(d) / f"{c}.png"
            f.write_bytes(make_media("image", "16:9", tint=t) + b"\0" * 300_000)
            frames[c] = f
        p = prov()
        def clip(f):
            return p.video_recipe(VideoRequest(ad="ad", beat_id="hook", index=0, prompt="slow push-in", model="hailuo-2.3-fast",
                                              seconds=6, aspect_ratio="16:9", width=1280, height=720, fps=24, seed=1, first_frame=f))
        red, blue = clip(frames["red"]), clip(frames["blue"])
        cache.fetch(red, p.run, video_verifier("red", 6), suffix=".mp4")
        fake.create_5xx = 1
        cache.fetch(blue, p.run, video_verifier("blue", 6), suffix=".mp4")
        same = held(fake, cache, red.key) == held(fake, cache, blue.key)
        print(f"2 two variants differing only in the uploaded photo, blue's create answers 500: creates {fake.paid_creates} "
              f"for 2 inputs, blue holds {'red' if same else 'its own'} clip")

def case3():
    with FakeReplicate(latency=0.05, output_mode="url", token=TOKEN) as fake, tempfile.TemporaryDirectory() as d:
        env(fake)
        cache = RequestCache(Path(d))
        fake.create_drop, fake.list_5xx = 1, 10_000
        tries(lambda: fetch(cache, prov(), "busy"))
        fake.add_traffic(350)
        fake.list_5xx = 0
        tries(lambda: fetch(cache, prov(), "busy"))
        print(f"3 answer lost, then 350 other predictions on the account: creates {fake.paid_creates} for 1 input")

def case4():
    with FakeReplicate(latency=0.05, output_mode="url", token=TOKEN) as fake, tempfile.TemporaryDirectory() as d:
        env(fake)
        cache = RequestCache(Path(d))
        fake.corrupt_outputs = 1
        fails = tries(lambda: fetch(cache, prov(), "corrupt"), 5)
        print(f"4 a succeeded prediction serving non-media bytes, 5 runs: {fails} failed, creates {fake.paid_creates}, "
              f"ledger lines {len(cache.ledger())}")

def case10():
    with FakeReplicate(latency=0.05, output_mode="url", token=TOKEN) as fake, tempfile.TemporaryDirectory() as d:
        env(fake)
        cache = RequestCache(Path(d))
        for i in range(12):
            fetch(cache, prov(), f"shot {i}")
        print(f"10 12 requests (create, polls, download each): {fake.connections} TCP connections")

for w in ("401", "404"):
    for s in ("id", "create-sent mark"):
        case1(w, s)
case2()
case3()
case4()
case10()
