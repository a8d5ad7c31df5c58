"""What the live pages and the seed's status API show, read from the files the build writes:
build/<ad>/status.json (progress, phase, chunks, cost, artifacts, errors), plan.json (beats and
their chunks), the artifacts on disk, and the server's own queue (queued, or the build's outcome
when doit never got to write a status, e.g. a refusal over the budget).

The event stream polls those files' stamps (size and mtime) a few times a second and sends a
fresh view whenever one changes: the page updates as the build writes, with no second source
of truth.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

from ..config import Settings
from ..paths import AdPaths, ad_folder
from ..status import read_status
from .builds import QUEUED, RUNNING, BuildQueue

POLL_S = 0.25
PING_S = 15.0


def file_url(settings: Settings, path: Path) -> str | None:
    """/files/<path under build/>?v=<mtime> for an existing artifact (the stamp busts caches)."""
    try:
        st = path.stat()
        rel = path.relative_to(settings.build_dir)
    except (OSError, ValueError):
        return None
    return f"/files/{quote(rel.as_posix())}?v={st.st_mtime_ns}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _iso_to_epoch(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def ad_view(settings: Settings, queue: BuildQueue, ad: str) -> dict[str, Any]:
    """The live page's whole state for one ad."""
    paths = AdPaths.of(settings.build_dir, ad)
    status = read_status(settings.build_dir, ad) or {}
    run = queue.get(ad)
    state = status.get("state") or "not built"
    error = (status.get("last_error") or {}).get("message") if state == "failed" else None
    fresh = True  # does status.json describe the server's latest build of this ad?
    if run is not None:
        if run.state == QUEUED:
            state, error, fresh = "queued", None, False
        elif run.state == RUNNING:
            started = _iso_to_epoch(status.get("started_at"))
            fresh = started >= int(run.started_at or 0) - 1
            state, error = "running", None
        elif run.error and _iso_to_epoch(status.get("updated_at")) < int(run.started_at or 0):
            state, error = "failed", run.error  # the build failed before doit wrote a status
        elif run.error and state != "failed":
            state, error = "failed", run.error
    chunks = (status.get("chunks") or {}) if fresh else {}
    artifacts = (status.get("artifacts") or {}) if fresh else {}
    running = (status.get("running") or {}) if fresh else {}
    plan = _read_json(paths.plan) or {}
    beats = []
    for b in plan.get("beats") or []:
        bid = b["id"]
        task_chunks = []
        for k in range(len(b.get("clips") or [])):
            task = f"chunk:{ad}/{bid}/{k}"
            chunk = paths.chunk(bid, k)
            task_chunks.append({
                "index": k,
                "state": "running" if task in running else "done" if task in artifacts else
                         ("stale" if chunk.exists() else "waiting"),
                "url": file_url(settings, chunk),
            })
        sb_task = f"storyboard:{ad}/{bid}"
        beats.append({
            "id": bid, "type": b.get("type"), "start": b.get("start"), "duration": b.get("duration"),
            "image_prompt": b.get("image_prompt"), "motion_prompt": b.get("motion_prompt"),
            "storyboard": {"state": "running" if sb_task in running else "done" if sb_task in artifacts else
                           ("stale" if paths.storyboard(bid).exists() else "waiting"),
                           "url": file_url(settings, paths.storyboard(bid))},
            "chunks": task_chunks,
        })
    cost = status.get("cost") or {}
    return {
        "ad": ad,
        "title": plan.get("title"),
        "state": state,
        "phase": (status.get("phase") if fresh else None) or ("queued" if state == "queued" else None),
        "progress": float(status.get("progress_pct", 0.0)) if fresh else 0.0,
        "tasks": status.get("tasks") if fresh else None,
        "chunks": {"done": chunks.get("done", 0), "total": chunks.get("total", 0), "current": chunks.get("current", [])},
        "running": sorted(running),
        "waits": {t: r.get("provider_status") for t, r in running.items() if r.get("provider_status")},
        "cost": {"spent_usd": cost.get("spent_usd", 0.0), "saved_usd": cost.get("saved_usd", 0.0),
                 "total_usd": cost.get("total_usd", 0.0)},
        "error": error,
        "beats": beats,
        "video": file_url(settings, paths.video),
        "final": file_url(settings, paths.final) if state not in ("running", "queued") else None,
        "review": file_url(settings, paths.root / "index.html"),
        "thumbnail": next((b["storyboard"]["url"] for b in beats if b["storyboard"]["url"]), None),
        "queue": run.to_json() if run is not None else None,
        "updated_at": status.get("updated_at"),
    }


def seed_status(settings: Settings, queue: BuildQueue, ad: str) -> dict[str, Any]:
    """GET /api/status/{video_id}: the seed's fields, from the same view as the page."""
    v = ad_view(settings, queue, ad)
    done = v["chunks"]["done"]
    total = v["chunks"]["total"]
    return {
        "video_id": ad,
        "status": v["state"],
        "progress": v["progress"],
        "current_phase": v["phase"],
        "animatic_urls": [b["storyboard"]["url"] for b in v["beats"] if b["storyboard"]["url"]],
        "stitched_video_url": v["video"] if v["state"] not in ("queued", "running") else None,
        "final_video_url": v["final"],
        "current_chunk_index": min(done, max(total - 1, 0)) if total else None,
        "total_chunks": total,
        "cost_usd": v["cost"]["spent_usd"],
        "error": v["error"],
    }


def stamp(settings: Settings, queue: BuildQueue, ads: list[str], specs: list[Path]) -> tuple:
    """Changes whenever anything a view shows may have changed."""
    out: list[Any] = [queue.version]
    for ad in ads:
        root = settings.build_dir / ad_folder(ad)
        for name in ("status.json", "plan.json"):
            try:
                st = (root / name).stat()
                out.append((st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
    for p in specs:
        try:
            st = p.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


async def events(view: Any, stamp_of: Any, is_disconnected: Any) -> AsyncIterator[dict[str, Any] | None]:
    """Yield `view()` now and whenever `stamp_of()` changes; None as a keep-alive."""
    last: Any = object()
    pinged = time.monotonic()
    while not await is_disconnected():
        now = await asyncio.to_thread(stamp_of)
        if now != last:
            last = now
            pinged = time.monotonic()
            yield await asyncio.to_thread(view)
        elif time.monotonic() - pinged > PING_S:
            pinged = time.monotonic()
            yield None
        await asyncio.sleep(POLL_S)
