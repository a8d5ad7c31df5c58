"""Content hashes: the identity of every target is the sha256 of canonical bytes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_bytes(canonical_json(value).encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


_memo: dict[tuple[str, int, int, int], str] = {}


def sha256_file_memo(path: str | Path) -> str:
    """sha256 of a file, remembered by (path, inode, size, mtime) for this process: a no-op
    build asks for the same input hashes many times."""
    st = os.stat(path)
    memo_key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _memo.get(memo_key)
    if digest is None:
        digest = _memo[memo_key] = sha256_file(path)
    return digest
