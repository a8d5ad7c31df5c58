"""The lock's rules: the five cases of `decide`, what shapes the plan, and the beat file's text."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adspec.beat_lock import (
    Decision,
    content_sha256,
    decide,
    is_hand_edited,
    planned_from_for,
    render_beat_file,
    spec_sha256,
    write_beat_file,
)
from adspec.errors import LockError, SpecError
from adspec.hashing import sha256_json
from adspec.loader import load_beat_file, load_spec, parse_beat_file_text
from adspec.offline_planner import plan_spec_offline
from adspec.paths import beat_file_path
from adspec.plan_rules import plan_shaping_fields
from adspec.registry import load_registry
from adspec.spec import Beat, BeatPlan, Music, PlannedFrom, Spec
from conftest import Project, small_spec
from fakes.openai_server import FakeOpenAI
from reliability import OPENAI_KEY

REG = load_registry()

SPEC = """\
title: Trail
prompt: Create a 30-second ad for the TrailRunner X running shoe in {{ city }}.
duration: 30
style: energetic
brand: {name: Stride, tagline: Own every mile, colors: ["#FF5A1F", "#111111"]}
vars: {city: Denver}
seed: 7
"""


def project(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "specs" / "trail.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def plan_into(spec_path: Path) -> str:
    """What the plan step does for PLAN: plan offline, render, write atomically."""
    spec = load_spec(spec_path)
    plan = plan_spec_offline(spec)
    text = render_beat_file(plan, planned_from_for(plan, spec_sha256(spec, REG), "offline"))
    write_beat_file(beat_file_path(spec_path), text)
    return text


def decide_for(spec_path: Path) -> Decision:
    spec = load_spec(spec_path)
    beats = beat_file_path(spec_path)
    text = beats.read_text(encoding="utf-8") if beats.exists() else None
    return decide(spec, spec_sha256(spec, REG), text, spec_path=spec_path, beats_path=beats)


# ---- the five cases -----------------------------------------------------------------------------


def test_missing_beat_file_plans(tmp_path: Path) -> None:
    spec_path = project(tmp_path)
    assert decide_for(spec_path) is Decision.PLAN


def test_unchanged_spec_keeps_even_when_hand_edited(tmp_path: Path) -> None:
    spec_path = project(tmp_path)
    plan_into(spec_path)
    assert decide_for(spec_path) is Decision.KEEP
    beats = beat_file_path(spec_path)
    beats.write_text(beats.read_text().replace("duration: 3\n", "duration: 4\n", 1).replace(
        "duration: 4\n    image_prompt: >-\n      A relatable", "duration: 3\n    image_prompt: >-\n      A relatable", 1))
    assert is_hand_edited(load_beat_file(beats))
    assert decide_for(spec_path) is Decision.KEEP


def test_changed_spec_untouched_beat_file_replans(tmp_path: Path) -> None:
    spec_path = project(tmp_path)
    plan_into(spec_path)
    spec_path.write_text(SPEC.replace("duration: 30", "duration: 20"))
    assert decide_for(spec_path) is Decision.PLAN
    plan_into(spec_path)
    assert sum(b.duration for b in load_beat_file(beat_file_path(spec_path)).beats) == 20
    assert decide_for(spec_path) is Decision.KEEP


def test_changed_spec_hand_edited_beat_file_that_still_fits_is_kept(tmp_path: Path) -> None:
    spec_path = project(tmp_path)
    text = plan_into(spec_path)
    beats = beat_file_path(spec_path)
    beats.write_text(text.replace("slow macro slide along the detail", "a slow orbit of the sole"))
    spec_path.write_text(SPEC.replace("style: energetic", "style: calm"))
    assert decide_for(spec_path) is Decision.KEEP  # the edit is the user's, and it fits the spec
    assert beats.read_text().count("a slow orbit of the sole") == 1


def test_changed_spec_hand_edited_beat_file_that_no_longer_fits_stops(tmp_path: Path) -> None:
    spec_path = project(tmp_path)
    text = plan_into(spec_path)
    beats = beat_file_path(spec_path)
    beats.write_text(text.replace("slow macro slide along the detail", "a slow orbit of the sole"))
    spec_path.write_text(SPEC.replace("duration: 30", "duration: 20"))  # the beats still last 30 s
    with pytest.raises(LockError) as info:
        decide_for(spec_path)
    msg = info.value.one_line()
    assert str(spec_path) in msg and str(beats) in msg and "adspec plan --force trail" in msg
    assert "no longer fits" in msg and "20 s" in msg
    assert "\n" not in str(info.value)
    assert beats.read_text().count("a slow orbit of the sole") == 1  # nothing overwritten
    spec = load_spec(spec_path)
    assert decide(spec, spec_sha256(spec, REG), beats.read_text(), force=True) is Decision.PLAN


def test_hand_written_beat_file_is_kept_while_it_fits(tmp_path: Path) -> None:
    from adspec.beat_lock import HAND_WRITTEN, record_for, with_record

    spec_path = project(tmp_path)
    hand = ("# mine\nversion: 1\nmusic: {prompt: x, bpm: 90}  # the bed\nbeats:\n"
            "  - {id: hook, type: hook, duration: 4, image_prompt: a, motion_prompt: b}\n"
            "  - {id: cta, type: cta, duration: 26, image_prompt: a, motion_prompt: b}\n")
    beat_file_path(spec_path).write_text(hand)
    spec_path.write_text(SPEC.replace("seed: 7", "seed: 8"))
    assert decide_for(spec_path) is Decision.KEEP
    spec = load_spec(spec_path)
    record = record_for(parse_beat_file_text(hand, "b"), spec_sha256(spec, REG))
    assert record is not None and record.planner == HAND_WRITTEN and record.content_sha256 is None
    recorded = with_record(hand, record)
    assert recorded is not None and recorded.replace(
        f"planned_from:\n  spec_sha256: {record.spec_sha256}\n  planner: hand\n  library: '1'\n", "") == hand
    assert is_hand_edited(parse_beat_file_text(recorded, "b"))  # never mistaken for a planner's file
    crlf = with_record(hand.replace("\n", "\r\n"), record)  # saved on Windows: the record's lines too (it mixed)
    assert crlf is not None and crlf == recorded.replace("\n", "\r\n")
    spec_path.write_text(SPEC.replace("duration: 30", "duration: 20"))  # no longer fits: its own error
    with pytest.raises(SpecError, match="30 s in total"):
        decide_for(spec_path)


def test_inline_beats_never_plan(tmp_path: Path) -> None:
    inline = SPEC.replace("duration: 30", "duration: 10") + (
        "beats:\n"
        "  - {id: hook, type: hook, duration: 4, image_prompt: 'shoe in {{ city }}', motion_prompt: run}\n"
        "  - {id: cta, type: cta, duration: 6, image_prompt: logo, motion_prompt: hold}\n")
    spec_path = project(tmp_path, inline)
    assert decide_for(spec_path) is Decision.INLINE
    beat_file_path(spec_path).write_text("garbage: [")
    assert decide_for(spec_path) is Decision.INLINE  # the beat file is not even read


def test_broken_beat_file_reports_its_error(tmp_path: Path) -> None:
    spec_path = project(tmp_path)
    beat_file_path(spec_path).write_text("version: 1\nmusic: {prompt: x, bpm: 90}\nbeats: [\n")
    with pytest.raises(SpecError, match=r"trail.beats.yaml:\d+: invalid YAML"):
        decide_for(spec_path)


# ---- what shapes the plan -----------------------------------------------------------------------


@pytest.mark.parametrize("old, new", [
    ("title: Trail", "title: Something else"),
    ("seed: 7", "seed: 99"),
    ('colors: ["#FF5A1F", "#111111"]', 'colors: ["#000000"]'),
    ("city: Denver", "city: Boulder"),
    ("tagline: Own every mile", "tagline: Run further"),  # drawn by code: shapes no plan (issue 17)
    ("seed: 7", "seed: 7\naspect_ratio: '9:16'\nresolution: 1080p\nnative_audio: true"),
    ("seed: 7", "seed: 7\nmodels: {image: flux-schnell, music: musicgen, video: hailuo-02}"),  # same clip lengths
])
def test_non_shaping_changes_do_not_replan(tmp_path: Path, old: str, new: str) -> None:
    spec_path = project(tmp_path)
    plan_into(spec_path)
    assert old in SPEC
    spec_path.write_text(SPEC.replace(old, new))
    assert decide_for(spec_path) is Decision.KEEP


@pytest.mark.parametrize("old, new", [
    ("duration: 30", "duration: 45"),
    ("style: energetic", "style: calm"),
    ("prompt: Create", "prompt: Please create"),
    ("name: Stride", "name: Stryde"),
    ("city: Denver", "city: Denver, town: Golden"),  # a new var NAME
    ("seed: 7", "seed: 7\nmodels: {video: veo-3.1}"),  # other clip lengths
    ("seed: 7", "seed: 7\nmodels: {planner: gpt-4o}"),
])
def test_shaping_changes_replan(tmp_path: Path, old: str, new: str) -> None:
    spec_path = project(tmp_path)
    plan_into(spec_path)
    spec_path.write_text(SPEC.replace(old, new))
    assert decide_for(spec_path) is Decision.PLAN


def test_shaping_fields_exactly() -> None:
    spec = Spec.model_validate(yaml.safe_load(SPEC))
    fields = plan_shaping_fields(spec, REG)
    assert fields == {
        "prompt": spec.prompt, "duration": 30, "style": "energetic",
        "brand": {"name": "Stride"}, "assets": [], "vars": ["city"],
        "planner": "gpt-4.1", "clip_lengths": [6, 10],
    }
    assert spec_sha256(spec, REG) == sha256_json(fields)


# ---- the beat file's text -----------------------------------------------------------------------


def test_beat_file_text_round_trips_and_reads_well(tmp_path: Path) -> None:
    spec = Spec.model_validate(yaml.safe_load(SPEC))
    plan = plan_spec_offline(spec)
    pf = planned_from_for(plan, spec_sha256(spec, REG), "offline")
    text = render_beat_file(plan, pf, clip_lengths=[6, 10])
    assert text.startswith("# ") and "yaml-language-server: $schema=" in text
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body[:2] == ["version: 1", "planned_from:"]
    keys = [line.strip().split(":")[0].lstrip("- ") for line in text.splitlines() if line.startswith("  - id:") or
            line.startswith("    ") and ":" in line and not line.startswith("      ")]
    assert keys[:5] == ["id", "type", "duration", "image_prompt", "motion_prompt"]
    assert "  # 3 s from 1 clip (6 s), 3 s trimmed" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    bf = parse_beat_file_text(text, "x.beats.yaml", spec)
    assert bf.music == plan.music and bf.beats == plan.beats and bf.planned_from == pf
    assert not is_hand_edited(bf)
    assert pf.content_sha256 == content_sha256(plan.music, plan.beats)


@pytest.mark.parametrize("prompt", [
    "plain", "with: a colon", "'quoted' and \"double\"", "#not a comment", "{{ city }} first", "- dash",
    "x" * 300, "word " * 60 + "end", "ünïcødé — dashes “quotes”", "yes", "123", "null", "a  two  spaces " * 8,
])
def test_render_round_trips_odd_prompts(prompt: str) -> None:
    plan = BeatPlan(music=Music(prompt=prompt.strip() or "x", bpm=100),
                    beats=[Beat(id="hook", type="hook", duration=4, image_prompt=prompt, motion_prompt=prompt)])
    pf = PlannedFrom(spec_sha256="0" * 64, planner="offline", library="1", content_sha256="1" * 64)
    bf = parse_beat_file_text(render_beat_file(plan, pf), "x")
    assert bf.beats == plan.beats and bf.music == plan.music and bf.planned_from == pf


def test_write_beat_file_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "specs" / "a.beats.yaml"
    write_beat_file(target, "version: 1\n")
    write_beat_file(target, "version: 1\n# second\n")
    assert target.read_text() == "version: 1\n# second\n"
    assert [p.name for p in target.parent.iterdir()] == ["a.beats.yaml"]  # no temp files left


def test_committed_example_beat_files_are_current() -> None:
    """A fresh checkout builds without planning: every example's lock says KEEP."""
    repo = Path(__file__).resolve().parents[1]
    for name in ("trailrunner", "glowserum", "brewbox"):
        spec_path = repo / "specs" / f"{name}.yaml"
        assert decide_for(spec_path) is Decision.KEEP, name
        assert not is_hand_edited(load_beat_file(beat_file_path(spec_path)))


