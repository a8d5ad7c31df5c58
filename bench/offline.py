"""Offline (free, local) builds: the cold animatic of the 30 s example as a multiple of realtime,
stitch + mix, the no-op rebuild as the project grows, peak memory."""

from __future__ import annotations

import os
import sys
from typing import Any

import yaml

from .project import Project, Workspace, ad_names, read_json


def _stitch_report(project: Project, ad: str) -> dict[str, Any]:
    rep = read_json(project.build / ad / "stitch.json")
    return {"copied": len(rep["copied"]), "cut_by_copy": len(rep["cut"]), "reencoded": len(rep["reencoded"])}


def cold_build(ws: Workspace, resolution: str, jobs: int | None = None, duration: int | None = None) -> dict[str, Any]:
    """The 30 s example (specs/trailrunner.yaml with its beat file) from an empty build folder and
    an empty cache: every storyboard, chunk and the music rendered, then stitch and mix.
    (`duration`: another length, planned by the offline planner: the smoke run's short ad.)"""
    project = ws.project(f"offline-{resolution}")
    (ad,) = project.add_ads(["trailrunner"], distinct=False, beats=duration is None, resolution=resolution,
                            duration=duration)
    flags = () if jobs is None else ("-n", str(jobs), "-P", "thread")  # plain doit: adspec's parallel defaults
    run = project.doit(*flags, sample_tree=True).check()
    plan = read_json(project.build / ad / "plan.json")
    checked = [project.doit(ADSPEC_FAST_NOOP="0").check() for _ in range(3)]  # warm no-ops, every task asked
    warm = [project.doit().check() for _ in range(3)]  # the first writes the stamp, the others replay it
    assert all(not w.executed() for w in [*checked, *warm]), "warm rebuild executed tasks"
    stitch, mix = run.duration(f"stitch:{ad}") or 0.0, run.duration(f"mix:{ad}") or 0.0
    # the same ad with its captions as a soft track only (`captions: {burn: false}`): a local edit
    # that re-runs the mix alone, which then draws only the supers' seconds and copies the rest
    spec_path = project.specs / f"{ad}.yaml"
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    spec["captions"] = {**(spec.get("captions") or {}), "burn": False}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    soft = project.doit().check()
    soft_mix = soft.duration(f"mix:{ad}")
    chunk_times = [run.duration(f"chunk:{ad}/{b['id']}/{k}") for b in plan["beats"] for k in range(len(b["clips"]))]
    return {
        "resolution": resolution,
        "size": f"{plan['width']}x{plan['height']}",
        "seconds": plan["duration"],
        # the offline render draws of each clip only what the ad shows (a beat's last chunk may be
        # longer than the beat has left): the seconds of video drawn, not the clips' lengths
        "rendered_video_seconds": sum(min(c, b["duration"] - sum(b["clips"][:k])) for b in plan["beats"]
                                      for k, c in enumerate(b["clips"])),
        "jobs": jobs,
        "cold_build_s": run.wall,
        "x_realtime": run.wall / plan["duration"],
        # CPU seconds of doit and its ffmpeg children: on a machine shared with other work the
        # wall time above includes waiting for a core; cpu_s / cores is what 2 idle cores need
        "cpu_s": run.cpu_s,
        "x_realtime_cpu_bound": run.cpu_s / (os.cpu_count() or 1) / plan["duration"],
        "stitch_s": stitch,
        "mix_s": mix,
        "stitch_plus_mix_s": stitch + mix,
        "stitch_plus_mix_soft_captions_s": stitch + soft_mix if soft_mix is not None else None,
        "soft_captions_ran": soft.executed(),
        "chunk_task_s": {"mean": sum(chunk_times) / len(chunk_times), "max": max(chunk_times)},
        "plan_task_s": run.duration(f"plan:{ad}"),
        "stitch": _stitch_report(project, ad),
        "warm_noop_s": min(w.wall for w in warm),
        "warm_noop_check_s": min(w.wall for w in checked),
        "peak_rss_mb": {"largest_process": run.maxrss_mb, "process_tree": run.tree_peak_mb},
    }


