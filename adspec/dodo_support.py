"""What dodo.py loads: the ads under ADSPEC_SPECS and their task creators, and doit's config."""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from .ads import choose_ads, left_to_other_shards
from .config import Settings, load_settings
from .cost import RunBudget
from .errors import SpecWarning, error_line
from .fsutil import sweep_leftovers
from .graph import default_run, task_creators
from .noop_stamp import doit_command
from .paths import STATE_DB
from .progress import AdspecReporter
from .runs import new_run_id
from .tasknames import aggregate_ad, split_task

#: doit's worker threads when the command line does not say (`-n`): enough for every provider's
#: in-flight slots (library/limits.yaml) and the cores beside them
DEFAULT_WORKERS = 32


def _settings() -> Settings:
    """The settings, or one line and exit (an ADSPEC_* value adspec cannot use), not doit's
    traceback of the dodo file."""
    try:
        return load_settings()
    except Exception as e:
        line = error_line(e)
        if line is None:
            raise
        raise SystemExit(f"adspec: {line}") from None


def doit_config(default_tasks: list[str] | None = None) -> dict[str, Any]:
    """doit's config; `default_tasks` (see `default_task_names`) is what a bare `doit` runs."""
    settings = _settings()
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
    config: dict[str, Any] = {
        # progress per ad, one line per failed target, cost summary, build/<ad>/status.json
        "reporter": AdspecReporter,
        # sqlite3: two doit processes at once must not corrupt the state DB (dbm.dumb would)
        "backend": "sqlite3",
        "dep_file": str(settings.build_dir / STATE_DB),
        "verbosity": 1,
        # a failed ad does not stop the others; doit still exits non-zero (CI: every ad gets its chance)
        "continue": True,
        "action_string_formatting": "new",
        # parallel by default, on threads: most tasks wait on a provider (a sleeping thread), and
        # adspec.limits keeps provider calls within their in-flight limits and local media work
        # within the cores; `doit -n 1` still builds one task at a time
        "num_process": DEFAULT_WORKERS,
        "par_type": "thread",
    }
    if default_tasks is not None:
        config["default_tasks"] = default_tasks
    return config


def default_task_names(creators: dict[str, Callable[..., Any]]) -> list[str]:
    """What a bare `doit` runs: each ad through its alias `<ad>` (so `doit ignore <ad>` skips
    everything of that ad: doit ignores what an ignored task needs), then the all-ads page."""
    return list(getattr(creators, "default_tasks", None) or [])


def _named(argv: Sequence[str]) -> list[str]:
    """The ad each word of a doit command line would name (`chunk:<ad>` names <ad>)."""
    out = []
    for arg in argv:
        parts = split_task(arg)
        out.append(parts.ad if parts is not None else (aggregate_ad(arg) or arg))
    return out


def asked_ads(argv: Sequence[str], ads: Sequence[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """The ads a `doit` command line asks for (all when it names none of theirs)."""
    names = {a for a, _ in ads}
    wanted = {ad for ad in _named(argv) if ad in names}
    return [(a, p) for a, p in ads if a in wanted] or list(ads)


def unknown_variants(names: Sequence[str], ads: Sequence[tuple[str, Path]], specs_dir: Path) -> list[str]:
    """For each named `<spec>@<variant>` that is no ad because its spec has errors (a spec that
    cannot be read is built as one ad of its name, whose plan says the error): a line naming the
    spec's first error. Without it doit says only "Invalid parameter" and names no file."""
    from .validate import validate_paths

    names_of = {a: p for a, p in ads}
    lines = []
    for name in dict.fromkeys(names):
        base = name.split("@", 1)[0]
        if "@" not in name or name in names_of or base not in names_of:
            continue
        found = [e for e in validate_paths([names_of[base]], specs_dir.parent) if not isinstance(e, SpecWarning)]
        first = error_line(found[0]) if found else None
        if first is not None:  # the file as the project names it (doit -f may run from elsewhere)
            first = first.replace(f"{specs_dir.parent}{os.sep}", "", 1)
            more = f" (and {len(found) - 1} more: adspec validate)" if len(found) > 1 else ""
            lines.append(f"{name}: its spec has errors, so its variants are not known: {first}{more}")
    return lines


class Creators(dict):
    """The task creators dodo.py exposes, and the tasks a bare `doit` runs."""

    default_tasks: list[str]


def creators_from_env(argv: Sequence[str] | None = None) -> dict[str, Callable[..., Any]]:
    """The task creators for the doit command line `argv` (default: this process's): every ad
    (variants expanded, ADSPEC_SHARD applied); the budget covers the ads the command asks for."""
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_interrupt()
    settings = _settings()
    # temp files of a run killed mid-write (their writer is gone): never ads, never targets
    sweep_leftovers(settings.specs_dir)
    sweep_leftovers(settings.build_dir, recursive=True)
    try:  # every ad, variants expanded (adspec.variants), limited to ADSPEC_SHARD (adspec.shard)
        ads, groups = choose_ads(settings.specs_dir, shard=settings.shard)
    except Exception as e:  # one line, not doit's traceback of the dodo file (bugs keep theirs)
        line = error_line(e)
        if line is None:
            raise
        raise SystemExit(f"adspec: {line}") from None
    shard_lines = left_to_other_shards(_named(argv), settings.specs_dir, settings.shard)
    if shard_lines:  # doit would say only "Invalid parameter"
        raise SystemExit("\n".join(f"adspec: {line}" for line in shard_lines))
    unknown = unknown_variants(_named(argv), ads, settings.specs_dir)
    if unknown:  # doit would say only "Invalid parameter"
        raise SystemExit("\n".join(f"adspec: {line}" for line in unknown))
    # `doit auto` runs the build over and over: it needs the delayed creators too
    running = doit_command(argv) in ("run", "auto")
    creators = Creators(task_creators(ads, settings.build_dir, running=running, groups=groups,
                                      asked=asked_ads(argv, ads)))
    creators["task_zz_run"] = _guarding_state_db(creators["task_zz_run"])
    creators.default_tasks = default_run(ads)
    return creators


def quiet_interrupt() -> None:
    """Ctrl-C under doit ends in one line, not doit's traceback: the run's summary (printed
    before) already says `interrupted`, and status.json too. Other exceptions keep their hook."""
    previous = sys.excepthook
    if getattr(previous, "adspec_quiet", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.stderr.write("adspec: interrupted; run doit again to go on (what was paid for is in the cache)\n")
            return
        previous(kind, value, tb)

    hook.adspec_quiet = True  # type: ignore[attr-defined]
    sys.excepthook = hook


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

    backend: Any = getattr(Globals.dep_manager, "backend", None)
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
    keep_unrun_tasks_state(Globals.dep_manager)


def keep_unrun_tasks_state(dep_manager: Any) -> None:
    """doit forgets the saved state of every task whose dependency failed, though it never ran
    (its last success still stands): a typo in a spec made the plan fail, and once fixed, every
    storyboard, chunk, stitch and mix of the ad ran again (locally, from the cache, but a live
    ad's clips are conformed again). A task that ran and failed is still forgotten, as doit means."""
    remove_success = getattr(dep_manager, "remove_success", None)
    if remove_success is None or getattr(remove_success, "adspec_guarded", False):
        return

    def guarded(task: Any) -> None:
        if getattr(task, "executed", True):
            remove_success(task)

    guarded.adspec_guarded = True  # type: ignore[attr-defined]
    dep_manager.remove_success = guarded
