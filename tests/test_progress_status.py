"""Progress and live status: status.json is valid JSON at every moment of a build and ends
consistent; a failed target is one line; long provider waits show status and elapsed time; the
live display on a terminal; `adspec status` and `--watch`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from conftest import REPO, Project, executed_tasks, small_spec
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"


def three_beat_spec() -> dict:
    spec = small_spec(duration=14)
    spec["beats"].append({"id": "end", "type": "end-card", "duration": 6, "image_prompt": "Logo on black",
                          "motion_prompt": "slow push in"})
    return spec


def test_status_json_is_valid_at_every_moment_of_a_build(project: Project) -> None:
    project.write_spec("zip", three_beat_spec())
    status = project.build / "zip" / "status.json"
    cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-n", "2", "-P", "thread"]
    proc = subprocess.Popen(cmd, cwd=project.root, env=project.run_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    watcher = subprocess.Popen([sys.executable, "-m", "adspec.cli", "status", "--watch", "zip", "--interval", "0.1"],
                               cwd=project.root, env=project.run_env(), stdout=subprocess.PIPE, text=True)
    reads, states, phases, progress = 0, set(), set(), []
    while proc.poll() is None:
        try:
            text = status.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        d = json.loads(text)  # never a half-written file
        reads += 1
        states.add(d["state"])
        phases.add(d["phase"])
        progress.append(d["progress_pct"])
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert reads > 20, reads
    assert "running" in states and {"storyboard", "chunks"} & phases
    d = json.loads(status.read_text())
    assert d["state"] == "done" and d["phase"] == "done" and d["progress_pct"] == 100
    assert d["tasks"]["total"] == d["tasks"]["done"] == 13  # plan, 3 images, 3 chunks, music, stitch, mix, check, timeline, report
    assert d["chunks"] == {"done": 3, "total": 3, "current": []}
    assert d["running"] == {} and d["last_error"] is None
    assert d["final"] == "final.mp4" and d["artifacts"]["mix:zip"] == "final.mp4"
    assert d["artifacts"]["storyboard:zip/end"] == "beats/end/storyboard.png"
    assert d["cost"] == {"spent_usd": 0.0, "saved_usd": 0.0, "total_usd": 0.0, "run_spent_usd": 0.0,
                         "run_saved_usd": 0.0}
    assert len(set(progress)) >= 4 and max(progress) == 100  # it moves as the build does
    # one summary line per ad at the end
    assert [x for x in out.splitlines() if x.startswith("adspec: zip: built plan, 3 storyboards, 3 chunks, music")]

    followed = watcher.communicate(timeout=60)[0].splitlines()
    assert watcher.returncode == 0 and len(followed) >= 3, followed  # it followed the build ...
    assert followed[0].startswith("zip: running") and followed[-1].startswith("zip: done done 100% (13/13)")  # ... to its end

    table = project.adspec("status")
    assert table.returncode == 0 and "zip" in table.stdout and "done" in table.stdout and "100% (13/13)" in table.stdout
    watched = project.adspec("status", "--watch", "zip")
    assert watched.returncode == 0 and watched.stdout.startswith("zip: done done 100% (13/13) chunks 3/3")
    # the table's figures are every run's, the watch line's this run's first: each says which
    assert "this run spent $0.00 saved $0.00 (its files: spent $0.00)" in watched.stdout, watched.stdout
    assert "spent (its" in table.stdout, table.stdout  # its files' figures (cost.json), not "all runs"
    as_json = json.loads(project.adspec("status", "--json").stdout)
    assert as_json[0]["ad"] == "zip" and as_json[0]["state"] == "done"


def test_a_run_of_some_tasks_leaves_an_ad_done(project: Project) -> None:
    """`doit mix` after a build runs the mix's own chain only: the ad is still "done", not
    "interrupted" for the checks and report that run never asked about."""
    spec = small_spec(duration=8)
    project.write_spec("zip", spec)
    project.doit()
    project.doit("mix", ADSPEC_FAST_NOOP="0")  # asked, not replayed: the reporter sees the run
    d = json.loads((project.build / "zip" / "status.json").read_text())
    assert d["state"] == "done" and d["phase"] == "done" and d["progress_pct"] == 100, d
    assert d["tasks"]["done"] == d["tasks"]["total"] < 10, d["tasks"]
    project.doit("stitch:zip", ADSPEC_FAST_NOOP="0")  # some of its targets, all up to date: left as it was
    after = json.loads((project.build / "zip" / "status.json").read_text())
    assert {**after, "updated_at": None} == {**d, "updated_at": None}, after
    shown = project.adspec("status")
    assert shown.returncode == 0 and "interrupted" not in shown.stdout and "done" in shown.stdout, shown.stdout

    # some of its targets made again (its final now behind them): "partial", not "done" (nor, read
    # with its final there or not, "cleaned" at 0 %)
    spec["beats"][1]["motion_prompt"] = "tilt up"
    project.write_spec("zip", spec)
    project.doit("stitch:zip")
    d = json.loads((project.build / "zip" / "status.json").read_text())
    assert (d["state"], d["phase"]) == ("partial", "stitch"), d
    (project.build / "zip" / "final.mp4").unlink()
    shown = json.loads(project.adspec("status", "--json", "zip").stdout)[0]
    assert shown["state"] == "partial" and shown["progress_pct"] == 100, shown
    assert project.adspec("status", "--watch", "zip").returncode == 0  # the run asked for is over: not a failure
    project.doit()
    assert json.loads((project.build / "zip" / "status.json").read_text())["state"] == "done"


def test_the_watch_ends_when_nothing_runs_and_status_names_only_ads(project: Project) -> None:
    """`adspec status --watch` ends for a run that will not finish by itself (killed, cleaned: it
    waited forever), and `adspec status` lists the project's ads (one not built yet says so) and
    refuses a name that is no ad (it listed it "not built")."""
    project.write_spec("zip", small_spec(duration=8))
    project.write_spec("later", small_spec(duration=8, title="Later"))
    project.doit("zip")
    rows = {d["ad"]: d["state"] for d in json.loads(project.adspec("status", "--json").stdout)}
    assert rows == {"later": "not built", "zip": "done"}, rows
    cells = [ln.strip("│ ").split() for ln in project.adspec("status").stdout.splitlines()]
    table = {c[0]: " ".join(c) for c in cells if c[:1] in (["zip"], ["later"])}
    assert "100% (" in table["zip"] and "%" not in table["later"] and "(0/0)" not in table["later"], table
    for args in (("status", "nosuch"), ("status", "--watch", "nosuch")):
        out = project.adspec(*args)
        assert out.returncode == 1 and "no ad named nosuch" in out.stderr and "Traceback" not in out.stderr, out

    status = project.build / "zip" / "status.json"
    d = json.loads(status.read_text())
    status.write_text(json.dumps({**d, "state": "running", "pid": 2 ** 22 + 1}))  # its build was killed
    killed = project.adspec("status", "--watch", "zip")
    assert killed.returncode == 1 and killed.stdout.startswith("zip: interrupted"), killed.stdout
    project.doit("clean", "zip")
    cleaned = project.adspec("status", "--watch", "zip")
    assert cleaned.returncode == 1 and cleaned.stdout.startswith("zip: cleaned"), cleaned.stdout
    # `doit & adspec status --watch`: the watch starts on the last run's state and follows the new run
    watcher = subprocess.Popen([sys.executable, "-m", "adspec.cli", "status", "--watch", "zip", "--interval", "0.1"],
                               cwd=project.root, env=project.run_env(), stdout=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    first = watcher.stdout.readline()  # the watch has read the last run's state (on a busy machine it started late)
    project.doit("zip")
    followed = [first.rstrip("\n"), *watcher.communicate(timeout=60)[0].splitlines()]
    assert watcher.returncode == 0 and followed[0].startswith("zip: cleaned"), followed
    assert followed[-1].startswith("zip: done done 100%"), followed


def test_a_bad_setting_is_one_line_for_every_command(project: Project) -> None:
    project.write_spec("zip", small_spec(duration=8))
    for args in (("estimate",), ("status",), ("validate",), ("check",)):
        out = project.adspec(*args, ADSPEC_BUDGET_USD="abc")
        assert out.returncode == 1 and "Traceback" not in out.stderr, (args, out.stderr)
        [line] = out.stderr.strip().splitlines()
        assert line.endswith("ADSPEC_BUDGET_USD='abc': expected a number of at least 0"), (args, out.stderr)


@pytest.fixture
def live(project: Project):
    with FakeReplicate(latency=0.05) as replicate:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN,
                           REPLICATE_BASE_URL=replicate.base_url, REPLICATE_POLL_INTERVAL="0.02")
        yield project, replicate


def test_a_failed_target_is_one_line_and_the_status_says_so(live) -> None:
    project, replicate = live
    project.write_spec("zip", small_spec())
    replicate.outcomes.extend(["succeeded", "succeeded", "failed"])  # the third request made fails
    run = project.doit(check=False)
    assert run.returncode != 0
    failed = [x for x in run.stdout.splitlines() if x.startswith("FAILED ")]
    assert len(failed) == 1, run.stdout
    assert re.match(r"FAILED (storyboard|chunk|music):zip\S*: zip", failed[0]) and "CUDA out of memory (fake)" in failed[0]
    assert "####" not in run.stdout and "Traceback" not in run.stdout + run.stderr
    d = json.loads((project.build / "zip" / "status.json").read_text())
    assert d["state"] == "failed" and d["last_error"]["task"] == failed[0].split()[1].rstrip(":")
    assert "CUDA out of memory" in d["last_error"]["message"]
    assert any(x.startswith("adspec: zip: ") and "1 FAILED" in x for x in run.stdout.splitlines())
    table = project.adspec("status", "zip").stdout
    assert "failed" in table and "CUDA" in table
    # the next run retries the failed target and finishes; the status follows
    ok = project.doit()
    assert executed_tasks(ok.stdout) and json.loads((project.build / "zip" / "status.json").read_text())["state"] == "done"


def test_long_provider_waits_show_status_and_elapsed(live) -> None:
    project, replicate = live
    replicate.latency_by_model["minimax/hailuo-2.3-fast"] = 2.0
    project.write_spec("zip", small_spec())
    status = project.build / "zip" / "status.json"
    cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-n", "2", "-P", "thread"]
    proc = subprocess.Popen(cmd, cwd=project.root, env=project.run_env(ADSPEC_WAIT_NOTICE="0.5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    while proc.poll() is None:
        try:
            d = json.loads(status.read_text())
        except FileNotFoundError:
            continue
        for task, r in (d.get("running") or {}).items():
            if r.get("provider_status"):
                seen.add((task, r["provider_status"]))
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert {("chunk:zip/hook/0", "processing"), ("chunk:zip/cta/0", "processing")} <= seen
    waits = [x for x in out.splitlines() if x.startswith("   chunk:zip/")]
    assert any(": processing (" in x and x.endswith("s)") for x in waits), out


def test_live_display_on_a_terminal(project: Project) -> None:
    project.write_spec("zip", small_spec())
    run = project.doit(ADSPEC_PROGRESS="live")
    assert "\x1b[" in run.stdout  # drawn with terminal control codes
    assert "━" in run.stdout and "zip" in run.stdout and "chunk 2/2" in run.stdout
    assert "[bold]" not in run.stdout and "[/]" not in run.stdout  # styles, not literal markup
    assert "adspec: zip: built" in run.stdout
    assert not [x for x in run.stdout.splitlines() if x.startswith(".  ")]  # no plain task lines
