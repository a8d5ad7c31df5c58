"""`adspec cache du | gc | show KEY | forget KEY`: the request cache made visible and bounded.

- `du`: bytes by kind (image, video, music, plan) and by ad (what the receipts under build/
  point at), plus the database, rejected outputs, leftovers and lock files. Reads only.
- `gc`: removes the artifacts nothing needs: no receipt under build/ refers to them, no ledger
  line and no entry is younger than the age limit (default 30 days), no request is pending. A
  paid artifact that any receipt or recent ledger line refers to is never removed. Also removes
  blobs no entry names, rejected outputs past the age limit, temporary leftovers of killed runs
  and lock files nobody holds. `--dry-run` says what it would do and changes nothing.
- `show KEY`: what the cache knows about one key (a prefix of 6+ characters will do): its
  state (cached, corrupt, pending with or without a job id, claimed by a running build), the
  artifact, cost, job id, ledger lines, and the receipts and recipe that use it. Reads only.
- `forget KEY`: drops a stuck request's records so the next build asks again (which may pay
  again: it says so).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .cache import RequestCache, describe_pending
from .cache_entry import Entry
from .cache_view import CacheView
from .errors import CacheError, shown_path
from .hashing import sha256_file
from .money import fmt_usd

__all__ = ["usage", "render_usage", "collect", "render_gc", "show", "render_show", "forget", "resolve_key",
           "DEFAULT_MAX_AGE_DAYS"]

DEFAULT_MAX_AGE_DAYS = 30.0
LEFTOVER_SECONDS = 24 * 3600  # a temporary file older than this belongs to a run that was killed
ORPHAN_SECONDS = 3600  # a blob no entry names yet may be one a running build is about to record
#: an entry made or used this recently is kept whatever the age limit: a running build writes the
#: receipt that keeps it only after it has placed the artifact (a clip's conform takes a while)
GRACE_SECONDS = 3600
NO_AD = "(no receipt under build/)"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


# ---- what refers to the cache ---------------------------------------------------------------------


def receipts(build_dirs: Iterable[Path]) -> list[tuple[str, Path, dict[str, Any]]]:
    """(ad, receipt file, receipt) of every receipt under the build folders."""
    out = []
    for build in build_dirs:
        build = Path(build)
        if not build.is_dir():
            continue
        for path in sorted(build.rglob("*.receipt.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and isinstance(data.get("key"), str):
                out.append((path.relative_to(build).parts[0], path, data))
    return out


def ledger_lines(root: Path) -> list[dict[str, Any]]:
    try:
        lines = (Path(root) / "ledger.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


# ---- du -------------------------------------------------------------------------------------------


def usage(root: Path, build_dirs: Iterable[Path]) -> dict[str, Any]:
    """Bytes by kind and by ad; every artifact's bytes are counted once per kind and per ad."""
    view = CacheView(root)
    try:
        entries = list(view.entries())
        pending = view.pending_keys()
    finally:
        view.close()
    by_sha: dict[str, list[Entry]] = {}
    for e in entries:
        by_sha.setdefault(e.sha256, []).append(e)
    blobs = {p.name: _size(p) for p in _files(Path(root) / "blobs")}
    by_kind: dict[str, dict[str, Any]] = {}
    for sha, size in blobs.items():
        kinds = {e.kind for e in by_sha.get(sha, [])} or {"(no entry)"}
        for kind in kinds:
            row = by_kind.setdefault(kind, {"artifacts": 0, "bytes": 0, "paid_usd": 0.0})
            row["artifacts"] += 1
            row["bytes"] += size
            row["paid_usd"] += sum(e.cost_usd for e in by_sha.get(sha, []) if e.kind == kind)
    entry_of = {e.key: e for e in entries}
    shas_by_ad: dict[str, set[str]] = {}
    used: set[str] = set()
    for ad, _, data in receipts(build_dirs):
        found = entry_of.get(data["key"])
        if found is not None and found.sha256 in blobs:
            shas_by_ad.setdefault(ad, set()).add(found.sha256)
            used.add(found.sha256)
    by_ad = {ad: {"artifacts": len(s), "bytes": sum(blobs[x] for x in s)} for ad, s in sorted(shas_by_ad.items())}
    rest = set(blobs) - used
    if rest:
        by_ad[NO_AD] = {"artifacts": len(rest), "bytes": sum(blobs[x] for x in rest)}
    for row in by_kind.values():
        row["paid_usd"] = round(row["paid_usd"], 6)
    ledger = [x for x in ledger_lines(root) if _usd_of(x) > 0]
    return {
        "root": str(root),
        "artifacts": len(blobs),
        "artifact_bytes": sum(blobs.values()),
        "database_bytes": sum(_size(p) for p in _files(Path(root) / "requests")),
        "rejected_bytes": sum(_size(p) for p in _files(Path(root) / "rejected")),
        "temporary_bytes": sum(_size(p) for p in _files(Path(root) / "tmp")),
        "lock_files": len(_files(Path(root) / "locks")),
        "pending_requests": len(pending),
        "by_kind": dict(sorted(by_kind.items())),
        "by_ad": by_ad,
        # every payment this cache recorded (its ledger: failed calls that were billed too); what
        # an ad's files cost is in its cost.json and `adspec status`
        "ledger": {"paid_calls": len(ledger), "paid_usd": round(sum(_usd_of(x) for x in ledger), 6)},
    }


