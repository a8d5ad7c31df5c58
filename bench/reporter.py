"""A doit reporter for the benchmarks: adspec's own reporter (what `doit` uses, status files and
all, so timings include its cost), plus each task's start and end time written as JSON to
$ADSPEC_BENCH_TIMINGS when the run completes.

Registered per bench project through a `doit.cfg` in the project folder (`[REPORTER]
bench = bench.reporter:TimingReporter`) and chosen with `doit --reporter bench`, so adspec's own
dodo.py and DOIT_CONFIG stay untouched."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

try:  # the reporter adspec's DOIT_CONFIG sets
    from adspec.progress import AdspecReporter as _Base
except ImportError:  # pragma: no cover - an adspec without its progress reporter
    from doit.reporter import ConsoleReporter as _Base


class TimingReporter(_Base):  # type: ignore[misc, valid-type]
    desc = "console output + per-task start/end times in $ADSPEC_BENCH_TIMINGS (bench/)"

    def __init__(self, outstream: Any, options: dict[str, Any]):
        super().__init__(outstream, options)
        self._lock = threading.Lock()
        self._tasks: dict[str, dict[str, Any]] = {}
        self._started = time.time()

    def _note(self, name: str, **values: Any) -> None:
        with self._lock:
            self._tasks.setdefault(name, {}).update(values)

    def execute_task(self, task: Any) -> None:  # called in the worker right before the actions
        self._note(task.name, start=time.time(), executed=bool(task.actions))
        super().execute_task(task)

    def add_success(self, task: Any) -> None:
        self._note(task.name, end=time.time(), ok=True)
        super().add_success(task)

    def add_failure(self, task: Any, fail: Any) -> None:
        self._note(task.name, end=time.time(), ok=False)
        super().add_failure(task, fail)

    def skip_uptodate(self, task: Any) -> None:
        self._note(task.name, uptodate=True)
        super().skip_uptodate(task)

    def complete_run(self) -> None:
        super().complete_run()
        path = os.environ.get("ADSPEC_BENCH_TIMINGS")
        if path:
            with self._lock:
                data = {"started": self._started, "completed": time.time(), "tasks": self._tasks}
            tmp = f"{path}.tmp-{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, path)