# ---- a hand edit made while the planner answers (issue 12, point 5) ------------------------------


def _wait(cond, proc: subprocess.Popen, what: str) -> None:
    for _ in range(6000):
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"`adspec plan` ended before {what}: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError(f"never {what}")


@pytest.mark.parametrize("force", [False, True])
def test_hand_edit_during_the_planner_call_is_kept(project: Project, force: bool) -> None:
    """The lock decides PLAN (the spec's duration changed, the beat file is as planned), the
    planner is asked, and while it answers the user edits the beat file: the edit is kept, the
    command stops with the lock's message, and the planner's answer is not lost (replanning with
    --force pays nothing)."""
    spec = small_spec(duration=15)
    del spec["beats"], spec["music"]
    project.write_spec("zip", spec)
    beats = project.beats_file("zip")
    with FakeOpenAI() as oai:
        project.env.update(ADSPEC_BACKEND="", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=oai.base_url)
        assert project.adspec("plan", "zip").returncode == 0 and oai.count == 1
        spec["duration"] = 20  # shapes the plan: the lock says PLAN
        project.write_spec("zip", spec)
        oai.hold.clear()  # the planner "thinks" until the test lets it answer
        args = ["plan", "zip", *(["--force"] if force else [])]
        proc = subprocess.Popen([sys.executable, "-m", "adspec.cli", *args], cwd=project.root,
                                env=project.run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait(lambda: oai.count == 2, proc, "the planner was asked")
            edited = beats.read_text().replace("image_prompt:", "image_prompt: MY OWN WORDS", 1)
            beats.write_text(edited)  # the user's edit, made while the planner answers
        finally:
            oai.hold.set()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, out + err
        assert beats.read_text() == edited  # the hand edit stands
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(beats.name) in lines[0] and "your file is kept" in lines[0]
        if not force:
            assert "not replanning over your edits" in lines[0]  # the lock's own message
        assert oai.count == 2
        # the answer was paid for and kept: replanning over the edit asks nothing new
        assert project.adspec("plan", "--force", "zip").returncode == 0
        assert oai.count == 2 and "MY OWN WORDS" not in beats.read_text()
        assert sum(b.duration for b in load_beat_file(beats).beats) == 20


def test_recheck_rules(tmp_path: Path) -> None:
    """What `recheck` does with each state the beat file can be in when the planner answers."""
    from adspec.beat_lock import recheck, text_sha256

    spec_path = project(tmp_path)
    old_text = plan_into(spec_path)  # planned for the 30 s spec
    spec_path.write_text(SPEC.replace("duration: 30", "duration: 20"))
    spec = load_spec(spec_path)
    sha = spec_sha256(spec, REG)
    seen = text_sha256(old_text)
    new_plan = plan_spec_offline(spec)
    new_text = render_beat_file(new_plan, planned_from_for(new_plan, sha, "offline"))
    kw = dict(spec_path=spec_path, beats_path=beat_file_path(spec_path), planned_text=new_text)
    assert recheck(spec, sha, seen, old_text, **kw) is True  # untouched: write
    assert recheck(spec, sha, seen, None, **kw) is True  # deleted meanwhile: write
    assert recheck(spec, sha, seen, new_text, **kw) is False  # another run wrote this plan: keep
    edited = old_text.replace("slow macro slide along the detail", "a slow orbit of the sole")
    assert edited != old_text
    with pytest.raises(LockError, match="edited by hand.*your file is kept"):
        recheck(spec, sha, seen, edited, **kw)
    # there was none; one that fits was written by hand meanwhile: kept, not written over
    assert recheck(spec, sha, None, "version: 1\nmusic: {prompt: x, bpm: 90}\nbeats:\n"
                   "  - {id: hook, type: hook, duration: 20, image_prompt: a, motion_prompt: b}\n", **kw) is False
    with pytest.raises(LockError, match="your file is kept"):
        recheck(spec, sha, seen, edited, force=True, **kw)


def test_a_beat_file_planned_again_is_kept_as_it_was_and_said(project: Project) -> None:
    """The lock compares the beats and music only: comments a person added to a planned beat file
    did not count as an edit, so a plan-shaping spec change planned over them without a word,
    and `plan --force` dropped edits the same way. Now the file replaced is copied to
    build/.adspec/replaced/ and the line says where."""
    spec = small_spec(duration=15)
    del spec["beats"], spec["music"]
    project.write_spec("zip", spec)
    beats = project.beats_file("zip")
    assert project.adspec("plan", "zip").returncode == 0
    from adspec.beat_lock import as_planned

    assert as_planned(beats.read_text())
    spec["duration"] = 18  # a replan over a file as the planner wrote it loses nothing: no copy, no warning
    project.write_spec("zip", spec)
    proc = project.doit("plan:zip")
    assert not (project.build / ".adspec" / "replaced").exists() and "kept as" not in proc.stdout + proc.stderr
    assert as_planned(beats.read_text())
    noted = beats.read_text().replace("beats:\n", "beats:  # CLIENT NOTE: keep the red cap\n", 1)
    assert not as_planned(noted)
    assert noted != beats.read_text()
    beats.write_text(noted)
    spec["duration"] = 20  # shapes the plan; the file's beats are as planned: the lock plans again
    project.write_spec("zip", spec)
    proc = project.doit("plan:zip")
    assert "CLIENT NOTE" not in beats.read_text()
    [kept] = list((project.build / ".adspec" / "replaced").glob("zip.beats.*.yaml"))
    assert kept.read_text() == noted
    said = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "planned again" in ln]
    assert len(said) == 1 and "the spec changed in fields that shape the plan" in said[0], proc.stdout + proc.stderr
    assert f"build/.adspec/replaced/{kept.name}" in said[0]

    edited = beats.read_text().replace("image_prompt:", "image_prompt: MY OWN WORDS", 1)
    beats.write_text(edited)
    proc = project.adspec("plan", "--force", "zip")
    assert proc.returncode == 0 and "MY OWN WORDS" not in beats.read_text()
    assert "planned again (--force)" in proc.stderr, proc.stderr
    copies = sorted((project.build / ".adspec" / "replaced").glob("zip.beats.*.yaml"))
    assert len(copies) == 2 and edited in [c.read_text() for c in copies]
