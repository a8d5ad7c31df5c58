"""Shared checks of the reliability suite (test_faults, test_kills, test_concurrency,
test_hostile_input, test_secrets, test_disk_faults): what "nothing lost, nothing paid twice,
nothing half-written" means, as functions over a project, its cache and the fake servers."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Iterable

from PIL import Image

from adspec import media
from conftest import REPO, Project

REPLICATE_TOKEN = "r8_RELIABILITY-fake-TOKEN-0123456789"
OPENAI_KEY = "sk-RELIABILITY-fake-KEY-0123456789ABCDEF"

# temp names adspec uses before a rename: fsutil's and media's `.name.tmp-PID-HEX[.suffix]`, the
# cache's mkstemp scratch `.key.XXXXXXXX.suffix`, concat's `.stem.parts-XXXX` folder, the offline
# renderer's `.offline-`
_TEMP = re.compile(r"^\.(.+\.tmp-\d+-[0-9a-f]+(\..+)?|.+\.parts-.+|offline-.+|.+\.[a-z0-9_]{8}\.[A-Za-z0-9]+|.+\.[a-z0-9_]{8})$")


def live_env(project: Project, replicate, openai=None, **extra: str) -> None:
    project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                       REPLICATE_POLL_INTERVAL="0.02", **extra)
    if openai is not None:
        project.env.update(OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url)


def copy_examples(project: Project, *, resolution: str = "360p", keep_beats: bool = False) -> list[str]:
    """The repo's example specs (and assets) in the project, at a draft resolution; without their
    beat files unless `keep_beats`, so the planner runs too. Returns the ad names (a spec's variants
    each, as doit builds them: lumiere@en, lumiere@fr)."""
    ignore = None if keep_beats else shutil.ignore_patterns("*.beats.yaml")
    shutil.copytree(REPO / "specs", project.specs, dirs_exist_ok=True, ignore=ignore)
    for spec in sorted(project.specs.glob("*.yaml")):
        if spec.name.endswith(".beats.yaml"):
            continue
        text = re.sub(r"^resolution:.*$", "", spec.read_text(), flags=re.M)
        spec.write_text(text.rstrip("\n") + f"\nresolution: {resolution}\n")
    from adspec.ads import choose_ads

    ads = [name for name, _ in choose_ads(project.specs)[0]]
    return ads


def varied_plan(body: dict) -> dict:
    """The fake planner's plan with a motion prompt of its own per beat, so every chunk is a
    distinct recipe (the fake's images are all alike)."""
    from fakes.openai_server import default_plan

    plan = default_plan(body)
    moves = ["slow push-in", "pan left", "pan right", "pull out", "tilt up", "orbit", "dolly in", "crane up"]
    for i, beat in enumerate(plan["beats"]):
        beat["motion_prompt"] = f"{moves[i % len(moves)]} on the {beat['id']}"
    return plan


# ---- what the fake's ledger says ------------------------------------------------------------


def paid_twice(replicate) -> dict[str, int]:
    """Inputs with more than one prediction that ran to success: each is a double payment."""
    return {k: n for k, n in replicate.succeeded_by_input().items() if n > 1}


def cache_job_ids(cache_dir: Path) -> set[str]:
    from adspec.cache import RequestCache

    cache = RequestCache(cache_dir)
    try:
        return {e.job_id for e in cache.entries() if e.job_id}
    finally:
        cache.close()


def lost_artifacts(replicate, cache_dir: Path) -> set[str]:
    """Succeeded (paid) predictions whose output the cache does not hold."""
    return replicate.succeeded_ids() - cache_job_ids(cache_dir)


# ---- files ----------------------------------------------------------------------------------


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if _TEMP.match(p.name)]


