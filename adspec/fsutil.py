"""Atomic file writes: a temp file in the target's folder, then rename. A build killed at any
moment leaves every target either absent or whole."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def new_temp_file(folder: str | Path, *, prefix: str, suffix: str = "") -> Path:
    """Create an empty file of a fresh name in `folder` with the mode a plain `open()` would give
    (0666 less the user's umask), unlike `tempfile.mkstemp`'s 0600: outputs renamed into place
    from it must be readable by whoever the user lets read their files (a web server, a CI
    upload step)."""
    folder = Path(folder)
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"no free temporary name in {folder}")


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it into place, else remove it.

    The temp name keeps the target's extension (ffmpeg picks formats by extension)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = new_temp_file(target.parent, prefix=f".{target.stem}.", suffix=suffix or target.suffix)
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
