"""`python -m bench [what ...]`: run the benchmarks, write JSON results and PNG plots.

    python -m bench                      # everything (~20 min on 2 cores, most of it the 50-ad build)
    python -m bench makespan edit        # live mode on the fakes: makespan, speed-up, edit cost
    python -m bench offline              # offline cold build at 720p and 1080p, stitch + mix, memory
    python -m bench noop                 # no-op doit (and adspec estimate) for 1..100 ads, memory
    python -m bench cost                 # cost and waste of the 30 s example per video model
    python -m bench plot                 # the PNGs from the JSON already written
    python -m bench --quick              # tiny sizes (the smoke test)

Results go to bench/results/<what>.json (and summary.json); plots to docs/*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from .project import REPO, Workspace

WHAT = ("makespan", "edit", "offline", "noop", "cost", "plot")


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="*", help=f"what to run: {', '.join(WHAT)} or all (default: all)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the harness")
    ap.add_argument("--scale", type=float, default=None, help="latency scale factor (default 0.1; --quick 0.01)")
    ap.add_argument("--jobs", type=int, default=None, help="doit -n for the live builds (default: plain doit, adspec's parallel defaults)")
    ap.add_argument("--ads", default=None, help="ads built at once for the makespan curve (default 1,10,50)")
    ap.add_argument("--noop-sizes", default=None, help="project sizes for the no-op curve (default 1,10,20,50,100)")
    ap.add_argument("--resolutions", default=None, help="offline cold build resolutions (default 720p,1080p)")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="folder for the JSON results")
    ap.add_argument("--docs", type=Path, default=REPO / "docs", help="folder for the PNG plots")
    ap.add_argument("--duration", type=int, default=None, help="ad length in seconds (default: the 30 s example; --quick 10)")
    ap.add_argument("--models", default=None, help="video models for the cost table (default: all; --quick hailuo-2.3-fast)")
    ap.add_argument("--keep", action="store_true", help="keep the throw-away projects (their folder is printed)")
    args = ap.parse_args(argv)
    unknown = set(args.what) - {*WHAT, "all"}
    if unknown:
        ap.error(f"unknown {', '.join(sorted(unknown))}: choose from {', '.join(WHAT)}, all")
    return args


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _write(results: Path, name: str, data: Any) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _read(results: Path, name: str) -> Any:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _say(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    what = set(a.what) - {"all"} or set(WHAT)
    if "edit" in what:
        what.add("makespan")  # the edit is measured on the 1-ad live build
    scale = a.scale if a.scale is not None else (0.01 if a.quick else 0.1)
    ads = _ints(a.ads) if a.ads else ([1] if a.quick else [1, 10, 50])
    if ads[0] != 1:
        ads = [1, *ads]
    noop_sizes = _ints(a.noop_sizes) if a.noop_sizes else ([1, 2] if a.quick else [1, 10, 20, 50, 100])
    duration = a.duration if a.duration is not None else (10 if a.quick else None)
    models = a.models.split(",") if a.models else (["hailuo-2.3-fast"] if a.quick else None)
    resolutions = a.resolutions.split(",") if a.resolutions else (["360p"] if a.quick else ["720p", "1080p"])
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
            "quick": a.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    ws = Workspace.temporary(keep=a.keep)
    if a.keep:
        _say(f"bench projects in {ws.root}")
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"meta": meta}
    try:
        if "cost" in what:
            from .cost import cost_per_model

            _say("cost: the 30 s example on each video model ...")
            r = cost_per_model(ws, models)
            _write(a.results, "cost", {"meta": meta, **r})
            summary["cost"] = {row["model"]: {"usd": row["total_usd"], "waste": round(row["waste"], 3)} for row in r["rows"]}
        if "offline" in what:
            from .offline import cold_build

            rows = []
            for res in resolutions:
                _say(f"offline: cold build of the 30 s example at {res} ...")
                rows.append(cold_build(ws, res, duration=duration))
                _say(f"  {rows[-1]['cold_build_s']:.2f} s = {rows[-1]['x_realtime']:.3f} x realtime")
            _write(a.results, "offline", {"meta": meta, "rows": rows})
            summary["offline"] = {r["resolution"]: {k: r[k] for k in ("cold_build_s", "x_realtime", "cpu_s", "x_realtime_cpu_bound",
                                                                       "stitch_plus_mix_s", "stitch_plus_mix_soft_captions_s", "warm_noop_s", "warm_noop_check_s", "stitch", "peak_rss_mb")}
                                  for r in rows}
        if "noop" in what:
            from .offline import noop_scaling

            _say(f"noop: no-op doit for {noop_sizes} ads ...")
            r = noop_scaling(ws, noop_sizes, repeats=1 if a.quick else 3, duration=duration)
            _write(a.results, "noop", {"meta": meta, **r})
            for row in r["rows"]:
                _say(f"  {row['ads']:4d} ads: {row['noop_s']:.3f} s (every task checked: {row['noop_check_s']:.3f} s), "
                     f"estimate {row.get('estimate_s')}")
            summary["noop"] = {"rows": [{k: row.get(k) for k in ("ads", "noop_s", "noop_check_s", "estimate_s", "peak_rss_mb")}
                                        for row in r["rows"]],
                               "at_20_ads_s": r["noop_at_20_ads_s"], "seconds_per_ad": r["seconds_per_ad"], "estimate": r["estimate"]}
        if "makespan" in what:
            from .live import makespan

            _say(f"makespan: live builds of {ads} ads on the fakes, latencies x{scale:g}, "
                 f"{'doit' if a.jobs is None else f'doit -n {a.jobs}'} ...")
            r = makespan(ws, ads, scale, a.jobs, duration=duration)
            _write(a.results, "makespan", {"meta": meta, **r})
            for run in r["runs"]:
                _say(f"  {run['ads']:3d} ads: {run['makespan_s']:.2f} s, /CP {run['makespan_over_critical_path']:.3f}, "
                     f"/bound {run['makespan_over_lower_bound']:.3f}, speed-up {run['speedup_over_sequential']:.2f}x, "
                     f"{run['cpu_s_per_ad']:.1f} CPU-s per ad, /bound with the fakes' CPU {run['makespan_over_machine_bound']:.3f}")
            summary["makespan"] = [{k: run[k] for k in ("ads", "makespan_s", "critical_path_s", "makespan_over_critical_path",
                                                        "lower_bound_s", "makespan_over_lower_bound", "speedup_over_sequential",
                                                        "cpu_s_per_ad", "cpu_bound_s", "fakes_cpu_s",
                                                        "makespan_over_machine_bound")}
                                   for run in r["runs"]]
            if r.get("edit"):
                e = r["edit"]
                _write(a.results, "edit", {"meta": meta, "scale": scale, **e})
                _say(f"  edit of one beat: {e['paid_requests']}/{e['minimal_requests']} paid, wall/chain {e['wall_over_beat_chain']:.2f}")
                summary["edit"] = {k: e[k] for k in ("paid_over_minimal", "wall_over_beat_chain", "wall_s", "beat_chain_s",
                                                     "local_overhead_s", "wall_over_beat_chain_at_real_latency")}
        if "plot" in what:
            from . import plots

            if not plots.available():
                _say("plot: matplotlib is not installed (pip install -e '.[bench]'); no PNGs written")
                summary["plots"] = "skipped: matplotlib missing"
            else:
                made = []
                m, n = _read(a.results, "makespan"), _read(a.results, "noop")
                if m:
                    made.append(str(plots.makespan_plot(m, a.docs / "bench-makespan.png")))
                if n:
                    made.append(str(plots.noop_plot(n, a.docs / "bench-noop.png")))
                summary["plots"] = made
                _say("plots: " + ", ".join(made))
    finally:
        ws.close()
    summary["meta"]["seconds"] = time.perf_counter() - t0
    if what >= {"makespan", "offline", "noop", "cost"}:
        _write(a.results, "summary", summary)
    _say(f"done in {summary['meta']['seconds']:.1f} s; results in {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
