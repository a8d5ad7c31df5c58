"""The doit reporter: per-ad progress while `doit` runs, one line per failed target, a cost
summary at the end, and build/<ad>/status.json kept up to date.

On a terminal it draws a live table (rich): one line per ad with a progress bar (tasks done /
total), the current phase, chunk i of n, money spent, and the provider's status and elapsed time
of every long wait. Elsewhere (CI logs, pipes) it prints plain lines, the way doit's console
reporter does: `.  <task>` when a task runs, `-- <task>` when it is up to date, then
`FAILED <task>: <one line>` and the per-ad summary. `ADSPEC_PROGRESS=plain|live` forces either.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import cost as costmod
from . import noop_stamp
from .budget_refusal import NotRun
from .build_files import AdStatus, ChunkCounts, LastError, LastRun, RunCost, RunningTask, StatusCost, TaskCounts
from .config import load_settings
from .money import fmt_usd, usd
from .paths import AdPaths
from .receipts import Receipt, read_receipt
from .runs import run_id
from .status import now_iso, provider_wait, update_status
from .tasknames import KINDS, PAID_KINDS, PHASE_OF, WAITS_FOR_APPROVAL, split_task, task_name

# plain mode: a provider wait longer than ADSPEC_WAIT_NOTICE seconds (settings.wait_notice_s) gets
# a line, and another when its status changes or every WAIT_REPEAT_S seconds
WAIT_REPEAT_S = 30.0

_reporter: "AdspecReporter | None" = None


@dataclass
class AdState:
    ad: str
    names: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    executed: set[str] = field(default_factory=set)
    uptodate: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    ignored: set[str] = field(default_factory=set)  # `doit ignore`: skipped on purpose
    running: dict[str, float] = field(default_factory=dict)
    waits: dict[str, tuple[str, float]] = field(default_factory=dict)  # task -> (provider status, since)
    paid: dict[str, float] = field(default_factory=dict)  # task -> USD paid this run
    hits: dict[str, float] = field(default_factory=dict)  # task -> USD saved this run
    artifacts: dict[str, str] = field(default_factory=dict)
    last_kind: str = "plan"
    touched: bool = False
    stopped: bool = False  # the run is over: what is not finished now was interrupted
    waiting: tuple[str, ...] = ()  # `approval: required`: the beats whose video waits (the graph's stand-in mix says)
    stood_in: set[str] = field(default_factory=set)  # the stand-ins of waiting work: settled, not built
    left_running: tuple[str, ...] = ()  # predictions the provider was still making when the run was stopped

    def chunk_names(self) -> list[str]:
        return [n for n in self.names if n.startswith("chunk:")]

    @property
    def phase(self) -> str:
        if self.running:
            latest = max(self.running, key=lambda n: self.running[n])
            return PHASE_OF[latest.split(":", 1)[0]]
        if self.failed:
            return PHASE_OF[next(iter(self.failed)).split(":", 1)[0]]
        if self.names and (self.done | self.ignored) >= self.names:
            return "ignored" if self.ignored else "done"
        return PHASE_OF.get(self.last_kind, self.last_kind)

    @property
    def built(self) -> set[str]:
        """This ad's tasks done for real: a stand-in for work waiting on approval is settled, not
        built, so an ad whose videos wait is not shown at 100 %."""
        return (self.done - self.stood_in) & self.names

    @property
    def pct(self) -> float:
        return 100.0 * len(self.built) / len(self.names) if self.names else 0.0


class AdspecReporter:
    """doit reporter (DOIT_CONFIG['reporter']). Thread-safe: with `-P thread` doit calls
    execute_task from worker threads."""

    desc = "adspec: progress per ad, one line per failure, cost summary, status.json"

    def __init__(self, outstream: Any, options: dict[str, Any]):
        global _reporter
        self.out = outstream
        self.options = options
        self.lock = threading.RLock()
        self.settings = load_settings()
        self.build_dir = self.settings.build_dir
        mode = self.settings.progress
        tty = bool(getattr(outstream, "isatty", lambda: False)()) and os.environ.get("TERM", "") != "dumb"
        self.live_mode = mode == "live" or (mode not in ("plain",) and tty and mode != "plain")
        self.tasks: dict[str, Any] = {}
        self.ads: dict[str, AdState] = {}
        self.failures: list[tuple[str, str]] = []
        self.runtime_errors: list[str] = []
        self.not_run = NotRun()  # tasks of ads with nothing to build, in a run refused over the budget
        self.started = time.time()
        self.run_id = run_id()
        self._live: Any = None  # rich.live.Live while the live display runs
        self._last_table: Any = None  # the last table drawn (see _render)
        self._console: Any = None  # its rich.console.Console
        self.watch = noop_stamp.watching()  # what this run reads, for the no-op stamp
        _reporter = self

    # ---- output ---------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        with self.lock:
            if self.watch is not None:
                self.watch.output.append(text)
            if self._console is not None:
                self._console.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
            else:
                self.out.write(text)
                try:
                    self.out.flush()
                except (OSError, ValueError):
                    pass

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=self.out, force_terminal=True)
        self._live = Live(get_renderable=self._render, console=self._console, refresh_per_second=4,
                          redirect_stdout=False, redirect_stderr=False, transient=False)
        self._live.start()

    def _render(self) -> Any:
        from rich.text import Text

        # rich's refresh thread calls this holding the display's lock, while a reporter thread may
        # hold self.lock and wait for the display's lock to print: never wait here (a lock-order
        # deadlock, seen as a hung build), draw the last table instead and catch up next refresh
        if not self.lock.acquire(timeout=0.05):
            return self._last_table if self._last_table is not None else Text("")
        try:
            table = self._table()
        finally:
            self.lock.release()
        self._last_table = table
        return table

    def _table(self) -> Any:
        """The live table of every touched ad (self.lock held)."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        ads = [s for s in self.ads.values() if s.touched]
        for s in ads:
            total, done = len(s.names), len(s.built)
            chunks = s.chunk_names()
            chunk_done = len([n for n in chunks if n in s.done - s.stood_in])
            waits = []
            for task, start in sorted(s.running.items(), key=lambda kv: kv[1]):
                st = s.waits.get(task)
                kind, _, sub = task.partition(":")
                sub = sub.partition("/")[2]
                what = f"{kind} {sub}".strip()
                if st:
                    waits.append(f"{what} {st[0]} {int(time.time() - start)}s")
                elif time.time() - start >= 2:
                    waits.append(f"{what} {int(time.time() - start)}s")
            state = Text("failed", style="red") if s.failed else (
                Text("waiting", style="yellow") if s.phase == "done" and s.waiting else
                Text("done", style="green") if s.phase == "done" else Text(s.phase))
            table.add_row(
                Text(s.ad, style="bold"), ProgressBar(total=max(total, 1), completed=done, width=28),
                f"{done}/{total}", state,
                f"chunk {chunk_done}/{len(chunks)}" if chunks else "",
                fmt_usd(sum(s.paid.values())), "; ".join(waits[:3]),
            )
        return table

    # ---- bookkeeping ------------------------------------------------------------------------------

    def _state(self, task_name: str) -> tuple[AdState, str] | None:
        parts = split_task(task_name)
        if parts is None:
            return None
        kind, ad, _ = parts
        s = self.ads.get(ad)
        if s is None:
            s = self.ads[ad] = AdState(ad)
        return s, kind

    def _refresh_names(self) -> None:
        # tasks only ever get added (delayed creation): rescan only when there are new ones, or
        # every event would walk every task (quadratic: seconds for a no-op over 100 ads, bench/)
        if len(self.tasks) == getattr(self, "_names_seen", -1):
            return
        self._names_seen = len(self.tasks)
        for name in list(self.tasks):
            parts = split_task(name)
            if parts is not None:
                st = self.ads.setdefault(parts[1], AdState(parts[1]))
                st.names.add(name)

    def _status_change(self, s: AdState) -> Callable[[AdStatus], None]:
        total, done = len(s.names), len(s.built)
        chunks = sorted(s.chunk_names())
        running = {t: RunningTask(since, *s.waits[t]) if t in s.waits else RunningTask(since)
                   for t, since in s.running.items()}
        failed = bool(s.failed)
        settled = len((s.done | s.ignored) & s.names)
        finished = not s.running and (failed or (total and settled >= total))
        ignored = sorted(s.ignored & s.names)
        paths = AdPaths.of(self.build_dir, s.ad)
        # `doit ignore`d work is settled too (not "running 76 %" forever); an ad whose final was
        # ignored is "ignored", not "done"
        # and one whose videos wait for approval (its mix a stand-in) is "waiting", not "done"
        # and a run of some of its targets (`doit voice:zip`: no mix among them) is "partial": its
        # final was not made by it (read as "done" with no final, it said "cleaned")
        partial = task_name("mix", s.ad) not in s.names
        state = "failed" if failed and not s.running else (
            ("ignored" if f"mix:{s.ad}" in s.ignored else ("waiting" if s.waiting else "partial" if partial else "done"))
            if finished else ("interrupted" if s.stopped else "running"))
        tasks = TaskCounts(total=total, done=done, run=len(s.executed), up_to_date=len(s.uptodate), failed=len(s.failed))
        chunk_counts = ChunkCounts(done=len([c for c in chunks if c in s.done - s.stood_in]), total=len(chunks),
                                   current=tuple(c.split(":", 1)[1] for c in chunks if c in s.running))
        run_cost = RunCost(spent_usd=usd(sum(s.paid.values())), saved_usd=usd(sum(s.hits.values())))
        final = (paths.final.name if paths.final.exists() and task_name("mix", s.ad) in s.done - s.stood_in
                 else None)
        review = paths.review_page.name if paths.review_page.exists() else None
        last_error = None
        if s.failed:
            task, message = next(reversed(s.failed.items()))
            last_error = LastError(task=task, message=message, time=now_iso())

        def change(d: AdStatus) -> None:
            if state == "partial" and not s.executed and d.state in ("done", "waiting", "ignored", "partial"):
                return  # some of its targets, all up to date: the ad is as the last run left it
            d.state, d.ignored, d.progress_pct = state, tuple(ignored), round(s.pct, 1)
            d.phase = ("waiting" if state == "waiting" else
                       PHASE_OF.get(s.last_kind, s.last_kind) if state == "partial" else s.phase)
            d.tasks, d.chunks, d.running = tasks, chunk_counts, dict(running)
            d.artifacts = dict(sorted(s.artifacts.items()))
            d.run, d.pid, d.started_at, d.run_cost = self.run_id, os.getpid(), now_iso(self.started), run_cost
            if state == "waiting":  # a final still there is an earlier, approved cut's: not this one
                d.final = None
            elif final is not None:
                d.final = final
            if review is not None:
                d.review = review
            d.last_error = last_error
            c = costmod.read_cost(self.build_dir, s.ad)
            d.cost = StatusCost(spent_usd=c.spent_usd if c else 0.0, saved_usd=c.saved_usd if c else 0.0,
                                total_usd=c.total_usd if c else 0.0, run_spent_usd=run_cost.spent_usd,
                                run_saved_usd=run_cost.saved_usd)

        return change

    def _write_status(self, s: AdState) -> None:
        try:
            update_status(self.build_dir, s.ad, self._status_change(s))
        except OSError:
            pass

    def _receipts(self, task: Any) -> list[Receipt]:
        """The receipts of what `task` made: its targets', and a plan's translation (a paid call
        that is not a target: most ads have none)."""
        files = [Path(t) for t in task.targets]
        parts = split_task(task.name)
        if parts is not None and parts[0] == "plan":
            files.append(AdPaths.of(self.build_dir, parts[1]).translation)
        found = {r.key: r for r in (read_receipt(f) for f in files) if r is not None}  # a request once
        return list(found.values())

    def _reported(self, task: Any) -> None:
        """doit has said what became of `task` (the no-op stamp needs every asked task said)."""
        if self.watch is not None:
            self.watch.reported.add(task.name)

    # ---- doit's reporter interface ------------------------------------------------------------------

    def initialize(self, tasks: dict[str, Any], selected_tasks: list[str]) -> None:
        _interrupt_on_sigterm()
        self.tasks = tasks
        if self.watch is not None:
            self.watch.note_tasks(tasks, selected_tasks)
        with self.lock:
            self._refresh_names()
        if self.live_mode:
            self._start_live()

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        with self.lock:
            if task.actions and self.watch is not None:
                self.watch.executed = True
            # a waiting beat's stand-in makes nothing: its own line on stderr says the video waits
            if task.actions and task.name[0] != "_" and self._console is None and not self._stands_in(task):
                self.write(f".  {task.title()}\n")
            got = self._state(task.name)
            if got is None:
                return
            s, kind = got
            self._refresh_names()
            s.touched = True
            s.running[task.name] = time.time()
            s.last_kind = kind
            self._write_status(s)

    def add_success(self, task: Any) -> None:
        with self.lock:
            self._reported(task)
            got = self._state(task.name)
            if got is None:
                return
            s, kind = got
            self._refresh_names()
            s.touched = True
            s.running.pop(task.name, None)
            s.waits.pop(task.name, None)
            s.done.add(task.name)
            if self._stands_in(task):
                s.stood_in.add(task.name)
            else:
                s.executed.add(task.name)
            self._note_artifacts(s, task)
            self._note_waiting(s, task)
            if kind in PAID_KINDS:
                mine = [r for r in self._receipts(task) if r.run == self.run_id]
                for hit in (False, True):
                    costs = [float(r.cost_usd or 0.0) for r in mine if bool(r.cache_hit) is hit]
                    if costs:
                        (s.hits if hit else s.paid)[task.name] = sum(costs)
                if mine:
                    costmod.write_cost(self.build_dir, s.ad)
            if self._console is not None and task.actions:
                extra = ""
                if task.name in s.paid:
                    extra = f"  {fmt_usd(s.paid[task.name])}"
                elif task.name in s.hits:
                    extra = "  (cache)"
                self.write(f"✓  {task.name}{extra}\n")
            self._write_status(s)

    def add_failure(self, task: Any, fail: Any) -> None:
        with self.lock:
            self._reported(task)
            text = str(getattr(fail, "message", "") or fail.get_name())
            # one line per error (a spec's errors come several at once), each on one line
            message = "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip()) or fail.get_name()
            name = fail.get_name()
            if name == "UnmetDependency" and self.not_run.idle(task.name, text):
                return  # an ad with nothing to build, in a run refused over the budget: left as it was
            if message.startswith(("PythonAction Error", "Python Task failed")):  # a bug: its exception, not doit's words
                tb = [x for x in "".join(getattr(fail, "traceback", []) or []).splitlines() if x.strip()]
                message = " ".join(tb[-1].split())[:500] if tb else message
            if name == "UnmetDependency" and message == "budget":
                message = ("not run: the run was stopped before paying anything (over ADSPEC_BUDGET_USD; "
                           "see `adspec estimate`)")
            elif name == "UnmetDependency":
                message = f"not run: a task it needs failed ({message})"
            got = self._state(task.name)
            if getattr(fail, "report", True) and name != "UnmetDependency":
                # a failure of several lines (the delivery checks: one per violation) keeps them apart
                lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()] if name == "TaskFailed" else []
                for line in lines if len(lines) > 1 else [message]:
                    self.failures.append((task.name, line))
                    self.write(f"FAILED {task.name}: {line}\n")
                if name != "TaskFailed":  # a bug, not a reported error: keep its traceback
                    self.write("".join(getattr(fail, "traceback", []) or []))
            if got is None:
                return
            s, _ = got
            s.touched = True
            s.running.pop(task.name, None)
            s.waits.pop(task.name, None)
            if name != "UnmetDependency" or not s.failed:
                s.failed[task.name] = message
            self._write_status(s)

    def skip_uptodate(self, task: Any) -> None:
        with self.lock:
            self._reported(task)
            if task.name[0] != "_" and self._console is None:
                self.write(f"-- {task.title()}\n")
            got = self._state(task.name)
            if got is None:
                return
            s, _ = got
            self._refresh_names()
            s.touched = True
            s.done.add(task.name)
            s.uptodate.add(task.name)
            self._note_artifacts(s, task)
            self._note_waiting(s, task)
            # no status.json write per up-to-date task (one atomic write each made a no-op over 20
            # ads take seconds, bench/): the ad's next event or complete_run writes it

    def skip_ignore(self, task: Any) -> None:
        with self.lock:
            self._reported(task)
            if self._console is None:
                self.write(f"!! {task.title()}\n")
            got = self._state(task.name)
            if got is None:
                return
            s, _ = got
            self._refresh_names()
            s.touched = True
            s.ignored.add(task.name)

    def teardown_task(self, task: Any) -> None:
        pass

    def cleanup_error(self, exception: Any) -> None:
        self.write(exception.get_msg())

    def runtime_error(self, msg: str) -> None:
        self.runtime_errors.append(msg)

    def complete_run(self) -> None:
        if self._live is not None:
            try:
                self._live.stop()
            except Exception:  # pragma: no cover - a terminal gone away
                pass
        # doit calls this from a `finally`: a KeyboardInterrupt (Ctrl-C, or SIGTERM made one) is
        # still on its way out. A run that was not cut short, and in which nothing failed, went
        # through: the tasks of an ad it never asked about were not part of it (`doit mix` does
        # not run the checks), so they do not make the ad "interrupted".
        went_through = sys.exc_info()[0] is None and not self.failures and not self.runtime_errors
        with self.lock:
            for s in self.ads.values():
                if not s.touched:
                    continue
                s.left_running = tuple(sorted(t for t, (status, _) in s.waits.items()
                                              if t in s.running and status in PREDICTION_RUNNING))
                s.running.clear()
                s.waits.clear()
                s.stopped = True
                if went_through:
                    s.names &= s.done | s.ignored | set(s.failed)
                last_run = LastRun(
                    run=self.run_id, started_at=now_iso(self.started), finished_at=now_iso(),
                    spent_usd=usd(sum(s.paid.values())), saved_usd=usd(sum(s.hits.values())),
                    ran=len(s.executed), up_to_date=len(s.uptodate), failed=len(s.failed),
                    paid_requests=len(s.paid), from_cache=len(s.hits),
                )
                try:
                    costmod.write_cost(self.build_dir, s.ad, last_run=last_run)
                except OSError:
                    pass
                self._write_status(s)
            self._summary()
            if self.runtime_errors:
                self.write("adspec: doit stopped: " + " ".join("\n".join(self.runtime_errors).split()) + "\n")
        try:
            costmod.RunBudget(self.build_dir, self.settings.budget_usd, self.run_id).remove()
        except OSError:
            pass
        if self.watch is not None:  # last: a stamp sees what this run left, its own writes too
            self.watch.finish(clean=not self.failures and not self.runtime_errors)

    # ---- the end ------------------------------------------------------------------------------------

    def _note_artifacts(self, s: AdState, task: Any) -> None:
        root = AdPaths.of(self.build_dir, s.ad).root
        for t in task.targets:
            p = Path(t)
            if p.suffix in (".png", ".mp4", ".wav", ".html") and not p.name.endswith(".last.png"):
                try:
                    s.artifacts[task.name] = str(p.relative_to(root))
                except ValueError:
                    s.artifacts[task.name] = str(p)
                break

    @staticmethod
    def _stands_in(task: Any) -> bool:
        return WAITS_FOR_APPROVAL in (getattr(task, "meta", None) or {})

    @staticmethod
    def _note_waiting(s: AdState, task: Any) -> None:
        if task.name == task_name("mix", s.ad):
            s.waiting = tuple((getattr(task, "meta", None) or {}).get(WAITS_FOR_APPROVAL, ()))

    def _summary(self) -> None:
        touched = [s for s in self.ads.values() if s.touched]
        if not touched:
            return
        total_spent = total_saved = 0.0
        for s in touched:
            ran = sorted(s.executed)
            kinds: dict[str, int] = {}
            for n in ran:
                k = n.split(":", 1)[0]
                kinds[k] = kinds.get(k, 0) + 1
            built = ", ".join(f"{v} {k}{'s' if v > 1 and k in ('storyboard', 'chunk') else ''}" if k in ("storyboard", "chunk") else k
                              for k, v in sorted(kinds.items(), key=lambda kv: KINDS.index(kv[0])))
            spent, saved = sum(s.paid.values()), sum(s.hits.values())
            total_spent += spent
            total_saved += saved
            parts = [f"built {built}" if built else ("nothing built" if s.failed else "nothing to build")]
            if s.hits:
                parts.append(f"{len(s.hits)} from the cache")
            if s.uptodate:
                parts.append(f"{len(s.uptodate)} up to date")
            if s.failed:
                parts.append(f"{len(s.failed)} FAILED")
            parts.append(f"spent {fmt_usd(spent)}")
            parts.append(f"saved {fmt_usd(saved)}")
            final = AdPaths.of(self.build_dir, s.ad).final
            where = ""
            if s.waiting:  # an earlier cut's final is not this one: say what waits instead
                parts.append(f"video of {', '.join(s.waiting)} waits for approval")
            elif not s.failed and not (s.done | s.ignored) >= s.names:
                parts.append("interrupted")  # Ctrl-C: a final there is an earlier build's
            elif not s.failed and final.exists() and task_name("mix", s.ad) in s.done:
                where = f" -> {os.path.relpath(final)}" if str(final).startswith(os.getcwd()) else f" -> {final}"
            if s.left_running:  # paid for once at the provider, counted by the run that collects it
                left = len(s.left_running)
                parts.append(f"{left} prediction{'s' if left != 1 else ''} still running at the provider: the next "
                             f"run collects {'them' if left != 1 else 'it'} by job id, not sent again")
            self.write(f"adspec: {s.ad}: " + "; ".join(parts) + where + "\n")
        if len(touched) > 1:
            self.write(f"adspec: all ads: spent {fmt_usd(total_spent)}, saved {fmt_usd(total_saved)}\n")

    # ---- provider waits (called from action threads) --------------------------------------------

    def provider_status(self, ad: str, task: str, status: str) -> None:
        with self.lock:
            s = self.ads.setdefault(ad, AdState(ad))
            prev = s.waits.get(task)
            now = time.time()
            if prev is None or prev[0] != status:
                s.waits[task] = (status, now)
            if self._console is None:
                started = s.running.get(task, now)
                elapsed = now - started
                last = getattr(self, "_last_wait_line", {}).get(task)
                if elapsed >= self.settings.wait_notice_s and (last is None or last[0] != status or now - last[1] >= WAIT_REPEAT_S):
                    self.__dict__.setdefault("_last_wait_line", {})[task] = (status, now)
                    self.write(f"   {task}: {status} ({int(elapsed)}s)\n")


#: Replicate's states of a prediction not finished yet (what adspec.providers.replicate_provider reports)
PREDICTION_RUNNING = ("starting", "processing")


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a CI job cancelled, `kill`) stops doit as Ctrl-C does, so the run ends through
    complete_run and status.json says "interrupted" instead of "running" forever."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):  # not the main thread of the main interpreter
        pass


def on_progress(ad: str, task: str) -> Callable[[str], None]:
    """The callback a provider's job.progress(status) reaches: status.json and the reporter."""
    settings = load_settings()
    last: dict[str, Any] = {"status": None, "t": 0.0}

    def callback(status: str) -> None:
        now = time.time()
        if status != last["status"] or now - last["t"] >= 5.0:
            last.update(status=status, t=now)
            try:
                provider_wait(settings.build_dir, ad, task, status)
            except OSError:
                pass
        rep = _reporter
        if rep is not None:
            rep.provider_status(ad, task, status)

    return callback
