"""Kills (issue 8, item 2): 20 live builds, each SIGKILLed at a random moment (seeded) — after a
random delay, while waiting on a prediction, while a download streams into the cache, while
ffmpeg writes the stitched or final video — each followed by a normal `doit`. Every final video
is valid, no target is half-written, and no recipe is paid twice: a stored prediction id is
resumed, an unknown create outcome is looked up."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import REPO, Project, small_spec
from fakes.replicate_server import FakeReplicate
from reliability import (
    assert_no_traceback,
    broken_targets,
    cache_problems,
    check_final,
    live_env,
    lost_artifacts,
    paid_twice,
    report_row,
    temp_files,
)

# four in the suite (one at each moment, two of them under `-n 2`); the report's run kills twenty:
# ADSPEC_KILL_CYCLES=20
CYCLES = int(os.environ.get("ADSPEC_KILL_CYCLES", "4"))
VIDEO = "minimax/hailuo-2.3-fast"
MODES = ("delay", "waiting", "download", "writing")


def _spec(cycle: int) -> dict:
    """A 5 s ad of one beat; every cycle asks new recipes (new prompts) so each build pays."""
    spec = small_spec(duration=5, seed=cycle)
    spec["music"] = {"prompt": f"upbeat electronic take {cycle}", "bpm": 120}
    spec["beats"] = [{"id": "hook", "type": "hook", "duration": 5, "image_prompt": f"A bottle on a rock, take {cycle}",
                      "motion_prompt": f"slow push in, take {cycle}"}]
    return spec


def _wait_for(cond, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # doit and its ffmpeg children, as a killed job would be
    except ProcessLookupError:
        pass
    proc.wait(10)


def test_builds_killed_at_random_moments(project: Project) -> None:
    rng = random.Random(20261125)
    killed_at: Counter = Counter()
    with FakeReplicate(latency=0.1, output_mode="url") as rep:
        rep.latency_by_model[VIDEO] = 0.6  # chunks take a while: time to be killed while waiting
        rep.download_delay = 0.1  # downloads stall half-way: time to be killed while writing
        rep.unique_outputs = True  # new chunks, new bytes: the stitch and the mix run every cycle
        live_env(project, rep)
        cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")]
        for cycle in range(CYCLES):
            project.write_spec("zip", _spec(cycle))
            mode = MODES[cycle % len(MODES)]
            args = ["-n", "2", "-P", "thread"] if cycle % 2 else []
            video_creates = rep.creates_by_model[VIDEO]
            cache_tmp = project.cache / "tmp"
            ad_dir = project.build / "zip"
            proc = subprocess.Popen(cmd + args, cwd=project.root, env=project.run_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            if mode == "delay":
                hit = _wait_for(lambda: False, proc, rng.uniform(0.3, 2.2)) or proc.poll() is None
            elif mode == "waiting":  # the chunk's prediction exists and is being polled
                hit = _wait_for(lambda n=video_creates: rep.creates_by_model[VIDEO] > n, proc, 30)
                time.sleep(rng.uniform(0.0, 0.3))
            elif mode == "download":  # a download is streaming into the cache's temp folder
                hit = _wait_for(lambda d=cache_tmp: any(p for p in d.glob(".*") if not p.name.startswith(".probe")), proc, 30)
                time.sleep(rng.uniform(0.0, 0.05))
            else:  # ffmpeg is writing the stitched or the final video
                hit = _wait_for(lambda d=ad_dir: any(d.glob(".video*")) or any(d.glob(".final*")), proc, 30)
                time.sleep(rng.uniform(0.0, 0.03))
            assert proc.poll() is None, f"cycle {cycle}: the build ended before it could be killed ({mode})"
            assert hit, f"cycle {cycle}: never reached the moment {mode}"
            _kill(proc)
            killed_at[mode] += 1

            done = project.doit()  # a normal run finishes the job
            assert_no_traceback(done.stdout, done.stderr)
            check_final(ad_dir / "final.mp4", 5)
            assert broken_targets(project.build) == [], cycle
            # litter of the killed run is never a target: every target decodes (above), and
            # nothing temporary is left under a target's name
            assert all(not p.name.startswith(("final", "video", "storyboard", "chunk", "music"))
                       for p in temp_files(project.build)), cycle
            assert paid_twice(rep) == {}, cycle
            assert all(n == 1 for n in rep.creates_by_input.values()), cycle
        assert set(killed_at) == set(MODES)
        assert cache_problems(project.cache) == []
        assert lost_artifacts(rep, project.cache) == set()
        # the cache's temp folder holds no stale downloads of the killed runs
        assert [p for p in (project.cache / "tmp").iterdir() if not p.name.startswith(".probe")] == []
        total_creates = rep.paid_creates
    assert total_creates == CYCLES * 3  # per cycle: one image, one chunk, one music, each paid once
    report_row("SIGKILL", f"{CYCLES} builds killed: random delay, waiting on a prediction, mid-download, mid-ffmpeg write",
               2 * CYCLES, CYCLES, CYCLES, 0, 0)


_KILL_AT_BEAT_FILE_RENAME = """
import os, runpy, signal, sys
real_replace = os.replace
def replace(src, dst, *args, **kw):
    if str(dst).endswith(".beats.yaml"):  # the beat file is written in full, not yet renamed
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kw)
os.replace = replace
sys.argv = ["doit", "-f", sys.argv[1]]
runpy.run_module("doit", run_name="__main__")
"""


def test_kill_while_the_beat_file_is_written_leaves_no_ad_behind(project: Project) -> None:
    """Issue 12, 6b: SIGKILL between writing the beat file's temp file and renaming it. The
    leftover is never taken for an ad (the next doit builds), and it is swept."""
    spec = small_spec(duration=5)
    del spec["beats"], spec["music"]  # the planner writes specs/zip.beats.yaml
    project.write_spec("zip", spec)
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_BEAT_FILE_RENAME, str(REPO / "dodo.py")],
                            cwd=project.root, env=project.run_env(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    litter = [p for p in project.specs.iterdir() if p.name != "zip.yaml"]
    assert len(litter) == 1 and litter[0].name.startswith(".zip.beats.") and not project.beats_file("zip").exists()

    done = project.doit(check=False)  # at once: the leftover is no ad (and too fresh to be swept)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_no_traceback(done.stdout, done.stderr)
    check_final(project.build / "zip" / "final.mp4", 5)
    assert project.adspec("validate").returncode == 0
    an_hour_ago = time.time() - 3600  # later: untouched for a while, its writer gone -> swept
    os.utime(litter[0], (an_hour_ago, an_hour_ago))
    project.doit()
    assert sorted(p.name for p in project.specs.iterdir()) == ["zip.beats.yaml", "zip.yaml"]


def test_sweep_removes_only_leftovers_whose_writer_is_gone(tmp_path: Path) -> None:
    from adspec.fsutil import sweep_leftovers

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(dead.stdout)
    old = time.time() - 3600
    names = {
        f".zip.beats.yaml.tmp-{gone}-0a1b2c3d": (old, True),  # killed writer, untouched for an hour
        f".final.tmp-{gone}-0a1b2c3d.mp4": (old, True),
        f".zip.beats.yaml.tmp-{gone}-11111111": (time.time(), False),  # just written: maybe another machine's
        f".zip.beats.yaml.tmp-{os.getpid()}-22222222": (old, False),  # its writer runs
        f".video.tmp-{os.getppid()}-33333333.mp4": (old, False),
        f".ancient.tmp-{os.getpid()}-44444444": (time.time() - 2 * 86400, True),  # a day old: pid reused
        ".hidden.yaml": (old, False),  # not ours
        "zip.yaml": (old, False),
    }
    (tmp_path / "sub").mkdir()
    for name, (mtime, _) in names.items():
        for folder in (tmp_path, tmp_path / "sub"):
            (folder / name).write_text("x")
            os.utime(folder / name, (mtime, mtime))
    removed = sweep_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, (_, swept) in names.items() if swept)
    assert len(list((tmp_path / "sub").iterdir())) == len(names)  # not recursive unless asked
    assert len(sweep_leftovers(tmp_path, recursive=True)) == len(removed)


def test_scratch_folders_of_killed_runs_are_swept_like_temp_files(tmp_path: Path) -> None:
    """A mix killed mid-way left its scratch folders (drawn pieces, captions, sound) in build/
    for ever: tempfile names no pid, so nothing could tell a dead run's folder from a live one's.
    `temp_dir` names them like temp files; the sweep removes a dead writer's whole folder."""
    from adspec.fsutil import is_leftover, sweep_leftovers, temp_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(dead.stdout)
    old = time.time() - 3600
    ad = tmp_path / "build" / "zip"
    ad.mkdir(parents=True)

    def folder(name: str, inner_mtime: float) -> Path:
        d = ad / name
        d.mkdir()
        (d / "drawn0007.mp4").write_bytes(b"x" * 1000)
        os.utime(d / "drawn0007.mp4", (inner_mtime, inner_mtime))
        os.utime(d, (old, old))
        return d

    killed = folder(f".drawn.tmp-{gone}-0a1b2c3d", old)
    writing = folder(f".final.mix.tmp-{gone}-11111111", time.time())  # a file in it was just written
    running = folder(f".captions.tmp-{os.getpid()}-22222222", old)  # its writer runs
    mine = folder(".drawn-abc123", old)  # not named by adspec: never touched
    removed = sweep_leftovers(tmp_path / "build", recursive=True)
    assert removed == [killed] and not killed.exists()
    assert writing.is_dir() and running.is_dir() and mine.is_dir()
    with temp_dir(ad, "drawn") as scratch:
        assert scratch.parent == ad and scratch.name.startswith(".drawn.tmp-")
        os.utime(scratch, (old, old))
        assert not is_leftover(scratch)  # this process writes it
    assert not scratch.exists()
    # a folder in use by a run whose pid means nothing here (another container sharing build/): its lock says so
    from adspec.file_locks import locked

    other = folder(f".voice.tmp-{gone}-33333333", old)
    (other / ".in-use").touch()
    for path in (other / ".in-use", other):
        os.utime(path, (old, old))
    with locked(other / ".in-use", wait=True):
        assert sweep_leftovers(tmp_path / "build", recursive=True) == [] and other.is_dir()
    assert sweep_leftovers(tmp_path / "build", recursive=True) == [other]
