"""One entry of the request cache: what is known about a request that completed. Shared by the
local cache (adspec.cache) and the remote one (adspec.remote)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    """What the cache knows about one paid (or free) request that completed."""

    key: str
    sha256: str
    size: int
    provider: str
    kind: str
    model: str
    job_id: str | None
    cost_usd: float
    created_at: float
    seconds: float
    suffix: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
