"""The server's builds: a queue that runs `adspec build AD --json` (doit over dodo's task graph,
with its budget task, the request cache and the beat files) in a child process, one ad at a time.

Why a child process: the build is exactly the one `doit` and `adspec build` run (nothing here
calls a provider), and a build in flight is never killed by the server: asking for a build of an
ad that is building marks it to build again once the current one ends (so an edit saved during a
build is never lost, and two builds of one ad never run at once). The child runs in its own
session, so stopping the server (Ctrl-C) does not interrupt it: it finishes and writes its status.

Before a build is queued the caller checks `estimate_ad`: over ADSPEC_BUDGET_USD it is not
started (the build's own budget task would refuse it too, before any paid call).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("adspec.serve")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
REFUSED = "refused"  # an AdRun's reason when its build was not started (spec errors, the budget)


@dataclass
class AdRun:
    """What the server knows of an ad's latest build request (status.json has the rest)."""

    ad: str
    state: str = QUEUED
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    again: bool = False  # asked again while running: build once more after this one
    pid: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "queued_at": self.queued_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "error": self.error, "again": self.again, "reason": self.reason}


def build_command(ad: str) -> list[str]:
    return [sys.executable, "-m", "adspec.cli", "build", ad, "--json"]


def _child_env(folders: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **folders}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("ADSPEC_PROGRESS", "plain")
    return env


def _outcome(ad: str, code: int, stdout: str, stderr: str) -> str | None:
    """The build's error for `ad` (None when it built, or built what it may: `waiting` is an ad
    with `approval: required` whose videos wait for approval, not a failure), from `adspec build
    --json`'s summary."""
    try:
        summary = json.loads(stdout)
    except ValueError:
        lines = [x for x in (stderr or "").splitlines() if x.strip()]
        return None if code == 0 else (lines[-1] if lines else f"adspec build exited {code}")
    for row in summary.get("ads", []):
        if row.get("ad") == ad:
            if row.get("status") in ("ok", "waiting"):
                return None
            error = row.get("error") or "failed"
            failed = [x for x in (stderr or "").splitlines() if x.startswith("FAILED ")]
            budget = [x for x in failed if x.startswith("FAILED budget")]
            return (budget[0][len("FAILED "):] if budget else error)
    return None if code == 0 else f"adspec build exited {code}"