def estimate_available(project: Project) -> bool:
    rc, _, _ = project.command(sys.executable, "-m", "adspec.cli", "estimate", "--help")
    return rc == 0


def noop_scaling(ws: Workspace, sizes: list[int], jobs: int = 2, repeats: int = 3,
                 duration: int | None = None) -> dict[str, Any]:
    """Grow one project to each size in `sizes` (built for real: the new ads' requests are all
    cache hits, as the ads share the example's content under other names), then time a no-op
    `doit` and, if it exists, `adspec estimate`. Ads are the 30 s example (6 beats, 18 tasks each,
    plus 2 project-wide), at the 360p draft resolution (resolution changes no task or dependency,
    only how long the setup takes)."""
    project = ws.project("noop")
    have: list[str] = []
    rows = []
    estimate = None
    for n in sorted(sizes):
        new = ad_names(n)[len(have):]
        if new:
            project.add_ads(new, distinct=False, beats=duration is None, resolution="360p", duration=duration)
            build = project.doit("-n", str(max(jobs, 4)), "-P", "thread").check()
            have += new
        reps = repeats if n <= 20 else 2
        project.doit(ADSPEC_FAST_NOOP="0").check()  # a first no-op: Python writes its bytecode cache
        # every task asked whether it is up to date (what the first no-op after a change costs)
        checks = [project.doit(ADSPEC_FAST_NOOP="0").check() for _ in range(reps)]
        first = project.doit().check()  # a no-op that looked at everything: it writes the stamp
        runs = [project.doit().check() for _ in range(reps)]  # nothing changed since: replayed
        assert all(not r.executed() for r in [*checks, first, *runs]), "no-op rebuild executed tasks"
        best, check = min(runs, key=lambda r: r.wall), min(checks, key=lambda r: r.wall)
        row: dict[str, Any] = {
            "ads": n,
            "tasks": len(check.timings.get("tasks", {})),
            "noop_s": best.wall,
            "noop_runs_s": [r.wall for r in runs],
            "noop_cpu_s": best.cpu_s,
            "noop_check_s": check.wall,
            "noop_check_runs_s": [r.wall for r in checks],
            "noop_check_cpu_s": check.cpu_s,
            "peak_rss_mb": check.maxrss_mb,
            "setup_build_s": build.wall if new else None,
        }
        if estimate is None:
            estimate = estimate_available(project)
        if estimate:
            times = []
            for _ in range(reps):
                rc, t, out = project.command(sys.executable, "-m", "adspec.cli", "estimate")
                times.append(t if rc == 0 else None)
                row["estimate_rc"] = rc
                if rc != 0:
                    row["estimate_error"] = out.strip().splitlines()[-1:] if out.strip() else []
            ok = [t for t in times if t is not None]
            row["estimate_s"] = min(ok) if ok else None
        rows.append(row)
    per_ad = None
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        per_ad = (b["noop_s"] - a["noop_s"]) / max(1, b["ads"] - a["ads"])
    at20 = _interpolate(rows, 20)
    return {
        "rows": rows,
        "seconds_per_ad": per_ad,
        "noop_at_20_ads_s": at20,
        "estimate": "measured" if estimate else "skipped: `adspec estimate` does not exist in this checkout",
        "cpu_count": os.cpu_count(),
    }


def _interpolate(rows: list[dict[str, Any]], n: int) -> float | None:
    for r in rows:
        if r["ads"] == n:
            return r["noop_s"]
    below = [r for r in rows if r["ads"] < n]
    above = [r for r in rows if r["ads"] > n]
    if not below or not above:
        return None
    a, b = below[-1], above[0]
    return a["noop_s"] + (b["noop_s"] - a["noop_s"]) * (n - a["ads"]) / (b["ads"] - a["ads"])
