"""A read-only look at the request cache, for the commands that must write nothing: `adspec
estimate`, `adspec cache du` and `adspec cache show`.

`RequestCache` creates its folders and database when opened (diskcache writes its settings on
every open); this view never creates, locks or changes a file. It reads diskcache's own tables
with sqlite in read-only mode and decodes values with diskcache's own `Disk`. A database closed
cleanly is opened `immutable` (no -wal/-shm files appear); while a writer is running (its -wal
file exists) it is opened `mode=ro` and sees what that writer committed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import diskcache

from .cache import _ENTRY, _PENDING, _UNPICKLE_ERRORS, Entry, _db_failure, _entry_of
from .hashing import sha256_file

__all__ = ["CacheView", "open_view"]

_DB = "cache.db"


class CacheView:
    """What a request cache holds, read without writing. A missing cache is an empty one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.lock_dir = self.root / "locks"
        self.ledger_path = self.root / "ledger.jsonl"
        self._db_dir = self.root / "requests"
        self._conn: sqlite3.Connection | None = None
        self._disk: diskcache.Disk | None = None
        db = self._db_dir / _DB
        if db.is_file():
            live = (self._db_dir / f"{_DB}-wal").exists()
            uri = f"file:{quote(str(db))}?{'mode=ro' if live else 'immutable=1'}"
            try:
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._conn.execute("SELECT 1 FROM Cache LIMIT 1").fetchall()
            except sqlite3.DatabaseError as e:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if "no such table" not in str(e):
                    raise _db_failure(self.root, e) from None
                return  # a database being created this instant: nothing is in it yet
            self._disk = diskcache.Disk(str(self._db_dir))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- raw records -------------------------------------------------------------------------

    def _value(self, name: str) -> Any:
        if self._conn is None or self._disk is None:
            return None
        try:
            row = self._conn.execute("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1",
                                     (name,)).fetchone()
        except sqlite3.DatabaseError as e:
            raise _db_failure(self.root, e) from None
        if row is None:
            return None
        try:
            return self._disk.fetch(row[0], row[1], row[2], False)
        except (OSError, *_UNPICKLE_ERRORS):
            return None  # a damaged record: the cache itself reports it when it next reads it

    def names(self) -> Iterator[str]:
        """Every record's name (`entry:<key>`, `pending:<key>`)."""
        if self._conn is None:
            return
        try:
            rows = self._conn.execute("SELECT key FROM Cache WHERE raw = 1").fetchall()
        except sqlite3.DatabaseError as e:
            raise _db_failure(self.root, e) from None
        for (name,) in rows:
            if isinstance(name, str):
                yield name

    def record(self, key: str) -> Any:
        """The stored entry record for `key` as written (None when there is none)."""
        return self._value(_ENTRY + key)

    # ---- what RequestCache offers for reading ------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256

    def entry(self, key: str) -> Entry | None:
        """The entry for `key` as recorded (its blob not checked); None if absent or damaged."""
        entry = _entry_of(self.record(key))
        return entry if entry is not None and entry.key == key else None

    def get(self, key: str) -> Entry | None:
        """The entry for `key` if its blob is present and intact (nothing is dropped: read-only)."""
        entry = self.entry(key)
        if entry is None:
            return None
        blob = self.blob_path(entry.sha256)
        if not blob.is_file() or blob.stat().st_size != entry.size or sha256_file(blob) != entry.sha256:
            return None
        return entry

    def peek(self, key: str) -> bool:
        """Whether `key` is cached, without hashing the blob (for estimates)."""
        entry = self.entry(key)
        return entry is not None and self.blob_path(entry.sha256).is_file()

    def pending(self, key: str) -> dict[str, Any] | None:
        value = self._value(_PENDING + key)
        return value if isinstance(value, dict) else None

    def entries(self) -> Iterator[Entry]:
        for name in self.names():
            if name.startswith(_ENTRY):
                entry = self.entry(name[len(_ENTRY):])
                if entry is not None:
                    yield entry

    def pending_keys(self) -> list[str]:
        return [n[len(_PENDING):] for n in self.names() if n.startswith(_PENDING)]

    def keys(self) -> set[str]:
        """Every key the cache has a record of (an entry or a pending request)."""
        out = set()
        for name in self.names():
            for prefix in (_ENTRY, _PENDING):
                if name.startswith(prefix):
                    out.add(name[len(prefix):])
        return out


def open_view(root: str | Path) -> CacheView:
    return CacheView(root)
