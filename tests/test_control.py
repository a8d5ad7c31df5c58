"""Control what you pay for (issue 18): approvals kept in git, a model per beat, your own
footage and stills, reference assets with roles. Real doit runs, the real `replicate` client
against the fake server on loopback, requests counted at the fake."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import Project, small_spec
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
IMAGE, VIDEO = "black-forest-labs/flux-dev", "minimax/hailuo-2.3-fast"


@pytest.fixture
def live(project: Project):
    with FakeReplicate(latency=0.02) as replicate:
        replicate.unique_outputs = True  # another prompt, another picture (as a real model)
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN,
                           REPLICATE_BASE_URL=replicate.base_url, REPLICATE_POLL_INTERVAL="0.01")
        yield project, replicate


def video_prompts(replicate: FakeReplicate, since: int = 0) -> list[str]:
    return [b["body"]["input"]["prompt"] for b in replicate.create_bodies[since:] if b["slug"] == VIDEO]


def approvals(project: Project, ad: str) -> dict[str, str]:
    out = project.adspec("approve", "--list", ad)
    assert out.returncode == 0, out.stderr
    return {line.split("\t")[0].split("/")[1]: line.split("\t")[1] for line in out.stdout.splitlines()}


# ---- 1. approvals in git ------------------------------------------------------------------------


def test_approval_required_pays_video_only_for_approved_beats(live) -> None:
    project, replicate = live
    spec = small_spec(approval="required")
    spec["beats"][0]["motion_prompt"] = "hook motion"
    spec["beats"][1]["motion_prompt"] = "cta motion"
    path = project.write_spec("zip", spec)
    first = project.doit()  # storyboards are paid; no chunk: exit 0, one line per waiting beat
    assert replicate.creates_by_model.get(IMAGE) == 2 and not replicate.creates_by_model.get(VIDEO)
    assert first.stderr.count("waits for approval") == 2, first.stderr
    assert not (project.build / "zip" / "final.mp4").exists()
    page = (project.build / "zip" / "index.html").read_text()
    assert page.count('data-approval="pending"') == 2
    assert approvals(project, "zip") == {"hook": "pending", "cta": "pending"}
    est = json.loads(project.adspec("estimate", "--json", "zip").stdout)
    assert est["total_usd"] == 0 and any("waits for approval" in n for n in est["ads"][0]["notes"])
    # nothing to make until a beat is approved: the page is current too (it was listed, doit said up to date)
    assert est["ads"][0]["targets"] == [] and "-- report:zip" in project.doit().stdout, est

    # approve one beat: its sha256 lands in the file (comments kept), only its chunks are paid
    text = "# my comment stays\n" + path.read_text()
    path.write_text(text)
    out = project.adspec("approve", "zip/hook")
    assert out.returncode == 0, out.stderr
    written = path.read_text()
    sha = yaml.safe_load(written)["beats"][0]["approved"]
    storyboard = project.build / "zip" / "beats" / "hook" / "storyboard.png"
    import hashlib

    assert sha == hashlib.sha256(storyboard.read_bytes()).hexdigest()
    assert written.startswith("# my comment stays\n") and "".join(
        line for line in written.splitlines(keepends=True) if line.strip() != f"approved: {sha}") == text
    assert approvals(project, "zip") == {"hook": "approved", "cta": "pending"}
    est = json.loads(project.adspec("estimate", "--json", "zip").stdout)
    assert est["ads"][0]["phases"]["chunks"]["to_pay"] == 1 and est["ads"][0]["phases"]["music"]["to_pay"] == 0
    images = replicate.creates_by_model[IMAGE]
    second = project.doit()
    assert video_prompts(replicate) == ["hook motion"]
    assert replicate.creates_by_model[IMAGE] == images  # approving re-pays no storyboard
    assert second.stderr.count("waits for approval") == 1

    # approve the rest: the ad is finished, nothing paid twice
    rest = project.adspec("approve", "zip")
    assert rest.returncode == 0 and rest.stdout.splitlines()[0].startswith("zip/hook: already approved ("), rest.stdout
    assert rest.stdout.splitlines()[1].startswith("zip/cta: approved "), rest.stdout
    project.doit()
    assert sorted(set(video_prompts(replicate))) == ["cta motion", "hook motion"]
    assert video_prompts(replicate).count("hook motion") == 1
    assert (project.build / "zip" / "final.mp4").exists()
    assert 'data-approval="approved"' in (project.build / "zip" / "index.html").read_text()

    # an edit that changes a storyboard makes its approval stale and stops its video again
    videos = len(video_prompts(replicate))
    spec2 = yaml.safe_load(path.read_text())
    spec2["beats"][0]["image_prompt"] = "A bottle on a red rock"
    spec2["beats"][0]["motion_prompt"] = "hook motion two"
    path.write_text(yaml.safe_dump(spec2, sort_keys=False))
    third = project.doit()
    assert len(video_prompts(replicate)) == videos
    assert "zip/hook: video waits for approval" in third.stderr
    assert approvals(project, "zip") == {"hook": "stale", "cta": "approved"}
    # a picture copied over a storyboard is not one adspec made: it was approved as it
    cta = project.build / "zip" / "beats" / "cta" / "storyboard.png"
    import shutil

    shutil.copy(project.build / "zip" / "beats" / "hook" / "storyboard.png", cta)
    copied = project.adspec("approve", "zip/cta")
    assert copied.returncode == 1 and "is not built from this beat as it is now" in copied.stderr, copied.stderr
    assert approvals(project, "zip")["cta"] == "stale"  # and the valid approval in the file stays
    page = (project.build / "zip" / "index.html").read_text()
    assert 'data-approval="stale"' in page
    # the final there is the cut before the edit: the pages said "built" and played it as this
    # plan's, and `adspec check` passed it
    assert '<span class="pill waiting" id="state">waiting' in page and 'id="earlier-cut"' in page, page
    assert '<span class="pill waiting">waiting</span>' in (project.build / "index.html").read_text()
    gate = project.adspec("check", "zip")
    assert gate.returncode == 1 and "zip: final.mp4 is an earlier cut: its videos wait for approval" in gate.stderr, gate


def test_approving_a_planned_beat_file_is_no_hand_edit_and_changes_no_recipe(project: Project) -> None:
    from adspec.beat_lock import is_hand_edited
    from adspec.loader import parse_beat_file_text

    spec = small_spec(approval="required")
    del spec["beats"], spec["music"]
    project.write_spec("zip", spec)
    project.doit()  # offline: the planner writes the beat file, storyboards are drawn, chunks wait
    beats = project.beats_file("zip")
    before = beats.read_text()
    inputs = {p: p.read_bytes() for p in (project.build / "zip" / "beats").glob("*/beat.json")}
    out = project.adspec("approve", "zip")
    assert out.returncode == 0, out.stderr
    after = beats.read_text()
    assert after.count("approved: ") == len(inputs) and "# The beat file" in after
    assert not is_hand_edited(parse_beat_file_text(after, "beats"))  # the lock ignores approvals
    run = project.doit()
    assert "waits for approval" not in run.stderr
    assert beats.read_text() == after  # not replanned
    assert {p: p.read_bytes() for p in inputs} == inputs  # no beat's inputs changed
    assert (project.build / "zip" / "final.mp4").exists()
    assert before != after

    # planned again (a longer ad): each beat keeps its approval under its id (they were all
    # dropped); one whose storyboard came out the same is still approved, the others read stale
    approved = {b["id"]: b["approved"] for b in yaml.safe_load(after)["beats"]}
    spec["duration"] = 15
    project.write_spec("zip", spec)
    project.doit()
    replanned = yaml.safe_load(beats.read_text())["beats"]
    kept = {b["id"]: b.get("approved") for b in replanned}
    assert {i: kept[i] for i in kept if i in approved} == {i: approved[i] for i in kept if i in approved}, kept
    assert any(i in approved for i in kept), (kept, approved)
    assert not is_hand_edited(parse_beat_file_text(beats.read_text(), "beats"))  # still the plan, approvals aside
    states = approvals(project, "zip")
    assert {states[i] for i in kept if i in approved} <= {"approved", "stale"} and "approved" in states.values(), states
    assert all(states[i] == "pending" for i in kept if i not in approved), states


def test_set_approved_replaces_in_place_and_refuses_unknown_beats() -> None:
    from adspec.approvals import set_approved
    from adspec.errors import SpecError

    text = "beats:\n  # first\n  - id: a  # keep\n    type: hook\n\n  - id: b\n    type: cta\n    approved: " + "a0" * 32 + "\n"
    one = set_approved(text, "a", "b1" * 32)
    assert one == text.replace("    type: hook\n", "    type: hook\n    approved: " + "b1" * 32 + "\n")
    crlf = text.replace("\n", "\r\n")  # a file written on Windows keeps its line ends (it got an LF line)
    assert set_approved(crlf, "a", "b1" * 32) == one.replace("\n", "\r\n")
    two = set_approved(one, "b", "c2" * 32)
    assert two == one.replace("a0" * 32, "c2" * 32)
    with pytest.raises(SpecError, match="no beat with id 'c'"):
        set_approved(text, "c", "b1" * 32)


# ---- 3. a model per beat ----------------------------------------------------------------------------


def test_a_beat_with_its_own_models_is_asked_of_them_and_cut_by_their_clips(live) -> None:
    project, replicate = live
    spec = small_spec()
    spec["beats"][1]["models"] = {"image": "flux-schnell", "video": "veo-3.1-fast"}  # 5 s: one 6 s veo clip
    project.write_spec("zip", spec)
    project.doit()
    by_beat = {b["body"]["input"]["prompt"]: b["slug"] for b in replicate.create_bodies}
    slugs = [b["slug"] for b in replicate.create_bodies]
    assert slugs.count(IMAGE) == 1 and slugs.count("black-forest-labs/flux-schnell") == 1
    assert slugs.count(VIDEO) == 1 and slugs.count("google/veo-3.1-fast") == 1
    veo = next(b["body"]["input"] for b in replicate.create_bodies if b["slug"] == "google/veo-3.1-fast")
    assert veo["prompt"] == "pan left" and veo["duration"] == 6
    assert any("The bottle and the logo" in p and s.endswith("flux-schnell") for p, s in by_beat.items())
    plan = json.loads((project.build / "zip" / "plan.json").read_text())
    assert [b["clips"] for b in plan["beats"]] == [[6], [6]]
    assert json.loads((project.build / "zip" / "beats" / "cta" / "beat.json").read_text())["video_model"] == "veo-3.1-fast"


def test_validate_names_an_unknown_beat_model_with_its_line(project: Project) -> None:
    spec = small_spec()
    spec["beats"][1]["models"] = {"video": "veo-9"}
    path = project.write_spec("zip", spec)
    out = project.adspec("validate", str(path))
    assert out.returncode == 1
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    line_no = next(i for i, x in enumerate(path.read_text().splitlines(), 1) if "veo-9" in x)
    assert len(lines) == 1 and lines[0].startswith(f"specs/zip.yaml:{line_no}: beats.1.models.video: unknown video model 'veo-9'"), lines


# ---- 2. your own footage and stills --------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _frame_rgb(video, at: float, tmp) -> tuple[int, int, int]:
    from PIL import Image, ImageStat

    out = tmp / f"frame-{at}.png"
    _ffmpeg("-ss", f"{at}", "-i", str(video), "-frames:v", "1", str(out))
    with Image.open(out) as im:
        return tuple(round(x) for x in ImageStat.Stat(im.convert("RGB")).mean)  # type: ignore[return-value]


def _near(a, b, tol: int = 24) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def own_media_project(project: Project) -> dict:
    assets = project.specs / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (320, 240), (20, 200, 40)).save(assets / "green.png")
    # 3 s red, then 5 s blue: `from: 3` starts the beat on blue
    _ffmpeg("-f", "lavfi", "-i", "color=c=0xdc1e1e:s=320x240:r=24:d=3", "-f", "lavfi", "-i",
            "color=c=0x1e32dc:s=320x240:r=24:d=5", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
            "-pix_fmt", "yuv420p", str(assets / "clip.mp4"))
    spec = small_spec()
    spec["beats"][0]["image"] = "assets/green.png"
    spec["beats"][1]["footage"] = "assets/clip.mp4"
    spec["beats"][1]["from"] = 3
    # nothing is asked with the still's image prompt nor the footage's prompts: they need none
    del spec["beats"][0]["image_prompt"], spec["beats"][1]["image_prompt"], spec["beats"][1]["motion_prompt"]
    return spec


def test_a_beat_of_its_own_still_or_footage_gets_no_image_model_for_what_it_shows(project: Project) -> None:
    """No image is asked for such a beat, so no image model is chosen for its references (the
    estimate said "flux-kontext-pro chosen for its 1 reference image" for both beats)."""
    spec = own_media_project(project)
    spec["assets"] = {"product": "assets/green.png"}
    for beat in spec["beats"]:
        beat["shows"] = ["product"]
    project.write_spec("zip", spec)
    out = project.adspec("estimate", "--json")
    assert out.returncode == 0, out.stderr
    notes = json.loads(out.stdout)["ads"][0]["notes"]
    assert not any("chosen for" in n for n in notes), notes
    said = project.adspec("estimate").stdout  # the hook's first frame is the still, not a model's picture
    assert "chunk:zip/hook/0" in said and "its first frame is your own still" in said, said
    spec["beats"][0].pop("image")  # the same beat asking its storyboard of the image model: chosen
    spec["beats"][0]["image_prompt"] = "A bottle on a rock"
    project.write_spec("zip", spec)
    notes = json.loads(project.adspec("estimate", "--json").stdout)["ads"][0]["notes"]
    assert [n for n in notes if "chosen for" in n and n.startswith("hook: ")], notes


def test_models_that_a_beat_of_your_own_media_never_asks_are_said(project: Project) -> None:
    """`models:` on a footage beat and `models.image` on a beat of your own still were ignored
    without a word; `adspec validate` now says so at their lines (a warning: exit 0)."""
    spec = own_media_project(project)
    spec["beats"][0]["models"] = {"image": "flux-schnell", "video": "seedance-1-lite"}
    spec["beats"][1]["models"] = {"video": "seedance-1-lite"}
    project.write_spec("zip", spec)
    out = project.adspec("validate")
    assert out.returncode == 0, out.stderr
    text = (project.specs / "zip.yaml").read_text().splitlines()
    image_line = next(i for i, x in enumerate(text, 1) if "flux-schnell" in x)
    said = out.stdout + out.stderr
    assert f"zip.yaml:{image_line}: beats.0.models.image" in said and "`models.image` is not used" in said, said
    assert "beats.1.models" in said and "your own footage, used as it is" in said, said
    assert "beats.0.models.video" not in said  # the still's video model is asked
    spec["beats"][0]["models"] = {"video": "seedance-1-lite"}
    spec["beats"][1].pop("models")
    project.write_spec("zip", spec)
    quiet = project.adspec("validate")
    assert "is not used" not in quiet.stdout + quiet.stderr


def test_own_still_and_footage_make_no_request_and_show_in_the_final(live, tmp_path) -> None:
    project, replicate = live
    project.write_spec("zip", own_media_project(project))
    project.doit()
    slugs = [b["slug"] for b in replicate.create_bodies]
    assert IMAGE not in slugs  # the still is the hook's storyboard; the footage beat has no storyboard request
    assert slugs.count(VIDEO) == 1  # the hook's video, from the still; none for the footage beat
    video_in = next(b["body"]["input"] for b in replicate.create_bodies if b["slug"] == VIDEO)
    assert video_in["prompt"] == "slow push in"
    final = project.build / "zip" / "final.mp4"
    from adspec import media

    assert abs(media.probe(final).duration - 8) < 0.1
    # the footage beat (3-8 s) shows the clip from its 3rd second on: blue, never its red start
    for at in (3.2, 5.5, 7.8):
        assert _near(_frame_rgb(final, at, tmp_path), (30, 50, 220)), at
    sb = project.build / "zip" / "beats" / "hook" / "storyboard.png"
    assert _near(_frame_rgb(sb, 0, tmp_path), (20, 200, 40), 6)
    # replacing the footage file rebuilds that beat only, still with no request
    before = len(replicate.create_bodies)
    _ffmpeg("-f", "lavfi", "-i", "color=c=0x1edc32:s=320x240:r=24:d=9", "-pix_fmt", "yuv420p",
            str(project.specs / "assets" / "clip.mp4"))
    project.doit()
    assert len(replicate.create_bodies) == before
    assert _near(_frame_rgb(final, 5.5, tmp_path), (30, 220, 50))


@pytest.mark.parametrize("field,make,message", [
    ("footage", lambda p: p.write_bytes(b"not a video at all"), "is not a readable video"),
    ("footage", None, "too short"),
    ("image", lambda p: p.write_bytes(b"\x89PNG broken"), ""),
])
def test_bad_own_media_is_one_located_error(project: Project, field, make, message) -> None:
    spec = own_media_project(project)
    if field == "footage" and make is None:
        spec["beats"][1]["from"] = 6  # 5 s from 6 s of an 8 s clip
    elif field == "footage":
        make(project.specs / "assets" / "clip.mp4")
    else:
        make(project.specs / "assets" / "green.png")
    path = project.write_spec("zip", spec)
    out = project.doit(check=False)
    assert out.returncode != 0
    line_no = next(i for i, x in enumerate(path.read_text().splitlines(), 1) if x.strip().startswith(f"{field}:"))
    failed = [x for x in (out.stdout + out.stderr).splitlines() if f"zip.yaml:{line_no}: beats." in x]
    assert failed and f"beats.{1 if field == 'footage' else 0}.{field}: " in failed[0] and message in failed[0], out.stdout


# ---- 1. reference assets with roles ----------------------------------------------------------------


def _data_uri_sha(value: str) -> str:
    import base64
    import hashlib

    return hashlib.sha256(base64.b64decode(value.split(",", 1)[1])).hexdigest()


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def references_project(project: Project) -> dict:
    from PIL import Image

    assets = project.specs / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name, colour in (("bag", (200, 120, 30)), ("maya", (90, 60, 200)), ("leo", (30, 160, 160))):
        Image.new("RGB", (64, 64), colour).save(assets / f"{name}.png")
    spec = small_spec(duration=9)
    spec["assets"] = {"product": "assets/bag.png", "maya": {"path": "assets/maya.png", "role": "character"},
                      "leo": {"path": "assets/leo.png", "role": "character"}}
    spec["beats"] = [
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "Maya runs", "motion_prompt": "m1",
         "shows": ["maya"]},
        {"id": "duo", "type": "lifestyle", "duration": 3, "image_prompt": "Maya and Leo", "motion_prompt": "m2",
         "shows": ["maya", "leo"]},
        {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The bag", "motion_prompt": "m3",
         "shows": ["product"]},
    ]
    return spec


def test_references_reach_a_reference_model_and_a_changed_photo_repays_only_its_beats(live) -> None:
    project, replicate = live
    project.write_spec("zip", references_project(project))
    est = json.loads(project.adspec("estimate", "--json", "zip").stdout)
    notes = " ".join(est["ads"][0]["notes"])
    assert "flux-kontext-pro chosen" in notes and "flux-2-pro chosen" in notes and "flux-dev takes none" in notes
    project.doit()
    images = {b["body"]["input"]["prompt"].split(",")[0]: b for b in replicate.create_bodies if b["slug"] != VIDEO}
    assets = project.specs / "assets"
    cta = next(b for p, b in images.items() if "The bag" in p)
    assert cta["slug"] == "black-forest-labs/flux-kontext-pro"
    assert _data_uri_sha(cta["body"]["input"]["input_image"]) == _sha(assets / "bag.png")  # the product's bytes
    duo = next(b for p, b in images.items() if "Maya and Leo" in p)
    assert duo["slug"] == "black-forest-labs/flux-2-pro"
    assert [_data_uri_sha(v) for v in duo["body"]["input"]["input_images"]] == [_sha(assets / "maya.png"),
                                                                                 _sha(assets / "leo.png")]
    hook = next(b for p, b in images.items() if "Maya runs" in p)
    assert _data_uri_sha(hook["body"]["input"]["input_image"]) == _sha(assets / "maya.png")
    # a new photo of Leo re-pays exactly the beat that shows him (its storyboard and its video)
    from PIL import Image

    Image.new("RGB", (64, 64), (250, 250, 20)).save(assets / "leo.png")
    before = len(replicate.create_bodies)
    project.doit()
    new = replicate.create_bodies[before:]
    assert [b["slug"] for b in new if b["slug"] != VIDEO] == ["black-forest-labs/flux-2-pro"]
    assert [b["body"]["input"]["prompt"] for b in new if b["slug"] == VIDEO] == ["m2"]
    assert _data_uri_sha(new[0]["body"]["input"]["input_images"][1]) == _sha(assets / "leo.png")


VEO = "google/veo-3.1"


def veo_project(project: Project, aspect_ratio: str) -> dict:
    """A veo-3.1 ad: a 12 s beat that shows the product (clips of 8 and 4 s), an 8 s beat that
    shows Maya, and a 4 s beat that shows nothing."""
    from PIL import Image

    assets = project.specs / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name, colour in (("bag", (200, 120, 30)), ("maya", (90, 60, 200))):
        Image.new("RGB", (64, 64), colour).save(assets / f"{name}.png")
    spec = small_spec(duration=24, aspect_ratio=aspect_ratio, models={"video": "veo-3.1"})
    spec["assets"] = {"product": "assets/bag.png", "maya": {"path": "assets/maya.png", "role": "character"}}
    spec["beats"] = [
        {"id": "bag", "type": "demo", "duration": 12, "image_prompt": "The bag on a rock", "motion_prompt": "m-bag",
         "shows": ["product"]},
        {"id": "maya", "type": "lifestyle", "duration": 8, "image_prompt": "Maya runs", "motion_prompt": "m-maya",
         "shows": ["maya"]},
        {"id": "plain", "type": "cta", "duration": 4, "image_prompt": "A trail", "motion_prompt": "m-plain"},
    ]
    return spec


def veo_inputs(replicate: FakeReplicate, since: int = 0) -> dict[tuple[str, int], dict]:
    """What the fake received for each veo-3.1 chunk: (motion prompt, duration) -> input."""
    return {(b["body"]["input"]["prompt"], b["body"]["input"]["duration"]): b["body"]["input"]
            for b in replicate.create_bodies[since:] if b["slug"] == VEO}


def test_veo_16x9_chunks_carry_what_their_beat_shows_and_a_new_photo_repays_only_its_chunks(live) -> None:
    project, replicate = live
    project.env["ADSPEC_BUDGET_USD"] = "20"  # veo-3.1 costs $0.20 a second
    project.write_spec("zip", veo_project(project, "16:9"))
    assets = project.specs / "assets"
    est = json.loads(project.adspec("estimate", "--json", "zip").stdout)
    notes = est["ads"][0]["notes"]
    assert "bag: its first chunk is sent its reference images (product) and starts from them, not from the " \
           "storyboard: veo-3.1 takes no start image with them" in notes, notes
    assert not any(n.startswith("plain:") for n in notes) and not any("made without" in n for n in notes)
    project.doit()
    sent = veo_inputs(replicate)
    assert set(sent) == {("m-bag", 8), ("m-bag", 4), ("m-maya", 8), ("m-plain", 4)}
    # the beat's first chunk: the product photo's bytes in reference_images, no start image
    assert [_data_uri_sha(v) for v in sent[("m-bag", 8)]["reference_images"]] == [_sha(assets / "bag.png")]
    assert "image" not in sent[("m-bag", 8)]
    # its second chunk continues from the first one's last frame, without references
    last = project.build / "zip" / "beats" / "bag" / "chunk-0.last.png"
    assert "reference_images" not in sent[("m-bag", 4)] and _data_uri_sha(sent[("m-bag", 4)]["image"]) == _sha(last)
    assert [_data_uri_sha(v) for v in sent[("m-maya", 8)]["reference_images"]] == [_sha(assets / "maya.png")]
    assert "reference_images" not in sent[("m-plain", 4)] and "image" in sent[("m-plain", 4)]
    # a new photo of Maya re-pays her beat's storyboard and its one chunk, and nothing else
    from PIL import Image

    Image.new("RGB", (64, 64), (250, 250, 20)).save(assets / "maya.png")
    before = len(replicate.create_bodies)
    project.doit()
    new = replicate.create_bodies[before:]
    assert sorted(b["slug"] for b in new) == ["black-forest-labs/flux-kontext-pro", VEO], [b["slug"] for b in new]
    (again,) = veo_inputs(replicate, before).items()
    assert again[0] == ("m-maya", 8)
    assert [_data_uri_sha(v) for v in again[1]["reference_images"]] == [_sha(assets / "maya.png")]


def test_a_9x16_veo_ad_sends_no_references_and_says_why(live) -> None:
    project, replicate = live
    project.env["ADSPEC_BUDGET_USD"] = "20"  # veo-3.1 costs $0.20 a second
    spec = veo_project(project, "9:16")
    project.write_spec("zip", spec)
    why = "veo-3.1 takes them only at 16:9 (this ad is 9:16)"
    out = project.adspec("validate")
    warned = [line for line in out.stderr.splitlines() if why in line]
    assert out.returncode == 0 and len(warned) == 2, out.stderr
    assert "zip.yaml:" in warned[0] and "beats.0.shows: warning: 'bag': its video is made without its reference " \
           "images (product)" in warned[0], warned
    est = json.loads(project.adspec("estimate", "--json", "zip").stdout)
    assert f"maya: its video is made without its reference images (maya): {why}" in est["ads"][0]["notes"]
    proc = project.doit()
    sent = veo_inputs(replicate)
    assert len(sent) == 4 and all("reference_images" not in i and "image" in i for i in sent.values()), sent
    assert all(i["aspect_ratio"] == "9:16" for i in sent.values())
    # the build says so too, one line for each beat (as its first chunk is made)
    said = sorted(line for line in (proc.stdout + proc.stderr).splitlines() if why in line)
    assert [line.split(": ")[0] for line in said] == ["zip/bag", "zip/maya"], said
    assert said[0] == f"zip/bag: its video is made without its reference images (product): {why}", said


def test_planners_fill_shows_from_the_library_and_validate_checks_names(project: Project) -> None:
    from adspec.library import load_library

    spec = references_project(project)
    del spec["beats"], spec["music"]
    spec["duration"] = 15
    project.write_spec("zip", spec)
    assert project.adspec("plan", "zip").returncode == 0
    beats = yaml.safe_load(project.beats_file("zip").read_text())["beats"]
    lib = load_library()
    for b in beats:
        bt = lib.beats[b["type"]]
        expected = (["product"] if bt.shows_product else []) + (["maya", "leo"] if bt.shows_people else [])
        assert b.get("shows", []) == expected, b
    # a name that is no asset: one located error
    text = project.beats_file("zip").read_text().replace("- product", "- prodcut", 1)
    project.beats_file("zip").write_text(text)
    out = project.adspec("validate")
    line_no = next(i for i, x in enumerate(text.splitlines(), 1) if "prodcut" in x)
    errors = [x for x in out.stderr.splitlines() if "prodcut" in x]
    assert out.returncode == 1 and len(errors) == 1 and f"zip.beats.yaml:{line_no}: beats." in errors[0], out.stderr
    assert "did you mean 'product'" in errors[0]


# ---- 5. draft, then final ------------------------------------------------------------------------


def test_draft_variant_then_final_models_on_the_same_plan(live) -> None:
    project, replicate = live
    spec = small_spec(duration=10, models={"image": "flux-dev", "video": "seedance-1-pro"})
    del spec["beats"], spec["music"]
    spec["variants"] = {"named": {
        "draft": {"models.image": "flux-schnell", "models.video": "seedance-1-lite", "resolution": "360p"},
        "final": {"resolution": "720p", "approval": "required"},
    }}
    project.write_spec("zip", spec)
    project.doit("zip@draft")
    beats = project.beats_file("zip")
    planned = beats.read_text()
    slugs = {b["slug"] for b in replicate.create_bodies}
    assert slugs == {"black-forest-labs/flux-schnell", "bytedance/seedance-1-lite", "meta/musicgen",
                     "minimax/speech-02-turbo"}
    drafts = len(replicate.create_bodies)
    project.doit("zip@final")  # promoted: the same beat file, no new plan, the final models' stills
    assert beats.read_text() == planned and not list(project.specs.glob("zip@*.beats.yaml"))
    assert {b["slug"] for b in replicate.create_bodies[drafts:]} == {"black-forest-labs/flux-dev"}
    assert project.adspec("approve", "zip@final").returncode == 0
    project.doit("zip@final")  # then the final video of what was approved
    assert project.beats_file("zip").read_text() != planned  # approvals only: still not replanned
    new = {b["slug"] for b in replicate.create_bodies[drafts:]}
    # the music and the voice lines are shared with the draft: paid once
    assert new == {"black-forest-labs/flux-dev", "bytedance/seedance-1-pro"}
    assert (project.build / "zip@final" / "final.mp4").exists()

    # the spec's name lists each variant (it said "names several ads"), the draft as needing none
    listed = project.adspec("approve", "--list", "zip")
    assert listed.returncode == 0 and "zip@draft/hook\t" in listed.stdout and "zip@final/hook\tapproved" in listed.stdout
    assert "zip@draft: " in listed.stderr and "it does not require approval" in listed.stderr, listed.stderr
    # approving the draft (another picture) replaced the final's approvals without a word
    paid = len(replicate.create_bodies)
    draft = project.adspec("approve", "zip@draft")
    assert draft.returncode == 0 and "note: zip@draft does not require approval" in draft.stderr, draft.stderr
    assert "note: zip@final: the approval of cta, hook, product-reveal is replaced" in draft.stderr, draft.stderr
    assert len(replicate.create_bodies) == paid


def test_ci_build_reports_waiting_beats_and_exits_0(project: Project) -> None:
    project.write_spec("zip", small_spec(approval="required"))
    out = project.adspec("build", "--json")
    summary = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    [row] = summary["ads"]
    assert row["status"] == "waiting" and row["waiting_for_approval"] == ["hook", "cta"] and row["error"] is None
    assert summary["totals"]["waiting"] == 1 and summary["totals"]["failed"] == 0
    # status.json and `adspec status` say so too: waiting, not done (there is no final) nor cleaned
    assert json.loads((project.build / "zip" / "status.json").read_text())["state"] == "waiting"
    [shown] = json.loads(project.adspec("status", "--json").stdout)
    assert shown["state"] == "waiting" and shown["phase"] == "waiting", shown
    # what waits is not counted as built: the videos' stand-ins are settled, not done
    assert shown["tasks"]["done"] < shown["tasks"]["total"] and shown["progress_pct"] < 100, shown
    table = project.adspec("status", "zip").stdout
    assert "waiting" in table and "100%" not in table, table
    assert project.adspec("status", "--watch", "zip").returncode == 0  # it has finished: the watch ends


def test_an_edited_beat_is_not_approved_on_its_old_picture_and_an_old_final_is_no_ok(project: Project) -> None:
    """Editing a beat's image prompt puts its approval out of reach until its storyboard is drawn
    again (`adspec approve` refused the edit only after the next `doit`: it approved the old
    picture); the run after the edit says the video waits, not built, and `adspec build` reports
    the ad waiting, though the final of the approved cut is still there."""
    path = project.write_spec("zip", small_spec(approval="required"))
    project.doit()
    assert project.adspec("approve", "zip").returncode == 0
    project.doit()
    final = project.build / "zip" / "final.mp4"
    assert final.is_file()
    spec = yaml.safe_load(path.read_text())
    spec["beats"][0]["image_prompt"] = "A bottle on a red rock"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    before = path.read_text()

    out = project.adspec("approve", "zip/hook")
    assert out.returncode == 1 and "run `doit storyboard:zip/hook`" in out.stderr, out.stdout + out.stderr
    hook_line = next(i for i, x in enumerate(before.splitlines(), 1) if "id: hook" in x)
    assert out.stderr.startswith(f"specs/zip.yaml:{hook_line}: beats.0: "), out.stderr  # the beat's line
    assert path.read_text() == before  # nothing written
    assert approvals(project, "zip") == {"hook": "stale", "cta": "approved"}

    run = project.doit()
    summary = next(x for x in run.stdout.splitlines() if x.startswith("adspec: zip: "))
    assert "video of hook waits for approval" in summary and "chunk" not in summary and "mix" not in summary, summary
    assert ".  chunk:zip/hook/0" not in run.stdout, run.stdout  # its stand-in made nothing: not listed as run
    assert "final.mp4" not in summary
    status = json.loads((project.build / "zip" / "status.json").read_text())
    assert status["state"] == "waiting" and status["final"] is None and status["chunks"]["done"] == 1, status

    built = project.adspec("build", "--json")
    [row] = json.loads(built.stdout)["ads"]
    assert built.returncode == 0 and row["status"] == "waiting" and row["waiting_for_approval"] == ["hook"], row
    assert row["final"] is None and final.is_file()  # the earlier cut is kept, not reported as this one

    # `doit clean zip` removes that earlier cut too (the waiting work's stand-ins made none of it,
    # but it is the ad's): no media left, and the status says so
    project.doit("clean", "zip")
    left = sorted(str(f.relative_to(project.build)) for f in (project.build / "zip").rglob("*")
                  if f.suffix in (".mp4", ".wav", ".png", ".srt", ".vtt", ".otio"))
    assert not final.exists() and left == [], left
    status = json.loads((project.build / "zip" / "status.json").read_text())
    assert status["state"] == "cleaned" and status["final"] is None, status


def test_after_a_clean_an_approved_beat_waits_one_run_and_says_why(project: Project) -> None:
    """After `doit clean`, whether a beat's video waits is decided before its storyboard is made
    again (from the cache, free): it waits one run. The line said "its storyboard changed since it
    was approved" of the very picture approved; it says the truth, and the next run makes the video
    without asking for approval again."""
    project.write_spec("zip", small_spec(approval="required"))
    project.doit()
    assert project.adspec("approve", "zip").returncode == 0
    project.doit()
    final = project.build / "zip" / "final.mp4"
    assert final.is_file()
    project.doit("clean", "zip")
    assert not final.exists()
    run = project.doit()
    said = [x for x in run.stderr.splitlines() if "video waits" in x]
    assert sorted(said) == [f"zip/{b}: video waits one run: its storyboard was made in this run and is the approved "
                            "picture; run doit again to make the video" for b in ("cta", "hook")], run.stderr
    assert approvals(project, "zip") == {"hook": "approved", "cta": "approved"}
    again = project.doit()
    assert "waits" not in again.stdout + again.stderr and final.is_file(), again.stdout + again.stderr


def test_validate_locates_a_missing_or_wrong_own_medium(project: Project) -> None:
    spec = own_media_project(project)
    spec["beats"][0]["image"] = "assets/clip.mp4"  # a video where a still goes
    spec["beats"][1]["footage"] = "assets/nothere.mp4"
    path = project.write_spec("zip", spec)
    out = project.adspec("validate", str(path))
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    text = path.read_text().splitlines()
    image_line = next(i for i, x in enumerate(text, 1) if "image: assets/clip.mp4" in x)
    footage_line = next(i for i, x in enumerate(text, 1) if "nothere" in x)
    assert out.returncode == 1 and lines == [
        f"specs/zip.yaml:{image_line}: beats.0.image: 'assets/clip.mp4' must be an image (.png, .jpg, .jpeg, .webp)",
        f"specs/zip.yaml:{footage_line}: beats.1.footage: file 'assets/nothere.mp4' not found (looked for "
        "specs/assets/nothere.mp4 in the project)"], out.stderr


def test_a_footage_beat_lists_as_approved(project: Project) -> None:
    """`approval: required`: a beat of your own footage pays for nothing, so the build never makes
    it wait; `adspec approve --list` says the same (it said pending)."""
    spec = own_media_project(project)
    spec["approval"] = "required"
    project.write_spec("zip", spec)
    project.doit("storyboard:zip")
    assert approvals(project, "zip") == {"hook": "pending", "cta": "approved"}
    project.doit()  # the review page says the same (it showed the footage beat as stale)
    page = (project.build / "zip" / "index.html").read_text()
    assert page.count('data-approval="pending"') == 1 and page.count('data-approval="approved"') == 1
    # the page is written during the run: it said "running" (and "live": nothing of it was) after it
    assert '<span class="pill waiting" id="state">waiting</span>' in page and 'id="rendered"' not in page
    # each beat made of your own media says so, and shows no prompt that did not make its picture
    assert page.count('data-own="your still"') == 1 and page.count('data-own="your footage"') == 1
    hook, cta = page.split('id="beat-hook"')[1].split('id="beat-cta"')
    assert "<b>image</b>" not in hook and "<b>motion</b>" in hook  # the still is moved by the video model
    assert "<b>image</b>" not in cta and "<b>motion</b>" not in cta.split("</figure>")[0]
    # approving it writes nothing (it wrote a hash nobody reads), and says why
    before = (project.specs / "zip.yaml").read_text()
    said = project.adspec("approve", "zip/cta")
    assert said.returncode == 0 and "zip/cta: your own footage: nothing to approve" in said.stdout, said
    whole = project.adspec("approve", "zip")
    assert whole.returncode == 0 and "zip/hook: approved " in whole.stdout, whole
    assert (project.specs / "zip.yaml").read_text().count("approved: ") == 1 != before.count("approved: ")


def test_approving_from_a_shell_without_keys_approves_the_models_still(live) -> None:
    # without keys `approve` compared the model's still with the offline animatic's recipe: it said
    # "not built from this beat", and its advice (`doit storyboard:...`) drew an offline still over
    # the paid one, which was then approved in place of the picture the video is made from
    project, replicate = live
    project.write_spec("zip", small_spec(approval="required"))
    project.doit()
    keyless = {"REPLICATE_API_TOKEN": "", "ADSPEC_BACKEND": ""}
    out = project.adspec("approve", "--list", "zip", **keyless)
    assert out.returncode == 0 and "\tpending" in out.stdout and "stale" not in out.stdout, out.stdout + out.stderr
    paid = (project.build / "zip" / "beats" / "hook" / "storyboard.png").read_bytes()
    out = project.adspec("approve", "zip/hook", **keyless)
    assert out.returncode == 0 and "zip/hook: approved " in out.stdout, out.stderr
    import hashlib

    assert hashlib.sha256(paid).hexdigest()[:12] in out.stdout
    assert approvals(project, "zip")["hook"] == "approved"  # and with the keys: the same picture
    listed = project.adspec("approve", "--list", "zip", **keyless)
    assert "hook\tapproved" in listed.stdout, listed.stdout
    project.doit()
    assert replicate.creates_by_model.get(VIDEO) == 1  # the approved beat's video, paid once
    # a beat whose still is not built says how to make the model's, not the animatic's
    (project.build / "zip" / "beats" / "cta" / "storyboard.png").unlink()
    out = project.adspec("approve", "zip/cta", ADSPEC_BACKEND="offline")
    assert out.returncode == 1 and "with the keys your build uses" in out.stderr, out.stderr
