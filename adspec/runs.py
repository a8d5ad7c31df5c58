"""The id of this doit run: set once by the dodo file and inherited by doit's worker processes
through ADSPEC_RUN_ID (the one ADSPEC_* variable adspec writes: it carries the run to its
workers). Receipts, status.json and the run's budget name it."""

from __future__ import annotations

import os
import time
import uuid

RUN_ID_ENV = "ADSPEC_RUN_ID"


def run_id() -> str:
    """The id of this `doit` run: set by dodo.py for the run (inherited by worker processes);
    a process outside a doit run is a run of its own."""
    rid = os.environ.get(RUN_ID_ENV)
    if not rid:
        rid = os.environ[RUN_ID_ENV] = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return rid


def new_run_id() -> str:
    os.environ.pop(RUN_ID_ENV, None)
    return run_id()
