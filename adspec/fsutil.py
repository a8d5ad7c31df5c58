"""Atomic file writes: a temp file in the target's folder, then rename. A build killed at any
moment leaves every target either absent or whole."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it into place, else remove it.

    The temp name keeps the target's extension (ffmpeg picks formats by extension)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


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


def copy_atomic(src: str | Path, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)


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
