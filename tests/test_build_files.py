"""adspec's own build files are typed and versioned (adspec.build_files): each model round-trips
byte for byte; a file of another version, or with a field missing, is one clear line naming the
file (never a KeyError), and in a build the plan step treats it as stale and rewrites it, paying
and rebuilding nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adspec.build_files import (
    AdStatus,
    BeatInputs,
    ChunkCounts,
    CostFile,
    CostItem,
    LastError,
    LastRun,
    MusicInputs,
    PhaseCost,
    RunningTask,
    Speech,
    SpokenLineEntry,
    Timeline,
    TimelineBeat,
    VoiceInputs,
    compact_text,
    decode,
    read_model,
    read_model_or_none,
)
from adspec.errors import BuildFileError, error_line
from adspec.paths import AdPaths
from adspec.plan_file import AdPlan, PlannedBeat, load_plan, plan_text
from conftest import Project, executed_tasks, small_spec

BEAT = BeatInputs(id="hook", type="hook", duration=3, clips=(6,), image_prompt="a bottle", motion_prompt="push in",
                  aspect_ratio="16:9", width=640, height=360, seed=3, style="energetic", palette=("#FF5A1F", "#111111"),
                  brand_name="Zip", reference=None, image_model="flux-dev", video_model="hailuo",
                  native_audio=False)
VOICE = VoiceInputs(id="hook", text="Drink more.", model="espeak", voice="en-us", speed=1, duration=3, lead_in=0.25,
                    tail=0.15, max_speedup=1.15)
MUSIC = MusicInputs(prompt="upbeat", bpm=120, seconds=8, seed=3, model="musicgen")
TIMELINE = Timeline(width=640, height=360, fps=24, duration=8, native_audio=False,
                    beats=(TimelineBeat("hook", 0, 3, (6,)), TimelineBeat("cta", 3, 5, (6,))))
SPEECH = Speech(width=640, height=360, aspect_ratio="16:9", palette=("#FF5A1F",), captions={"burn": True, "size": 1.0},
                lines=(SpokenLineEntry("hook", 0, 3, 0.25, "Drink more."),))
COST = CostFile(ad="zip", currency="USD", spent_usd=0.1, saved_usd=0.0, total_usd=0.1,
                phases={"storyboard": PhaseCost(0.1, 0.0, 0.1, 1, 0)},
                items=(CostItem("storyboard:zip/hook", "storyboard", "beats/hook/storyboard.png", 0.1, False, "flux-dev",
                                "replicate", "job1", "k" * 64, "2026-01-01T00:00:00Z"),),
                not_built=("mix:zip",),
                last_run=LastRun("r1", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", 0.1, 0.0, 5, 0, 0, 1, 0),
                updated_at="2026-01-01T00:01:00Z")
STATUS = AdStatus(ad="zip", state="running", phase="chunks", progress_pct=42.5, chunks=ChunkCounts(1, 2, ("hook/0",)),
                  running={"chunk:zip/hook/0": RunningTask(1.5, "processing", 2.5), "music:zip": RunningTask(3.0)},
                  artifacts={"storyboard:zip/hook": "beats/hook/storyboard.png"},
                  last_error=LastError("chunk:zip/cta/0", "boom", "2026-01-01T00:00:00Z"), run="r1", pid=123)


def plan() -> AdPlan:
    return AdPlan(ad="zip", title="Zip", duration=8, aspect_ratio="16:9", resolution="360p", width=640, height=360,
                  fps=24, seed=3, style="energetic", palette=("#FF5A1F",), brand_name="Zip", tagline=None,
                  reference=None, image_model="flux-dev", video_model="hailuo", music_model="musicgen",
                  native_audio=False, music_prompt="upbeat", bpm=120,
                  beats=(PlannedBeat("hook", "hook", 0, 3, "a", "b", (6,), "Drink more."),
                         PlannedBeat("cta", "cta", 3, 5, "c", "d", (6,))),
                  captions={"burn": True})


@pytest.mark.parametrize("model", [BEAT, VOICE, MUSIC, TIMELINE, SPEECH, COST, STATUS], ids=lambda m: type(m).__name__)
def test_each_model_round_trips_byte_for_byte(model: object, tmp_path: Path) -> None:
    data = json.loads(compact_text(model))
    assert data["version"] == 1
    back = decode(type(model), data, "x.json")
    assert back == model
    assert compact_text(back) == compact_text(model)  # numbers kept as written: an int speed stays 1
    path = tmp_path / "f.json"
    path.write_text(json.dumps(model.to_json()))  # type: ignore[attr-defined]
    assert read_model(type(model), path) == model


def test_the_plan_round_trips_and_its_files_carry_a_version(tmp_path: Path) -> None:
    p = plan()
    paths = AdPaths(tmp_path)
    paths.plan.write_text(plan_text(p))
    assert load_plan(paths) == p and json.loads(paths.plan.read_text())["version"] == 1
    assert decode(BeatInputs, json.loads(compact_text(p.beat_inputs(p.beats[0])))) == p.beat_inputs(p.beats[0])
    assert [line.id for line in p.speech().lines] == ["hook"]
    paths.plan.write_text(plan_text(p).replace('"version": 1', '"version": 2'))
    assert load_plan(paths) is None  # not a plan this adspec reads: the plan step rewrites it


@pytest.mark.parametrize("change, says", [
    (lambda d: {**d, "version": 7}, "written by another adspec (version 7; this one reads version 1)"),
    (lambda d: {k: v for k, v in d.items() if k != "version"}, "written by another adspec (no version"),
    (lambda d: {k: v for k, v in d.items() if k != "clips"}, "the field 'clips' is missing"),
    (lambda d: {**d, "clips": "six"}, "clips: a list was expected"),
    (lambda d: {**d, "width": "640"}, "width: int expected"),
    (lambda d: [d], "damaged (not a JSON object)"),
])
def test_another_version_or_a_damaged_file_is_one_clear_line(change, says: str, tmp_path: Path) -> None:
    path = tmp_path / "beats" / "hook" / "beat.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(change(BEAT.to_json())))
    with pytest.raises(BuildFileError) as e:
        read_model(BeatInputs, path)
    line = error_line(e.value)
    assert line is not None and "\n" not in line
    assert line.startswith(str(path)) and says in line and "run doit again" in line, line
    assert not isinstance(e.value, KeyError)
    assert read_model_or_none(BeatInputs, path) is None


def test_a_file_that_is_not_json_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "timeline.json"
    path.write_text('{"width": 6')
    with pytest.raises(BuildFileError, match=r"timeline.json: damaged \(not JSON\)"):
        read_model(Timeline, path)


def test_a_beat_json_of_another_version_is_rewritten_by_the_plan_step_nothing_else_runs(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit()
    paid = len(project.ledger())
    beat = project.build / "zip" / "beats" / "hook" / "beat.json"
    good = beat.read_text()
    assert json.loads(good)["version"] == 1
    beat.write_text(json.dumps({**json.loads(good), "version": 99}))  # as another adspec wrote it

    out = project.doit()
    text = out.stdout + out.stderr
    assert "Traceback" not in text and "KeyError" not in text
    assert executed_tasks(out.stdout) == ["plan:zip"], out.stdout  # the same content comes back: no rebuild
    assert beat.read_text() == good
    assert len(project.ledger()) == paid
    assert executed_tasks(project.doit().stdout) == []  # and a no-op after it runs nothing


def test_damaged_plan_files_are_rewritten_and_only_what_changed_reruns(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit()
    paid = len(project.ledger())
    root = project.build / "zip"
    timeline = root / "timeline.json"
    good = timeline.read_text()
    data = json.loads(good)
    del data["beats"]
    timeline.write_text(json.dumps(data))  # a field missing
    (root / "music.json").write_text("{not json")
    (root / "beats" / "cta" / "beat.json").unlink()

    out = project.doit()
    text = out.stdout + out.stderr
    assert "Traceback" not in text and "KeyError" not in text
    assert executed_tasks(out.stdout) == ["plan:zip"], out.stdout
    assert timeline.read_text() == good
    assert len(project.ledger()) == paid


def test_cost_and_status_of_another_version_are_recomputed(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit()
    root = project.build / "zip"
    for name in ("cost.json", "status.json"):
        data = json.loads((root / name).read_text())
        assert data["version"] == 1
        (root / name).write_text(json.dumps({**data, "version": 0, "state": "weird"}))
    out = project.doit()
    assert "Traceback" not in out.stdout + out.stderr
    status = json.loads((root / "status.json").read_text())
    cost = json.loads((root / "cost.json").read_text())
    assert status["version"] == 1 and status["state"] == "done", status
    assert cost["version"] == 1 and cost["ad"] == "zip" and "last_run" in cost
    shown = project.adspec("status", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)[0]["state"] == "done", shown.stdout + shown.stderr


def test_the_plain_records_carry_a_version_and_one_of_another_reruns_its_task(project: Project) -> None:
    """text.json, text_layout.json, stitch.json and checks.json carry a version too; a layout or
    checks record of another version re-runs the mix and the checks (local: the cache is not asked
    again, nothing new is made), and the plan rewrites a text.json of another version."""
    from adspec.build_files import RECORD_VERSIONS

    project.write_spec("zip", small_spec())
    project.doit()
    root = project.build / "zip"
    for name, version in RECORD_VERSIONS.items():
        assert json.loads((root / name).read_text())["version"] == version, name
    assert executed_tasks(project.doit().stdout) == []
    made = len(project.ledger())
    for name in ("text_layout.json", "checks.json"):
        data = json.loads((root / name).read_text())
        (root / name).write_text(json.dumps({**data, "version": 0}))
    listed = {t["target"] for t in json.loads(project.adspec("estimate", "--json").stdout)["ads"][0]["targets"]}
    ran = executed_tasks(project.doit().stdout)
    assert listed == {t for t in ran if ":" in t}, (sorted(listed), ran)  # the estimate says what runs
    assert {"mix:zip", "check:zip"} <= set(ran) and not any(t.startswith(("chunk:", "storyboard:")) for t in ran), ran
    for name in ("text_layout.json", "checks.json"):
        assert json.loads((root / name).read_text())["version"] == RECORD_VERSIONS[name]
    checks = json.loads((root / "checks.json").read_text())
    (root / "checks.json").write_text(json.dumps({**checks, "version": 0}))  # the checks' own, alone
    listed = {t["target"] for t in json.loads(project.adspec("estimate", "--json").stdout)["ads"][0]["targets"]}
    ran = executed_tasks(project.doit().stdout)
    assert "check:zip" in listed and listed == {t for t in ran if ":" in t}, (sorted(listed), ran)
    text = json.loads((root / "text.json").read_text())
    (root / "text.json").write_text(json.dumps({**text, "version": 0}))
    project.doit()
    assert json.loads((root / "text.json").read_text())["version"] == RECORD_VERSIONS["text.json"]
    assert len(project.ledger()) == made  # nothing asked of a provider for any of it
