"""Live mode end to end: the real `doit`, the real `openai` and `replicate` clients, pointed at
fake servers on 127.0.0.1 that speak the providers' wire format and count every request."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from adspec import media
from conftest import REPO, Project, executed_tasks, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
OPENAI_KEY = "sk-FAKE-key-not-real-0000000"


@pytest.fixture
def live(project: Project):
    with FakeReplicate(latency=0.05) as replicate, FakeOpenAI() as openai:
        project.env.update(
            ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
            REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url,
        )
        yield project, replicate, openai


def creates(replicate: FakeReplicate) -> Counter:
    return Counter({k: v for k, v in replicate.creates_by_model.items() if v})


def planned_spec(**overrides) -> dict:
    spec = small_spec(**overrides)
    del spec["beats"], spec["music"]
    return spec


def test_live_build_plans_generates_and_never_pays_twice(live) -> None:
    project, replicate, openai = live
    project.write_spec("zip", planned_spec(duration=15))
    out = project.doit("-n", "4", "-P", "thread").stdout
    final = project.build / "zip" / "final.mp4"
    info = media.probe(final)
    assert (info.vcodec, info.acodec, info.width, info.height) == ("h264", "aac", 640, 360)
    assert abs(info.duration - 15) <= 1 / 24 + 0.03
    assert openai.count == 1  # one planner call, through chat completions
    beats = project.beats_file("zip").read_text()
    assert "planner: gpt-4.1" in beats
    # every distinct recipe was paid exactly once (equal recipes, e.g. two beats with the same
    # fake image and motion prompt, are one request)
    ledger = Counter(e["model"] for e in project.ledger() if e["provider"] == "replicate")
    assert creates(replicate) == Counter({"black-forest-labs/flux-dev": ledger["flux-dev"],
                                          "minimax/hailuo-2.3-fast": ledger["hailuo-2.3-fast"],
                                          "meta/musicgen": 1})
    assert ledger["flux-dev"] >= 2 and all(n == 1 for n in replicate.creates_by_input.values())
    paid = replicate.paid_creates
    assert "plan:zip" in executed_tasks(out)

    # no-op: nothing runs, nothing is asked
    requests_before = len(replicate.requests)
    again = project.doit()
    assert executed_tasks(again.stdout) == [] and len(replicate.requests) == requests_before
    assert openai.count == 1

    # clean and rebuild: every request comes from the cache
    project.doit("clean")
    project.doit()
    assert replicate.paid_creates == paid and openai.count == 1
    assert media.probe(final).duration == pytest.approx(15, abs=0.08)


def test_live_edit_of_one_beat_pays_for_that_beat_only(live) -> None:
    project, replicate, openai = live
    spec = small_spec()
    project.write_spec("zip", spec)
    project.doit()
    paid = replicate.paid_creates
    assert openai.count == 0  # inline beats: no planner
    spec["beats"][1]["motion_prompt"] = "orbit around the bottle"
    project.write_spec("zip", spec)
    project.doit()
    new = replicate.create_bodies[paid:]
    assert [b["slug"] for b in new] == ["minimax/hailuo-2.3-fast"]
    assert "orbit around the bottle" in new[0]["body"]["input"]["prompt"]


def test_a_damaged_storyboard_or_chunk_is_made_again_never_sent_to_a_paid_model(live) -> None:
    """A storyboard.png overwritten by hand stayed "current" (its receipt's key matched), so the
    next chunk asked of the model started from those bytes: a new, paid request of a broken image.
    A truncated chunk stayed too, and every mix failed on it."""
    import os

    project, replicate, _ = live
    spec = small_spec()
    project.write_spec("zip", spec)
    project.doit()
    paid, beat = replicate.paid_creates, project.build / "zip" / "beats" / "hook"
    good = (beat / "storyboard.png").read_bytes()
    (beat / "storyboard.png").write_bytes(b"garbage")
    chunk = beat / "chunk-0.mp4"
    whole = chunk.read_bytes()
    chunk.write_bytes(whole[: len(whole) // 3])
    ran = executed_tasks(project.doit().stdout)
    assert {"storyboard:zip/hook", "chunk:zip/hook/0"} <= set(ran), ran  # made again from the cache, as they were
    assert (beat / "storyboard.png").read_bytes() == good and chunk.read_bytes() == whole
    assert replicate.paid_creates == paid
    assert media.probe(project.build / "zip" / "final.mp4").duration == pytest.approx(spec["duration"], abs=0.08)

    # the same bytes with a newer time (a copy that reordered the times) are current: hashed once
    later = (beat / "storyboard.receipt.json").stat().st_mtime + 5
    os.utime(beat / "storyboard.png", (later, later))
    assert executed_tasks(project.doit().stdout) == []
    assert (beat / "storyboard.receipt.json").stat().st_mtime >= later  # and not hashed again next time

    # a damaged last frame of a beat's first chunk: the next chunk would be asked from it (a new key)
    spec["beats"][0]["duration"], spec["duration"] = 12, 17  # two chunks of 6 s for the hook
    project.write_spec("zip", spec)
    project.doit()
    paid, last = replicate.paid_creates, beat / "chunk-0.last.png"
    frame = last.read_bytes()
    last.write_bytes(frame[:100])
    ran = executed_tasks(project.doit().stdout)
    assert "chunk:zip/hook/0" in ran and last.read_bytes() == frame and replicate.paid_creates == paid, ran

    # the cache no longer holds them: nothing is made again for money, and no broken picture is sent
    # (the chunk would be a new request, from the damaged storyboard: it stops in one line)
    shutil.rmtree(project.cache)
    (beat / "storyboard.png").write_bytes(b"garbage")
    stopped = project.doit(check=False)
    out = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0 and replicate.paid_creates == paid, out
    assert (beat / "storyboard.png").read_bytes() == b"garbage"  # kept: making it again would be paid
    assert "storyboard.png changed since it was made and its request is no longer in the cache" in out, out
    assert "storyboard.png is not an image" in out and "delete it and run doit again" in out, out


def start_waiting_on_a_chunk(project: Project, replicate: FakeReplicate, *, output: bool = False) -> subprocess.Popen:
    """`doit` over a small live ad, returned once a chunk's prediction was created (chunks take 3 s)."""
    replicate.latency_by_model["minimax/hailuo-2.3-fast"] = 3.0
    project.write_spec("zip", small_spec())
    cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")]
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=project.root, env=project.run_env(), stdout=pipe, stderr=pipe, text=True,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and replicate.creates_by_model.get("minimax/hailuo-2.3-fast", 0) < 1:
        time.sleep(0.05)
    assert replicate.creates_by_model.get("minimax/hailuo-2.3-fast", 0) >= 1
    return proc


def test_build_killed_while_waiting_resumes_the_same_prediction(live) -> None:
    project, replicate, _ = live
    proc = start_waiting_on_a_chunk(project, replicate)
    proc.send_signal(signal.SIGKILL)  # killed while waiting on the prediction
    proc.wait(10)
    video_creates = replicate.creates_by_model["minimax/hailuo-2.3-fast"]
    replicate.latency_by_model["minimax/hailuo-2.3-fast"] = 0.05
    project.doit()
    assert media.probe(project.build / "zip" / "final.mp4").duration == pytest.approx(8, abs=0.08)
    # the chunk created before the kill was resumed, not paid for again
    assert replicate.creates_by_model["minimax/hailuo-2.3-fast"] == 2
    assert video_creates <= 2
    assert all(n == 1 for n in replicate.creates_by_input.values())


def test_secrets_never_reach_build_outputs_or_cache(live) -> None:
    project, replicate, _ = live
    project.write_spec("zip", small_spec())
    replicate.outcome = "failed"
    failed = project.doit(check=False)
    assert failed.returncode != 0
    replicate.outcome = "succeeded"
    ok = project.doit()
    text = failed.stdout + failed.stderr + ok.stdout + ok.stderr
    for root in (project.build, project.cache, project.specs):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert REPLICATE_TOKEN.encode() not in data and OPENAI_KEY.encode() not in data, path
    assert REPLICATE_TOKEN not in text and OPENAI_KEY not in text


def _video_hash(path: Path) -> str:
    """The decoded picture of a file (its bytes also hold a C2PA manifest made at each mix)."""
    return subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "streamhash",
                           "-hash", "sha256", "-"], check=True, capture_output=True, text=True).stdout


