"""The offline provider and its renderers: pure recipes, and real renders checked by their facts."""

from __future__ import annotations

import subprocess
import time
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from adspec import media
from adspec.errors import ProviderError
from adspec.providers.base import ImageRequest, MediaProvider, MusicRequest, NullJob, VideoRequest
from adspec.providers.offline import OfflineMedia
from adspec.render import motion
from adspec.render.music import SAMPLE_RATE, synth
from adspec.render.storyboard import draw_storyboard

W, H, FPS = 320, 180, 24


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("ref") / "product.png"
    im = Image.new("RGB", (300, 400), (220, 40, 30))
    ImageDraw.Draw(im).ellipse((50, 80, 250, 320), fill=(250, 230, 60))
    im.save(p)
    return p


def _image_req(**kw: object) -> ImageRequest:
    base = dict(ad="ad", beat_id="hook", beat_type="hook", prompt="A runner on a misty ridge at dawn",
                model="flux-dev", aspect_ratio="16:9", width=W, height=H, seed=3, style="cinematic",
                palette=("#0F4C81", "#F5A623"), brand_name="TrailRunner", tagline="Run further.", reference=None)
    base.update(kw)
    return ImageRequest(**base)  # type: ignore[arg-type]


def _video_req(first: Path, **kw: object) -> VideoRequest:
    base = dict(ad="ad", beat_id="hook", index=0, prompt="slow push in on the runner", model="hailuo-2.3-fast",
                seconds=2, aspect_ratio="16:9", width=W, height=H, fps=FPS, seed=3, first_frame=first)
    base.update(kw)
    return VideoRequest(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def provider() -> OfflineMedia:
    p: MediaProvider = OfflineMedia()  # type-checks against the protocol
    assert p.name == "offline"
    return p  # type: ignore[return-value]


@pytest.fixture(scope="module")
def storyboard(tmp_path_factory: pytest.TempPathFactory, provider: OfflineMedia) -> Path:
    out = tmp_path_factory.mktemp("sb") / "hook.png"
    result = provider.run(provider.image_recipe(_image_req()), NullJob(), out)
    assert result.cost_usd == 0.0 and result.job_id is None
    return out


# ---- recipes ------------------------------------------------------------------------------


def test_recipes_are_pure_and_keyed_by_what_changes_the_output(tmp_path: Path, reference: Path, storyboard: Path) -> None:
    p = OfflineMedia()
    a, b = p.image_recipe(_image_req()), p.image_recipe(_image_req())
    assert a == b and a.key == b.key
    assert (a.provider, a.kind, a.model, a.version) == ("offline", "image", "flux-dev", "offline/image/2")
    assert p.image_recipe(_image_req(prompt="Another prompt")).key != a.key
    # where a beat sits (ad, beat id) is not part of what it looks like: shared across ads
    assert p.image_recipe(_image_req(ad="other-ad", beat_id="x")).key == a.key
    # an input file counts by its bytes, not its path
    ref2 = tmp_path / "copy.png"
    ref2.write_bytes(reference.read_bytes())
    with_ref = p.image_recipe(_image_req(reference=reference))
    assert with_ref.key != a.key and with_ref.files["reference"].sha256
    assert p.image_recipe(_image_req(reference=ref2)).key == with_ref.key
    Image.new("RGB", (10, 10), (1, 2, 3)).save(ref2)
    assert p.image_recipe(_image_req(reference=ref2)).key != with_ref.key

    first = tmp_path / "first.png"
    first.write_bytes(storyboard.read_bytes())
    v = p.video_recipe(_video_req(first))
    assert v.key == p.video_recipe(_video_req(first, index=5, beat_id="other")).key
    assert v.params["fps"] == FPS and v.params["move"] == "push-in"
    assert v.key != p.video_recipe(_video_req(first, prompt="pan left")).key
    assert v.key != p.video_recipe(_video_req(first, fps=16)).key
    Image.new("RGB", (W, H), (9, 9, 9)).save(first)
    assert v.key != p.video_recipe(_video_req(first)).key
    with pytest.raises(ProviderError):
        p.video_recipe(_video_req(first, fps=60))

    m = MusicRequest(ad="ad", prompt="upbeat pop", bpm=120, seconds=30, seed=1, model="musicgen")
    assert p.music_recipe(m).key == p.music_recipe(replace(m, ad="b")).key
    assert p.music_recipe(m).key != p.music_recipe(replace(m, bpm=121)).key


def test_run_refuses_an_input_changed_after_the_recipe(tmp_path: Path, provider: OfflineMedia, storyboard: Path) -> None:
    first = tmp_path / "first.png"
    first.write_bytes(storyboard.read_bytes())
    recipe = provider.video_recipe(_video_req(first))
    Image.new("RGB", (W, H), (0, 0, 0)).save(first)
    with pytest.raises(ProviderError, match="first.png"):
        provider.run(recipe, NullJob(), tmp_path / "c.mp4")
    assert not (tmp_path / "c.mp4").exists()


# ---- storyboard ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280), (720, 720), (720, 900), (1920, 1080), (1080, 1920)])
def test_storyboard_exact_size_and_reference_drawn(tmp_path: Path, reference: Path, size: tuple[int, int]) -> None:
    w, h = size
    kw = dict(width=w, height=h, beat_type="product_reveal", prompt="The shoe on wet rock, rim light " * 4,
              brand_name="TrailRunner", tagline="Run further.", palette=("#0F4C81", "#F5A623"), seed=1)
    plain = draw_storyboard(tmp_path / "plain.png", reference=None, **kw)  # type: ignore[arg-type]
    with_ref = draw_storyboard(tmp_path / "ref.png", reference=reference, **kw)  # type: ignore[arg-type]
    assert media.image_size(plain) == (w, h) and media.image_size(with_ref) == (w, h)
    a, b = _pixels(plain), _pixels(with_ref)
    # the product's yellow appears only when the reference is given
    yellow = lambda px: ((px[..., 0] > 230) & (px[..., 1] > 210) & (px[..., 2] < 90)).mean()  # noqa: E731
    assert yellow(b) > 0.01 and yellow(a) == 0
    assert a.std() > 5  # not a flat fill: gradient and text


def test_storyboard_is_deterministic_and_shows_the_text(tmp_path: Path) -> None:
    kw = dict(width=W, height=H, beat_type="hook", prompt="Mist over the ridge", palette=("#222222",), seed=5)
    one = draw_storyboard(tmp_path / "1.png", **kw)  # type: ignore[arg-type]
    two = draw_storyboard(tmp_path / "2.png", **kw)  # type: ignore[arg-type]
    other = draw_storyboard(tmp_path / "3.png", **{**kw, "prompt": "Something else entirely"})  # type: ignore[arg-type]
    assert one.read_bytes() == two.read_bytes()
    assert not np.array_equal(_pixels(one), _pixels(other))


# ---- motion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt,move",
    [("Slow push in on the bottle", "push-in"), ("camera pulls back to reveal the city", "pull-out"),
     ("Pan left across the shelf", "pan-left"), ("tracking shot to the right", "pan-right"),
     ("tilt up to the sky", "tilt-up"), ("crane down onto the table", "tilt-down"),
     ("orbit around the sneaker", "orbit"), ("locked-off static shot", "static"),
     ("zoom in, then pan left", "push-in")],
)
def test_camera_move_keywords(prompt: str, move: str) -> None:
    assert motion.camera_move(prompt) == move


