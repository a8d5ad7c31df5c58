"""Throw-away bench projects: specs made from the repo's example, the real `doit` run in a
subprocess as a user runs it, its wall time, peak memory and per-task times."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "specs" / "trailrunner.yaml"
EXAMPLE_BEATS = REPO / "specs" / "trailrunner.beats.yaml"

# variables of the machine that must never leak into a bench build (keys, folders, backends)
_SCRUB = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "REPLICATE_API_TOKEN",
          "REPLICATE_BASE_URL", "REPLICATE_POLL_INTERVAL", "ADSPEC_BACKEND", "ADSPEC_SPECS", "ADSPEC_BUILD",
          "ADSPEC_CACHE_DIR", "ADSPEC_BUDGET_USD", "ADSPEC_SHARD", "ADSPEC_REMOTE_CACHE", "ADSPEC_BENCH_TIMINGS")

CITIES = ("Denver", "Boulder", "Lisbon", "Oslo", "Kyoto", "Quito", "Cusco", "Nairobi", "Hobart", "Reno", "Bergen",
          "Lyon", "Graz", "Tromso", "Moab", "Banff", "Chamonix", "Innsbruck", "Queenstown", "Patagonia")


@dataclass
class Run:
    """One `doit` process: what it printed, how long it took, its peak memory, its tasks' times."""

    args: tuple[str, ...]
    returncode: int
    wall: float
    stdout: str
    stderr: str
    maxrss_mb: float  # peak RSS of doit or of any process it waited for (ffmpeg), whichever is larger
    cpu_s: float  # user + system CPU seconds of doit and every process it waited for (ffmpeg)
    tree_peak_mb: float | None = None  # peak of the summed RSS of doit and all its descendants (sampled)
    timings: dict[str, Any] = field(default_factory=dict)

    def executed(self) -> list[str]:
        return [ln[3:].strip() for ln in self.stdout.splitlines() if ln.startswith(".  ")]

    def task(self, name: str) -> dict[str, Any]:
        return self.timings.get("tasks", {}).get(name, {})

    def duration(self, name: str) -> float | None:
        t = self.task(name)
        if "start" in t and "end" in t:
            return t["end"] - t["start"]
        return None

    def check(self) -> "Run":
        if self.returncode != 0:
            raise RuntimeError(f"doit {' '.join(self.args)} exited {self.returncode}\n{self.stdout[-3000:]}\n{self.stderr[-3000:]}")
        return self