def render_usage(u: dict[str, Any]) -> str:
    lines = [f"cache {u['root']}: {human(u['artifact_bytes'])} in {u['artifacts']} artifacts; database "
             f"{human(u['database_bytes'])}, rejected outputs {human(u['rejected_bytes'])}, temporary "
             f"{human(u['temporary_bytes'])}; {u['lock_files']} lock files, {u['pending_requests']} pending requests"]
    ledger = u.get("ledger") or {}
    if ledger.get("paid_calls"):
        lines.append(f"paid in all: {fmt_usd(ledger['paid_usd'])} for {ledger['paid_calls']} calls (the ledger, "
                     "ledger.jsonl: every payment, failed calls that were billed too)")
    if u["by_kind"]:
        lines.append("by kind:")
        for kind, row in u["by_kind"].items():
            lines.append(f"  {kind:<12} {row['artifacts']:>5} artifacts {human(row['bytes']):>10}   paid {fmt_usd(row['paid_usd'])}")
    if u["by_ad"]:
        lines.append("by ad (what its receipts under build/ use; an artifact shared by ads counts for each):")
        for ad, row in u["by_ad"].items():
            lines.append(f"  {ad:<28} {row['artifacts']:>5} artifacts {human(row['bytes']):>10}")
    return "\n".join(lines) + "\n"


# ---- gc -------------------------------------------------------------------------------------------


@dataclass
class Collection:
    """What gc removes (or would, with --dry-run) and what it keeps."""

    entries: list[Entry] = field(default_factory=list)  # records whose artifacts nothing needs
    blobs: dict[str, int] = field(default_factory=dict)  # sha256 -> bytes, removed with them
    orphans: list[Path] = field(default_factory=list)  # blobs no entry names
    rejected: list[Path] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)  # keys whose lock file nobody holds
    kept: int = 0
    kept_bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # keys in use by a running build: left alone

    @property
    def paid(self) -> list[Entry]:
        return [e for e in self.entries if e.cost_usd > 0]

    def removed_bytes(self) -> int:
        return (sum(self.blobs.values()) + sum(_size(p) for p in self.orphans) + sum(_size(p) for p in self.rejected)
                + sum(_size(p) for p in self.leftovers))

    def to_json(self) -> dict[str, Any]:
        return {"entries": [e.key for e in self.entries], "paid_entries": [e.key for e in self.paid],
                "paid_usd": round(sum(e.cost_usd for e in self.paid), 6), "blobs": sorted(self.blobs),
                "orphans": [p.name for p in self.orphans], "rejected": [p.name for p in self.rejected],
                "leftovers": [p.name for p in self.leftovers], "lock_files": len(self.locks),
                "removed_bytes": self.removed_bytes(), "kept": self.kept, "kept_bytes": self.kept_bytes,
                "skipped": self.skipped}


