"""Live status: build/<ad>/status.json, the seed's `GET /api/status` as a file.

Writers (the doit reporter in the main process, provider waits in worker threads or processes)
merge their fields under a per-ad file lock and replace the file atomically (temp + rename), so a
reader sees valid, complete JSON at every moment.

status.json is read and written through `adspec.build_files.AdStatus` (versioned; one of another
version or damaged is started afresh):
    {"version", "ad", "state": "running"|"done"|"waiting"|"partial"|"failed"|"interrupted"|"ignored"|"cleaned", "phase",
     "progress_pct", "ignored", "tasks": {"total", "done", "run", "up_to_date", "failed"},
     "chunks": {"done", "total", "current"}, "running": {task: {"since", "provider_status", "status_since"}},
     "cost": {"spent_usd", "saved_usd", "total_usd", "run_spent_usd", "run_saved_usd"},
     "run_cost": {"spent_usd", "saved_usd"}, "artifacts": {task: path relative to build/<ad>}, "final",
     "review", "last_error": {"task", "message", "time"} | null, "run", "pid", "started_at", "updated_at"}
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

from .build_files import AdStatus, CostFile, CostItem, RunningTask, read_model_or_none, write_pretty
from .file_locks import exclusive
from .money import fmt_usd
from .paths import AdPaths


def now_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def ad_lock(root: Path) -> ContextManager[None]:
    """One writer at a time for build/<ad>'s status and cost files, across threads and processes."""
    return exclusive(AdPaths(Path(root)).status_lock)


def status_path(build_dir: Path, ad: str) -> Path:
    return AdPaths.of(build_dir, ad).status


def read_status(build_dir: Path, ad: str) -> AdStatus | None:
    """build/<ad>/status.json as its readers should see it (None: none yet, damaged, or of
    another version): a "running" status whose build process is gone (SIGKILL, a reboot: it
    could not say so itself) reads "interrupted"; a "done" one whose final is gone, "cleaned"."""
    d = read_model_or_none(AdStatus, status_path(build_dir, ad))
    if d is not None and d.state == "running" and not owner_alive(d):
        d.state = "interrupted"
        d.running = {}  # nothing runs any more (its waits read on, growing, in `adspec status`)
    elif d is not None and d.state == "done" and not AdPaths.of(build_dir, ad).final.exists():
        as_cleaned(d)  # its final was removed since (by hand, or a clean that could not say so)
    return d


def as_cleaned(d: AdStatus) -> None:
    """`d` as the status of an ad whose built files are gone: nothing done, nothing to show."""
    d.state = d.phase = "cleaned"
    d.progress_pct = 0.0
    d.running, d.final, d.review, d.artifacts = {}, None, None, {}
    d.tasks.done = 0
    d.chunks.done = 0


def update_status(build_dir: Path, ad: str, change: Callable[[AdStatus], None]) -> AdStatus:
    """Read, change and atomically rewrite build/<ad>/status.json under the ad's lock."""
    root = AdPaths.of(build_dir, ad).root
    with ad_lock(root):
        data = read_status(build_dir, ad) or AdStatus(ad=ad)
        change(data)
        data.ad = ad
        data.updated_at = now_iso()
        write_pretty(AdPaths(root).status, data.to_json())
        return data


def provider_wait(build_dir: Path, ad: str, task: str, status: str) -> None:
    """A provider reported `status` for `task` (e.g. starting, processing)."""

    def change(d: AdStatus) -> None:
        run = d.running.setdefault(task, RunningTask(since=time.time()))
        if run.provider_status != status:
            run.provider_status = status
            run.status_since = time.time()

    update_status(build_dir, ad, change)


# ---- how an ad was rendered ------------------------------------------------------------------------

#: the phases that make the picture: offline, they are the animatic (drawn frames, camera moves)
PICTURE_PHASES = ("storyboard", "chunks")
OFFLINE_LABEL = "offline animatic"


def render_mode(items: Iterable[CostItem]) -> str:
    """How the picture of an ad was made, from its cost items (cost.json's `items`): "offline
    animatic" (the free local render: drawn storyboards, camera moves), "live" (the providers'
    models), "partly offline", or "" when nothing of the picture is built."""
    # "local": the person's own stills and footage, the same in either mode (adspec.own_media)
    providers = {i.provider for i in items if i.phase in PICTURE_PHASES} - {"local"}
    if not providers:
        return ""
    if providers == {"offline"}:
        return OFFLINE_LABEL
    return "partly offline" if "offline" in providers else "live"


def rendered(build_dir: Path, ad: str) -> str:
    """`render_mode` of build/<ad>/cost.json ("" when there is none yet, or of another version)."""
    cost = read_model_or_none(CostFile, AdPaths.of(build_dir, ad).cost)
    return render_mode(cost.items) if cost is not None else ""


# ---- adspec status --------------------------------------------------------------------------------


def known_ads(build_dir: Path) -> list[str]:
    build_dir = Path(build_dir)
    return sorted(p.parent.name for p in build_dir.glob(f"*/{AdPaths(Path()).status.name}"))


