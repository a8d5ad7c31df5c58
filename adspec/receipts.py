"""Receipts: the provenance file beside every generated artifact (`storyboard.receipt.json`):
what it was made from, by whom, at what cost. Read and written through `Receipt` only.

A receipt of another `version` (or none) reads as absent: the task runs again and the request
cache serves the artifact, so an old receipt costs a rebuild, never a payment or a KeyError.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .cache import Fetched
from .fsutil import write_json_atomic
from .hashing import sha256_file
from .paths import receipt_path
from .recipes import Recipe
from .runs import run_id

RECEIPT_VERSION = 1


@dataclass(frozen=True)
class Receipt:
    artifact: str  # the artifact's file name
    task: str | None  # the doit task that wrote it
    sha256: str  # of the artifact
    key: str  # the recipe's key in the request cache
    recipe: dict[str, Any]  # the recipe's identity: what the provider was asked
    job_id: str | None  # the provider's prediction id
    cost_usd: float  # what the request cost when it was paid (for a cache hit: what was saved)
    cache_hit: bool
    generated_at: str
    generation_seconds: float
    received_at: str
    run: str  # the doit run that wrote it (adspec.runs)
    version: int = RECEIPT_VERSION
    # a video made ready here from the provider's clip: the ADSPEC_VIDEO_KBPS it was encoded under
    # (config.video_kbps_setting; absent in receipts written before it was recorded: the default)
    encoded: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Receipt | None:
        """The receipt in `data`, or None for one of another version or shape."""
        if not isinstance(data, dict) or data.get("version") != RECEIPT_VERSION:
            return None
        try:
            return cls(**{f.name: data[f.name] if f.name in data or f.default is MISSING else f.default
                          for f in fields(cls)})
        except (KeyError, TypeError):
            return None


def write_receipt(artifact: Path, recipe: Recipe, fetched: Fetched, task: str | None = None, *,
                  encoded: str | None = None) -> None:
    """Provenance beside the artifact, written atomically (`encoded`: see `Receipt.encoded`)."""
    receipt = Receipt(
        artifact=artifact.name,
        task=task,
        sha256=sha256_file(artifact),
        key=recipe.key,
        recipe=recipe.identity(),
        job_id=fetched.entry.job_id,
        cost_usd=fetched.entry.cost_usd,
        cache_hit=fetched.hit,
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fetched.entry.created_at)),
        generation_seconds=fetched.entry.seconds,
        received_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        run=run_id(),
        encoded=encoded,
    )
    write_json_atomic(receipt_path(artifact), receipt.to_json())


def read_receipt(artifact: Path) -> Receipt | None:
    """The receipt beside `artifact`, or None (none, unreadable, or of another version)."""
    try:
        return Receipt.from_json(json.loads(receipt_path(artifact).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def intact(artifact: Path) -> bool:
    """The artifact is what its receipt says was made: not changed since (a hand edit, a truncated
    copy). Cheap on the common path: the bytes are hashed only when the artifact is newer than its
    receipt (written after it), so a no-op reads two file times per target."""
    try:
        if artifact.stat().st_mtime_ns <= receipt_path(artifact).stat().st_mtime_ns:
            return True
    except OSError:
        return False
    receipt = read_receipt(artifact)
    if receipt is None or sha256_file(artifact) != receipt.sha256:
        return False
    try:  # the same bytes (a copy that reordered the times): the next check is two file times again
        made = artifact.stat().st_mtime_ns
        os.utime(receipt_path(artifact), ns=(made, made))
    except OSError:
        pass
    return True


def receipt_key(artifact: Path) -> str | None:
    """The recipe key the artifact was made from, per its receipt."""
    receipt = read_receipt(artifact)
    return receipt.key if receipt is not None else None