class BuildQueue:
    """One worker thread; builds run one after another, at most one per ad at a time."""

    def __init__(self, cwd: Path, on_change: Callable[[], None] | None = None, settings: Any = None):
        self.cwd = Path(cwd)
        # the child builds exactly the folders this process sees, whatever its working directory
        self.folders = {} if settings is None else {
            "ADSPEC_SPECS": str(settings.specs_dir), "ADSPEC_BUILD": str(settings.build_dir),
            "ADSPEC_CACHE_DIR": str(settings.cache_dir)}
        self.runs: dict[str, AdRun] = {}
        self.order: list[str] = []
        self.cond = threading.Condition()
        self.on_change = on_change or (lambda: None)
        self.version = 0  # bumped on every change: live views poll it
        self._stop = False
        self._thread: threading.Thread | None = None
        self.current: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="adspec-builds", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking builds; a build in flight is left to finish (never killed)."""
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        if self.current is not None and self.current.poll() is None:
            log.warning("adspec serve: the build in flight (pid %s) finishes in the background", self.current.pid)

    def _changed(self) -> None:
        self.version += 1
        self.cond.notify_all()
        try:
            self.on_change()
        except Exception:  # pragma: no cover - a listener's problem is not the queue's
            log.exception("build listener failed")

    def request(self, ad: str, reason: str = "") -> AdRun:
        """Queue a build of `ad`; while it builds, one more build follows it (never two at once)."""
        with self.cond:
            run = self.runs.get(ad)
            if run is not None and run.state == RUNNING:
                run.again = True
                run.reason = reason or run.reason
            elif run is not None and run.state == QUEUED:
                pass
            else:
                run = AdRun(ad, reason=reason)
                self.runs[ad] = run
                self.order.append(ad)
            self._changed()
            return run

    def refuse(self, ad: str, message: str) -> None:
        """Record that a build of `ad` was not started (e.g. over the budget): its status says so."""
        with self.cond:
            run = self.runs.get(ad)
            if run is not None and run.state in (QUEUED, RUNNING):
                return  # the build asked earlier goes on; this request is simply not added
            now = time.time()
            self.runs[ad] = AdRun(ad, state=FAILED, queued_at=now, started_at=now, finished_at=now, error=message,
                                  reason=REFUSED)
            self._changed()

    def get(self, ad: str) -> AdRun | None:
        with self.cond:
            return self.runs.get(ad)

    def busy(self, ad: str) -> bool:
        run = self.get(ad)
        return run is not None and run.state in (QUEUED, RUNNING)

    def wait_idle(self, timeout: float) -> bool:
        """For tests and shutdown: wait until nothing is queued or running."""
        deadline = time.time() + timeout
        with self.cond:
            while any(r.state in (QUEUED, RUNNING) for r in self.runs.values()):
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def _next(self) -> AdRun | None:
        with self.cond:
            while not self._stop and not self.order:
                self.cond.wait()
            if self._stop:
                return None
            run = self.runs[self.order.pop(0)]
            run.state, run.started_at, run.error = RUNNING, time.time(), None
            self._changed()
            return run

    def _work(self) -> None:
        while True:
            run = self._next()
            if run is None:
                return
            error = self._build(run)
            with self.cond:
                run.finished_at = time.time()
                run.pid = None
                if run.again and not self._stop:  # asked again meanwhile: build once more
                    run.again, run.state, run.queued_at = False, QUEUED, time.time()
                    self.order.append(run.ad)
                else:
                    run.state, run.error = (FAILED, error) if error else (DONE, None)
                self._changed()

    def _build(self, run: AdRun) -> str | None:
        log.info("adspec serve: building %s%s", run.ad, f" ({run.reason})" if run.reason else "")
        # its output goes to files, not pipes: a pipe would break under the child when the server
        # stops (its next write fails and the build ends "interrupted"); a file outlives the server
        with tempfile.TemporaryFile("w+", encoding="utf-8") as out_file, \
                tempfile.TemporaryFile("w+", encoding="utf-8") as err_file:
            try:
                proc = subprocess.Popen(build_command(run.ad), cwd=self.cwd, env=_child_env(self.folders),
                                        stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file, text=True,
                                        start_new_session=True)
            except OSError as e:
                return f"cannot start the build: {e.strerror}"
            self.current = proc
            run.pid = proc.pid
            proc.wait()
            self.current = None
            out_file.seek(0)
            err_file.seek(0)
            out, err = out_file.read(), err_file.read()
        error = _outcome(run.ad, proc.returncode, out, err)
        log.info("adspec serve: %s %s", run.ad, "built" if error is None else f"failed: {error}")
        return error


# ---- what a build would pay ----------------------------------------------------------------------

_estimate_lock = threading.Lock()


def estimate_ad(ad: str, spec_path: Path) -> dict[str, Any]:
    """`adspec estimate AD` as JSON, plus `refusal`: the budget's one line when it is over
    ADSPEC_BUDGET_USD (the build must not start), else None."""
    from ..estimate import estimate, over_budget_message

    with _estimate_lock:  # one estimate at a time: it derives frames in a temporary folder
        run = estimate([(ad, Path(spec_path))])
    out = run.to_json()
    ad_json = out["ads"][0] if out["ads"] else {}
    return {
        "ad": ad,
        "total_usd": out["total_usd"],
        "exact": out["exact"],
        "budget_usd": out["budget_usd"],
        "within_budget": out["within_budget"],
        "backend": out["backend"],
        "to_pay": sum(1 for t in ad_json.get("targets", []) if t["action"] == "pay"),
        "targets": ad_json.get("targets", []),
        "error": ad_json.get("error"),
        "error_field": ad_json.get("error_field"),
        "refusal": over_budget_message(run),
    }
