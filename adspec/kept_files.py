"""Files kept between builds for reuse (a mix's drawn pieces and sound), named by what they are
made from AND by their own bytes: `<key>-<sha256 of the file, 16 hex>.<ext>`. A kept file is
reused only while its bytes still hash to its name, so a damaged or hand-edited one is made
again, never served. The caller holds the folder's lock."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .hashing import sha256_file

_DIGEST = 16


def find_kept(folder: Path, key: str, suffix: str) -> Path | None:
    """The file kept for `key` whose bytes are intact, else None (the damaged ones removed)."""
    found = None
    for path in sorted(folder.glob(f"{key}-*{suffix}")):
        if found is None and path.name == f"{key}-{sha256_file(path)[:_DIGEST]}{suffix}":
            found = path
        else:
            path.unlink(missing_ok=True)
    return found


def keep(made: Path, folder: Path, key: str, suffix: str) -> Path:
    """Move `made` into `folder` as the file kept for `key` (one rename: whole or absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / f"{key}-{sha256_file(made)[:_DIGEST]}{suffix}"
    os.replace(made, kept)
    return kept


def prune(folder: Path, pattern: str, used: Iterable[Path]) -> None:
    """Remove the files of `folder` matching `pattern` that this build did not use."""
    for old in set(folder.glob(pattern)) - set(used):
        old.unlink(missing_ok=True)


__all__ = ["find_kept", "keep", "prune"]
