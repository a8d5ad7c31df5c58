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
import dataclasses
import time
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

from ..build_files import AdStatus, ChunkCounts
from ..config import Settings
from ..errors import SpecError
from ..paths import AdPaths, ad_folder
from ..plan_file import load_plan
from ..status import read_status
from .builds import QUEUED, REFUSED, RUNNING, BuildQueue

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


def _iso_to_epoch(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def _changed_since(settings: Settings, ad: str, when: float | None) -> bool:
    """Whether the ad's spec was saved after `when` (a refusal of the spec before is stale)."""
    from .project import NotFound, spec_of

    try:
        return spec_of(settings, ad).stat().st_mtime > (when or 0.0)
    except (NotFound, OSError, SpecError):
        return True


def ad_view(settings: Settings, queue: BuildQueue, ad: str) -> dict[str, Any]:
    """The live page's whole state for one ad."""
    paths = AdPaths.of(settings.build_dir, ad)
    found = read_status(settings.build_dir, ad)
    status = found or AdStatus(ad=ad)
    run = queue.get(ad)
    state = status.state or "not built"
    error = status.last_error.message if state == "failed" and status.last_error is not None else None
    fresh = True  # does status.json describe the server's latest build of this ad?
    refusal = None  # a build asked for and not started (spec errors, the budget): said beside the state
    queued = run
    if run is not None and run.reason == REFUSED:
        refusal = None if _changed_since(settings, ad, run.finished_at) else run.error
        if refusal is not None and found is None:  # never built: what the seed's client asked for failed
            state, error = "failed", refusal
        run = None
    if run is not None:
        if run.state == QUEUED:
            state, error, fresh = "queued", None, False
        elif run.state == RUNNING:
            started = _iso_to_epoch(status.started_at)
            fresh = started >= int(run.started_at or 0) - 1
            state, error = "running", None
        elif run.error and _iso_to_epoch(status.updated_at) < int(run.started_at or 0):
            state, error = "failed", run.error  # the build failed before doit wrote a status
        elif run.error and state != "failed":
            state, error = "failed", run.error
    chunks = status.chunks if fresh else ChunkCounts()
    artifacts = status.artifacts if fresh else {}
    running = status.running if fresh else {}
    plan = load_plan(paths)
    beats: list[dict[str, Any]] = []
    for b in plan.beats if plan is not None else ():
        bid = b.id
        task_chunks = []
        for k in range(len(b.clips)):
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
            "id": bid, "type": b.type, "start": b.start, "duration": b.duration,
            "image_prompt": b.image_prompt, "motion_prompt": b.motion_prompt,
            "storyboard": {"state": "running" if sb_task in running else "done" if sb_task in artifacts else
                           ("stale" if paths.storyboard(bid).exists() else "waiting"),
                           "url": file_url(settings, paths.storyboard(bid))},
            "chunks": task_chunks,
        })
    cost = status.cost
    return {
        "ad": ad,
        "title": plan.title if plan is not None else None,
        "state": state,
        "phase": (status.phase if fresh else None) or ("queued" if state == "queued" else None),
        "progress": float(status.progress_pct) if fresh else 0.0,
        "tasks": dataclasses.asdict(status.tasks) if fresh and found is not None else None,
        "chunks": {"done": chunks.done, "total": chunks.total, "current": list(chunks.current)},
        "running": sorted(running),
        "waits": {t: r.provider_status for t, r in running.items() if r.provider_status},
        "cost": {"spent_usd": cost.spent_usd, "saved_usd": cost.saved_usd, "total_usd": cost.total_usd},
        "error": error,
        "refusal": refusal,
        "beats": beats,
        "video": file_url(settings, paths.video),
        "final": file_url(settings, paths.final) if state not in ("running", "queued") else None,
        "review": file_url(settings, paths.root / "index.html"),
        "thumbnail": next((b["storyboard"]["url"] for b in beats if b["storyboard"]["url"]), None),
        "queue": queued.to_json() if queued is not None else None,
        "updated_at": status.updated_at,
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
