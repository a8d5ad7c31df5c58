"""Ready to ship (issue 21): placements as data, checks as build targets, exports, the OTIO
timeline and C2PA provenance. Real doit runs over small offline ads; media facts measured with ffmpeg."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from adspec.placements import load_placements
from conftest import REPO, small_spec

IDS = ["youtube-instream", "youtube-bumper", "youtube-shorts", "tiktok", "instagram-reels", "meta-feed-1x1",
       "meta-feed-4x5", "ctv-15", "ctv-30"]


def test_placements_are_data_with_sources() -> None:
    placements = load_placements()
    assert list(placements) == IDS
    assert placements["youtube-bumper"].duration.max == 6
    assert placements["ctv-30"].duration.exact == 30 and placements["ctv-30"].loudness.lufs == -24
    assert placements["instagram-reels"].safe_zone.bottom == 0.35
    text = (REPO / "adspec" / "library" / "placements.yaml").read_text()
    for pid in IDS:  # every placement's figures carry a source comment
        block = text.split(f"\n{pid}:\n", 1)[1].split("\n\n", 1)[0]
        figures = [line for line in block.splitlines() if ":" in line and line.startswith("  ") and "name:" not in line]
        assert figures and all("#" in line for line in figures), pid


def test_adspec_placements_lists_them() -> None:
    out = subprocess.run([sys.executable, "-m", "adspec.cli", "placements", "--json"], capture_output=True, text=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=True)
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == IDS


def test_unknown_placement_is_a_located_error(project) -> None:
    path = project.write_spec("ad", small_spec(placements=["tiktok", "tiktk"]))
    proc = project.adspec("validate", str(path))
    assert proc.returncode == 1
    misfit, line = proc.stderr.strip().splitlines()  # the entry it knows is still checked against the ad
    assert misfit == "specs/ad.yaml:29: placements.0: tiktok takes 9:16 video and this ad is 16:9; list it in a " \
                     "variant of that aspect ratio", misfit
    assert line.startswith("specs/ad.yaml:30: ") and "placements.1: unknown placement 'tiktk' (did you mean 'tiktok'?)" in line
    assert "known: youtube-instream, youtube-bumper" in line


def test_a_variant_may_list_its_own_placements(project) -> None:
    spec = small_spec(aspect_ratio="9:16", placements=["tiktok"],
                      variants={"named": {"wide": {"aspect_ratio": "16:9", "placements": ["youtube-instream"]}}})
    path = project.write_spec("ad", spec)
    assert project.adspec("validate", str(path)).returncode == 0
    # a placement the ad cannot meet (its aspect, its length) is said before anything is paid for
    # (it was found by the check, after the whole ad was built)
    # a spec of variants is checked as its variants: the base's own aspect ratio is no ad
    base_wide = dict(spec, aspect_ratio="16:9", variants={"named": {"tall": {"aspect_ratio": "9:16"}}})
    assert project.adspec("validate", str(project.write_spec("ad", base_wide))).returncode == 0
    misfit = dict(spec, variants={"named": {"wide": {"aspect_ratio": "16:9", "placements": ["tiktok", "youtube-bumper"]}}})
    proc = project.adspec("validate", str(project.write_spec("ad", misfit)))
    assert proc.returncode == 1
    assert "variant 'wide': placements.0: tiktok takes 9:16 video and this ad is 16:9" in proc.stderr, proc.stderr
    assert "variant 'wide': placements.1: youtube-bumper takes up to 6 s and this ad lasts 8 s" in proc.stderr, proc.stderr
    # captions are the spoken lines: an ad that speaks none cannot meet a placement that requires them
    square = small_spec(aspect_ratio="1:1", placements=["meta-feed-1x1"])
    square["beats"][0]["voiceover"] = "Meet Zip."
    assert project.adspec("validate", str(project.write_spec("ad", square))).returncode == 0
    proc = project.adspec("validate", str(project.write_spec("ad", dict(square, voiceover=False))))
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert ("placements.0: meta-feed-1x1 requires captions and this ad speaks no line (`voiceover: false`), "
            "so it has none") in proc.stderr, proc.stderr
    mute = dict(square, beats=[{k: v for k, v in b.items() if k != "voiceover"} for b in square["beats"]])
    proc = project.adspec("validate", str(project.write_spec("ad", mute)))
    assert proc.returncode == 1 and "(no inline beat has a `voiceover:`)" in proc.stderr, proc.stderr
    bad = dict(spec, variants={"named": {"wide": {"placements": ["nope"]}}})
    path = project.write_spec("ad", bad)
    proc = project.adspec("validate", str(path))
    assert proc.returncode == 1 and "unknown placement 'nope'" in proc.stderr


# ---- checks on files made to violate them (measured: ffmpeg's ebur128, luma per frame) --------

import pytest  # noqa: E402

from adspec import media  # noqa: E402
from adspec.checks import check_file, flash_transitions, max_flashes_per_second  # noqa: E402
from adspec.media_delivery import loudness  # noqa: E402


def make_clip(out, *, seconds: float = 2.0, size: str = "320x180", video: str | None = None, gain_db: float = 5.0,
              vcodec: str = "libx264", subtitles: bool = False):
    """A clip from ffmpeg's generators: `video` a lavfi source (default a still colour), a 1 kHz
    tone at `gain_db` (ffmpeg's sine is at 1/8 of full scale: -21 LUFS; +5 dB reads -16 LUFS), H.264 + AAC in MP4."""
    src = video or f"color=c=0x406080:s={size}:r=24:d={seconds}"
    args = [media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src,
            "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate=48000:duration={seconds}"]
    if subtitles:
        srt = out.with_suffix(".srt")
        srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n\n")
        args += ["-i", str(srt)]
    args += ["-map", "0:v", "-map", "1:a"] + (["-map", "2:s", "-c:s", "mov_text"] if subtitles else [])
    args += ["-af", f"volume={gain_db}dB", "-ac", "2", "-c:v", vcodec, "-pix_fmt", "yuv420p", "-c:a", "aac",
             "-t", str(seconds), str(out)]
    subprocess.run(args, check=True)
    return out


def lines(report) -> list[str]:
    return report.lines()


def test_a_31_s_ctv_30_ad_fails_its_duration(tmp_path) -> None:
    long = make_clip(tmp_path / "long.mp4", seconds=31, size="160x90")
    rep = check_file("ad", long, ["ctv-30"], measure_flashes=False)
    assert "ad: ctv-30: duration: 31.00 s, must be exactly 30 s" in lines(rep)
    ok = make_clip(tmp_path / "ok.mp4", seconds=30, size="160x90")
    assert not [x for x in lines(check_file("ad", ok, ["ctv-30"], measure_flashes=False)) if "duration" in x]
    bumper = check_file("ad", make_clip(tmp_path / "b.mp4", seconds=8, size="160x90"), ["youtube-bumper"])
    assert "ad: youtube-bumper: duration: 8.00 s, over the maximum of 6 s" in lines(bumper)


def test_minus_8_lufs_audio_fails_loudness_and_a_normal_level_passes(tmp_path) -> None:
    loud = make_clip(tmp_path / "loud.mp4", gain_db=13.0)
    i, tp = loudness(loud)
    assert i == pytest.approx(-8.0, abs=0.5)
    rep = check_file("ad", loud, [])
    assert f"ad: loudness: integrated {i:.1f} LUFS, outside -27 to -13 LUFS" in lines(rep)
    yt = check_file("ad", loud, ["youtube-instream"])
    assert f"ad: youtube-instream: loudness: integrated {i:.1f} LUFS in loud.mp4, target -14 +-1 LU" in lines(yt)
    normal = make_clip(tmp_path / "normal.mp4", gain_db=5.0)  # about -16 LUFS, peak about -13 dBTP
    assert lines(check_file("ad", normal, [])) == []


def test_a_flashing_clip_fails_and_a_slow_fade_passes(tmp_path) -> None:
    flashing = make_clip(tmp_path / "flash.mp4", video="nullsrc=s=64x64:r=24:d=2,geq=lum='if(lt(mod(N\\,4)\\,2)\\,220\\,30)':cb=128:cr=128")
    rep = check_file("ad", flashing, [])
    assert [x for x in lines(rep) if x.startswith("ad: flashes: 6 flashes in the second from ")]
    fade = make_clip(tmp_path / "fade.mp4", video="nullsrc=s=64x64:r=24:d=2,geq=lum='16+N*4':cb=128:cr=128")
    assert lines(check_file("ad", fade, [])) == []
    # the rule itself: 3 flashes a second is allowed, 4 is not; small flicker is no flash
    three = ([0] * 4 + [100] * 4) * 4  # a transition every 4 frames: 6 (3 flashes) in any 24
    assert max_flashes_per_second(three, 24)[0] == 3
    assert max_flashes_per_second([0, 0, 100, 100, 100, 0] * 4, 24)[0] == 4
    assert flash_transitions([50, 60, 50, 60, 50] * 10) == []


def test_captions_required_aspect_and_format(tmp_path) -> None:
    square = make_clip(tmp_path / "sq.mp4", size="180x180")
    assert ("ad: meta-feed-1x1: captions: required, but the file has no subtitle stream and no burned captions"
            in lines(check_file("ad", square, ["meta-feed-1x1"])))
    with_subs = make_clip(tmp_path / "sqs.mp4", size="180x180", subtitles=True)
    assert not [x for x in lines(check_file("ad", with_subs, ["meta-feed-1x1"])) if "captions" in x]
    burned = {"width": 180, "height": 180, "boxes": [{"kind": "caption", "text": "Hi", "x": 60, "y": 120, "w": 60,
                                                       "h": 20, "start": 0.0, "end": 1.0}]}
    assert not [x for x in lines(check_file("ad", square, ["meta-feed-1x1"], layout=burned)) if "captions" in x]
    supered = {"width": 180, "height": 180, "boxes": [{**burned["boxes"][0], "kind": "super"}]}  # words, not captions
    assert ("ad: meta-feed-1x1: captions: required, but the file has no subtitle stream and no burned captions"
            in lines(check_file("ad", square, ["meta-feed-1x1"], layout=supered)))
    assert "ad: tiktok: aspect: 180x180 is not 9:16" in lines(check_file("ad", square, ["tiktok"]))
    mpeg4 = make_clip(tmp_path / "m4.mp4", vcodec="mpeg4")
    assert "ad: format: video codec mpeg4, must be h264" in lines(check_file("ad", mpeg4, []))


# ---- checks and exports as build targets ----------------------------------------------------

from conftest import executed_tasks  # noqa: E402
from fakes.replicate_server import FakeReplicate  # noqa: E402

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"


@pytest.fixture
def live(project):
    with FakeReplicate(latency=0.02) as replicate:
        project.env.update(ADSPEC_BACKEND="", ADSPEC_C2PA="on", REPLICATE_API_TOKEN=REPLICATE_TOKEN,
                           REPLICATE_BASE_URL=replicate.base_url, REPLICATE_POLL_INTERVAL="0.01")
        yield project, replicate


def test_placements_added_to_a_built_ad_are_checked_and_exported_for_free(live) -> None:
    project, replicate = live
    project.write_spec("zip", small_spec(duration=6, beats=[
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle on a rock", "motion_prompt": "push in"},
        {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The logo", "motion_prompt": "pan left"}]))
    out = project.doit().stdout
    assert "check:zip" in executed_tasks(out)  # the rules of every ad, on every build
    ad = project.build / "zip"
    assert json.loads((ad / "checks.json").read_text())["passed"] is True
    requests, paid = len(replicate.requests), replicate.paid_creates
    assert paid > 0

    beats = [{"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle on a rock", "motion_prompt": "push in"},
             {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The logo", "motion_prompt": "pan left"}]
    # placements are local: adding them re-runs the plan files, checks and exports, and asks nothing;
    # YouTube's zone keeps the bottom 12 % clear (its progress bar): the words are drawn again, locally
    project.write_spec("zip", small_spec(duration=6, placements=["youtube-instream", "youtube-bumper"], beats=beats))
    proc = project.doit()
    assert len(replicate.requests) == requests and replicate.paid_creates == paid
    ran = executed_tasks(proc.stdout)
    assert {"export:zip/youtube-instream", "export:zip/youtube-bumper", "check:zip", "mix:zip"} <= set(ran)
    assert not {t for t in ran if t.split(":")[0] in ("storyboard", "chunk", "music", "voice", "stitch")}
    report = json.loads((ad / "checks.json").read_text())
    assert report["passed"] is True and report["placements"] == ["youtube-instream", "youtube-bumper"], report

    # exports meet their placements' loudness when measured; the video is the final's, copied
    for pid, target, ceiling in (("youtube-instream", -14.0, -1.0), ("youtube-bumper", -14.0, -1.0)):
        export = ad / "export" / f"{pid}.mp4"
        i, tp = loudness(export)
        assert abs(i - target) <= 1.0 and tp <= ceiling, (pid, i, tp)
        info, final = media.probe(export), media.probe(ad / "final.mp4")
        assert (info.vcodec, info.acodec, info.width, info.height) == ("h264", "aac", final.width, final.height)
        assert abs(info.duration - final.duration) <= 1 / 24 + 0.03
    assert len(replicate.requests) == requests

    # the export carries the provenance of the paid clips: their provider job ids, checked against the receipts
    verified = project.adspec("verify", str(ad / "export" / "youtube-bumper.mp4"))
    assert verified.returncode == 0, verified.stderr
    job = json.loads((ad / "beats" / "hook" / "chunk-0.receipt.json").read_text())["job_id"]
    assert job in replicate.predictions and f"job {job}" in verified.stdout
    assert len(replicate.requests) == requests

    # dropping a placement: its export goes and the next run does nothing
    project.write_spec("zip", small_spec(duration=6, placements=["youtube-instream"], beats=beats))
    project.doit()
    assert json.loads((ad / "checks.json").read_text())["passed"] is True
    assert executed_tasks(project.doit().stdout) == []
    assert not (ad / "export" / "youtube-bumper.mp4").exists()  # what ships is what the spec lists (it stayed)
    assert (ad / "export" / "youtube-instream.mp4").is_file()
    assert len(replicate.requests) == requests

    # `adspec check` takes the placements the spec lists now (it took the last build's): one added since is
    # checked on the final (mixed to -16 LUFS, not the -14 of its export yet): one line per rule, exit 1
    project.write_spec("zip", small_spec(duration=6, placements=["youtube-instream", "youtube-bumper"], beats=beats))
    cli = project.adspec("check", "zip")
    assert "zip: no export for youtube-bumper yet (`doit zip` makes it): checked on final.mp4" in cli.stderr, cli.stderr
    assert cli.returncode == 1 and len(cli.stdout.splitlines()) == 1, cli.stdout
    assert re.fullmatch(r"zip: youtube-bumper: loudness: integrated -1[56]\.\d LUFS in final\.mp4, target -14 \+-1 LU\n",
                        cli.stdout), cli.stdout
    assert len(replicate.requests) == requests

    # a placement the ad cannot meet is said by the plan step, before anything is made (a 6 s ad is no
    # 15 s CTV spot: its check failed after the whole ad was built)
    project.write_spec("zip", small_spec(duration=6, placements=["ctv-15"], beats=beats))
    proc = project.doit(check=False)
    assert proc.returncode != 0 and executed_tasks(proc.stdout) == ["plan:zip"], proc.stdout
    assert re.search(r"FAILED plan:zip: \S*specs/zip\.yaml:\d+: placements\.0: ctv-15 takes exactly 15 s and this ad lasts 6 s",
                     proc.stdout), proc.stdout
    assert len(replicate.requests) == requests


def test_a_drawn_box_in_a_placements_zone_is_a_safe_zone_violation() -> None:
    """The check reads text_layout.json's boxes (a build draws every text clear of its placements'
    zones: tests/test_text_layer.py; a layout drawn for TikTok's 20 % still fails Reels' 35 %)."""
    from adspec.checks import safe_zone_violations
    from adspec.placements import load_placements

    caption = {"kind": "caption", "text": "Meet Zip.", "x": 40, "y": 440, "w": 200, "h": 30, "start": 0.25, "end": 1.5}
    layout = {"width": 360, "height": 640, "boxes": [caption]}
    known = load_placements()
    assert safe_zone_violations(layout, known["tiktok"]) == []  # 470 <= 512: above TikTok's bottom 20 %
    assert safe_zone_violations(layout, known["instagram-reels"]) == [
        'caption "Meet Zip." at 0.25-1.50 s reaches into the bottom 35% (y 470 > 416 of 640)']


# ---- the timeline editors open -------------------------------------------------------------


def test_timeline_otio_loads_and_matches_the_final(project) -> None:
    import opentimelineio as otio

    spec = small_spec(duration=8, beats=[
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle", "motion_prompt": "push in",
         "voiceover": "Meet Zip."},
        {"id": "cta", "type": "cta", "duration": 5, "image_prompt": "The logo", "motion_prompt": "pan left"}])
    project.write_spec("zip", spec)
    project.doit()
    ad = project.build / "zip"
    timeline = otio.adapters.read_from_file(str(ad / "timeline.otio"))
    final = ad / "final.mp4"
    seconds = media.decoded_duration(final, "v")
    assert timeline.duration().to_seconds() == pytest.approx(seconds, abs=1 / 24)
    assert media.count_frames(final) == timeline.tracks[0].duration().to_frames()
    plan = json.loads((ad / "timeline.json").read_text())
    v1 = timeline.tracks[0]
    assert [m.name for m in v1.markers] == ["hook", "cta"]
    assert [(m.marked_range.start_time.to_seconds(), m.marked_range.duration.to_seconds()) for m in v1.markers] == [
        (0, 3), (3, 5)]
    used = []  # each beat's chunks, the last trimmed, their used ranges summing to the beat
    for beat in plan["beats"]:
        clips = [c for c in v1.find_clips() if c.name.startswith(beat["id"] + "/")]
        assert len(clips) == len(beat["clips"])
        assert sum(c.source_range.duration.to_seconds() for c in clips) == pytest.approx(beat["duration"])
        for c in clips:
            path = c.media_reference.target_url.removeprefix("file://")
            assert Path(path).parent == (ad / "beats" / beat["id"]).resolve()
            assert c.source_range.duration.to_seconds() <= media.probe(path).duration + 0.05
            # the media's own length (it gave the plan's clip length: a 6 s clip for an offline 3 s file)
            have = c.media_reference.available_range.duration.to_seconds()
            assert have == pytest.approx(media.probe(path).duration, abs=1 / 24), (c.name, have)
        used += clips
    # each beat's first clip starts where the beat starts in the final
    firsts = [next(c for c in used if c.name.startswith(b["id"] + "/")) for b in plan["beats"]]
    assert [v1.range_of_child(c).start_time.to_seconds() for c in firsts] == [b["start"] for b in plan["beats"]]
    names = [t.name for t in timeline.tracks]
    assert names == ["V1", "Voice", "Music"]
    voice = [c for c in timeline.tracks[1].find_clips()]
    assert [c.name for c in voice] == ["voice hook"]
    assert timeline.tracks[1].range_of_child(voice[0]).start_time.to_seconds() == pytest.approx(0.25)
    music = timeline.tracks[2].find_clips()[0]
    assert music.source_range.duration.to_seconds() == pytest.approx(8)
    assert music.media_reference.target_url == (ad / "music.wav").resolve().as_uri()
    # new chunks (another motion prompt; offline to live changes their lengths): the timeline follows
    spec["beats"][1]["motion_prompt"] = "tilt up"
    project.write_spec("zip", spec)
    assert "timeline:zip" in executed_tasks(project.doit().stdout)


# ---- provenance: C2PA inside the files ------------------------------------------------------


def test_final_and_exports_carry_a_c2pa_manifest_that_verify_checks(project) -> None:
    import c2pa

    project.env["ADSPEC_C2PA"] = "on"
    project.write_spec("zip", small_spec(duration=6, placements=["youtube-instream"], beats=[
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle on a rock", "motion_prompt": "push in"},
        {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The logo", "motion_prompt": "pan left"}]))
    project.doit()
    ad = project.build / "zip"
    final, export = ad / "final.mp4", ad / "export" / "youtube-instream.mp4"
    # the files end with their picture: the sound's priming and padding made them 6.02 s and 6.04 s
    for path in (final, export):
        assert 5.99 <= media.probe(path).duration <= 6.0, (path, media.probe(path).duration)
    checked = json.loads((ad / "checks.json").read_text())
    assert checked["measured"]["youtube-instream"]["file_seconds"] <= 6.0, checked
    # signed in place, readable as any other build file (the signed final was written 0600)
    assert final.stat().st_mode & 0o777 == (ad / "video.mp4").stat().st_mode & 0o777
    for path in (final, export):
        proc = project.adspec("verify", str(path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines()[-1] == f"{path}: ok"
        assert "trainedAlgorithmicMedia" in proc.stdout and "adspec local test CA" in proc.stdout
    manifest = c2pa.Reader(str(final)).get_active_manifest()
    assert manifest is not None
    ingredients = {i["title"]: i["metadata"]["adspec"] for i in manifest["ingredients"]}
    assert set(ingredients) == {"beats/hook/storyboard.png", "beats/cta/storyboard.png",
                                "beats/hook/chunk-0.mp4", "beats/cta/chunk-0.mp4"}
    receipt = json.loads((ad / "beats" / "hook" / "storyboard.receipt.json").read_text())
    assert ingredients["beats/hook/storyboard.png"]["sha256"] == receipt["sha256"]
    assert ingredients["beats/hook/storyboard.png"]["model"] == "flux-dev"
    # the media is the mix's: the manifest sits beside it, the picture and sound are unchanged
    assert media.probe(final).vcodec == "h264" and media.count_frames(final) == 6 * 24

    # a copy out of the build (a CI artifact): its signature and hash are checked, and said to be all
    # (it FAILED: "no build beside the file"); with --build, its ingredients too
    copied = project.root / "download" / "final.mp4"
    copied.parent.mkdir()
    copied.write_bytes(final.read_bytes())
    proc = project.adspec("verify", str(copied))
    assert proc.returncode == 0 and "its ingredients are not matched with receipts" in proc.stdout, proc.stdout + proc.stderr
    proc = project.adspec("verify", str(copied), "--build", str(ad))
    assert proc.returncode == 0 and "not matched" not in proc.stdout, proc.stdout + proc.stderr
    flipped = bytearray(final.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    copied.write_bytes(bytes(flipped))
    assert project.adspec("verify", str(copied)).returncode == 1  # a flipped byte still fails without a build

    # one byte of the video changed: the file's hash no longer matches its signed manifest
    data = bytearray(final.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = ad / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    proc = project.adspec("verify", str(tampered))
    assert proc.returncode == 1 and "Hash.mismatch" in proc.stderr and proc.stdout.splitlines()[-1].endswith("FAILED")

    # one byte of a receipt changed: the ingredient no longer matches what the build says it made
    path = ad / "beats" / "hook" / "storyboard.receipt.json"
    text = path.read_text()
    sha = receipt["sha256"]
    path.write_text(text.replace(sha, ("0" if sha[0] != "0" else "1") + sha[1:]))
    proc = project.adspec("verify", str(final))
    assert proc.returncode == 1
    assert f"ingredient beats/hook/storyboard.png: sha256 {sha[:12]}… in the manifest" in proc.stderr
    # a receipt's model edited by hand: its recipe no longer hashes to its key (it passed before)
    edited = json.loads(text)
    edited["recipe"]["model"] = "flux-schnell"
    path.write_text(json.dumps(edited))
    proc = project.adspec("verify", str(final))
    assert proc.returncode == 1 and "does not hash to its recipe key" in proc.stderr, proc.stdout + proc.stderr
    path.write_text(text)
    assert project.adspec("verify", str(final)).returncode == 0

    # the setting is the signing tasks' config: off re-makes the final and the export unsigned, on signs them again
    # (it was read only inside the actions, so both kept their old state)
    for setting, signed in (("off", False), ("on", True)):
        project.env["ADSPEC_C2PA"] = setting
        planned = json.loads(project.adspec("estimate", "--json", "zip").stdout)["ads"][0]["targets"]
        assert "mix:zip" in {t["target"] for t in planned}  # the estimate says so too (it said all was current)
        project.doit()
        for path in (final, export):
            proc = project.adspec("verify", str(path))
            assert (proc.returncode == 0) is signed, (setting, path, proc.stdout + proc.stderr)
            assert signed or "no readable C2PA manifest" in proc.stderr

    # a clip asked by another recipe that comes out the same bytes (offline: another prompt of the same
    # camera move): the mix read nothing new and was skipped, and the final and the export kept a manifest
    # naming the old request (`adspec verify` FAILED both, and went on failing after every doit)
    project.write_spec("zip", small_spec(duration=6, placements=["youtube-instream"], beats=[
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle on a rock", "motion_prompt": "push in"},
        {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The logo", "motion_prompt": "pan left over it"}]))
    clip = (ad / "beats" / "cta" / "chunk-0.mp4").read_bytes()
    ran = executed_tasks(project.doit().stdout)
    assert "chunk:zip/cta/0" in ran and (ad / "beats" / "cta" / "chunk-0.mp4").read_bytes() == clip, ran
    assert "mix:zip" in ran and "export:zip/youtube-instream" in ran, ran
    for path in (final, export):
        proc = project.adspec("verify", str(path))
        assert proc.returncode == 0, proc.stdout + proc.stderr

    # a placement no longer listed: its export goes (export/ is what ships), the rest of the build stays
    project.write_spec("zip", small_spec(duration=6, placements=[], beats=[
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle on a rock", "motion_prompt": "push in"},
        {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The logo", "motion_prompt": "pan left"}]))
    project.doit()
    assert final.is_file() and not export.exists() and export.parent.is_dir()

    # a beat taken out leaves its files (paid for, kept) but not the manifest: it listed every
    # file under beats/, and verify said ok for ingredients the ad no longer has
    project.write_spec("zip", small_spec(duration=6, placements=[], beats=[
        {"id": "hook", "type": "hook", "duration": 6, "image_prompt": "A bottle on a rock", "motion_prompt": "push in"}]))
    project.doit()
    assert (ad / "beats" / "cta" / "chunk-0.mp4").is_file()
    manifest = c2pa.Reader(str(final)).get_active_manifest()
    titles = {i["title"] for i in manifest["ingredients"]}
    assert titles == {"beats/hook/storyboard.png", "beats/hook/chunk-0.mp4"}, titles
    receipts = next(a for a in manifest["assertions"] if a["label"] == "com.adspec.receipts")["data"]["artifacts"]
    assert not any(r["path"].startswith("beats/cta/") for r in receipts), receipts
    assert project.adspec("verify", str(final)).returncode == 0


def test_export_copies_what_holds_and_caps_what_does_not(tmp_path) -> None:
    from adspec.media_delivery import export, file_facts

    clip = make_clip(tmp_path / "c.mp4", seconds=3, size="640x360",
                     video="testsrc2=s=640x360:r=24:d=3")  # busy picture: a high bitrate at x264's defaults
    i, tp = loudness(clip)
    out = tmp_path / "same.mp4"
    assert export(clip, out, lufs=round(i), true_peak=-1.0, max_video_kbps=50000, audio_kbps=192) is True
    assert (loudness(out)[0] == pytest.approx(i, abs=0.1) and file_facts(out).audio_kbps == file_facts(clip).audio_kbps)
    capped = tmp_path / "capped.mp4"
    before = file_facts(clip).video_kbps
    assert before is not None and before > 400
    assert export(clip, capped, lufs=-24, true_peak=-2, max_video_kbps=300, audio_kbps=128) is False
    after = file_facts(capped)
    assert after.video_kbps is not None and after.video_kbps <= 300
    got, peak = loudness(capped)
    assert abs(got + 24) <= 0.5 and peak <= -2
    assert media.count_frames(capped) == media.count_frames(clip)


def test_signing_with_the_users_key_and_certificate(tmp_path, monkeypatch) -> None:
    import shutil

    from adspec import provenance
    from adspec.errors import ProvenanceError
    from adspec.paths import AdPaths

    # a certificate of the user's own (here: another CA made the same way, kept elsewhere)
    theirs = tmp_path / "theirs"
    provenance._make_local_ca(theirs)
    monkeypatch.setenv("ADSPEC_C2PA_KEY", str(theirs / "signer.key"))
    monkeypatch.delenv("ADSPEC_C2PA_CERT", raising=False)
    with pytest.raises(ProvenanceError, match="set both ADSPEC_C2PA_KEY and ADSPEC_C2PA_CERT"):
        provenance.signing_identity(tmp_path / "build")
    monkeypatch.setenv("ADSPEC_C2PA_CERT", str(theirs / "signer.pem"))
    ident = provenance.signing_identity(tmp_path / "build")
    assert not ident.local and ident.alg == "ed25519"
    assert not (tmp_path / "build" / ".adspec" / "c2pa").exists()  # no local CA made when the user signs

    # a build folder with one receipt-backed storyboard is enough to sign and verify
    root = tmp_path / "build" / "ad"
    (root / "beats" / "hook").mkdir(parents=True)
    (root / "plan.json").write_text("{}")
    from PIL import Image

    Image.new("RGB", (32, 32), "#ff5a1f").save(root / "beats" / "hook" / "storyboard.png")
    from adspec.hashing import sha256_file, sha256_json

    sha = sha256_file(root / "beats" / "hook" / "storyboard.png")
    recipe = {"provider": "replicate", "kind": "image", "model": "flux-dev"}
    (root / "beats" / "hook" / "storyboard.receipt.json").write_text(json.dumps({
        "artifact": "storyboard.png", "task": "storyboard:ad/hook", "sha256": sha, "key": sha256_json(recipe),
        "recipe": recipe, "job_id": "pred-123",
        "cost_usd": 0.025, "cache_hit": False, "generated_at": "", "generation_seconds": 1.0, "received_at": "",
        "run": "r", "version": 1}))
    final = root / "final.mp4"
    shutil.copy(make_clip(tmp_path / "clip.mp4"), final)
    provenance.sign_file(final, AdPaths(root), "ad", tmp_path / "build")
    verdict = provenance.verify(final)
    assert verdict.ok, verdict.problems
    assert any("ingredient beats/hook/storyboard.png: flux-dev (replicate), job pred-123" in x for x in verdict.chain)
