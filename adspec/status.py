"""Live status: build/<ad>/status.json, the seed's `GET /api/status` as a file.

Writers (the doit reporter in the main process, provider waits in worker threads or processes)
merge their fields under a per-ad file lock and replace the file atomically (temp + rename), so a
reader sees valid, complete JSON at every moment.

status.json:
    {"ad", "state": "running"|"done"|"failed"|"interrupted"|"ignored"|"cleaned", "phase", "progress_pct",
     "tasks": {"total", "done", "run", "cached", "failed"}, "chunks": {"done", "total", "current"},
     "running": {task: {"since", "provider_status", "status_since"}},
     "cost": {"spent_usd", "saved_usd", "total_usd", "run_spent_usd", "run_saved_usd"},
     "artifacts": {task: path relative to build/<ad>}, "final", "review",
     "last_error": {"task", "message", "time"} | null, "run", "pid", "started_at", "updated_at"}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, ContextManager

from .file_locks import exclusive
from .fsutil import write_json_atomic
from .money import fmt_usd
from .paths import AdPaths


def now_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def ad_lock(root: Path) -> ContextManager[None]:
    """One writer at a time for build/<ad>'s status and cost files, across threads and processes."""
    return exclusive(AdPaths(Path(root)).status_lock)


def status_path(build_dir: Path, ad: str) -> Path:
    return AdPaths.of(build_dir, ad).status


def read_status(build_dir: Path, ad: str) -> dict[str, Any] | None:
    """build/<ad>/status.json as its readers should see it: a "running" status whose build
    process is gone (SIGKILL, a reboot: it could not say so itself) reads "interrupted"."""
    try:
        d = json.loads(status_path(build_dir, ad).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict):
        return None
    if d.get("state") == "running" and not owner_alive(d):
        d["state"] = "interrupted"
    elif d.get("state") == "done" and not AdPaths.of(build_dir, ad).final.exists():
        as_cleaned(d)  # its final was removed since (by hand, or a clean that could not say so)
    return d


def as_cleaned(d: dict[str, Any]) -> None:
    """`d` as the status of an ad whose built files are gone: nothing done, nothing to show."""
    d.update(state="cleaned", phase="cleaned", progress_pct=0.0, running={}, final=None, review=None, artifacts={})
    for counts in (d.get("tasks"), d.get("chunks")):
        if isinstance(counts, dict) and "done" in counts:
            counts["done"] = 0


