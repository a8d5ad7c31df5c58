"""The example ads, built offline as the README's main command builds them, checked by the facts
of the result: codecs, size, duration, where each beat starts, continuity of chunks, audio."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from adspec import media
from adspec.loader import load_spec
from adspec.plan_file import output_size
from conftest import REPO, Project

EXAMPLES = ("trailrunner", "glowserum", "brewbox")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("examples") / "proj")
    shutil.copytree(REPO / "specs", project.specs)
    project.doit("-n", "2", "-P", "thread")
    return project


def frame_number(video: Path, n: int, out: Path, fps: int = 24) -> Path:
    """Frame n of the video (a seek lands on the first frame at or after the time asked)."""
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-ss", f"{(n - 0.5) / fps:.5f}", "-i", str(video),
                    "-frames:v", "1", str(out)], check=True)
    return out


def diff(a: Path, b: Path) -> float:
    """Mean absolute difference per channel, 0..255."""
    from PIL import Image, ImageChops, ImageStat

    with Image.open(a) as ia, Image.open(b) as ib:
        ia = ia.convert("RGB")
        ib = ib.convert("RGB").resize(ia.size)
        return sum(ImageStat.Stat(ImageChops.difference(ia, ib)).mean) / 3


def changed(a: Path, b: Path) -> float:
    """Share of pixels that differ clearly (text, shapes), insensitive to encoding noise."""
    import numpy as np
    from PIL import Image

    with Image.open(a) as ia, Image.open(b) as ib:
        x = np.asarray(ia.convert("L"), dtype=np.int16)
        y = np.asarray(ib.convert("L").resize(ia.size), dtype=np.int16)
    return float((np.abs(x - y) > 40).mean())


@pytest.mark.parametrize("ad", EXAMPLES)
def test_final_video_facts(built: Project, ad: str) -> None:
    spec = load_spec(built.specs / f"{ad}.yaml")
    final = built.build / ad / "final.mp4"
    info = media.probe(final)
    assert (info.vcodec, info.acodec, info.pix_fmt) == ("h264", "aac", "yuv420p")
    assert (info.width, info.height) == output_size(spec.aspect_ratio, spec.resolution)
    assert abs(media.decoded_duration(final) - spec.duration) <= 1 / 24 + 1e-3
    assert abs(media.decoded_duration(final, "a") - spec.duration) <= 0.05  # sound over the whole ad
    assert -20 <= media.loudness_lufs(final) <= -10


@pytest.mark.parametrize("ad", EXAMPLES)
def test_each_beat_starts_on_its_storyboard_at_its_planned_time(built: Project, ad: str, tmp_path: Path) -> None:
    plan = json.loads((built.build / ad / "plan.json").read_text())
    final = built.build / ad / "final.mp4"
    previous = None
    for beat in plan["beats"]:
        storyboard = built.build / ad / "beats" / beat["id"] / "storyboard.png"
        start = frame_number(final, beat["start"] * 24, tmp_path / f"{beat['id']}-start.png")
        assert changed(start, storyboard) < 0.01, f"{beat['id']} does not open on its storyboard at {beat['start']} s"
        if previous is not None:  # one frame earlier is still the previous beat
            before = frame_number(final, beat["start"] * 24 - 1, tmp_path / f"{beat['id']}-before.png")
            assert changed(before, storyboard) > 0.03, f"{beat['id']} starts early"
        previous = beat


def test_continuation_chunks_start_on_the_previous_last_frame(built: Project, tmp_path: Path) -> None:
    plan = json.loads((built.build / "brewbox" / "plan.json").read_text())
    chained = [b for b in plan["beats"] if len(b["clips"]) > 1]
    assert chained, "an example must show a beat longer than one clip"
    for beat in chained:
        folder = built.build / "brewbox" / "beats" / beat["id"]
        for k in range(1, len(beat["clips"])):
            first = media.first_frame(folder / f"chunk-{k}.mp4", tmp_path / f"{beat['id']}-{k}-first.png")
            last = media.last_frame(folder / f"chunk-{k - 1}.mp4", tmp_path / f"{beat['id']}-{k - 1}-last.png")
            assert diff(first, last) < 3
            assert diff(last, folder / f"chunk-{k - 1}.last.png") < 1  # the frame handed on is the true last


def test_noop_rebuild_runs_nothing(built: Project) -> None:
    from conftest import executed_tasks

    assert executed_tasks(built.doit().stdout) == []


@pytest.mark.parametrize("ad", EXAMPLES)
def test_examples_speak_with_burned_captions(built: Project, ad: str, tmp_path: Path) -> None:
    """Offline on a fresh machine: every planned line is spoken, captioned in files and a soft
    track, and burned into the picture inside the caption band of the frame's safe area."""
    import numpy as np
    import srt
    from PIL import Image

    from adspec.safe_areas import safe_area

    plan = json.loads((built.build / ad / "plan.json").read_text())
    voiced = [b for b in plan["beats"] if b.get("voiceover")]
    assert len(voiced) >= 3
    for beat in voiced:
        wav = built.build / ad / "beats" / beat["id"] / "voice.wav"
        assert media.decoded_duration(wav, "a") > 0.4
    final = built.build / ad / "final.mp4"
    streams = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(final)], capture_output=True, text=True, check=False).stderr
    assert "Subtitle: mov_text" in streams
    cues = list(srt.parse((built.build / ad / "captions.srt").read_text()))
    assert len(cues) >= len(voiced)
    words = " ".join(c.content.replace("\n", " ") for c in cues)
    assert all(b["voiceover"] in words for b in voiced)
    cue = cues[0]
    t = (cue.start.total_seconds() + cue.end.total_seconds()) / 2
    box = safe_area(plan["aspect_ratio"]).caption_box(plan["width"], plan["height"])
    shots = []
    for video in (final, built.build / ad / "video.mp4"):
        out = tmp_path / f"{video.stem}.png"
        subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1",
                        str(out)], check=True)
        shots.append(np.asarray(Image.open(out).convert("L"), dtype=np.int16))
    delta = np.abs(shots[0] - shots[1]) > 40
    assert delta[box.top:box.bottom, box.left:box.right].mean() > 0.03  # the caption is drawn there
    delta[box.top:box.bottom, box.left:box.right] = False
    assert delta.mean() < 0.002  # and nowhere else


