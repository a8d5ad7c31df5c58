"""Atomic file writes: a temp file in the target's folder, then rename. A build killed at any
moment leaves every target either absent or whole.

Temp names are `.<target>.tmp-<pid>-<8 hex>` (plus the target's extension when a tool writes
the file and picks its format by extension): a dotfile that never ends like a spec, so a killed
write can never be taken for an ad, and the writer's pid says whether it is still being written
(`sweep_leftovers` removes the ones whose writer is gone). Scratch folders (`temp_dir`) are
named the same way and swept the same way."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .file_locks import locked

__all__ = [
    "atomic_path", "temp_path_for", "write_bytes_atomic", "write_text_atomic", "write_json_atomic",
    "write_if_changed", "is_leftover", "sweep_leftovers", "temp_dir",
]

#: a temp file of ours: `.<target>.tmp-<pid>-<8 hex>[.<ext>]`
_TEMP_NAME = re.compile(r"^\..+\.tmp-(?P<pid>\d+)-[0-9a-f]{8}(?:\.[A-Za-z0-9]{1,8})?$")
#: a temp file older than this is litter even when its pid is alive again (pids are reused)
STALE_AFTER_S = 86400.0
#: untouched this long and its pid gone: litter (the grace keeps a live file of another machine
#: or container sharing the folder, whose pids mean nothing here, from being swept mid-write)
GRACE_S = 60.0
#: the lock file a live scratch folder holds (`temp_dir`)
IN_USE = ".in-use"


def temp_path_for(target: str | Path, suffix: str | None = None) -> Path:
    """A new, empty, exclusively created temp file beside `target`. Without `suffix` it keeps no
    extension (`.x.beats.yaml.tmp-PID-HEX`); with one, the tool writing it can pick its format
    (`.final.tmp-PID-HEX.mp4`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    base = target.name if suffix is None else target.stem
    while True:
        tmp = target.parent / f".{base}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix or ''}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # less the umask, as open() does
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue
        os.close(fd)
        return tmp


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it into place, else remove it.

    The temp name keeps the target's extension (ffmpeg picks formats by extension)."""
    target = Path(target)
    tmp_path = temp_path_for(target, suffix or target.suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: str | Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | Path, value: Any) -> None:
    write_text_atomic(target, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_if_changed(target: str | Path, text: str) -> bool:
    """Rewrite `target` only when its content changes, so doit's file_dep sees real edits only."""
    target = Path(target)
    try:
        if target.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text_atomic(target, text)
    return True


# ---- leftovers of killed runs -------------------------------------------------------------------


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or a pid we cannot ask about): leave its files alone
    return True


@contextmanager
def temp_dir(parent: str | Path, label: str) -> Iterator[Path]:
    """A new scratch folder in `parent`, named like a temp file (`.<label>.tmp-<pid>-<8 hex>`) and
    removed on exit; one a killed run leaves behind is swept like its temp files (a mix killed
    mid-way left tens of MB in build/ that nothing removed)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        folder = parent / f".{label}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    with locked(folder / IN_USE, wait=True):  # held while in use: a sweep never takes a live folder
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _in_use(folder: Path) -> bool:
    """Whether a live `temp_dir` holds `folder`'s lock (a run in another container sharing the
    folder, whose pid means nothing here, is seen too)."""
    if not (folder / IN_USE).exists():
        return False
    with locked(folder / IN_USE, wait=False, create=False) as held:
        return not held


def _last_touched(path: Path) -> float:
    """A file's mtime; a folder's, or its newest entry's (a writer inside it keeps it fresh)."""
    newest = path.stat().st_mtime
    if path.is_dir():
        for entry in os.scandir(path):
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return newest


def is_leftover(path: Path, now: float | None = None) -> bool:
    """Whether `path` is a temp file or scratch folder of ours whose writer is gone (killed
    mid-write): untouched for a minute and its pid no running process, or older than a day."""
    m = _TEMP_NAME.match(path.name)
    if m is None:
        return False
    try:
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            return False
        age = (now if now is not None else time.time()) - _last_touched(path)
    except OSError:
        return False
    return age > STALE_AFTER_S or (age > GRACE_S and not _alive(int(m.group("pid"))))


def sweep_leftovers(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """Remove the temp files a killed run left in `folder` (and below, when `recursive`); the
    files of runs still writing are kept. Returns what was removed."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    if recursive:
        walk: Any = os.walk(folder)
    else:
        entries = list(os.scandir(folder))
        walk = [(str(folder), [e.name for e in entries if e.is_dir(follow_symlinks=False)],
                 [e.name for e in entries if not e.is_dir(follow_symlinks=False)])]
    now = time.time()
    for root, dirs, names in walk:
        for name in list(dirs):
            path = Path(root) / name
            if name.startswith(".") and is_leftover(path, now) and not _in_use(path):
                dirs.remove(name)  # not walked into: it goes whole
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    removed.append(path)
        for name in names:
            if not name.startswith("."):
                continue
            path = Path(root) / name
            if is_leftover(path, now):
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
    return removed


class NotARegularFile(OSError):
    """A path that is a named pipe, socket, device or folder where a file was expected."""


def file_kind(mode: int) -> str:
    """What a stat mode describes, in words for a message."""
    import stat

    for test, words in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISDIR, "a folder")):
        if test(mode):
            return words
    return "not a regular file"


def read_regular(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of `path` (at most `limit` + 1 of them), only if it is a regular file.

    Opened non-blocking and checked on the open descriptor: a plain open() of a named pipe named
    like a spec waits forever for a writer, which would hang validate, estimate and doit."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(0, f"is {file_kind(mode)}, not a file", str(path))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read() if limit is None else f.read(limit + 1)
    finally:
        os.close(fd)