def update_status(build_dir: Path, ad: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read, change and atomically rewrite build/<ad>/status.json under the ad's lock."""
    root = AdPaths.of(build_dir, ad).root
    with ad_lock(root):
        data = read_status(build_dir, ad) or {"ad": ad}
        change(data)
        data["ad"] = ad
        data["updated_at"] = now_iso()
        write_json_atomic(AdPaths(root).status, data)
        return data


def provider_wait(build_dir: Path, ad: str, task: str, status: str) -> None:
    """A provider reported `status` for `task` (e.g. starting, processing)."""

    def change(d: dict[str, Any]) -> None:
        run = d.setdefault("running", {}).setdefault(task, {"since": time.time()})
        if run.get("provider_status") != status:
            run["provider_status"] = status
            run["status_since"] = time.time()

    update_status(build_dir, ad, change)


# ---- how an ad was rendered ------------------------------------------------------------------------

#: the phases that make the picture: offline, they are the animatic (drawn frames, camera moves)
PICTURE_PHASES = ("storyboard", "chunks")
OFFLINE_LABEL = "offline animatic"


def render_mode(items: list[dict[str, Any]]) -> str:
    """How the picture of an ad was made, from its cost items (cost.json's `items`): "offline
    animatic" (the free local render: drawn storyboards, camera moves), "live" (the providers'
    models), "partly offline", or "" when nothing of the picture is built."""
    providers = {i.get("provider") for i in items if i.get("phase") in PICTURE_PHASES}
    if not providers:
        return ""
    if providers == {"offline"}:
        return OFFLINE_LABEL
    return "partly offline" if "offline" in providers else "live"


def rendered(build_dir: Path, ad: str) -> str:
    """`render_mode` of build/<ad>/cost.json ("" when there is none yet)."""
    try:
        cost = json.loads(AdPaths.of(build_dir, ad).cost.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    items = cost.get("items") if isinstance(cost, dict) else None
    return render_mode([i for i in items if isinstance(i, dict)]) if isinstance(items, list) else ""


# ---- adspec status --------------------------------------------------------------------------------


def known_ads(build_dir: Path) -> list[str]:
    build_dir = Path(build_dir)
    return sorted(p.parent.name for p in build_dir.glob(f"*/{AdPaths(Path()).status.name}"))


def _elapsed(since: float | None) -> str:
    if not since:
        return ""
    s = max(0, int(time.time() - since))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def row(d: dict[str, Any]) -> dict[str, str]:
    tasks = d.get("tasks") or {}
    chunks = d.get("chunks") or {}
    cost = d.get("cost") or {}
    waits = []
    for task, r in sorted((d.get("running") or {}).items()):
        what = task.split(":", 1)[-1]
        if r.get("provider_status"):
            waits.append(f"{what} {r['provider_status']} {_elapsed(r.get('status_since') or r.get('since'))}")
        else:
            waits.append(f"{what} {_elapsed(r.get('since'))}")
    err = d.get("last_error") or {}
    return {
        "ad": d.get("ad", "?"),
        "state": state_of(d),
        "rendered": str(d.get("rendered") or ""),
        "phase": d.get("phase") or "",
        "progress": f"{d.get('progress_pct', 0):.0f}% ({tasks.get('done', 0)}/{tasks.get('total', 0)})",
        "chunks": f"{chunks.get('done', 0)}/{chunks.get('total', 0)}" if chunks.get("total") else "",
        "spent": fmt_usd(cost.get("spent_usd", 0.0)),
        "saved": fmt_usd(cost.get("saved_usd", 0.0)),
        "now": "; ".join(waits),
        "error": err.get("message", "") if d.get("state") == "failed" or err else "",
        "updated": d.get("updated_at", ""),
    }


def state_of(d: dict[str, Any]) -> str:
    """The state a status says, corrected for a build that is gone: a "running" status whose
    process no longer exists (killed, machine rebooted) is "interrupted"."""
    state = str(d.get("state", "?"))
    if state == "running" and not owner_alive(d):
        return "interrupted"
    return state


def print_table(statuses: list[dict[str, Any]], file: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=None if (file or sys.stdout).isatty() else 160)
    table = Table(title="adspec status", title_justify="left")
    rows = [row(d) for d in statuses]
    cols = ["ad", "state", "rendered", "phase", "progress", "chunks", "spent", "saved", "now", "error"]
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        style = {"failed": "red", "interrupted": "red", "done": "green", "running": "yellow"}.get(r["state"])
        table.add_row(*[r[c] for c in cols], style=style)
    console.print(table)


def watch(build_dir: Path, ad: str, *, interval: float = 1.0, timeout: float | None = None, file: Any = None) -> int:
    """Follow one ad until its run finishes: one line per change; exit 0 when done, 1 when failed."""
    out = file or sys.stdout
    last = None
    start = time.time()
    while True:
        d = read_status(build_dir, ad)
        if d is not None:
            r = row(d)
            line = f"{r['ad']}: {r['state']} {r['phase']} {r['progress']}" + (f" chunks {r['chunks']}" if r["chunks"] else "")
            line += f" spent {r['spent']} saved {r['saved']}" + (f" | {r['now']}" if r["now"] else "")
            if r["state"] == "failed" and r["error"]:
                line += f" | {r['error']}"
            if line != last:
                print(line, file=out, flush=True)
                last = line
            if d.get("state") in ("done", "failed") and not d.get("running"):
                return 0 if d["state"] == "done" else 1
            if d.get("state") == "running" and d.get("pid") and not owner_alive(d):
                print(f"{ad}: the build process ({d['pid']}) is gone; status stays as it left it", file=out, flush=True)
                return 1
        if timeout is not None and time.time() - start > timeout:
            return 2
        time.sleep(interval)


def owner_alive(d: dict[str, Any]) -> bool:
    pid = d.get("pid")
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError):
        return False
