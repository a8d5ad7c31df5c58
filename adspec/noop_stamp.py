"""A no-op `doit` in milliseconds: when nothing a clean no-op run looked at has changed since,
print that run's output again and stop, before doit builds the task graph.

A warm no-op spends most of its time importing adspec and asking every task whether it is up to
date (~36 ms an ad). When the last `doit` with the same command line ran nothing, failed nothing,
and everything it read is unchanged, that answer cannot have changed either. "Everything it
read" is, taken at the end of that run and compared again at the next start:

- the specs and build folders, every file (size, mtime, ctime, inode) and folder in them;
- every other file the run opened (Python's `open` audit events: assets, fonts, the library)
  or listed, and every task's file_dep, with their state when first seen: a file changed while
  the run was reading it makes no stamp;
- adspec's own source, the dodo file and doit.cfg, the command line, the working directory,
  Python, and the environment (as one sha256: the stamp holds no value of it).

ctime cannot be set back, so an edit never compares equal, even one restoring old bytes and
mtime. Anything that may differ makes the normal run happen (it is the check, only slower), and
the normal run writes a new stamp only if it too was a clean no-op. `ADSPEC_FAST_NOOP=0` turns
this off. Only doit's `run` command is stamped or replayed.

What the stamp cannot see: a file outside the specs and build folders that an up-to-date check
only stats (never opens or lists) and no task declares as a file_dep. No check does that today
(assets, fonts and logos are file_deps or hashed); a new check must keep to it."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from .fsutil import write_text_atomic
from .paths import STATE_DB

STAMP_NAME = ".adspec-noop.json"
STAMP_VERSION = 1
# changed by the shell between two identical commands, never read by a build
_ENV_IGNORED = frozenset({"_", "OLDPWD", "SHLVL", "PWD"})
_LOADER_OPTIONS_WITH_VALUE = {"-f", "--file", "-d", "--dir"}
_NOT_WATCHED = frozenset({STAMP_NAME, "__pycache__"})

FileState = tuple[int, int, int, int] | str | None  # (size, mtime_ns, ctime_ns, inode), "dir", missing


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


def _state(path: str) -> FileState:
    """A file's (size, mtime, ctime, inode); a folder's "dir@<mtime>" (it moves when an entry
    is added or removed: a folder someone listed); None when missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return f"dir@{st.st_mtime_ns}"
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _tree(root: Path, out: dict[str, FileState]) -> None:
    """Every file and folder under `root` (but the stamp and Python's bytecode caches), by its
    state. Folders count by their presence only: their mtime moves with every temp file a run
    writes and renames."""
    stack = [str(root)]
    out[str(root)] = "dir" if os.path.isdir(root) else None
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name in _NOT_WATCHED:
                continue
            try:
                st = e.stat()
            except OSError:  # a dangling link or removed meanwhile
                out[e.path] = None
                continue
            if stat.S_ISDIR(st.st_mode):
                out[e.path] = "dir"
                if not e.is_symlink():
                    stack.append(e.path)
            else:
                out[e.path] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _environment_digest(argv: Sequence[str]) -> str:
    h = hashlib.sha256()
    tty = bool(getattr(sys.stdout, "isatty", lambda: False)())  # the reporter draws a table on one
    parts: list[Any] = [STAMP_VERSION, list(argv), os.getcwd(), _initial_workdir(), tty, sys.executable, sys.version,
                        sorted((k, v) for k, v in os.environ.items() if k not in _ENV_IGNORED)]
    h.update(json.dumps(parts, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _initial_workdir() -> str:
    """Where doit was started (it reads doit.cfg and pyproject.toml there, then moves to the
    dodo file's folder)."""
    loader = sys.modules.get("doit.loader")
    return str(getattr(loader, "initial_workdir", None) or os.getcwd())


def _code_files() -> list[str]:
    """The dodo file doit loads, doit itself, and doit's config files where it was started."""
    start = _initial_workdir()
    files = [os.path.join(start, "doit.cfg"), os.path.join(start, "pyproject.toml")]
    for name in ("dodo", "__main__", "doit"):
        f = getattr(sys.modules.get(name), "__file__", None)
        if f:
            files.append(os.path.abspath(f))
    return files


def _roots(specs_dir: Path, build_dir: Path) -> list[Path]:
    """The folders watched whole: the specs, the build, and adspec's own source and data."""
    return [specs_dir, build_dir, Path(__file__).resolve().parent]


def _fingerprint(env_digest: str, roots: Iterable[Path], files: Iterable[str]) -> str:
    """One sha256 of the environment digest, the trees under `roots` and the state of `files`."""
    states: dict[str, FileState] = {}
    for root in roots:
        _tree(root, states)
    for f in files:
        if f not in states:
            states[f] = _state(f)
    return _digest(env_digest, states)


def _digest(env_digest: str, states: dict[str, FileState]) -> str:
    h = hashlib.sha256(env_digest.encode())
    for path in sorted(states):
        h.update(f"{path}\0{states[path]}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class _Watch:
    """What this run reads and writes, from Python's audit events (set up before anything else
    is imported, so the build's own reads are all seen)."""

    def __init__(self, argv: Sequence[str], specs_dir: Path, build_dir: Path):
        self.argv = list(argv)
        self.roots = _roots(specs_dir, build_dir)
        self.build_dir = build_dir
        self.read: dict[str, FileState] = {}  # first seen state of every file opened or listed
        self.written: set[str] = set()  # files this run wrote, replaced or removed
        self.start_trees: dict[str, FileState] = {}
        for root in self.roots:
            _tree(root, self.start_trees)
        self.env_digest = _environment_digest(self.argv)
        self.code_start = {f: _state(f) for f in _code_files()}
        self.deps_start: dict[str, FileState] = {}
        self.output: list[str] = []
        self.executed = False
        self.tasks: dict[str, Any] = {}
        self.selected: list[str] = []
        self.reported: set[str] = set()  # tasks doit reported as up to date, ignored, done or failed
        sys.addaudithook(self._event)

    def _event(self, event: str, args: tuple[Any, ...]) -> None:
        # an audit hook that raises would fail the operation it watches: never raise
        try:
            if event == "open":
                path, mode, flags = args
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    mode is None and isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
                self._note(path, writing)
            elif event in ("os.listdir", "os.scandir"):
                self._note(args[0], False)
            elif event == "os.rename":
                self._note(args[0], True)
                self._note(args[1], True)
            elif event in ("os.remove", "os.rmdir", "os.truncate", "os.utime", "os.chmod"):
                self._note(args[0], True)
        except Exception:  # pragma: no cover - an event of another shape
            pass

    def _note(self, path: Any, writing: bool) -> None:
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):  # a file descriptor, bytes, None (listdir of '.')
            return
        path = os.path.abspath(path)
        if writing:
            self.written.add(path)
        elif path not in self.read and not path.startswith(("/proc/", "/dev/", "/sys/")):
            self.read.setdefault(path, _state(path))  # atomic: workers' threads note at once

    def note_tasks(self, tasks: dict[str, Any], selected: Sequence[str]) -> None:
        """Every task's file_dep, as the run starts (doit checks them by stat, unseen by audit),
        and what was asked for: a stamp needs every task it depends on to have been reported."""
        self.tasks, self.selected = tasks, list(selected)
        for task in tasks.values():
            for dep in getattr(task, "file_dep", ()) or ():
                p = os.path.abspath(dep)
                self.deps_start.setdefault(p, _state(p))

    def _complete(self) -> bool:
        """Whether doit reported on every task the run asked for and everything they depend on
        (a run stopped by Ctrl-C or SIGTERM ends through the reporter too, with tasks unasked)."""
        todo, needed = list(self.selected), set()
        while todo:
            name = todo.pop()
            if name in needed:
                continue
            needed.add(name)
            task = self.tasks.get(name)
            if task is None:  # a task created later than the run got to
                return False
            todo += [*task.task_dep, *task.setup_tasks, *getattr(task, "calc_dep", ())]
        return needed <= self.reported

    def finish(self, clean: bool) -> None:
        """Write the stamp if this run was a clean no-op whose inputs did not move under it."""
        stamp = self.build_dir / STAMP_NAME
        try:
            if not clean or self.executed or not self._complete():
                stamp.unlink(missing_ok=True)
                return
            end: dict[str, FileState] = {}
            for root in self.roots:
                _tree(root, end)
            written = self.written

            def moved(path: str, before: FileState, after: FileState) -> bool:
                # doit's state DB is written as the run ends, by sqlite (unseen by the audit hook)
                return before != after and path not in written and not os.path.basename(path).startswith(STATE_DB)

            if any(moved(p, self.start_trees.get(p), end.get(p)) for p in set(self.start_trees) | set(end)):
                stamp.unlink(missing_ok=True)
                return
            inside = tuple(str(r) + os.sep for r in self.roots)
            roots = {str(r) for r in self.roots}
            extra: dict[str, FileState] = {}
            for seen in (self.read, self.deps_start, self.code_start):
                for p, before in list(seen.items()):
                    if p in roots or p.startswith(inside) or p in extra:
                        continue
                    now = _state(p)
                    if moved(p, before, now):
                        stamp.unlink(missing_ok=True)
                        return
                    extra[p] = now
            files = sorted(extra)
            record = {"version": STAMP_VERSION, "argv": self.argv, "files": files,
                      "fingerprint": _digest(self.env_digest, {**end, **extra}), "output": "".join(self.output)}
            write_text_atomic(stamp, json.dumps(record))
        except OSError:
            pass  # no stamp: the next run is a normal one


_watch: _Watch | None = None


def watching() -> _Watch | None:
    """The running doit's watch, if it is a `run` that may be stamped."""
    return _watch


def _enabled() -> bool:
    return os.environ.get("ADSPEC_FAST_NOOP", "1").strip().lower() not in ("0", "no", "false", "off")


def replay_or_watch(argv: Sequence[str] | None = None) -> None:
    """At the top of dodo.py: if the last clean no-op of this same command saw exactly what is
    here now, print its output and exit 0; otherwise watch this run so it can stamp itself."""
    global _watch
    argv = list(sys.argv[1:] if argv is None else argv)
    if not _enabled() or doit_command(argv) != "run":
        return
    from .config import load_settings

    try:
        settings = load_settings()
    except Exception:  # the normal run says what is wrong with the settings
        return
    roots = _roots(settings.specs_dir, settings.build_dir)
    stamp = settings.build_dir / STAMP_NAME
    try:
        record = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    if (isinstance(record, dict) and record.get("version") == STAMP_VERSION and record.get("argv") == argv
            and record.get("fingerprint") == _fingerprint(_environment_digest(argv), roots, record.get("files", []))):
        sys.stdout.write(record.get("output", ""))
        sys.stdout.flush()
        raise SystemExit(0)
    _watch = _Watch(argv, settings.specs_dir, settings.build_dir)


__all__ = ["STAMP_NAME", "doit_command", "replay_or_watch", "watching"]
