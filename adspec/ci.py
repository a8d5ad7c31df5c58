"""`adspec build [AD...] [--json] [-n N]`: the build for CI. Non-interactive; a failed ad does
not stop the others (doit's `--continue`); exits 1 when any ad failed; `--json` prints one JSON
summary on stdout (doit's own output goes to stderr then).

doit runs in a child process (`python -m adspec.ci`): the same task graph `doit` builds from
dodo.py (adspec.dodo_support), with doit's configured reporter wrapped so every task's outcome
is recorded for the summary. ADSPEC_SHARD applies as it does for `doit`.

The summary (`--json`):

    {"ok": false, "exit_code": 1, "shard": "1/2",
     "ads": [{"ad": "trailrunner@9x16-denver", "spec": "specs/trailrunner.yaml", "status": "ok",
              "final": "build/trailrunner@9x16-denver/final.mp4", "error": null, "failed_task": null,
              "tasks": {"run": 9, "up_to_date": 0, "failed": 0, "not_run": 0}}, ...],
     "totals": {"ads": 6, "ok": 5, "failed": 1, "tasks_run": 40, "tasks_up_to_date": 3,
                "tasks_failed": 1, "tasks_not_run": 7, "requests_run": 14, "spent_usd": 0.42, "seconds": 61.2}}

`requests_run` and `spent_usd` come from the request cache's ledger (requests actually run during
this build, by any process sharing the cache folder).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

from .ads import choose_ads, left_to_other_shards
from .budget_refusal import NotRun
from .config import load_settings
from .dodo_support import creators_from_env, default_task_names, doit_config
from .fsutil import write_text_atomic
from .paths import AdPaths
from .shard import parse_shard
from .tasknames import ad_of_task, alias_target


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return " ".join(line.split())[:500]
    return ""


def _shown(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def _ledger_lines(cache_dir: Path) -> list[dict[str, Any]]:
    try:
        text = (cache_dir / "ledger.jsonl").read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def summarize(ads: list[tuple[str, Path]], records: dict[str, dict[str, Any]] | None, build_dir: Path,
              doit_code: int, note: str | None = None) -> list[dict[str, Any]]:
    """Per-ad outcome from the recorded task results."""
    names = {a for a, _ in ads}
    per_ad: dict[str, list[tuple[str, dict[str, Any]]]] = {a: [] for a in names}
    for task, rec in (records or {}).items():
        ad = ad_of_task(task, names)
        if ad is not None:
            per_ad[ad].append((task, rec))
    rows = []
    for ad, spec_path in ads:
        tasks = per_ad[ad]
        # failed: the tasks that failed; not_run: those that waited on a failed one (doit's UnmetDependency)
        counts = {"run": 0, "up_to_date": 0, "failed": 0, "not_run": 0}
        for _, rec in tasks:
            result = rec.get("result")
            if result == "success":
                counts["run"] += 1
            elif result == "up-to-date":
                counts["up_to_date"] += 1
            elif result == "fail":
                counts["not_run" if rec.get("kind") == "UnmetDependency" else "failed"] += 1
        failures = [(t, r) for t, r in tasks if r.get("result") == "fail"]
        # the root cause, not the tasks that only waited on it
        root = [(t, r) for t, r in failures if r.get("kind") != "UnmetDependency"] or failures
        final = AdPaths.of(build_dir, ad).final
        error = failed_task = None
        waiting: list[str] = []
        if root:
            failed_task, rec = root[0]
            error = rec.get("error") or "failed"
            budget = (records or {}).get("budget", {})
            if rec.get("kind") == "UnmetDependency" and budget.get("result") == "fail":
                error = f"not run: {budget.get('error') or 'over ADSPEC_BUDGET_USD'}"  # the run's refusal, said
                failed_task = "budget"  # what failed; the ad's own tasks only waited on it
        elif not tasks:
            error = note or "not built: its tasks did not run (see doit's output)"
        else:  # waiting even when a final of an earlier, approved cut is still there
            waiting = waiting_beats(ad, build_dir)
            if not waiting and not final.is_file():
                error = "no final.mp4 was produced"
        # `approval: required` and beats not approved yet: what was asked for, not a failure
        status = "failed" if error else ("waiting" if waiting else "ok")
        rows.append({
            "ad": ad,
            "spec": _shown(spec_path),
            "status": status,
            "final": _shown(final) if status == "ok" else None,
            "error": error,
            "failed_task": failed_task,
            "tasks": counts,
            **({"waiting_for_approval": waiting} if waiting else {}),
        })
    return rows


def _write_index(settings: Any) -> None:
    """build/index.html over every ad, as `doit`'s `report` task writes it (an ad's page links
    to it: built one ad at a time, by the studio or an agent, the link led nowhere)."""
    from .ads import list_ads
    from .report import write_index

    try:
        write_index(settings.build_dir, [ad for ad, _ in list_ads(settings.specs_dir)[0]])
    except OSError:
        pass


def waiting_beats(ad: str, build_dir: Path) -> list[str]:
    """The beats of an ad with `approval: required` whose video waits for approval."""
    from .approve import states
    from .plan_file import load_plan

    plan = load_plan(AdPaths.of(build_dir, ad))
    if plan is None or not plan.approval_required:
        return []
    return [b for b, state in states(ad, plan, build_dir).items() if state != "approved"]


def _run_to_its_end(cmd: list[str], env: dict[str, str], stdout: Any) -> int:
    """Run the doit child until it ends, and its exit code. SIGTERM (`kill`, `docker stop`, a
    cancelled job) is passed on to it, and Ctrl-C reaches it as one of our process group: either
    way it stops as a stopped run does (status.json says interrupted) and we wait for it, so the
    summary is still written. (SIGTERM killed this process and left the child building, paying.)
    A third Ctrl-C kills it."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=stdout)

    def forward(signum: int, _frame: Any) -> None:
        try:
            proc.send_signal(signum)
        except (ProcessLookupError, OSError):
            pass

    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, forward) if main else None
    interrupts = 0
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts >= 3:
                    proc.kill()
    finally:
        if main:
            signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


