"""Many ads at once in one doit run (issue 19, points 1-2): parallel by default, provider calls
in flight up to their limit and no further, local media work within the cores.

Functional, not timed: concurrency is counted where it happens (at the fake provider, and by an
ffmpeg wrapper that logs when each run starts and ends)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from conftest import Project, small_spec
from fakes.replicate_server import FakeReplicate
from reliability import check_final, live_env, paid_twice

ADS = [f"ad{i}" for i in range(6)]  # enough for more than 8 predictions at once
FEW = ADS[:4]  # enough for a cap of 3 and for two ffmpeg runs at once


def _write_ads(project: Project, ads: list[str] = ADS) -> None:
    for i, ad in enumerate(ads):
        spec = small_spec(title=f"Ad {i}", seed=10 + i)
        spec["beats"] = [dict(b, image_prompt=f"{b['image_prompt']} number {i}") for b in spec["beats"]]
        project.write_spec(ad, spec)


def test_plain_doit_keeps_many_predictions_in_flight_within_the_limit(project: Project) -> None:
    _write_ads(project)
    with FakeReplicate(latency=1.5, output_mode="url") as rep:
        rep.unique_outputs = True
        live_env(project, rep)
        project.doit()  # no -n: adspec's defaults make it parallel
        most = rep.max_in_flight()
        assert most > 8, most  # more than doit's old 8 worker threads could hold
        assert most <= 24, most  # Replicate's figure in library/limits.yaml
        assert paid_twice(rep) == {}
        for ad in ADS:
            check_final(project.build / ad / "final.mp4", 8)


def test_max_inflight_caps_predictions_at_once(project: Project) -> None:
    _write_ads(project, FEW)
    with FakeReplicate(latency=0.6, output_mode="url") as rep:
        rep.unique_outputs = True
        live_env(project, rep, ADSPEC_MAX_INFLIGHT="3")
        project.doit()
        assert 2 <= rep.max_in_flight() <= 3
        assert paid_twice(rep) == {}
    bad = project.doit(check=False, ADSPEC_MAX_INFLIGHT="0")
    assert bad.returncode != 0
    assert "ADSPEC_MAX_INFLIGHT='0': expected a whole number of at least 1" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    worse = project.doit(check=False, ADSPEC_BUDGET_USD="five")  # the other ADSPEC_* numbers alike
    assert worse.returncode != 0 and "ADSPEC_BUDGET_USD='five': expected a number" in worse.stdout + worse.stderr


def _ffmpeg_logger(tmp: Path) -> tuple[Path, Path]:
    """An ffmpeg that appends `+ <t>` / `- <t>` lines around the real one when it makes a file
    (`-y`; a probe, `ffmpeg -i FILE` alone, reads a header and is not CPU work)."""
    from adspec.media import ffmpeg_exe

    log = tmp / "ffmpeg-runs.log"
    wrapper = tmp / "ffmpeg"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import os, subprocess, sys, time\n"
        f"log = {str(log)!r}\n"
        "def mark(c):\n"
        "    with open(log, 'a') as f:\n"
        "        f.write(f'{c} {time.monotonic()}\\n')\n"
        "work = '-y' in sys.argv\n"
        "if work: mark('+')\n"
        f"code = subprocess.call([{ffmpeg_exe()!r}, *sys.argv[1:]])\n"
        "if work: mark('-')\n"
        "sys.exit(code)\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def test_local_media_work_stays_within_the_cores(project: Project, tmp_path: Path) -> None:
    _write_ads(project, FEW)
    wrapper, log = _ffmpeg_logger(tmp_path)
    project.doit(ADSPEC_FFMPEG=str(wrapper), ADSPEC_CPU_JOBS="2")
    marks = sorted((float(t), 1 if c == "+" else -1) for c, t in (ln.split() for ln in log.read_text().splitlines()))
    assert len(marks) > 40  # every clip, still, stitch and mix ran through the wrapper
    most = now = 0
    for _, step in marks:
        now += step
        most = max(most, now)
    assert most == 2, most  # two at once (parallel), never three
    for ad in FEW:
        check_final(project.build / ad / "final.mp4", 8)


def test_one_task_at_a_time_still_works(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit("-n", "1")
    check_final(project.build / "zip" / "final.mp4", 8)
    assert os.path.exists(project.build / "zip" / "status.json")