def collect(root: Path, build_dirs: Iterable[Path], *, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
            dry_run: bool = False, now: float | None = None) -> Collection:
    """Decide what nothing needs, then (unless `dry_run`) remove it. See the module's docstring."""
    root = Path(root)
    now = time.time() if now is None else now
    cutoff = now - max_age_days * 86400
    view = CacheView(root)
    try:
        entries = list(view.entries())
        pending = set(view.pending_keys())
        lock_keys = [p.name[: -len(".lock")] for p in _files(root / "locks") if p.name.endswith(".lock")]
    finally:
        view.close()
    keep_keys = {data["key"] for _, _, data in receipts(build_dirs)} | pending
    keep_keys |= {str(x.get("key")) for x in ledger_lines(root) if _time_of(x) >= cutoff}
    blob_files = {p.name: p for p in _files(root / "blobs")}
    recent = min(cutoff, now - GRACE_SECONDS)
    keep_keys |= {e.key for e in entries if _last_used(e, blob_files) >= recent}
    kept = [e for e in entries if e.key in keep_keys]
    keep_shas = {e.sha256 for e in kept}
    out = Collection(entries=[e for e in entries if e.key not in keep_keys])
    out.kept, out.kept_bytes = len(keep_shas & set(blob_files)), sum(_size(blob_files[s]) for s in keep_shas if s in blob_files)
    out.blobs = {e.sha256: _size(blob_files[e.sha256]) for e in out.entries
                 if e.sha256 not in keep_shas and e.sha256 in blob_files}
    named = {e.sha256 for e in entries}
    out.orphans = [p for s, p in blob_files.items() if s not in named and p.stat().st_mtime < now - ORPHAN_SECONDS]
    out.rejected = [p for p in _files(root / "rejected") if p.stat().st_mtime < cutoff]
    out.leftovers = [p for p in _files(root / "tmp") if p.stat().st_mtime < now - LEFTOVER_SECONDS]
    out.locks = [k for k in lock_keys if k not in pending and not _held(root / "locks" / f"{k}.lock")]
    if dry_run or not (out.entries or out.orphans or out.rejected or out.leftovers or out.locks):
        return out
    cache = RequestCache(root)
    try:
        _remove(cache, out)
    finally:
        cache.close()
    return out


def _last_used(entry: Entry, blob_files: dict[str, Path]) -> float:
    """When the entry was last made or served: its blob's time (written when the entry is made,
    touched by every cache hit; `created_at` is when the request started), else when it was made."""
    blob = blob_files.get(entry.sha256)
    try:
        return blob.stat().st_mtime if blob is not None else entry.created_at
    except OSError:
        return entry.created_at


def _time_of(line: dict[str, Any]) -> float:
    """A ledger line's time; a line without a readable one counts as new (kept: the safe side)."""
    try:
        return float(line["time"])
    except (KeyError, TypeError, ValueError):
        return float("inf")


def _usd_of(line: dict[str, Any]) -> float:
    try:
        return float(line.get("cost_usd") or 0)
    except (TypeError, ValueError):
        return 0.0