def test_the_bitrate_setting_never_changes_what_a_model_is_sent(live) -> None:
    """ADSPEC_VIDEO_KBPS sets the files' bitrate, locally. The last frame of a beat's first clip,
    which its next chunk is asked from, was encoded with it: a rebuild with `crf` or another
    figure paid for every continuation chunk again (found by a review). Such a clip is encoded
    at the table's bitrate whatever the setting; the rest of the ad follows it, also in a build
    made before under another setting (its clips stayed as they were encoded: the final depended
    on the build's history; found by a trial comparing rebuilds with clean builds)."""
    project, replicate, _ = live
    project.write_spec("zip", small_spec(duration=10, beats=[
        {"id": "demo", "type": "demo", "duration": 10, "image_prompt": "A bottle on a rock",
         "motion_prompt": "slow push in", "models": {"video": "wan-2.2-i2v-fast"}}]))  # two 5 s chunks
    project.doit()
    folder = project.build / "zip" / "beats" / "demo"
    assert (folder / "chunk-1.mp4").is_file()
    paid = replicate.paid_creates
    # (`crf` goes the same way: the rate settings are what a continued clip ignores)
    planned = json.loads(project.adspec("estimate", "--json", ADSPEC_VIDEO_KBPS="400").stdout)["ads"][0]["targets"]
    assert {t["target"]: t["action"] for t in planned if t["target"].startswith("chunk:")} == {"chunk:zip/demo/1": "cache"}
    changed = project.doit(ADSPEC_VIDEO_KBPS="400")  # the build of before, under another setting
    assert replicate.paid_creates == paid, replicate.create_bodies[paid:]
    assert {"chunk:zip/demo/1", "stitch:zip", "mix:zip"} <= set(executed_tasks(changed.stdout)), changed.stdout
    # the setting holds where no model looks (the beat's last chunk), not where one does
    assert media.x264_options(folder / "chunk-1.mp4")["bitrate"] == "400"
    assert media.x264_options(folder / "chunk-0.mp4")["bitrate"] != "400"
    rebuilt = _video_hash(project.build / "zip" / "final.mp4")
    shutil.rmtree(project.build)
    project.doit(ADSPEC_VIDEO_KBPS="400")  # a clean build under it: the same picture, nothing paid
    assert replicate.paid_creates == paid, replicate.create_bodies[paid:]
    assert _video_hash(project.build / "zip" / "final.mp4") == rebuilt
    # a cache that no longer holds the clips' requests (pruned, another machine's build folder): a
    # local setting keeps them as they are, it never pays for them again
    shutil.rmtree(project.cache)
    project.doit(ADSPEC_VIDEO_KBPS="crf")
    assert replicate.paid_creates == paid, replicate.create_bodies[paid:]
    assert media.x264_options(folder / "chunk-1.mp4")["bitrate"] == "400"


