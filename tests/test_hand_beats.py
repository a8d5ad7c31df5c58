"""Issue 15, point 1: a beat file written by hand builds, and stays the user's text; removing a
beat from the beat file rebuilds on the first `doit` (the task graph follows the beat file, not
a stale plan.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import Project, executed_tasks

SPEC = {
    "title": "Hand ad",
    "prompt": "A short ad for the Zip water bottle",
    "duration": 8,
    "resolution": "360p",
    "style": "energetic",
    "brand": {"name": "Zip", "tagline": "Drink more"},
    "voiceover": False,
    "seed": 3,
}

# comments, key order and quoting as a person writes them: none of it may change
HAND = """\
# my own beat file, written from scratch
beats:
  # the opener: keep it punchy
  - type: hook          # the library's hook
    id: open
    duration: 3
    image_prompt: 'A bottle on a wet rock at dawn'
    motion_prompt: slow push in
  - id: close   # last one
    type: cta
    duration: 5
    image_prompt: "The bottle and the Zip logo"
    motion_prompt: pan left
music: {prompt: upbeat electronic, bpm: 120}   # flow style on purpose
version: 1
"""


def _without_record(text: str) -> str:
    """The text with the lock's record block taken out (what the user wrote)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("planned_from:"):
            skipping = True
            continue
        if skipping and line.startswith("  "):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def _final_seconds(project: Project, ad: str) -> float:
    from adspec.media import probe  # the real ffmpeg's facts

    return probe(project.build / ad / "final.mp4").duration


def test_hand_written_beat_file_builds_first_time_and_keeps_its_text(project: Project) -> None:
    project.write_spec("zip", SPEC)
    beats = project.beats_file("zip")
    beats.write_text(HAND, encoding="utf-8")
    assert project.adspec("validate").returncode == 0

    first = project.doit()
    assert "storyboard:zip/open" in executed_tasks(first.stdout) and "plan:zip" in executed_tasks(first.stdout)
    assert abs(_final_seconds(project, "zip") - 8) < 0.1
    text = beats.read_text(encoding="utf-8")
    assert _without_record(text) == HAND  # every comment, order and quote kept
    record = yaml.safe_load(text)["planned_from"]
    assert record["planner"] == "hand" and "content_sha256" not in record and len(record["spec_sha256"]) == 64
    assert not project.ledger() or all(e.get("kind") != "plan" for e in project.ledger())  # no planner asked

    again = project.doit()
    assert "storyboard:zip/open" not in executed_tasks(again.stdout)
    assert beats.read_text(encoding="utf-8") == text  # nothing rewritten when nothing changed

    # the spec's duration changes (it shapes the plan) and the person fixes the beats to fit
    project.write_spec("zip", {**SPEC, "duration": 10})
    fixed = text.replace("    duration: 5\n", "    duration: 7\n")
    beats.write_text(fixed, encoding="utf-8")
    third = project.doit()
    assert "LockError" not in third.stderr and "not replanning" not in third.stdout + third.stderr
    assert abs(_final_seconds(project, "zip") - 10) < 0.1
    after = beats.read_text(encoding="utf-8")
    assert _without_record(after) == HAND.replace("    duration: 5\n", "    duration: 7\n")
    assert yaml.safe_load(after)["planned_from"]["spec_sha256"] != record["spec_sha256"]  # refreshed
    ids = [b["id"] for b in json.loads((project.build / "zip" / "plan.json").read_text())["beats"]]
    assert ids == ["open", "close"]  # never replanned over


def test_hand_written_beat_file_that_does_not_fit_says_where(project: Project) -> None:
    project.write_spec("zip", SPEC)
    beats = project.beats_file("zip")
    beats.write_text(HAND.replace("    duration: 5\n", "    duration: 6\n"), encoding="utf-8")
    run = project.doit(check=False)
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "zip.beats.yaml" in out and "9 s in total" in out and "Traceback" not in out
    assert beats.read_text(encoding="utf-8") == HAND.replace("    duration: 5\n", "    duration: 6\n")


def test_edited_plan_that_no_longer_fits_a_changed_spec_stops(project: Project) -> None:
    project.write_spec("zip", {**SPEC, "voiceover": True})
    project.doit()
    beats = project.beats_file("zip")
    edited = beats.read_text(encoding="utf-8").replace("slow", "SLOW", 1)
    beats.write_text(edited, encoding="utf-8")
    project.write_spec("zip", {**SPEC, "voiceover": True, "duration": 12})  # the beats still sum to 8
    run = project.doit(check=False)
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "edited by hand" in out and "no longer fits" in out and "adspec plan --force zip" in out
    assert beats.read_text(encoding="utf-8") == edited  # nothing lost


def test_validate_agrees_with_doit_on_a_beat_file_the_spec_change_replans(project: Project) -> None:
    """A new duration in the spec of a beat file as planned: doit plans it again, so validate says
    ok (it said the beats no longer summed to the spec); edited by hand, both refuse it."""
    project.write_spec("zip", SPEC)
    assert project.adspec("plan", "zip").returncode == 0
    project.write_spec("zip", {**SPEC, "duration": 12})
    out = project.adspec("validate")
    assert out.returncode == 0, out.stdout + out.stderr
    beats = project.beats_file("zip")
    beats.write_text(beats.read_text(encoding="utf-8").replace("slow", "SLOW", 1), encoding="utf-8")
    out = project.adspec("validate")
    assert out.returncode == 1 and "zip.beats.yaml" in out.stderr and "12 s" in out.stderr, out.stderr
    assert project.doit(check=False).returncode != 0  # the lock keeps the edited file and stops


def _drop_second_beat(beats: Path) -> tuple[str, str]:
    doc = yaml.safe_load(beats.read_text(encoding="utf-8"))
    gone = doc["beats"].pop(1)
    doc["beats"][0]["duration"] += gone["duration"]
    beats.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return gone["id"], doc["beats"][0]["id"]


@pytest.mark.parametrize("args", [(), ("-n", "4", "-P", "thread")])
def test_removing_a_beat_builds_on_the_first_doit(project: Project, args: tuple[str, ...]) -> None:
    project.write_spec("zip", {**SPEC, "duration": 10})
    project.doit()
    gone, grown = _drop_second_beat(project.beats_file("zip"))
    assert gone in (project.build / "zip" / "plan.json").read_text()  # the old plan still lists it
    run = project.doit(*args, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "common target" not in run.stderr
    assert f"storyboard:zip/{grown}" in executed_tasks(run.stdout)
    plan = json.loads((project.build / "zip" / "plan.json").read_text())
    assert gone not in [b["id"] for b in plan["beats"]]
    assert abs(_final_seconds(project, "zip") - 10) < 0.1


def test_the_tasks_a_run_names_come_from_the_beat_file_not_a_stale_plan(project: Project,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """doit is told the names of an ad's render tasks before its plan runs; they must be the
    beat file's beats as they are now, or doit keeps a stand-in for a removed beat."""
    project.write_spec("zip", {**SPEC, "duration": 10})
    project.doit("plan:zip")
    gone, grown = _drop_second_beat(project.beats_file("zip"))
    for k, v in project.run_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(project.root)
    from adspec.dodo_support import creators_from_env

    creators = creators_from_env([])
    named = [c for name, c in creators.items() if name.startswith("task_render_")]
    assert len(named) == 1
    creates = named[0].doit_create_after.creates
    assert f"storyboard:zip/{grown}" in creates
    assert not [n for n in creates if f"/{gone}" in n], creates
    assert os.path.exists(project.build / "zip" / "plan.json")
