"""ReplicateMedia through the real `replicate` client against a fake Replicate server on loopback."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adspec.errors import ProviderError  # noqa: E402
from adspec.providers.base import ImageRequest, MusicRequest, VideoRequest  # noqa: E402
from adspec.providers.replicate_provider import ReplicateMedia  # noqa: E402
from adspec.registry import load_registry, price_for  # noqa: E402
from fakes.replicate_server import SCHEMAS, FakeReplicate, make_media, validate_input  # noqa: E402

TOKEN = "r8_fake_TOPSECRET_0123456789abcdef"
REG = load_registry()


class RecordingJob:
    def __init__(self, resume_id: str | None = None, sent_before: bool = False):
        self.resume_id = resume_id
        self.sent_before = sent_before
        self.events: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def sending(self) -> None:
        self.events.append(("sending", None))

    def started(self, job_id: str) -> None:
        self.events.append(("started", job_id))

    def progress(self, status: str) -> None:
        self.events.append(("progress", status))

    def names(self) -> list[str]:
        return [e[0] for e in self.events]


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch):
    with FakeReplicate(latency=0.03) as f:
        monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPLICATE_BASE_URL", f.base_url)
        monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
        yield f


@pytest.fixture()
def provider() -> ReplicateMedia:
    return ReplicateMedia(backoff_base=0.001, backoff_max=0.01)


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("in") / "frame.png"
    p.write_bytes(make_media("image", "16:9"))
    return p


@pytest.fixture(scope="module")
def big_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("in") / "big.png"
    p.write_bytes(make_media("image", "16:9") + b"\0" * 300_000)  # > 256 kB: must be uploaded
    return p


def image_req(model: str = "flux-dev", reference: Path | None = None, prompt: str = "a trail shoe") -> ImageRequest:
    return ImageRequest(ad="trail", beat_id="hook", beat_type="hook", prompt=prompt, model=model, aspect_ratio="16:9",
                        width=1280, height=720, seed=7, style="cinematic", palette=("#112233",), reference=reference)


def video_req(model: str, first: Path, seconds: int | None = None, aspect: str = "16:9", native_audio: bool = False,
              size: tuple[int, int] = (1280, 720)) -> VideoRequest:
    e = REG.resolve(model, "video")
    return VideoRequest(ad="trail", beat_id="hook", index=0, prompt="slow push-in", model=model,
                        seconds=seconds or e.clip_lengths[0], aspect_ratio=aspect, width=size[0], height=size[1],
                        fps=24, seed=3, first_frame=first, native_audio=native_audio)


def music_req(seconds: int = 8) -> MusicRequest:
    return MusicRequest(ad="trail", prompt="driving electronic", bpm=128, seconds=seconds, seed=1, model="musicgen")


# ---- request bodies match each model's schema --------------------------------------------------

VIDEO_MODELS = REG.names("video")
IMAGE_MODELS = REG.names("image")


@pytest.mark.parametrize("model", IMAGE_MODELS)
def test_image_request_body_matches_schema(fake, provider, tmp_path, frame, model):
    recipe = provider.image_recipe(image_req(model, reference=frame))
    res = provider.run(recipe, RecordingJob(), tmp_path / "out.png")
    assert fake.paid_creates == 1
    sent = fake.create_bodies[-1]
    entry = REG.models[model]
    assert sent["slug"] == entry.slug and sent["path"] == f"/v1/models/{entry.slug}/predictions"
    assert validate_input(entry.slug, sent["body"]["input"]) == []
    # the recipe's params are exactly what was sent, less the file fields
    from adspec.registry import list_field

    file_fields = {(list_field(k) or (k, 0))[0] for k in recipe.files}  # `input_images[0]` is input_images
    assert {k: v for k, v in sent["body"]["input"].items() if k not in file_fields} == recipe.params
    if entry.uses_reference and entry.max_references > 1:  # a list of references (one given here)
        assert [v[:22] for v in sent["body"]["input"]["input_images"]] == ["data:image/png;base64,"]
        assert set(recipe.files) == {"input_images[0]"}
    elif entry.uses_reference:
        assert sent["body"]["input"]["input_image"].startswith("data:image/png;base64,")
        assert set(recipe.files) == {"input_image"}
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert res.cost_usd == pytest.approx(entry.price["per_image"])


@pytest.mark.parametrize("model", VIDEO_MODELS)
@pytest.mark.parametrize("resolution", [(1280, 720), (1920, 1080)])
def test_video_request_body_matches_schema(fake, provider, tmp_path, frame, model, resolution):
    entry = REG.models[model]
    aspect = entry.aspect_ratios[0]
    for seconds in sorted({entry.clip_lengths[0], entry.clip_lengths[-1]}):
        recipe = provider.video_recipe(video_req(model, frame, seconds, aspect, size=resolution))
        errors = validate_input(entry.slug, {**recipe.params, **{k: "data:image/png;base64,AA==" for k in recipe.files}})
        assert errors == [], (model, seconds, errors)
        assert len(recipe.files) == 1  # the first frame goes in the model's own field
    res = provider.run(recipe, RecordingJob(), tmp_path / "out.mp4")
    sent = fake.create_bodies[-1]["body"]["input"]
    assert validate_input(entry.slug, sent) == []
    (field,) = recipe.files
    assert sent[field].startswith("data:image/png;base64,")
    assert (tmp_path / "out.mp4").read_bytes()[4:8] == b"ftyp"
    assert res.cost_usd > 0


def test_veo_generate_audio_follows_native_audio(provider, frame):
    off = provider.video_recipe(video_req("veo-3.1-fast", frame, 8))
    on = provider.video_recipe(video_req("veo-3.1-fast", frame, 8, native_audio=True))
    assert off.params["generate_audio"] is False and on.params["generate_audio"] is True
    assert off.key != on.key
    e = REG.models["veo-3.1-fast"]
    assert price_for(e, 8, native_audio=True) > price_for(e, 8)


def test_hailuo_1080p_ten_seconds_falls_back_to_768p(provider, frame):
    r10 = provider.video_recipe(video_req("hailuo-2.3-fast", frame, 10, size=(1920, 1080)))
    r6 = provider.video_recipe(video_req("hailuo-2.3-fast", frame, 6, size=(1920, 1080)))
    assert r10.params["resolution"] == "768p" and r6.params["resolution"] == "1080p"


def test_recipe_rejects_clip_length_the_model_lacks(provider, frame):
    with pytest.raises(ProviderError, match="clips of 6, 10 s"):
        provider.video_recipe(video_req("hailuo_fast", frame, 8))


def test_recipe_key_follows_file_bytes_not_path(provider, tmp_path, frame):
    copy = tmp_path / "elsewhere.png"
    copy.write_bytes(frame.read_bytes())
    a = provider.video_recipe(video_req("wan", frame))
    b = provider.video_recipe(video_req("wan", copy))
    assert a.key == b.key
    copy.write_bytes(make_media("image", "9:16"))
    assert provider.video_recipe(video_req("wan", copy)).key != a.key


def test_musicgen_uses_pinned_version(fake, provider, tmp_path):
    recipe = provider.music_recipe(music_req(8))
    assert recipe.version.startswith("meta/musicgen:671ac645")
    res = provider.run(recipe, RecordingJob(), tmp_path / "m.wav")
    body = fake.create_bodies[-1]
    assert body["path"] == "/v1/predictions" and body["body"]["version"] == REG.models["musicgen"].version
    assert validate_input("meta/musicgen", body["body"]["input"]) == []
    data = (tmp_path / "m.wav").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    # hardware-billed: cost from the prediction's metrics.predict_time
    assert res.cost_usd == pytest.approx(REG.models["musicgen"].price["per_predict_second"] * 0.5)


# ---- outputs: data URI, http URL, list; uploads ------------------------------------------------


@pytest.mark.parametrize("mode", ["data", "url"])
def test_outputs_downloaded_as_data_uri_or_url(fake, provider, tmp_path, mode):
    fake.output_mode = mode
    provider.run(provider.image_recipe(image_req("flux-schnell")), RecordingJob(), tmp_path / "list.png")  # list output
    provider.run(provider.image_recipe(image_req("flux-1.1-pro")), RecordingJob(), tmp_path / "one.png")  # single
    assert (tmp_path / "list.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "one.png").read_bytes()[:4] == b"\x89PNG"
    assert fake.count("GET", "/outputs/") == (2 if mode == "url" else 0)


def test_large_input_file_is_uploaded(fake, provider, tmp_path, big_frame):
    recipe = provider.video_recipe(video_req("hailuo-2.3-fast", big_frame))
    provider.run(recipe, RecordingJob(), tmp_path / "v.mp4")
    assert fake.uploads == 1
    sent = fake.create_bodies[-1]["body"]["input"]["first_frame_image"]
    assert sent.startswith(fake.base_url + "/v1/files/")
    assert fake.files[sent.rsplit("/", 1)[1]][0] == big_frame.read_bytes()


@pytest.mark.parametrize("fault", ["truncated", "html"])
def test_bad_download_is_retried(fake, provider, tmp_path, fault):
    fake.output_mode = "url"
    fake.download_fault, fake.download_faults = fault, 1
    provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")
    assert fake.count("GET", "/outputs/") == 2 and fake.paid_creates == 1
    assert (tmp_path / "i.png").read_bytes()[:4] == b"\x89PNG"


def test_persistent_html_output_is_an_error(fake, provider, tmp_path):
    fake.output_mode = "url"
    fake.download_fault, fake.download_faults = "html", 10
    with pytest.raises(ProviderError, match="HTML"):
        provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")


# ---- never paying twice ------------------------------------------------------------------------


def test_job_protocol_order(fake, provider, tmp_path):
    job = RecordingJob()
    res = provider.run(provider.image_recipe(image_req()), job, tmp_path / "i.png")
    names = job.names()
    assert names[0] == "sending" and names[1] == "started"
    assert job.events[1][1] == res.job_id
    assert "progress" in names[2:] and job.events[-1] == ("progress", "succeeded")
    assert any(e == ("progress", "starting") or e == ("progress", "processing") for e in job.events)
    # no Prefer: wait on create: the id is stored before any waiting happens
    assert fake.create_bodies[-1]["prefer"] is None


def test_resume_polls_without_creating(fake, provider, tmp_path):
    recipe = provider.image_recipe(image_req())
    p = fake.create_prediction(REG.models["flux-dev"].slug, None, dict(recipe.params))
    before = fake.paid_creates
    res = provider.run(recipe, RecordingJob(resume_id=p["id"]), tmp_path / "i.png")
    assert res.job_id == p["id"]
    assert fake.paid_creates == before and fake.count("POST") == 0
    assert (tmp_path / "i.png").read_bytes()[:4] == b"\x89PNG"


def test_sent_before_adopts_earlier_prediction(fake, provider, tmp_path, frame):
    recipe = provider.video_recipe(video_req("hailuo-2.3-fast", frame))
    first = RecordingJob()
    provider.run(recipe, first, tmp_path / "a.mp4")
    assert fake.paid_creates == 1
    job = RecordingJob(sent_before=True)
    res = provider.run(recipe, job, tmp_path / "b.mp4")
    assert fake.paid_creates == 1 and res.job_id == first.events[1][1]
    assert "sending" not in job.names() and ("started", res.job_id) in job.events
    assert fake.count("GET", "/v1/predictions") >= 1


def test_sent_before_with_no_match_creates_once(fake, provider, tmp_path, frame):
    provider.run(provider.video_recipe(video_req("hailuo-2.3-fast", frame)), RecordingJob(), tmp_path / "a.mp4")
    other = provider.video_recipe(video_req("hailuo-2.3-fast", frame, 10))
    provider.run(other, RecordingJob(sent_before=True), tmp_path / "b.mp4")
    assert fake.paid_creates == 2


def test_429_then_success_pays_once(fake, provider, tmp_path):
    fake.create_429 = 2
    job = RecordingJob()
    provider.run(provider.image_recipe(image_req()), job, tmp_path / "i.png")
    assert fake.paid_creates == 1 and fake.count("POST", "/v1/models/") == 3
    assert job.names().count("sending") == 3 and job.names().count("started") == 1


def test_5xx_then_success_pays_once(fake, provider, tmp_path):
    fake.create_5xx = 1
    provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")
    assert fake.paid_creates == 1 and fake.count("POST", "/v1/models/") == 2


def test_5xx_after_creating_is_looked_up_not_resent(fake, provider, tmp_path):
    fake.create_5xx_after = 1  # the server made the prediction, then answered 500
    res = provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")
    assert fake.paid_creates == 1 and fake.count("POST", "/v1/models/") == 1
    assert res.job_id in fake.predictions


def test_poll_5xx_is_survived(fake, provider, tmp_path):
    fake.poll_5xx = 2
    provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")
    assert fake.paid_creates == 1 and (tmp_path / "i.png").exists()


def test_concurrent_runs_each_pay_once(fake, provider, tmp_path):
    fake.latency = 0.1
    recipes = [provider.image_recipe(image_req(prompt=f"shot {i}")) for i in range(8)]
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            provider.run(recipes[i], RecordingJob(), tmp_path / f"{i}.png")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and fake.paid_creates == 8 and len(fake.creates_by_input) == 8


# ---- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome, words", [("failed", "CUDA out of memory"), ("canceled", "canceled"), ("aborted", "aborted")])
def test_failed_canceled_aborted(fake, provider, tmp_path, outcome, words):
    fake.outcome = outcome
    with pytest.raises(ProviderError) as ei:
        provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")
    msg = str(ei.value)
    assert "flux-dev" in msg and words in msg and outcome in msg
    assert ei.value.retryable is True
    assert not (tmp_path / "i.png").exists()


def test_422_is_not_retried_and_names_the_field(fake, provider, tmp_path, monkeypatch):
    recipe = provider.image_recipe(image_req())
    bad = type(recipe)(**{**recipe.__dict__, "params": {**recipe.params, "steps": 9}})
    with pytest.raises(ProviderError) as ei:
        provider.run(bad, RecordingJob(), tmp_path / "i.png")
    assert ei.value.retryable is False and "steps" in str(ei.value) and "422" in str(ei.value)
    assert fake.count("POST", "/v1/models/") == 1 and fake.paid_creates == 0


def test_401_names_the_variable_not_the_token(fake, provider, tmp_path):
    fake.token = "r8_the_right_one"
    with pytest.raises(ProviderError) as ei:
        provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")
    msg = str(ei.value)
    assert "REPLICATE_API_TOKEN" in msg and TOKEN not in msg and ei.value.retryable is False
    assert fake.count("POST") == 1


def test_missing_token(monkeypatch, provider, tmp_path):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    with pytest.raises(ProviderError, match="REPLICATE_API_TOKEN"):
        provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "i.png")


def test_secrets_never_in_errors_or_meta(fake, provider, tmp_path, caplog):
    caplog.set_level("DEBUG")
    res = provider.run(provider.image_recipe(image_req()), RecordingJob(), tmp_path / "ok.png")
    assert TOKEN not in repr(res)
    texts = []
    for outcome in ("failed", "aborted"):
        fake.outcome = outcome
        with pytest.raises(ProviderError) as ei:
            provider.run(provider.image_recipe(image_req(prompt=outcome)), RecordingJob(), tmp_path / "x.png")
        texts.append(str(ei.value) + repr(ei.value.__cause__) + repr(ei.value.__context__))
    fake.outcome, fake.create_429 = "succeeded", 100
    with pytest.raises(ProviderError) as ei:
        provider.run(provider.image_recipe(image_req(prompt="throttled")), RecordingJob(), tmp_path / "y.png")
    assert "429" in str(ei.value)
    texts.append(str(ei.value))
    assert all(TOKEN not in t for t in texts)
    assert TOKEN not in caplog.text


def test_registry_schemas_cover_every_model():
    for name in REG.names("image") + REG.names("video") + REG.names("music"):
        assert REG.models[name].slug in SCHEMAS, name


# ---- reference images with a video chunk (issue 18) ----------------------------------------------


def _photo(path: Path, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 64), colour).save(path)
    return path


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_veo_chunk_with_references_sends_their_bytes_and_no_start_image(fake, provider, tmp_path, frame):
    import base64
    import dataclasses

    refs = (_photo(tmp_path / "bag.png", (200, 120, 30)), _photo(tmp_path / "maya.png", (90, 60, 200)))
    req = dataclasses.replace(video_req("veo-3.1", frame, 8), references=refs)
    recipe = provider.video_recipe(req)
    # the recipe holds each photo by its bytes, in `shows:` order, and no start image (reference-to-video)
    assert {k: v.sha256 for k, v in recipe.files.items()} == {
        "reference_images[0]": _sha(refs[0].read_bytes()), "reference_images[1]": _sha(refs[1].read_bytes())}
    provider.run(recipe, RecordingJob(), tmp_path / "out.mp4")
    sent = fake.create_bodies[-1]["body"]["input"]
    assert validate_input("google/veo-3.1", sent) == [] and "image" not in sent
    assert sent["duration"] == 8 and sent["aspect_ratio"] == "16:9"
    assert [_sha(base64.b64decode(v.split(",", 1)[1])) for v in sent["reference_images"]] == \
        [_sha(p.read_bytes()) for p in refs]
    # where the model's rule does not hold the provider makes no recipe (the fake would refuse it too)
    assert validate_input("google/veo-3.1", {**sent, "aspect_ratio": "9:16"}) != []
    with pytest.raises(ProviderError, match=r"only at 16:9 \(this ad is 9:16\)"):
        provider.video_recipe(dataclasses.replace(req, aspect_ratio="9:16", width=720, height=1280))
    with pytest.raises(ProviderError, match="only with clips of 8 s"):
        provider.video_recipe(dataclasses.replace(req, seconds=6))
    with pytest.raises(ProviderError, match="takes at most 3"):
        provider.video_recipe(dataclasses.replace(req, references=refs * 2))
    with pytest.raises(ProviderError, match="takes no reference images"):
        provider.video_recipe(dataclasses.replace(req, model="veo-3.1-fast"))


#: chunk recipe keys as adspec asked them before video models took reference images (main at
#: f740f3c), for a fixed first frame: a chunk that carries none is asked exactly as before, so
#: the caches of existing ads stay valid. Changing one of these invalidates every such cached clip.
BEFORE_REFERENCES = {
    ("veo-3.1", "16:9", 8): "0445e7743e75965b4493447eb7c7db9bb1ddbdb070b2094c0ec721c5f5f627a1",
    ("veo-3.1", "16:9", 4): "826e4ae18241df7ec30a1312cb8d460683b8f79457cae42934117cebf11b5564",
    ("veo-3.1", "9:16", 8): "0aa42aa0ab1a0ac6a41d0cd6e73e32972ff540ba552293cc496123dc3108ad49",
    ("veo-3.1-fast", "16:9", 8): "e9e9b95feea1c98cedf924ba4e10aeedcc9f6a0c2d5a8e57fb5fa65c74ef8865",
    ("hailuo-2.3-fast", "16:9", 6): "c4db0526589131982b6a5cda6cfb22a13c36e1ddf3a97628c615cf17c5c16ca3",
    ("seedance-1-lite", "16:9", 4): "d169da3ed10117e435754494802f43c6bd168ec41069cdd129ee15f700a01ed2",
}


def test_chunks_without_references_are_asked_as_before(provider, tmp_path):
    """The keys above; and a beat that shows photos gets the very same chunk recipes where its
    model takes none (veo-3.1-fast, Hailuo) or its rule fails (veo-3.1 at 9:16 or with a 4 s clip)."""
    import dataclasses

    from adspec.build_files import BeatInputs
    from adspec.media_requests import video_request
    from adspec.paths import AdPaths

    first = tmp_path / "first.png"
    first.write_bytes(b"a first frame, fixed bytes")
    for (model, aspect, seconds), key in BEFORE_REFERENCES.items():
        size = (1280, 720) if aspect == "16:9" else (720, 1280)
        req = VideoRequest(ad="zip", beat_id="hook", index=0, prompt="slow push in", model=model, seconds=seconds,
                           aspect_ratio=aspect, width=size[0], height=size[1], fps=REG.models[model].fps, seed=3,
                           first_frame=first, native_audio=False)
        assert provider.video_recipe(req).key == key, (model, aspect, seconds)
        # how much of the clip the ad shows is never sent: a model is asked its whole clip
        assert provider.video_recipe(dataclasses.replace(req, shown=1)).key == key, (model, aspect, seconds)

    paths = AdPaths.of(tmp_path / "build", "zip")
    photo = _photo(tmp_path / "bag.png", (200, 120, 30))
    for model, aspect, clips in (("veo-3.1-fast", "16:9", (8,)), ("hailuo-2.3-fast", "16:9", (6,)),
                                 ("veo-3.1", "9:16", (8,)), ("veo-3.1", "16:9", (8, 4))):
        size = (640, 360) if aspect == "16:9" else (360, 640)
        plain = BeatInputs(id="hook", type="hook", duration=sum(clips), clips=clips, image_prompt="a bag",
                           motion_prompt="slow push in", aspect_ratio=aspect, width=size[0], height=size[1], seed=3,
                           style="", palette=(), brand_name=None, reference=None, image_model="flux-dev",
                           video_model=model, native_audio=False)
        shows = dataclasses.replace(plain, references=({"name": "product", "role": "product", "path": str(photo)},))
        for k in range(len(clips)):
            paths.first_frame("hook", k).parent.mkdir(parents=True, exist_ok=True)
            paths.first_frame("hook", k).write_bytes(b"frame %d" % k)
            if (model, aspect, k) == ("veo-3.1", "16:9", 0):  # the one chunk its rule allows: carries the photo
                assert set(provider.video_recipe(video_request("zip", shows, k, paths)).files) == {"reference_images[0]"}
                continue
            assert provider.video_recipe(video_request("zip", shows, k, paths)).identity() == \
                provider.video_recipe(video_request("zip", plain, k, paths)).identity(), (model, aspect, k)


def test_a_beat_made_from_your_own_still_keeps_it_as_its_start(provider, tmp_path):
    """veo-3.1 takes no start image with reference images: a beat that starts from your own
    still (`image:`) is not turned into a reference-to-video chunk that would drop it."""
    from adspec.build_files import BeatInputs
    from adspec.media_requests import beat_chunk_references, video_request
    from adspec.paths import AdPaths

    photo = _photo(tmp_path / "bag.png", (200, 120, 30))
    still = _photo(tmp_path / "still.png", (10, 200, 10))
    beat = BeatInputs(id="hook", type="hook", duration=8, clips=(8,), image_prompt="a bag", motion_prompt="push in",
                      aspect_ratio="16:9", width=640, height=360, seed=3, style="", palette=(), brand_name=None,
                      reference=None, image_model="flux-dev", video_model="veo-3.1", native_audio=False,
                      own_image=str(still), own_image_sha256=_sha(still.read_bytes()),
                      references=({"name": "product", "role": "product", "path": str(photo)},))
    paths = AdPaths.of(tmp_path / "build", "zip")
    paths.first_frame("hook", 0).parent.mkdir(parents=True)
    paths.first_frame("hook", 0).write_bytes(still.read_bytes())
    recipe = provider.video_recipe(video_request("zip", beat, 0, paths))
    assert set(recipe.files) == {"image"} and recipe.files["image"].sha256 == _sha(still.read_bytes())
    assert "starts from your own still" in (beat_chunk_references(beat).why_not or "")


def test_the_fake_gives_inputs_whose_hashes_share_a_hue_their_own_bytes() -> None:
    """Tests tell a swapped artifact by its bytes: two inputs must never share them, even when
    their hashes pick the same hue (one pair in 359 did, and a test failed once in CI)."""
    first = {"prompt": "a"}
    hue = int(FakeReplicate.input_hash(first)[:4], 16) % 359
    second = next({"prompt": f"b{i}"} for i in range(100_000)
                  if int(FakeReplicate.input_hash({"prompt": f"b{i}"})[:4], 16) % 359 == hue)
    with FakeReplicate(latency=0.0) as fake:
        fake.unique_outputs = True
        tints = [fake._tint_for(first), fake._tint_for(second), fake._tint_for(first)]
    assert tints[0] != tints[1] and tints[0] == tints[2]
    assert make_media("voice", seconds=0.5, tint=tints[0]) != make_media("voice", seconds=0.5, tint=tints[1])
    assert make_media("video", seconds=0.5, tint=tints[0]) != make_media("video", seconds=0.5, tint=tints[1])