def test_camera_move_default_is_deterministic_and_varied() -> None:
    prompts = [f"the hero does thing number {i}" for i in range(40)]
    moves = [motion.camera_move(p) for p in prompts]
    assert moves == [motion.camera_move(p) for p in prompts]
    assert len(set(moves)) >= 4
    for m in motion.MOVES:
        for t in (0.0, 1.0):  # every move starts unmoved and comes back (chained chunks never drift)
            v = motion.view_at(m, t)
            assert (round(v.zoom, 9), round(v.cx, 9), round(v.cy, 9)) == (1.0, 0.5, 0.5), (m, t)
    assert motion.view_at("push-in", 0.5).zoom > 1 > motion.view_at("pull-out", 0.5).zoom
    assert motion.view_at("pan-left", 0.5).cx < 0.5 < motion.view_at("pan-right", 0.5).cx
    assert motion.view_at("tilt-up", 0.5).cy < 0.5 < motion.view_at("tilt-down", 0.5).cy


# ---- video chunks -------------------------------------------------------------------------


def test_chunks_are_exact_and_continuous(tmp_path: Path, provider: OfflineMedia, storyboard: Path) -> None:
    first = storyboard
    prompts = ["slow push in", "pan left across the ridge", "pull back to reveal", "orbit around"]
    prev_last: Path | None = None
    for k, prompt in enumerate(prompts):
        rec = provider.video_recipe(_video_req(first, index=k, prompt=prompt, seconds=2 if k % 2 else 1,
                                               fps=16 if k == 3 else FPS))
        out = tmp_path / f"chunk{k}.mp4"
        provider.run(rec, NullJob(), out)
        fps = rec.params["fps"]
        info = media.probe(out)
        assert (info.vcodec, info.pix_fmt, info.width, info.height, info.fps) == ("h264", "yuv420p", W, H, fps)
        assert media.count_frames(out) == rec.params["seconds"] * fps
        assert abs(info.duration - rec.params["seconds"]) <= 1 / fps
        assert media.same_encoder(out, fps)  # stitchable by stream copy
        f0 = media.first_frame(out, tmp_path / f"first{k}.png")
        # frame 0 is the input frame (the storyboard, or the previous chunk's last frame)
        assert np.abs(_pixels(f0) - _pixels(first)).mean() < 3
        if prev_last is not None:
            assert np.abs(_pixels(f0) - _pixels(prev_last)).mean() < 3
        last = media.last_frame(out, tmp_path / f"last{k}.png")
        mid = tmp_path / f"mid{k}.png"
        subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-ss", f"{rec.params['seconds'] / 2:.3f}", "-i", str(out),
                        "-frames:v", "1", str(mid)], check=True)
        if rec.params["move"] != "static":
            assert np.abs(_pixels(mid) - _pixels(f0)).mean() > 1  # the camera moved
        assert np.abs(_pixels(last) - _pixels(f0)).mean() < 3  # and came back: the next chunk starts there
        first = prev_last = last


