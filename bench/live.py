"""Live mode against the loopback fakes: makespan vs critical path, speed-up over the seed's
sequential schedule, and the cost of editing one beat.

The real `doit`, the real `openai` and `replicate` clients, and the fake OpenAI / Replicate
servers of tests/fakes running in this process on 127.0.0.1. Every model answers after its
realistic latency times one scale factor (`REAL_LATENCY` x `scale`); the client's poll interval
(0.5 s by default) is scaled by the same factor.
"""

from __future__ import annotations

import os
import resource
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from .project import REPO, Project, Workspace, ad_names, iter_plans

sys.path.insert(0, str(REPO / "tests"))
from fakes.openai_server import FakeOpenAI, default_plan  # noqa: E402
from fakes.replicate_server import FakeReplicate  # noqa: E402

# seconds a real call takes (order of magnitude seen on the services; the seed's own numbers)
REAL_LATENCY = {
    "planner": 10.0,   # gpt-4.1 chat completion with the beat library and structured output
    "image": 3.0,      # flux-dev, 1 MP
    "video": 60.0,     # hailuo-2.3-fast, one 6 s clip
    "music": 30.0,     # musicgen stereo-large, 30 s
}
SLUGS = {"image": "black-forest-labs/flux-dev", "video": "minimax/hailuo-2.3-fast", "music": "meta/musicgen"}
REAL_POLL_INTERVAL = 0.5  # the replicate client's default
TOKEN = "r8_BENCH-token-not-real-0000"
KEY = "sk-BENCH-key-not-real-00000"


