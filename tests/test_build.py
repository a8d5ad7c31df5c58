"""The build graph end to end with the real doit and the offline providers: what runs, what is
paid (the cache's ledger counts every request actually run), and what is only rebuilt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from adspec import media
from conftest import REPO, Project, executed_tasks, small_spec


def kinds(entries: list[dict]) -> list[str]:
    return sorted(e["kind"] for e in entries)


def mean_abs_diff(a: Path, b: Path) -> float:
    from PIL import Image, ImageChops, ImageStat

    with Image.open(a) as ia, Image.open(b) as ib:
        ia, ib = ia.convert("RGB"), ib.convert("RGB").resize(ia.size)
        return sum(ImageStat.Stat(ImageChops.difference(ia, ib)).mean) / 3


def test_full_build_then_noop(project: Project) -> None:
    project.write_spec("zip", small_spec())
    out = project.doit().stdout
    final = project.build / "zip" / "final.mp4"
    info = media.probe(final)
    assert (info.vcodec, info.acodec, info.width, info.height) == ("h264", "aac", 640, 360)
    assert abs(info.duration - 8.0) <= 1 / 24 + 0.03
    ran = executed_tasks(out)
    assert {"plan:zip", "storyboard:zip/hook", "storyboard:zip/cta", "chunk:zip/hook/0", "chunk:zip/cta/0",
            "music:zip", "stitch:zip", "mix:zip"} <= set(ran)
    assert kinds(project.ledger()) == ["image", "image", "music", "video", "video"]
    # receipts sit beside every generated artifact and match the cache's key
    receipt = yaml.safe_load((project.build / "zip" / "beats" / "hook" / "storyboard.receipt.json").read_text())
    assert receipt["key"] in {e["key"] for e in project.ledger()} and receipt["cache_hit"] is False

    again = project.doit()
    assert executed_tasks(again.stdout) == []
    assert len(project.ledger()) == 5


def test_receipt_of_another_version_is_a_rebuild_not_a_payment(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit()
    path = project.build / "zip" / "beats" / "hook" / "storyboard.receipt.json"
    receipt = json.loads(path.read_text())
    assert receipt["version"] == 1
    path.write_text(json.dumps({**receipt, "version": 0}))  # as an older (or newer) adspec wrote it
    out = project.doit().stdout
    assert "storyboard:zip/hook" in executed_tasks(out)
    assert len(project.ledger()) == 5  # served by the request cache: nothing is paid again
    again = json.loads(path.read_text())
    assert again["version"] == 1 and again["cache_hit"] is True and again["key"] == receipt["key"]


def test_edit_one_beat_regenerates_only_that_beat(project: Project) -> None:
    spec = small_spec()
    project.write_spec("zip", spec)
    project.doit()
    before = len(project.ledger())
    spec["beats"][0]["image_prompt"] = "A bottle on a wet rock at dawn"
    project.write_spec("zip", spec)
    out = project.doit().stdout
    new = project.ledger()[before:]
    assert kinds(new) == ["image", "video"]
    ran = set(executed_tasks(out))
    assert {"storyboard:zip/hook", "chunk:zip/hook/0", "stitch:zip", "mix:zip"} <= ran
    assert not ran & {"storyboard:zip/cta", "chunk:zip/cta/0", "music:zip"}


def test_edit_one_beat_mixes_only_that_beat_again(project: Project) -> None:
    """With captions burned over both beats, editing the first beat's picture draws the words
    again over its seconds only and makes no sound again (both kept from the last mix), and the
    final is the same file a mix from nothing makes."""
    spec = small_spec()
    spec["beats"][0]["voiceover"] = "Meet the Zip bottle."
    spec["beats"][1]["voiceover"] = "Drink more, carry less."
    project.write_spec("zip", spec)
    project.doit()
    parts = project.build / "zip" / "mix-parts"

    def kept() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in parts.iterdir() if p.suffix in (".mp4", ".m4a")}

    first = kept()
    sound = [n for n in first if n.startswith("sound-")]
    assert len(sound) == 1 and sum(n.endswith(".mp4") for n in first) == 2  # a piece per beat's clip
    lumas = json.loads((parts / "lumas.json").read_text())["gops"]  # the checks' flash measure, by GOP
    assert len(lumas) == 8 and all(len(v) == 24 for v in lumas.values())
    spec["beats"][0]["image_prompt"] = "A bottle on a wet rock at dawn"
    project.write_spec("zip", spec)
    assert "mix:zip" in executed_tasks(project.doit().stdout)
    second = kept()
    same = set(first) & set(second)
    assert sound[0] in same and len(same) == 2 and len(second) == 3  # the cta's piece and the sound reused
    assert all(first[n] == second[n] for n in same)  # not written again
    again = json.loads((parts / "lumas.json").read_text())["gops"]
    assert len(set(again) & set(lumas)) == 5  # the cta's five seconds, the same coded bytes: not decoded again
    final = project.build / "zip" / "final.mp4"
    edited = final.read_bytes()
    project.doit("clean", "mix:zip")
    assert not parts.exists() and not final.exists()
    assert "mix:zip" in executed_tasks(project.doit().stdout)
    assert final.read_bytes() == edited


def test_edit_music_prompt_makes_one_music_call(project: Project) -> None:
    spec = small_spec()
    project.write_spec("zip", spec)
    project.doit()
    before = len(project.ledger())
    spec["music"]["prompt"] = "calm piano"
    project.write_spec("zip", spec)
    project.doit()
    assert kinds(project.ledger()[before:]) == ["music"]


def test_reorder_beats_costs_nothing_and_changes_the_video(project: Project, tmp_path: Path) -> None:
    spec = small_spec()
    spec["beats"] = [dict(spec["beats"][0], duration=4), dict(spec["beats"][1], duration=4)]
    project.write_spec("zip", spec)
    project.doit()
    before = len(project.ledger())
    spec["beats"].reverse()
    project.write_spec("zip", spec)
    project.doit()
    assert project.ledger()[before:] == []
    first = media.first_frame(project.build / "zip" / "final.mp4", tmp_path / "first.png")
    assert mean_abs_diff(first, project.build / "zip" / "beats" / "cta" / "storyboard.png") < 8
    assert mean_abs_diff(first, project.build / "zip" / "beats" / "hook" / "storyboard.png") > 8


def test_clean_then_build_pays_nothing_and_is_identical(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit()
    final = project.build / "zip" / "final.mp4"
    first_bytes = final.read_bytes()
    before = len(project.ledger())
    project.doit("clean")
    assert not final.exists()
    project.doit()
    assert len(project.ledger()) == before
    assert final.read_bytes() == first_bytes


def test_two_ads_sharing_a_recipe_pay_once(project: Project) -> None:
    project.write_spec("one", small_spec())
    other = small_spec(title="Another title")  # title shapes nothing the providers see
    other["beats"][1] = dict(other["beats"][1], image_prompt="A different end frame")
    project.write_spec("two", other)
    project.doit("-n", "2", "-P", "thread")
    ledger = project.ledger()
    assert len({e["key"] for e in ledger}) == len(ledger)
    # one: 2 images, 2 chunks, 1 music; two adds only its own cta image and chunk
    assert kinds(ledger) == ["image", "image", "image", "music", "video", "video", "video"]


def test_two_doit_processes_at_once_pay_each_key_once(project: Project) -> None:
    project.write_spec("zip", small_spec())
    cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")]
    procs = [subprocess.Popen(cmd, cwd=project.root, env=project.run_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ledger = project.ledger()
    assert len({e["key"] for e in ledger}) == len(ledger) == 5
    assert media.probe(project.build / "zip" / "final.mp4").duration > 7.9


def test_corrupted_blob_is_detected_regenerated_and_reported(project: Project) -> None:
    from adspec.cache import RequestCache

    project.write_spec("zip", small_spec())
    project.doit()
    image = next(e for e in project.ledger() if e["kind"] == "image")
    # the cache keeps the provider's bytes; damage them behind adspec's back
    cache = RequestCache(project.cache)
    entry = cache._db.get("entry:" + image["key"])
    cache.close()
    (project.cache / "blobs" / entry["sha256"][:2] / entry["sha256"]).write_bytes(b"not an image any more")
    before = len(project.ledger())
    project.doit("clean")
    out = project.doit()
    new = project.ledger()[before:]
    assert [e["key"] for e in new] == [image["key"]]
    assert "dropped" in out.stderr + out.stdout
    assert media.probe(project.build / "zip" / "final.mp4").duration > 7.9