def test_native_audio_chunk_has_an_audio_track(tmp_path: Path, provider: OfflineMedia, storyboard: Path) -> None:
    out = tmp_path / "a.mp4"
    provider.run(provider.video_recipe(_video_req(storyboard, native_audio=True)), NullJob(), out)
    info = media.probe(out)
    assert info.has_audio and info.acodec == "aac" and media.clip_matches(info, W, H, FPS, audio=True)


def test_stitch_of_offline_chunks_copies_them(tmp_path: Path, provider: OfflineMedia, storyboard: Path) -> None:
    outs = []
    for k, prompt in enumerate(["push in", "tilt up"]):
        out = tmp_path / f"c{k}.mp4"
        provider.run(provider.video_recipe(_video_req(storyboard, prompt=prompt)), NullJob(), out)
        outs.append(out)
    items = [(outs[0], 2), (outs[1], 1), (outs[0], 1.5)]  # whole, cut at a keyframe, cut mid-GOP
    report = media.concat(items, tmp_path / "v.mp4", width=W, height=H, fps=FPS)
    assert report.copied == [outs[0], outs[1]] and report.cut == [outs[1]] and report.reencoded == [outs[0]]
    assert media.count_frames(report.out) == round(4.5 * FPS)


def test_a_beats_last_chunk_is_drawn_only_as_long_as_it_is_shown(tmp_path: Path, provider: OfflineMedia,
                                                                  storyboard: Path) -> None:
    whole_req = _video_req(storyboard, seconds=3, prompt="slow push in")
    whole = provider.video_recipe(whole_req)
    assert provider.video_recipe(replace(whole_req, shown=3)).key == whole.key  # all of it shown: the same recipe
    part = provider.video_recipe(replace(whole_req, shown=1))
    assert part.key != whole.key and part.params["shown"] == 1 and part.params["seconds"] == 3
    outs = {}
    for name, rec in (("whole", whole), ("part", part)):
        outs[name] = tmp_path / f"{name}.mp4"
        provider.run(rec, NullJob(), outs[name])
    assert media.count_frames(outs["part"]) == FPS and media.count_frames(outs["whole"]) == 3 * FPS
    assert media.same_encoder(outs["part"], FPS)
    # the same move as the whole clip's first second (not the whole move squeezed into one)
    a = media.last_frame(outs["part"], tmp_path / "a.png")
    b = tmp_path / "b.png"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-i", str(outs["whole"]), "-vf", f"select=eq(n\\,{FPS - 1})",
                    "-frames:v", "1", str(b)], check=True)
    moved_to_end = media.last_frame(outs["whole"], tmp_path / "c.png")
    assert np.abs(_pixels(a) - _pixels(b)).mean() < 2 < np.abs(_pixels(a) - _pixels(moved_to_end)).mean()
    # the stitch copies it whole
    report = media.concat([(outs["part"], 1)], tmp_path / "v.mp4", width=W, height=H, fps=FPS)
    assert report.copied == [outs["part"]] and not report.cut and not report.reencoded