def _held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def _remove(cache: RequestCache, out: Collection) -> None:
    gone: list[Entry] = []
    for e in out.entries:
        with cache.try_claim(e.key) as held:
            if not held or cache.pending(e.key) is not None:  # a build is asking for it right now
                out.skipped.append(e.key)
                continue
            cache.drop_records(e.key)
            gone.append(e)
    out.entries = gone
    still_named = {e.sha256 for e in cache.entries()}  # a build may have recorded the same bytes meanwhile
    out.blobs = {s: n for s, n in out.blobs.items() if s in {e.sha256 for e in gone} and s not in still_named}
    for sha in out.blobs:
        cache.blob_path(sha).unlink(missing_ok=True)
    out.orphans = [p for p in out.orphans if p.name not in still_named]
    for p in [*out.orphans, *out.rejected, *out.leftovers]:
        p.unlink(missing_ok=True)
    out.locks = [k for k in out.locks if cache.remove_stale_lock(k)]


def render_gc(out: Collection, *, dry_run: bool, max_age_days: float, build_dir: Path | None = None) -> str:
    verb = "would remove" if dry_run else "removed"
    paid = out.paid
    under = "build/" if build_dir is None else f"{shown_path(str(build_dir))}/"
    if build_dir is not None and not build_dir.is_dir():
        under += " (there is none)"
    recent = (f"the last {max_age_days:g} days" if max_age_days * 86400 > GRACE_SECONDS
              else "the last hour (always kept)")
    lines = [f"{verb} {human(out.removed_bytes())}: {len(out.blobs)} artifacts no receipt under {under} uses and "
             f"nothing used in {recent} ({len(out.entries)} cache entries), {len(out.orphans)} "
             f"blobs no entry names, {len(out.rejected)} rejected outputs, {len(out.leftovers)} leftovers of killed "
             f"runs, {len(out.locks)} lock files nobody holds"]
    if paid:
        lines.append(f"{len(paid)} of those entries were paid for ({fmt_usd(sum(e.cost_usd for e in paid))}): "
                     f"a build that needs them again pays again")
    if out.skipped:
        lines.append(f"left {len(out.skipped)} entries alone: a running build is using them")
    anything = bool(out.removed_bytes() or out.entries or out.locks)
    lines.append(f"kept {out.kept} artifacts ({human(out.kept_bytes)})"
                 + ("; run without --dry-run to remove" if dry_run and anything else ""))
    return "\n".join(lines) + "\n"


# ---- show / forget --------------------------------------------------------------------------------


def resolve_key(root: Path, build_dirs: Iterable[Path], text: str) -> str:
    """The one key `text` names (a whole key, or a prefix of at least 6 characters of one the
    cache, its ledger or a receipt knows). CacheError otherwise."""
    text = text.strip().lower()
    view = CacheView(root)
    try:
        known = view.keys()
    finally:
        view.close()
    known |= {str(x.get("key")) for x in ledger_lines(root)}
    known |= {data["key"] for _, _, data in receipts(build_dirs)}
    if text in known:
        return text
    if len(text) < 6:
        raise CacheError(f"cache key '{text}' is too short: give at least 6 characters of it")
    found = sorted(k for k in known if k.startswith(text))
    if not found:
        raise CacheError(f"no cache record, ledger line or receipt has a key starting with '{text}' (cache {root})")
    if len(found) > 1:
        raise CacheError(f"'{text}' starts {len(found)} keys ({', '.join(k[:16] for k in found[:4])}...): give more of it")
    return found[0]