def _elapsed(since: float | None) -> str:
    if not since:
        return ""
    s = max(0, int(time.time() - since))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def row(d: AdStatus, *, times: bool = True) -> dict[str, str]:
    """A status as table cells; without `times`, what runs is named without how long it has run
    (`--watch` prints a line when something changes, not every second)."""
    waits = []
    for task, r in sorted(d.running.items()):
        kind, _, rest = task.partition(":")
        what = f"{kind} {rest.partition('/')[2]}".strip()  # "chunk hook/0", "mix": the ad is the row's
        since = _elapsed(r.status_since or r.since if r.provider_status else r.since) if times else ""
        waits.append(" ".join(x for x in (what, r.provider_status or "", since) if x))
    err = d.last_error
    return {
        "ad": d.ad,
        "state": state_of(d),
        "rendered": d.rendered or "",
        "phase": d.phase or "",
        # not built: no tasks known, no figure
        "progress": f"{d.progress_pct:.0f}% ({d.tasks.done}/{d.tasks.total})" if d.tasks.total else "",
        "chunks": f"{d.chunks.done}/{d.chunks.total}" if d.chunks.total else "",
        "spent": fmt_usd(d.cost.spent_usd),  # what its files' requests cost when paid (cost.json)
        "saved": fmt_usd(d.cost.saved_usd),
        "run_spent": fmt_usd(d.cost.run_spent_usd),  # the last (or running) run's own
        "run_saved": fmt_usd(d.cost.run_saved_usd),
        "now": "; ".join(waits),
        "error": err.message if err is not None else "",
        "updated": d.updated_at or "",
    }


def state_of(d: AdStatus) -> str:
    """The state a status says, corrected for a build that is gone: a "running" status whose
    process no longer exists (killed, machine rebooted) is "interrupted"."""
    state = d.state or "?"
    if state == "running" and not owner_alive(d):
        return "interrupted"
    return state


def print_table(statuses: list[AdStatus], file: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=None if (file or sys.stdout).isatty() else 160)
    table = Table()
    console.print("adspec status", highlight=False)  # a line of its own: rich pads a table's title to the table's width
    rows = [row(d) for d in statuses]
    cols = ["ad", "state", "rendered", "phase", "progress", "chunks", "spent", "saved", "now", "error"]
    # what the requests behind its files now cost (cost.json): paid by the builds that made them, or
    # served by the cache (after `doit clean`, all of it); a run's own is in its summary line, and
    # every payment ever in the cache's ledger (`adspec cache du`)
    headers = {"spent": "spent (its files)", "saved": "saved (its files)"}
    for c in cols:
        table.add_column(headers.get(c, c), overflow="fold")
    for r in rows:
        style = {"failed": "red", "interrupted": "red", "done": "green", "waiting": "yellow", "running": "yellow", "partial": "yellow"}.get(r["state"])
        table.add_row(*[r[c] for c in cols], style=style)
    console.print(table)


#: how long `--watch` waits for a new run when the status it first reads is already finished
START_GRACE_S = 5.0


def watch(build_dir: Path, ad: str, *, interval: float = 1.0, timeout: float | None = None, file: Any = None) -> int:
    """Follow one ad until its run finishes: one line per change; exit 0 when done (or waiting for
    approval, or ignored, or the targets asked were built: partial), 1 when it failed or nothing runs it (interrupted, killed, cleaned). An ad
    with no status yet is waited for (a build about to start), and so is one that already reads as
    finished when the watch starts, for `START_GRACE_S` (`doit & adspec status --watch AD`: the state
    first read may be the last run's, before the new run writes its own)."""
    out = file or sys.stdout
    last = None
    start = time.time()
    seen_running = False
    while True:
        d = read_status(build_dir, ad)
        if d is not None and d.state == "running":
            seen_running = True
        if d is not None:
            r = row(d, times=False)
            line = f"{r['ad']}: {r['state']} {r['phase']} {r['progress']}" + (f" chunks {r['chunks']}" if r["chunks"] else "")
            line += (f" this run spent {r['run_spent']} saved {r['run_saved']} (its files: spent {r['spent']})"
                     + (f" | {r['now']}" if r["now"] else ""))
            if r["state"] == "failed" and r["error"]:
                line += f" | {r['error']}"
            if line != last:
                print(line, file=out, flush=True)
                last = line
            settled = seen_running or time.time() - start >= START_GRACE_S
            if settled and d.state in ("done", "waiting", "ignored", "partial") and not d.running:
                return 0
            if settled and d.state in ("failed", "interrupted", "cleaned"):  # nothing runs: it will not finish
                return 1
        if timeout is not None and time.time() - start > timeout:
            return 2
        time.sleep(min(interval, 0.25) if not seen_running and time.time() - start < START_GRACE_S else interval)


def owner_alive(d: AdStatus) -> bool:
    pid = d.pid
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError):
        return False