def test_ctrl_c_while_waiting_ends_in_one_line_and_the_next_run_pays_nothing_twice(live) -> None:
    """Ctrl-C under doit printed doit's KeyboardInterrupt traceback after the summary."""
    project, replicate, _ = live
    proc = start_waiting_on_a_chunk(project, replicate, output=True)
    proc.send_signal(signal.SIGINT)  # Ctrl-C while it waits on a prediction
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in out + err, out + err
    assert "adspec: interrupted; run doit again to go on" in err, out + err
    line = next(ln for ln in out.splitlines() if ln.startswith("adspec: zip: "))
    # it said "spent $0.00" and no more: the prediction left running is paid for once, collected next run
    left = re.search(r"; interrupted; (\d+) predictions? still running at the provider: the next run collects", line)
    assert left and 1 <= int(left[1]) <= replicate.paid_creates, line
    replicate.latency_by_model["minimax/hailuo-2.3-fast"] = 0.05
    project.doit()
    assert all(n == 1 for n in replicate.creates_by_input.values())


def test_sigterm_to_adspec_build_stops_its_build_and_still_writes_the_summary(live) -> None:
    """`kill` (docker stop, a cancelled job) of `adspec build` killed it alone: its doit child
    built on, paying, and no summary was written."""
    import json

    project, replicate, _ = live
    replicate.latency_by_model["minimax/hailuo-2.3-fast"] = 3.0
    project.write_spec("zip", small_spec())
    proc = subprocess.Popen([sys.executable, "-m", "adspec.cli", "build", "--json"], cwd=project.root,
                            env=project.run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and replicate.creates_by_model.get("minimax/hailuo-2.3-fast", 0) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to adspec build alone, not its process group
    out, err = proc.communicate(timeout=60)
    summary = json.loads(out)
    assert proc.returncode != 0 and summary["ok"] is False, (out, err)
    assert json.loads((project.build / "zip" / "status.json").read_text())["state"] == "interrupted"
    made = len(replicate.create_bodies)
    time.sleep(4)  # a child left building would create the next chunk, the music, ... by now
    assert len(replicate.create_bodies) == made and not (project.build / "zip" / "final.mp4").exists()


def test_a_resumed_prediction_is_priced_at_nothing_by_the_estimate_and_the_budget(live) -> None:
    """A prediction paid for in a killed run is resumed, never created again: the estimate priced
    it in full and the budget refused a run that pays almost nothing (found by a review)."""
    import json

    project, replicate, _ = live
    proc = start_waiting_on_a_chunk(project, replicate)
    time.sleep(1.0)  # the create's answer is in and its id recorded (the prediction takes 3 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    replicate.latency_by_model["minimax/hailuo-2.3-fast"] = 0.05
    est = json.loads(project.adspec("estimate", "--json").stdout)
    targets = est["ads"][0]["targets"]
    resumed = [t for t in targets if t["action"] == "resume"]
    assert resumed and all(t["usd"] == 0 and "resumes it" in t["note"] for t in resumed), targets
    cap = est["ads"][0]["total_usd"]  # what is left to pay: the budget lets exactly that run
    creates = replicate.paid_creates
    done = project.doit(check=False, ADSPEC_BUDGET_USD=str(cap))
    assert done.returncode == 0, done.stdout + done.stderr
    # (a create sent as the run was killed is priced too: the next run looks it up before paying)
    assert replicate.paid_creates <= creates + sum(1 for t in targets if t["action"] == "pay")
    assert all(n == 1 for n in replicate.creates_by_input.values())