def _children_of() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants every `every` seconds (Linux)."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kb = pid, every, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            kids = _children_of()
            todo, total = [self.pid], 0
            while todo:
                p = todo.pop()
                total += _rss_kb(p)
                todo.extend(kids.get(p, ()))
            self.peak_kb = max(self.peak_kb, total)
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass
class Project:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, parent: Path, name: str) -> "Project":
        root = Path(parent) / name
        if root.exists():
            shutil.rmtree(root)
        (root / "specs").mkdir(parents=True)
        # our reporter, registered for this project only (doit reads doit.cfg from its cwd)
        (root / "doit.cfg").write_text("[REPORTER]\nbench = bench.reporter:TimingReporter\n", encoding="utf-8")
        return cls(root)

    @property
    def specs(self) -> Path:
        return self.root / "specs"

    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    # ---- specs --------------------------------------------------------------------------------

    def add_ads(self, names: list[str], *, distinct: bool = True, beats: bool = True, resolution: str | None = None,
                duration: int | None = None) -> list[str]:
        """Ads made from the 30 s example (specs/trailrunner.yaml). `distinct`: each ad its own
        city and seed, so no request is shared; otherwise identical content under another name
        (every generation after the first is a cache hit). `beats`: copy the example's beat file
        (else the planner plans each ad)."""
        spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        for i, name in enumerate(names):
            s = dict(spec)
            if distinct:  # another city (in the prompt itself, so the planner's request differs too) and seed
                city = CITIES[i % len(CITIES)] + (f" {i // len(CITIES) + 1}" if i >= len(CITIES) else "")
                s["vars"] = {"city": city}
                s["prompt"] = s["prompt"].replace("{{ city }}", city)
                s["seed"] = 100 + i
            if resolution:
                s["resolution"] = resolution
            if duration:
                s["duration"] = duration
            (self.specs / f"{name}.yaml").write_text(yaml.safe_dump(s, sort_keys=False), encoding="utf-8")
            if beats and duration is None:
                shutil.copyfile(EXAMPLE_BEATS, self.specs / f"{name}.beats.yaml")
        return names

    def edit_beat(self, ad: str, beat_id: str, field_name: str, new_text: str) -> None:
        """Change one field of one beat in the ad's beat file, as a person would in an editor."""
        path = self.specs / f"{ad}.beats.yaml"
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        start = next(i for i, ln in enumerate(lines) if re.match(rf"\s*- id: {re.escape(beat_id)}\s*$", ln))
        out, i = lines[: start + 1], start + 1
        indent = None
        while i < len(lines) and not re.match(r"\s*- id: ", lines[i]):
            ln = lines[i]
            m = re.match(rf"(\s*){field_name}:", ln)
            if m:
                indent = m.group(1)
                out.append(f"{indent}{field_name}: {json.dumps(new_text)}\n")
                i += 1
                while i < len(lines) and lines[i].startswith(indent + "  ") and lines[i].strip():
                    i += 1  # drop the old folded continuation lines
                continue
            out.append(ln)
            i += 1
        if indent is None:
            raise KeyError(f"{path}: beat {beat_id} has no {field_name}")
        path.write_text("".join(out + lines[i:]), encoding="utf-8")

    # ---- running ------------------------------------------------------------------------------

    def run_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        # Python's default: cache bytecode (this machine sets PYTHONDONTWRITEBYTECODE=1, which makes
        # every `doit` recompile adspec from source, ~0.3 s that no user's machine pays)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(ADSPEC_SPECS=str(self.specs), ADSPEC_BUILD=str(self.build), ADSPEC_CACHE_DIR=str(self.cache),
                   ADSPEC_BACKEND="offline", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
        env.update(self.env)
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def doit(self, *args: str, sample_tree: bool = False, timeout: float = 900, **extra_env: str) -> Run:
        """`doit ARGS` with the repo's dodo.py in this project, timed from process start to exit."""
        # one name per project, not per run: the environment is part of what makes a no-op one
        # (adspec.noop_stamp); a replayed no-op writes no timings (its file is removed first)
        timings_file = self.root / ".timings.json"
        timings_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args]
        if not args or args[0].startswith("-"):  # `doit run` (the default command): our reporter
            cmd += ["--reporter", "bench"]
        env = self.run_env(ADSPEC_BENCH_TIMINGS=str(timings_file), **extra_env)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=out, stderr=err)
            sampler = TreeSampler(proc.pid) if sample_tree else None
            if sampler:
                sampler.start()
            deadline = t0 + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if sampler:
                sampler.stop()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        timings: dict[str, Any] = {}
        if timings_file.exists():
            timings = json.loads(timings_file.read_text(encoding="utf-8"))
            timings_file.unlink()
        return Run(tuple(args), proc.returncode, wall, stdout, stderr, usage.ru_maxrss / 1024,
                   usage.ru_utime + usage.ru_stime,
                   sampler.peak_kb / 1024 if sampler else None, timings)

    def command(self, *argv: str, **extra_env: str) -> tuple[int, float, str]:
        """Any other command in the project (e.g. `adspec estimate`), timed."""
        t0 = time.perf_counter()
        proc = subprocess.run(list(argv), cwd=self.root, env=self.run_env(**extra_env), capture_output=True, text=True)
        return proc.returncode, time.perf_counter() - t0, proc.stdout + proc.stderr


@dataclass
class Workspace:
    """Where bench projects live: a temporary folder removed at the end unless kept."""

    root: Path
    keep: bool = False

    @classmethod
    def temporary(cls, keep: bool = False) -> "Workspace":
        return cls(Path(tempfile.mkdtemp(prefix="adspec-bench-")), keep)

    def project(self, name: str) -> Project:
        return Project.create(self.root, name)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def ad_names(n: int, prefix: str = "ad") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def iter_plans(project: Project, ads: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for ad in ads:
        yield ad, read_json(project.build / ad / "plan.json")
