"""Recipes: the full description of one generation request, and its key.

A recipe names the provider, the model and its version, every input parameter, and every input
file by the sha256 of its bytes. Its key is the sha256 of its canonical JSON: the same request
from any ad, variant or branch has the same key, so it is paid for once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .hashing import sha256_file_memo, sha256_json

Kind = Literal["plan", "image", "video", "music", "voice"]

#: the providers whose requests are made on this machine, for free: the offline animatic's
#: renderers (and planner) and your own stills and footage. Nothing of theirs is paid, priced,
#: shared between runners or claimed.
OFFLINE = "offline"
OWN_MEDIA = "local"
LOCAL_PROVIDERS = frozenset({OFFLINE, OWN_MEDIA})


@dataclass(frozen=True)
class FileRef:
    """An input file: identified by its bytes; the path only says where to read them now."""

    sha256: str
    path: Path

    @classmethod
    def of(cls, path: str | Path) -> "FileRef":
        return cls(sha256=sha256_file_memo(path), path=Path(path))


@dataclass(frozen=True)
class Recipe:
    provider: str  # OFFLINE, OWN_MEDIA, "replicate", "openai"
    kind: Kind
    model: str  # registry name, e.g. "flux-dev" (the slug/version go in `version`)
    version: str  # provider slug and version, e.g. "black-forest-labs/flux-dev" or "offline/1"
    params: dict[str, Any] = field(default_factory=dict)  # every input parameter, JSON values
    files: dict[str, FileRef] = field(default_factory=dict)  # input field -> file

    def identity(self) -> dict[str, Any]:
        """What the key is computed from: no paths, no times, no secrets."""
        return {
            "provider": self.provider,
            "kind": self.kind,
            "model": self.model,
            "version": self.version,
            "params": self.params,
            "files": {k: v.sha256 for k, v in sorted(self.files.items())},
        }

    @property
    def key(self) -> str:
        return sha256_json(self.identity())
