"""File locks: one holder at a time across threads and processes (`flock` on a lock file).

Used for a request-cache key, an ad's status and cost files, and a run's budget."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def exclusive(lock_file: str | Path) -> Iterator[None]:
    """Hold `lock_file` (created, with its folder, if missing) until the block ends."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
