"""What the 30 s example costs on each video model of the registry, and how much paid video is
trimmed away (waste = paid video seconds / seconds used).

Prices come from adspec itself: `adspec estimate --json` on a fresh project whose spec is the
example with `models.video` set to the model (live keys set so paid calls are priced; nothing is
called). Beats and clips come from the offline planner, which the estimate also uses as its
stand-in plan when the live planner would be asked; for the default model the shipped beat file
is reported too.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

from .project import EXAMPLE, EXAMPLE_BEATS, Workspace

SEED_COST_USD = 0.51  # the seed's own figure for one 30 s ad
FAKE_KEYS = {"REPLICATE_API_TOKEN": "r8_BENCH-not-a-real-token-0000", "OPENAI_API_KEY": "sk-BENCH-not-a-real-key-0000",
             "ADSPEC_BACKEND": ""}


def _clips_of(beat_durations: list[int], clip_lengths: tuple[int, ...]) -> list[list[int]]:
    from adspec.plan_rules import fit_clips

    return [fit_clips(d, clip_lengths) for d in beat_durations]


def _planned_durations(spec_path: Any, registry: Any) -> list[int]:
    from adspec.loader import load_spec
    from adspec.offline_planner import plan_spec_offline

    return [b.duration for b in plan_spec_offline(load_spec(spec_path), registry).beats]


def cost_per_model(ws: Workspace, models: list[str] | None = None) -> dict[str, Any]:
    from adspec.registry import load_registry

    reg = load_registry()
    base = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    shipped = [b["duration"] for b in yaml.safe_load(EXAMPLE_BEATS.read_text(encoding="utf-8"))["beats"]]
    rows = []
    for name in models or reg.names("video"):
        entry = reg.models[name]
        project = ws.project(f"cost-{name}")
        spec = dict(base, models=dict(base["models"], video=name))
        path = project.specs / "trailrunner.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        durations = _planned_durations(path, reg)
        clips = _clips_of(durations, entry.clip_lengths)
        paid_s = sum(map(sum, clips))
        rc, _, out = project.command(sys.executable, "-m", "adspec.cli", "estimate", "--json", **FAKE_KEYS)
        estimate: dict[str, Any] | None = None
        if rc == 0:
            try:
                estimate = json.loads(out[out.index("{"):])
            except ValueError:
                estimate = None
        row: dict[str, Any] = {
            "model": name,
            "beats_s": durations,
            "clips_s": clips,
            "chunks": sum(map(len, clips)),
            "paid_video_s": paid_s,
            "used_video_s": spec["duration"],
            "waste": paid_s / spec["duration"],
            "price_checked": entry.price.get("checked"),
            "price_verified": bool(entry.price.get("verified", True)),
        }
        if estimate is not None:
            row["total_usd"] = estimate.get("total_usd")
            row["by_phase_usd"] = _phases(estimate)
            row["exact"] = all(a.get("exact", True) for a in estimate.get("ads", []))
        else:
            row["total_usd"] = None
            row["estimate_error"] = out.strip().splitlines()[-3:]
        rows.append(row)
    default = reg.resolve(base["models"]["video"], "video")
    shipped_clips = _clips_of(shipped, default.clip_lengths)
    return {
        "seed_usd": SEED_COST_USD,
        "example": "specs/trailrunner.yaml (30 s, 16:9, 720p, flux-dev, musicgen, gpt-4.1)",
        "rows": rows,
        "shipped_beat_file": {
            "model": default.name,
            "beats_s": shipped,
            "clips_s": shipped_clips,
            "paid_video_s": sum(map(sum, shipped_clips)),
            "waste": sum(map(sum, shipped_clips)) / base["duration"],
        },
    }


def _phases(estimate: dict[str, Any]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for ad in estimate.get("ads", []):
        for phase, v in (ad.get("phases") or {}).items():
            totals[phase] = round(totals.get(phase, 0.0) + float(v.get("usd", 0.0)), 6)
    return totals