def run_build(names: Sequence[str], *, jobs: int | None = None, as_json: bool = False, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """`adspec build`: returns the exit code (0: every ad built; 1: any ad failed)."""
    out = out or sys.stdout
    err = err or sys.stderr
    started = time.time()
    settings = load_settings()
    selected = choose_ads(settings.specs_dir, tuple(names), settings.shard)[0]  # SpecError for an unknown name
    shard = parse_shard(settings.shard)
    for line in left_to_other_shards(names, settings.specs_dir, settings.shard):
        err.write(f"adspec build: {line}\n")
    ledger_before = len(_ledger_lines(settings.cache_dir))

    code = 0
    records: dict[str, dict[str, Any]] | None = {}
    note = None
    if selected:
        targets = [] if not names else [alias_target(a) for a, _ in selected]
        doit_args = ["run", "--continue"]
        if jobs is not None:  # else doit's defaults: adspec's, parallel (dodo_support.doit_config)
            doit_args += ["-n", str(jobs), "-P", "thread"]
        doit_args += targets
        fd, record_path = tempfile.mkstemp(prefix="adspec-build-", suffix=".json")
        os.close(fd)
        os.unlink(record_path)
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "adspec.ci", record_path, "--", *doit_args]
        try:
            stdout: Any = None
            if as_json:  # stdout carries the JSON only: doit's output goes to stderr
                try:
                    stdout = err.fileno()
                except (AttributeError, OSError, ValueError):
                    stdout = subprocess.DEVNULL
            else:
                out.flush()
            code = _run_to_its_end(cmd, env, stdout)
            try:
                records = json.loads(Path(record_path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                records = None
                note = f"not built: doit stopped before running tasks (exit {code}; see its output)"
        finally:
            Path(record_path).unlink(missing_ok=True)

    if selected and names:  # only some ads' tasks ran: build/index.html, which their pages link to, too
        _write_index(settings)
    rows = summarize(selected, records, settings.build_dir, code, note)
    new = _ledger_lines(settings.cache_dir)[ledger_before:]
    failed = [r for r in rows if r["status"] == "failed"]
    exit_code = 1 if failed else (code if code else 0)
    summary = {
        "ok": exit_code == 0,
        "exit_code": exit_code,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "ads": rows,
        "totals": {
            "ads": len(rows),
            "ok": sum(1 for r in rows if r["status"] == "ok"),
            "failed": len(failed),
            "waiting": sum(1 for r in rows if r["status"] == "waiting"),
            "tasks_run": sum(r["tasks"]["run"] for r in rows),
            "tasks_up_to_date": sum(r["tasks"]["up_to_date"] for r in rows),
            "tasks_failed": sum(r["tasks"]["failed"] for r in rows),
            "tasks_not_run": sum(r["tasks"]["not_run"] for r in rows),
            "requests_run": len(new),
            "spent_usd": round(sum(float(e.get("cost_usd") or 0) for e in new), 6),
            "seconds": round(time.time() - started, 3),
        },
    }
    if as_json:
        out.write(json.dumps(summary, indent=2) + "\n")
    else:
        where = f" (shard {summary['shard']})" if shard else ""
        t: dict[str, Any] = summary["totals"]  # type: ignore[assignment]
        out.write(f"adspec build{where}: {t['ok']} of {t['ads']} ads built, {t['failed']} failed\n")
        for r in rows:
            detail = r["final"] if r["status"] == "ok" else r["error"]
            if r["status"] == "waiting":
                detail = "video waits for approval of " + ", ".join(r["waiting_for_approval"])
            label = {"ok": "ok", "waiting": "WAIT"}.get(r["status"], "FAILED")
            out.write(f"  {label:6}  {r['ad']}  {detail}\n")
    out.flush()
    return exit_code


# ---- the child: doit with a recording reporter ----------------------------------------------------


def _recording(base: type) -> type:
    """A subclass of doit reporter `base` that also records each task's outcome."""

    class Recording(base):
        record_path: str = ""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._adspec_results: dict[str, dict[str, Any]] = {}
            self._adspec_idle = NotRun()

        def _note(self, task: Any, result: str, **extra: Any) -> None:
            self._adspec_results[task.name] = {"result": result, **extra}

        def add_failure(self, task: Any, exception: Any) -> None:
            if type(exception).__name__ == "UnmetDependency" and self._adspec_idle.idle(
                    task.name, str(getattr(exception, "message", "") or "")):
                self._note(task, "up-to-date")  # an ad with nothing to build, in a run refused over the budget
                super().add_failure(task, exception)
                return
            message = _first_line(getattr(exception, "message", "") or "")
            if not message or message.startswith(("PythonAction Error", "Python Task failed")):
                tb = "".join(getattr(exception, "traceback", []) or [])
                lines = [x for x in tb.strip().splitlines() if x.strip()]
                message = " ".join(lines[-1].split())[:500] if lines else message or type(exception).__name__
            self._note(task, "fail", kind=type(exception).__name__, error=message)
            super().add_failure(task, exception)

        def add_success(self, task: Any) -> None:
            self._note(task, "success")
            super().add_success(task)

        def skip_uptodate(self, task: Any) -> None:
            self._note(task, "up-to-date")
            super().skip_uptodate(task)

        def skip_ignore(self, task: Any) -> None:
            self._note(task, "ignore")
            super().skip_ignore(task)

        def complete_run(self) -> None:
            try:
                super().complete_run()
            finally:
                write_text_atomic(Path(self.record_path), json.dumps(self._adspec_results))

    return Recording


def _child(argv: list[str]) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain
    from doit.reporter import (
        ConsoleReporter,
        ExecutedOnlyReporter,
        JsonReporter,
        ZeroReporter,
    )

    record_path = argv[0]
    doit_args = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    creators = creators_from_env(doit_args)
    config = dict(doit_config(default_task_names(creators)))  # a bare run runs what a bare `doit` runs
    base = config.get("reporter") or ConsoleReporter
    if isinstance(base, str):
        base = {"console": ConsoleReporter, "executed-only": ExecutedOnlyReporter, "json": JsonReporter,
                "zero": ZeroReporter}.get(base, ConsoleReporter)
    reporter: Any = _recording(base)
    reporter.record_path = record_path
    config["reporter"] = reporter
    config["continue"] = True
    namespace: dict[str, Any] = {"DOIT_CONFIG": config, **creators}
    return DoitMain(ModuleTaskLoader(namespace)).run(doit_args)


if __name__ == "__main__":  # pragma: no cover - run by run_build
    sys.exit(_child(sys.argv[1:]))