@pytest.mark.parametrize("ad", EXAMPLES)
def test_the_words_stay_inside_the_safe_area_while_the_camera_moves(built: Project, ad: str, tmp_path: Path) -> None:
    """Issue 15, point 7: sampled every 0.25 s, the animatic's words (white text: the storyboard
    card, heading, brand, tagline, burned captions) never touch the frame's edge and stay inside
    the title-safe area, while the picture under them moves."""
    import numpy as np
    from PIL import Image

    from adspec.safe_areas import title_insets

    spec = load_spec(built.specs / f"{ad}.yaml")
    width, height = output_size(spec.aspect_ratio, spec.resolution)
    left, top, right, bottom = title_insets(width, height)
    slack = 0.006  # encoding blur around the glyphs
    x0, y0 = int(width * (left - slack)), int(height * (top - slack))
    x1, y1 = width - int(width * (right - slack)), height - int(height * (bottom - slack))
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(built.build / ad / "final.mp4"), "-vf", "fps=4",
                    str(tmp_path / "f%04d.png")], check=True)
    frames = sorted(tmp_path.glob("f*.png"))
    assert len(frames) >= 4 * spec.duration - 1
    moved = 0
    previous = None
    for f in frames:
        with Image.open(f) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
        words = rgb.min(axis=2) > 215  # white and near-white text
        assert words[y0:y1, x0:x1].sum() > 200, f.name  # the words are there
        outside = words.copy()
        outside[y0:y1, x0:x1] = False
        assert outside.sum() == 0, f"{ad} {f.name}: {outside.sum()} text pixels outside the safe area"
        edge = max(2, min(width, height) // 100)
        assert not (words[:edge].any() or words[-edge:].any() or words[:, :edge].any() or words[:, -edge:].any())
        if previous is not None and np.abs(rgb - previous).mean() > 0.5:
            moved += 1
        previous = rgb
    assert moved > len(frames) // 3  # the picture does move


def test_bilingual_example_shares_its_pictures_and_composes_a_logo_end_card(built: Project, tmp_path: Path) -> None:
    """Issue 17: specs/lumiere.yaml is built in English and French on a fresh machine: the end card
    (logo, name, tagline, call to action, address) is drawn by code in each language, and the
    French ad reuses every storyboard and clip of the English one (only its voice differs)."""
    from adspec.receipts import receipt_key

    spec = load_spec(built.specs / "lumiere.yaml")
    for language, tagline in (("en", "Wake up glowing"), ("fr", "votre")):
        root = built.build / f"lumiere@{language}"
        final = root / "final.mp4"
        info = media.probe(final)
        assert (info.width, info.height) == output_size(spec.aspect_ratio, spec.resolution)
        card = frame_number(final, 10 * 24 + 12, tmp_path / f"card-{language}.png")
        text = "\n".join(subprocess.run(["tesseract", str(card), "-", "--psm", psm], capture_output=True, text=True,
                                        check=True).stdout for psm in ("6", "11"))
        assert tagline in text and "lumiere.example.com" in text, text
        layout = json.loads((root / "text_layout.json").read_text())
        assert layout["language"] == language and "logo" in {t["role"] for t in layout["texts"]}
        # the review page's caption track says its language (it said en for every ad)
        assert f'<track kind="captions" src="captions.vtt" srclang="{language}"' in (root / "index.html").read_text()
    for beat in ("hook", "product-reveal", "cta"):
        en, fr = (built.build / f"lumiere@{x}" / "beats" / beat for x in ("en", "fr"))
        assert receipt_key(en / "storyboard.png") == receipt_key(fr / "storyboard.png")
        assert receipt_key(en / "chunk-0.mp4") == receipt_key(fr / "chunk-0.mp4")
    assert (built.build / "lumiere@en" / "beats" / "hook" / "voice.wav").read_bytes() != \
        (built.build / "lumiere@fr" / "beats" / "hook" / "voice.wav").read_bytes()