def show(root: Path, build_dirs: Iterable[Path], key_text: str) -> dict[str, Any]:
    """Everything known about one key, read without changing anything."""
    root = Path(root)
    key = resolve_key(root, build_dirs, key_text)
    view = CacheView(root)
    try:
        raw = view.record(key)
        entry = view.entry(key)
        pending = view.pending(key)
    finally:
        view.close()
    info: dict[str, Any] = {"key": key, "entry": entry.to_dict() if entry else None, "pending": pending}
    problem = None
    if entry is not None:
        blob = view.blob_path(entry.sha256)
        info["artifact"] = str(blob)
        if not blob.is_file():
            problem = "its artifact is missing"
        elif blob.stat().st_size != entry.size or sha256_file(blob) != entry.sha256:
            problem = "its artifact's bytes do not match their sha256"
    elif raw is not None:
        problem = "its record is damaged or was edited"
    claimed = _held(root / "locks" / f"{key}.lock")
    if problem is not None:
        state = f"corrupt: {problem} (the next build drops it and asks again)"
    elif entry is not None:
        state = "cached"
    elif pending is not None:  # the provider rules' own words: resume, look up, re-request once, or stopped
        state = f"pending: {describe_pending(pending) or json.dumps(pending, sort_keys=True)}"
    else:
        state = "not cached (the ledger or a receipt names it)"
    if claimed:
        state += "; claimed: a running build holds its lock now"
    info["state"] = state
    info["claimed"] = claimed
    info["ledger"] = [x for x in ledger_lines(root) if x.get("key") == key]
    info["used_by"] = [{"ad": ad, "receipt": str(path), "artifact": data.get("artifact"), "task": data.get("task"),
                        "recipe": data.get("recipe")} for ad, path, data in receipts(build_dirs) if data["key"] == key]
    return info


def render_show(info: dict[str, Any]) -> str:
    e = info["entry"]
    lines = [f"key       {info['key']}", f"state     {info['state']}"]
    if e is not None:
        lines += [f"artifact  {info['artifact']} ({human(e['size'])}, {e['kind']} from {e['provider']} {e['model']})",
                  f"job id    {e['job_id'] or '-'}",
                  f"cost      {fmt_usd(e['cost_usd'])} (made {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(e['created_at']))}"
                  f", {e['seconds']} s)"]
        if e.get("meta"):
            lines.append(f"meta      {json.dumps(e['meta'], sort_keys=True)}")
    if info["pending"] is not None:
        lines.append(f"pending   {json.dumps(info['pending'], sort_keys=True)}")
    for x in info["ledger"]:
        t = _time_of(x)
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t != float("inf") else "?"
        lines.append(f"ledger    {when}: {x.get('kind')} {x.get('model')} {fmt_usd(_usd_of(x))} "
                     f"job {x.get('job_id') or '-'}")
    for u in info["used_by"]:
        lines.append(f"used by   {u['receipt']} ({u['task'] or u['ad']})")
    recipes = {json.dumps(u["recipe"], sort_keys=True) for u in info["used_by"] if u.get("recipe") is not None}
    for r in sorted(recipes):
        lines.append(f"recipe    {r}")
    return "\n".join(lines) + "\n"


def forget(root: Path, build_dirs: Iterable[Path], key_text: str) -> str:
    """Drop a key's records so the next build requests it again; the message says it may pay."""
    root = Path(root)
    key = resolve_key(root, build_dirs, key_text)
    cache = RequestCache(root)
    try:
        with cache.try_claim(key) as held:
            if not held:
                raise CacheError(f"cache key {key[:12]} is claimed by a running build (its lock is held): let it "
                                 f"finish or stop it, then forget it")
            entry, pending = cache.drop_records(key)
    finally:
        cache.close()
    if entry is None and pending is None:
        raise CacheError(f"cache key {key[:12]} has no entry and no pending request to forget")
    what = []
    if entry is not None:
        what.append(f"its {entry.kind} from {entry.model} (paid {fmt_usd(entry.cost_usd)}, job {entry.job_id or '-'}; "
                    f"the artifact stays in blobs/ until `adspec cache gc`)")
    if pending is not None:
        job = pending.get("job_id")
        what.append(f"its pending request (job {job}: if it is still running at the provider it is paid for and "
                    f"will not be fetched)" if job else "its pending request (a create may have been sent and paid)")
    cost = f" (about {fmt_usd(entry.cost_usd)})" if entry is not None and entry.cost_usd > 0 else ""
    return (f"forgot cache key {key[:12]}: {'; '.join(what)}. The next build requests it again: this MAY PAY AGAIN"
            f"{cost}.\n")