# ---- music --------------------------------------------------------------------------------


def test_music_exact_length_stereo_not_silent_not_a_sine(tmp_path: Path, provider: OfflineMedia) -> None:
    req = MusicRequest(ad="ad", prompt="upbeat energetic pop", bpm=128, seconds=7, seed=2, model="musicgen")
    out = tmp_path / "m.wav"
    t0 = time.perf_counter()
    provider.run(provider.music_recipe(req), NullJob(), out)
    assert time.perf_counter() - t0 < 2
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, SAMPLE_RATE)
        assert w.getnframes() == 7 * SAMPLE_RATE
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(np.float64)
    assert np.abs(pcm).max() <= 32767 * 0.9  # peak-safe (-1 dBFS)
    assert np.sqrt((pcm**2).mean()) > 1000  # not silent
    assert not np.array_equal(pcm[:, 0], pcm[:, 1])  # stereo, not dual mono
    # spectrum: many distinct strong peaks (chords, bass, drums), not one tone
    spec = np.abs(np.fft.rfft(pcm[:, 0]))
    freqs = np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE)
    strong = freqs[spec > spec.max() * 0.2]
    bands = {int(np.log2(f / 20) * 3) for f in strong if f > 20}  # third-octave-ish bins
    assert len(bands) >= 4
    # energy over time is rhythmic: loud beats and quieter gaps
    env = np.abs(pcm[:, 0]).reshape(-1, SAMPLE_RATE // 50).mean(axis=1)
    assert env.std() / env.mean() > 0.2
    assert media.probe(out).duration == pytest.approx(7, abs=1 / 50)


def test_music_style_follows_prompt_and_seed() -> None:
    a = synth(3, 120, "upbeat pop", 1)
    assert a.shape == (3 * SAMPLE_RATE, 2)
    assert np.array_equal(a, synth(3, 120, "upbeat pop", 1))
    assert not np.array_equal(a, synth(3, 120, "dark moody cinematic", 1))
    assert not np.array_equal(a, synth(3, 90, "upbeat pop", 1))
    t0 = time.perf_counter()
    synth(30, 128, "energetic electronic", 4)
    assert time.perf_counter() - t0 < 1.0