def check_target(path: Path) -> str | None:
    """None when `path` is whole: it decodes as what its name says. Else the problem."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".png", ".jpg", ".jpeg", ".webp"):
            with Image.open(path) as im:
                im.load()
        elif suffix == ".mp4":
            info = media.probe(path)
            if not info.has_video or info.duration <= 0:
                return f"{path}: no video"
            frames = media.count_frames(path)
            if frames < int(info.duration * info.fps) - 2:
                return f"{path}: {frames} frames decode of {info.duration * info.fps:.0f}"
        elif suffix == ".wav":
            info = media.probe(path)
            if not info.has_audio or info.duration <= 0:
                return f"{path}: no audio"
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001 - any failure to decode is the finding
        return f"{path}: {type(e).__name__}: {e}"
    return None


def broken_targets(build: Path) -> list[str]:
    out = []
    for path in sorted(build.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.suffix in (".png", ".mp4", ".wav", ".json"):
            problem = check_target(path)
            if problem:
                out.append(problem)
    return out


def check_final(path: Path, seconds: float) -> None:
    info = media.probe(path)
    assert (info.vcodec, info.acodec) == ("h264", "aac"), (path, info)
    assert abs(info.duration - seconds) <= 1 / 24 + 0.05, (path, info.duration, seconds)


def cache_problems(cache_dir: Path) -> list[str]:
    """Every entry's blob present with the bytes it claims, and diskcache's sqlite intact."""
    from adspec.cache_view import CacheView

    problems = []
    db = cache_dir / "requests" / "cache.db"
    if db.exists():
        con = sqlite3.connect(db)
        try:
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()
        if ok != "ok":
            problems.append(f"sqlite: {ok}")
    cache = CacheView(cache_dir)  # read-only: it can look at a cache on a full disk
    try:
        for entry in cache.entries():
            blob = cache.blob_path(entry.sha256)
            if not blob.is_file():
                problems.append(f"{entry.key[:12]}: blob missing")
            elif hashlib.sha256(blob.read_bytes()).hexdigest() != entry.sha256:
                problems.append(f"{entry.key[:12]}: blob bytes differ")
    finally:
        cache.close()
    return problems


# ---- doit's output ----------------------------------------------------------------------------


def failed_tasks(output: str) -> dict[str, list[str]]:
    """doit's failure blocks (TaskFailed / TaskError): task name -> the lines of its message (a
    block ends at the first empty line). Tasks only skipped for a failed dependency are not in it."""
    out: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        short = re.match(r"^FAILED (\S+?): (.*)$", line)  # adspec's reporter: one line per failure
        if short:
            out.setdefault(short.group(1), []).append(short.group(2))
            current = None
            continue
        m = re.match(r"^(TaskFailed|TaskError|SetupError|DependencyError) - taskid:(\S+)", line)
        if m:
            current = m.group(2)
            out[current] = []
        elif not line.strip() or line.startswith(("#####", "UnmetDependency")):
            current = None
        elif current is not None:
            out[current].append(line)
    return out


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text[-4000:]


def snapshot(roots: Iterable[Path], skip: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file under `roots`, except under `skip`."""
    skip = [Path(s).resolve() for s in skip]
    out = {}
    for root in roots:
        for path in Path(root).rglob("*"):
            try:
                real = path.resolve()
                if any(real == s or s in real.parents for s in skip):
                    continue
                st = path.lstat()
            except (OSError, RuntimeError):  # RuntimeError: a symlink loop
                continue
            out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def counts(values: Iterable[str]) -> Counter:
    return Counter(values)


def report_row(fault_class: str, injection: str, runs: int, completed: int, attempted: int, duplicates: int,
               lost: int) -> None:
    """With ADSPEC_RELIABILITY_REPORT set, append one row of docs/RELIABILITY.md's table (JSON lines)."""
    import os

    target = os.environ.get("ADSPEC_RELIABILITY_REPORT")
    if not target:
        return
    row = {"class": fault_class, "injection": injection, "runs": runs, "completed": completed,
           "attempted": attempted, "duplicates": duplicates, "lost": lost}
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
