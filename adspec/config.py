"""Settings from the environment: folders, backend, budget. Read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "adspec"


@dataclass(frozen=True)
class Settings:
    specs_dir: Path
    build_dir: Path
    cache_dir: Path
    offline_forced: bool
    has_openai_key: bool
    has_replicate_token: bool
    budget_usd: float
    shard: str | None = None  # ADSPEC_SHARD, `i/n` (parsed by adspec.shard where ads are chosen)

    @property
    def live_planner(self) -> bool:
        return self.has_openai_key and not self.offline_forced

    @property
    def live_media(self) -> bool:
        return self.has_replicate_token and not self.offline_forced


def load_settings(env: Mapping[str, str] | None = None, root: Path | None = None) -> Settings:
    """Folders are relative to `root` (the working directory) unless absolute."""
    env = os.environ if env is None else env
    root = Path.cwd() if root is None else root
    backend = env.get("ADSPEC_BACKEND", "").strip().lower()
    return Settings(
        specs_dir=(root / env.get("ADSPEC_SPECS", "specs")).absolute(),
        build_dir=(root / env.get("ADSPEC_BUILD", "build")).absolute(),
        cache_dir=Path(env.get("ADSPEC_CACHE_DIR") or _default_cache_dir(env)).absolute(),
        offline_forced=backend == "offline",
        has_openai_key=bool(env.get("OPENAI_API_KEY")),
        has_replicate_token=bool(env.get("REPLICATE_API_TOKEN")),
        budget_usd=float(env.get("ADSPEC_BUDGET_USD", "5.00")),
        shard=env.get("ADSPEC_SHARD"),
    )