def distinct_plan(body: dict[str, Any]) -> dict[str, Any]:
    """The fake planner's plan with prompts of its own per beat and per ad (the stock fake gives
    every beat the same prompts, which the cache would rightly serve as one request)."""
    import hashlib

    plan = default_plan(body)
    text = "\n".join(m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user")
    tag = hashlib.sha256(text.encode()).hexdigest()[:8]
    for b in plan["beats"]:
        b["image_prompt"] = f"{b['id']} frame of the product, take {tag}"
        b["motion_prompt"] = f"slow push-in on the {b['id']}, take {tag}"
    plan["music"]["prompt"] += f", take {tag}"
    return plan


def latencies(scale: float) -> dict[str, float]:
    return {k: v * scale for k, v in REAL_LATENCY.items()}


@contextmanager
def fakes(scale: float) -> Iterator[tuple[FakeReplicate, FakeOpenAI, dict[str, str]]]:
    lat = latencies(scale)
    with FakeReplicate(latency=lat["video"]) as rep, FakeOpenAI(latency=lat["planner"], responder=distinct_plan) as oai:
        rep.unique_outputs = True  # outputs differ with their input: an edited beat really gets new pictures
        for kind, slug in SLUGS.items():
            rep.latency_by_model[slug] = lat[kind]
        env = {
            "ADSPEC_BACKEND": "", "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": rep.base_url,
            "REPLICATE_POLL_INTERVAL": f"{REAL_POLL_INTERVAL * scale:.4f}", "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": oai.base_url,
            "ADSPEC_BUDGET_USD": "100000",  # the fakes are free; 10 ads would pass the default $5 cap
        }
        yield rep, oai, env


def _plan_figures(plan: dict[str, Any], lat: dict[str, float], local: dict[str, float]) -> dict[str, Any]:
    """An ad's critical path and the seed's sequential schedule: the providers' latencies along
    the ad's longest chain plus the local work on that chain (`local`: seconds measured in the
    1-ad build, where nothing waits for a core)."""
    beats = plan["beats"]
    longest = max(len(b["clips"]) for b in beats)
    chunks = sum(len(b["clips"]) for b in beats)
    music = 0.0 if plan.get("native_audio") else lat["music"]
    chain = local["plan"] + local["storyboard"] + longest * local["chunk"] + local["stitch"] + local["mix"] + local["after_mix"]
    cp = lat["planner"] + lat["image"] + longest * lat["video"] + chain
    seq = (lat["planner"] + len(beats) * lat["image"] + chunks * lat["video"] + music + local["plan"]
           + len(beats) * local["storyboard"] + chunks * local["chunk"] + local["stitch"] + local["mix"] + local["after_mix"])
    return {"beats": len(beats), "chunks": chunks, "longest_chain": longest, "local_on_chain_s": chain,
            "critical_path_s": cp, "sequential_s": seq}


def _local_seconds(run: Any, ad: str, plan: dict[str, Any], lat: dict[str, float]) -> dict[str, float]:
    """Local seconds of each step of one ad, from its tasks' times less the providers' latency."""
    def d(name: str) -> float:
        return run.duration(name) or 0.0

    chunks = [d(f"chunk:{ad}/{b['id']}/{k}") - lat["video"] for b in plan["beats"] for k in range(len(b["clips"]))]
    boards = [d(f"storyboard:{ad}/{b['id']}") - lat["image"] for b in plan["beats"]]
    return {"plan": max(0.0, d(f"plan:{ad}") - lat["planner"]), "storyboard": max(0.0, sum(boards) / len(boards)),
            "chunk": max(0.0, sum(chunks) / len(chunks)), "stitch": d(f"stitch:{ad}"), "mix": d(f"mix:{ad}"),
            "after_mix": max(d(f"check:{ad}"), d(f"report:{ad}"), d(f"timeline:{ad}")) + d("report")}


def _fake_cpu() -> float:
    """CPU seconds of this process (the fake servers' threads) and of every child it has waited
    for (doit's tree and the ffmpeg runs of the fakes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _doit_flags(jobs: int | None) -> tuple[str, ...]:
    """Plain `doit` (adspec's defaults: parallel) unless a worker count is asked for."""
    return () if jobs is None else ("-n", str(jobs), "-P", "thread")


def build_ads(ws: Workspace, n: int, scale: float, jobs: int | None = None, *, keep_open: bool = False,
              duration: int | None = None, local: dict[str, float] | None = None) -> dict[str, Any]:
    """A cold live build of `n` distinct 30 s ads (or `duration` s) with plain `doit` (or
    `doit -n jobs -P thread`).

    The lower bound is physical: no schedule beats the longest ad's critical path (its plan,
    one image, its longest chunk chain, stitch, mix) nor the build's local CPU-seconds spread
    over every core."""
    lat = latencies(scale)
    cores = os.cpu_count() or 1
    with fakes(scale) as (rep, oai, env):
        project = ws.project(f"live-{n}")
        ads = project.add_ads(ad_names(n), distinct=True, beats=False, duration=duration)  # the planner plans each ad
        project.env.update(env)
        before = _fake_cpu()
        run = project.doit(*_doit_flags(jobs)).check()
        # the fakes run on this machine's cores too (their threads, the ffmpeg they make clips
        # with): CPU a real provider spends elsewhere, but here it competes with the build
        fakes_cpu = _fake_cpu() - before - run.cpu_s
        if local is None:  # the 1-ad build: its local steps, uncontended
            first, first_plan = next(iter_plans(project, ads))
            local = _local_seconds(run, first, first_plan, lat)
        per_ad = {ad: _plan_figures(plan, lat, local) for ad, plan in iter_plans(project, ads)}
        cp = max(f["critical_path_s"] for f in per_ad.values())
        seq = sum(f["sequential_s"] for f in per_ad.values())
        bound = max(cp, run.cpu_s / cores)
        machine_bound = max(cp, (run.cpu_s + fakes_cpu) / cores)
        chunk_overhead = []
        for ad, plan in iter_plans(project, ads):
            for b in plan["beats"]:
                for k in range(len(b["clips"])):
                    d = run.duration(f"chunk:{ad}/{b['id']}/{k}")
                    if d is not None:
                        chunk_overhead.append(d - lat["video"])
        result = {
            "ads": n,
            "jobs": jobs,
            "scale": scale,
            "latencies_s": lat,
            "makespan_s": run.wall,
            "cpu_s": run.cpu_s,  # doit + ffmpeg CPU seconds: all local work of the build
            "cpu_s_per_ad": run.cpu_s / n,
            "cores": cores,
            "cpu_bound_s": run.cpu_s / cores,
            "local_s": local,
            "fakes_cpu_s": fakes_cpu,
            "machine_lower_bound_s": machine_bound,  # counting the fakes' CPU on the same cores
            "makespan_over_machine_bound": run.wall / machine_bound,
            "critical_path_s": cp,
            "makespan_over_critical_path": run.wall / cp,
            "lower_bound_s": bound,
            "makespan_over_lower_bound": run.wall / bound,
            "sequential_s": seq,
            "speedup_over_sequential": seq / run.wall,
            "paid_calls": {"replicate": rep.paid_creates, "openai": oai.count},
            "chunk_task_overhead_s": {
                "mean": sum(chunk_overhead) / len(chunk_overhead) if chunk_overhead else None,
                "max": max(chunk_overhead) if chunk_overhead else None,
            },
            "per_ad": per_ad if n <= 3 else {ads[0]: per_ad[ads[0]]},
        }
        if keep_open:
            result["_project"] = project
            result["_edit"] = edit_one_beat(project, ads[0], rep, oai, lat)
        return result


def edit_one_beat(project: Project, ad: str, rep: FakeReplicate, oai: FakeOpenAI, lat: dict[str, float]) -> dict[str, Any]:
    """Rewrite the image and motion prompts of the ad's longest beat (as a person rewriting the
    beat would), rebuild, count what was paid."""
    plan = next(p for _, p in iter_plans(project, [ad]))
    beat = max(plan["beats"], key=lambda b: (len(b["clips"]), b["duration"]))
    chunks = len(beat["clips"])
    before_rep, before_oai = rep.paid_creates, oai.count
    project.edit_beat(ad, beat["id"], "image_prompt", f"{beat['image_prompt']} -- edited: seen from a drone")
    project.edit_beat(ad, beat["id"], "motion_prompt", f"{beat['motion_prompt']} -- edited: faster")
    run = project.doit().check()
    paid = (rep.paid_creates - before_rep) + (oai.count - before_oai)
    minimal = 1 + chunks  # its storyboard image and its chunks; no plan, no music, no other beat
    chain = lat["image"] + chunks * lat["video"]
    stitch, mix = run.duration(f"stitch:{ad}") or 0.0, run.duration(f"mix:{ad}") or 0.0
    local = run.wall - chain
    real_chain = REAL_LATENCY["image"] + chunks * REAL_LATENCY["video"]
    return {
        "beat": beat["id"],
        "beat_chunks": chunks,
        "paid_requests": paid,
        "minimal_requests": minimal,
        "paid_over_minimal": paid / minimal,
        "by_model": {k: v for k, v in rep.creates_by_model.items() if v},
        "executed_tasks": run.executed(),
        "wall_s": run.wall,
        "cpu_s": run.cpu_s,
        "task_s": {k: round(v["end"] - v["start"], 3) for k, v in run.timings.get("tasks", {}).items()
                   if "start" in v and "end" in v},
        "beat_chain_s": chain,
        "wall_over_beat_chain": run.wall / chain,
        "stitch_s": stitch,
        "mix_s": mix,
        "local_overhead_s": local,
        "wall_over_beat_chain_at_real_latency": (real_chain + local) / real_chain,
    }


def makespan(ws: Workspace, sizes: list[int], scale: float, jobs: int | None = None,
             duration: int | None = None) -> dict[str, Any]:
    """Makespan for each number of ads in `sizes`; the first (1 ad) also gives the edit figures."""
    runs = []
    edit = None
    for n in sizes:
        r = build_ads(ws, n, scale, jobs, keep_open=(n == sizes[0]), duration=duration,
                      local=runs[0]["local_s"] if runs else None)
        r.pop("_project", None)
        edit = r.pop("_edit", edit)
        runs.append(r)
    return {"scale": scale, "jobs": jobs, "runs": runs, "edit": edit}
