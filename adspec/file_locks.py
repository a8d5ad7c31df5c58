"""File locks: one holder at a time across threads and processes (`flock` on a lock file).

Used for a request-cache key, an ad's status and cost files, and a run's budget."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def locked(path: Path, *, wait: bool, create: bool = True) -> Iterator[bool]:
    """flock `path` (exclusive); yields whether it is held. The lock counts only while `path`
    still names the locked file: a lock file removed by `adspec cache gc` between our open and our
    flock is let go and the new one taken, so two holders never hold different files."""
    while True:
        try:
            fh = open(path, "a+b") if create else open(path, "rb")
        except FileNotFoundError:
            if create:
                raise
            yield False
            return
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                try:
                    same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield True
                    return
                if not create:
                    yield False
                    return
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextmanager
def exclusive(lock_file: str | Path) -> Iterator[None]:
    """Hold `lock_file` (created, with its folder, if missing) until the block ends."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock_file, wait=True):
        yield
