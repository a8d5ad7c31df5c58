"""What dodo.py loads: the ads under ADSPEC_SPECS and their task creators, and doit's config."""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import tempfile
from typing import Any, Callable, Sequence

from .config import load_settings
from .fsutil import sweep_leftovers
from .graph import task_creators
from .loader import ad_name, find_specs


def doit_config() -> dict[str, Any]:
    from .cost import RunBudget, new_run_id
    from .progress import AdspecReporter

    settings = load_settings()
    try:
        settings.build_dir.mkdir(parents=True, exist_ok=True)
        # doit's state DB lives here: a folder it cannot write is doit's traceback otherwise
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=settings.build_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:  # one line, not doit's traceback of the dodo file
        raise SystemExit(f"adspec: build folder {settings.build_dir} is not writable ({e.strerror}); "
                         "set ADSPEC_BUILD") from None
    new_run_id()  # one id per doit run, inherited by its workers: receipts, status and the budget use it
    RunBudget.prune(settings.build_dir)
    return {
        # progress per ad, one line per failed target, cost summary, build/<ad>/status.json
        "reporter": AdspecReporter,
        # sqlite3: two doit processes at once must not corrupt the state DB (dbm.dumb would)
        "backend": "sqlite3",
        "dep_file": str(settings.build_dir / ".doit.sqlite3"),
        "verbosity": 1,
        # a failed ad does not stop the others; doit still exits non-zero (CI: every ad gets its chance)
        "continue": True,
        "action_string_formatting": "new",
    }


_LOADER_OPTIONS_WITH_VALUE = {"-f", "--file", "-d", "--dir"}


def doit_command(argv: Sequence[str]) -> str:
    """The doit command being run ('run' unless another is named), found as doit finds it:
    the first word after the loader's own options."""
    from doit.doit_cmd import DoitMain

    commands = {c.get_name() for c in DoitMain.DOIT_CMDS}
    args = list(argv)
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in _LOADER_OPTIONS_WITH_VALUE and args:
            args.pop(0)
    return args[0] if args and args[0] in commands else "run"


def creators_from_env() -> dict[str, Callable[..., Any]]:
    from .errors import AdspecError
    from .shard import ads_from_env

    settings = load_settings()
    # temp files of a run killed mid-write (their writer is gone): never ads, never targets
    sweep_leftovers(settings.specs_dir)
    sweep_leftovers(settings.build_dir, recursive=True)
    try:  # every ad, variants expanded (adspec.variants), limited to ADSPEC_SHARD (adspec.shard)
        ads, groups = ads_from_env(settings.specs_dir)
    except AdspecError as e:  # one line, not doit's traceback of the dodo file
        raise SystemExit(f"adspec: {e.one_line()}") from None
    running = doit_command(sys.argv[1:]) == "run"
    creators = task_creators(ads, settings.build_dir, running=running, groups=groups)
    creators["task_zz_run"] = _guarding_state_db(creators["task_zz_run"])
    return creators


def _guarding_state_db(creator: Callable[..., Any]) -> Callable[..., Any]:
    """`creator`, first making doit's final write of its state DB fail in one line (doit has
    opened the DB by the time it calls task creators)."""

    @functools.wraps(creator)
    def wrapped() -> Any:
        guard_state_db()
        yield from creator()

    return wrapped


def guard_state_db() -> None:
    """doit writes its state DB (build/.doit.sqlite3) once, when the run ends. If build/ was
    removed meanwhile (`rm -rf build`), sqlite refuses that write ("attempt to write a readonly
    database": the file is gone) and doit prints a traceback. Say it in one line instead; the
    next run rebuilds what is missing, and what was paid for is served by the cache."""
    from doit.globals import Globals

    backend = getattr(Globals.dep_manager, "backend", None)
    dump = getattr(backend, "dump", None)
    if dump is None or getattr(dump, "adspec_guarded", False):
        return

    def guarded_dump() -> None:
        try:
            dump()
        except sqlite3.Error as e:
            if os.path.exists(backend.name):
                raise
            sys.stderr.write(f"adspec: {os.path.dirname(backend.name)} was removed during the run, so doit's record of "
                             f"it is lost ({e}); run doit again: what was paid for is in the cache\n")

    guarded_dump.adspec_guarded = True  # type: ignore[attr-defined]
    backend.dump = guarded_dump
