"""A repeated no-op `doit` replays the last clean no-op (adspec.noop_stamp) only while nothing it
looked at has changed: every change below makes the next doit a real one, and the ones that
need work get it. A replay is told apart from a real run by build/<ad>/cost.json, which every
real run rewrites with its run id and a replay leaves alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO, Project, executed_tasks, small_spec

STAMP = ".adspec-noop.json"


def run_id(project: Project) -> str:
    return json.loads((project.build / "zip" / "cost.json").read_text())["last_run"]["run"]


def replayed(project: Project, *args: str, **env: str) -> tuple[bool, subprocess.CompletedProcess[str]]:
    before = run_id(project)
    proc = project.doit(*args, **env)
    return run_id(project) == before, proc


def lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(proc.stdout.splitlines())


def settle(project: Project, *args: str, **env: str) -> None:
    """Run doit until it replays (a real no-op first writes the stamp)."""
    for _ in range(3):
        again, proc = replayed(project, *args, **env)
        assert not executed_tasks(proc.stdout), proc.stdout
        if again:
            return
    raise AssertionError("no replay after three no-ops")


def test_a_repeated_no_op_replays_until_anything_it_read_changes(project: Project) -> None:
    spec = project.write_spec("zip", small_spec())
    project.doit()
    assert not (project.build / STAMP).exists()  # a run that built something stamps nothing

    first, full = replayed(project)
    assert not first and not executed_tasks(full.stdout)
    assert (project.build / STAMP).exists()
    again, replay = replayed(project)
    assert again and replay.returncode == 0
    assert lines(replay) == lines(full)  # the same lines: every task up to date, the summary
    assert any(ln.startswith("adspec: zip: nothing to build") for ln in replay.stdout.splitlines())

    # another command line is another stamp; the stamp holds no environment value
    assert not replayed(project, "-n", "1", MY_SECRET="r8_f4k3s3cr3tv4lu3")[0]
    assert replayed(project, "-n", "1", MY_SECRET="r8_f4k3s3cr3tv4lu3")[0]
    assert "r8_f4k3s3cr3tv4lu3" not in (project.build / STAMP).read_text()
    settle(project)

    # the environment: a setting changed
    assert not replayed(project, ADSPEC_BUDGET_USD="7")[0]
    settle(project)

    # a target removed: it is built again
    (project.build / "zip" / "final.mp4").unlink()
    again, proc = replayed(project)
    assert not again and "mix:zip" in executed_tasks(proc.stdout)
    assert (project.build / "zip" / "final.mp4").exists()
    settle(project)

    # a spec touched without a change: a real check, nothing to do
    os.utime(spec)
    again, proc = replayed(project)
    assert not again and not executed_tasks(proc.stdout)
    settle(project)

    # a word on screen edited: the end card is drawn again (locally)
    project.write_spec("zip", small_spec(brand={"name": "Zip", "tagline": "Drink even more", "colors": ["#FF5A1F", "#111111"]}))
    again, proc = replayed(project)
    assert not again and "mix:zip" in executed_tasks(proc.stdout), proc.stdout
    settle(project)

    # doit's own record changed (`doit forget`): the forgotten task runs again
    project.doit("forget", "report:zip")
    again, proc = replayed(project)
    assert not again and "report:zip" in executed_tasks(proc.stdout), proc.stdout
    settle(project)

    # a new ad
    project.write_spec("zap", small_spec(seed=9))
    proc = project.doit()
    assert "mix:zap" in executed_tasks(proc.stdout)
    settle(project)

    # a run stopped while it asks the tasks (SIGTERM, as a cancelled CI job; Ctrl-C alike) leaves
    # no stamp: it did not ask them all
    assert (project.build / STAMP).exists()
    for _ in range(5):
        os.utime(spec)  # the next run asks every task
        proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")], cwd=project.root,
                                env=project.run_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("-- "):
                proc.send_signal(signal.SIGTERM)
                break
        proc.stdout.read()
        if proc.wait(timeout=60) != 0:  # stopped before the end (else it was faster than the signal)
            break
    assert proc.returncode != 0 and not (project.build / STAMP).exists()
    settle(project)

    # switched off
    assert not replayed(project, ADSPEC_FAST_NOOP="0")[0]


WATCH = """
import os, subprocess, sys
from pathlib import Path
from adspec import noop_stamp
noop_stamp.replay_or_watch([])
watch = noop_stamp.watching()
assert watch is not None
outside, how = Path(sys.argv[1]), sys.argv[2]
outside.read_text()
if how == "edit-outside":  # another process (the user) edits what this run read
    subprocess.run(["sh", "-c", f"echo changed >> '{outside}'"], check=True)
elif how == "new-spec":
    subprocess.run(["sh", "-c", "echo 'title: x' > \\"$ADSPEC_SPECS/new.yaml\\""], check=True)
elif how == "own-write":  # this run's own bookkeeping may change what it wrote
    (Path(os.environ["ADSPEC_BUILD"]) / "status.json").write_text("{}")
watch.finish(clean=True)
print((Path(os.environ["ADSPEC_BUILD"]) / noop_stamp.STAMP_NAME).exists())
"""


def test_a_run_whose_inputs_moved_under_it_stamps_nothing(project: Project, tmp_path: Path) -> None:
    """The stamp is taken at the end of a run, so anything that changed while the run looked at
    it (a file it read, a spec added) must make no stamp: the next run is a real one."""
    project.build.mkdir()
    (project.specs / "zip.yaml").write_text("title: zip\n")
    outside = tmp_path / "logo.txt"

    def stamped(how: str) -> bool:
        outside.write_text("logo")
        (project.build / STAMP).unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-c", WATCH, str(outside), how], cwd=project.root, env=project.run_env(),
                              text=True, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        (project.specs / "new.yaml").unlink(missing_ok=True)
        return proc.stdout.strip() == "True"

    assert stamped("none") and stamped("own-write")
    assert not stamped("edit-outside")
    assert not stamped("new-spec")
