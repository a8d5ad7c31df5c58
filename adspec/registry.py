"""The model registry: data in providers/models.yaml, read once, looked up by name or alias."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

KINDS = ("image", "video", "music")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    provider: str
    slug: str | None = None
    version: str | None = None
    aliases: tuple[str, ...] = ()
    clip_lengths: tuple[int, ...] = ()
    fps: int = 24
    aspect_ratios: tuple[str, ...] = ()
    native_audio: bool = False
    uses_reference: bool = False
    max_seconds: int | None = None
    price: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # live input shaping etc.


@dataclass(frozen=True)
class Registry:
    models: dict[str, ModelEntry]
    aliases: dict[str, str]
    planner_default: str
    planner_prices: dict[str, dict[str, Any]]

    def resolve(self, name: str, kind: str) -> ModelEntry:
        """The entry for `name` (or an alias) of `kind`; KeyError if there is none."""
        canonical = self.aliases.get(name, name)
        entry = self.models.get(canonical)
        if entry is None or entry.kind != kind:
            raise KeyError(name)
        return entry

    def names(self, kind: str) -> list[str]:
        return sorted(n for n, e in self.models.items() if e.kind == kind)


_KNOWN = {f for f in ModelEntry.__dataclass_fields__} - {"name", "extra"}


def _entry(name: str, raw: dict[str, Any]) -> ModelEntry:
    known = {k: v for k, v in raw.items() if k in _KNOWN}
    extra = {k: v for k, v in raw.items() if k not in _KNOWN}
    for key in ("aliases", "clip_lengths", "aspect_ratios"):
        if key in known:
            known[key] = tuple(known[key])
    return ModelEntry(name=name, extra=extra, **known)


def parse_registry(data: dict[str, Any]) -> Registry:
    models = {name: _entry(name, raw) for name, raw in data["models"].items()}
    aliases = {a: e.name for e in models.values() for a in e.aliases}
    planners = data.get("planners", {})
    return Registry(
        models=models,
        aliases=aliases,
        planner_default=planners.get("default", "gpt-4.1"),
        planner_prices=planners.get("prices", {}),
    )


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    text = resources.files("adspec.providers").joinpath("models.yaml").read_text(encoding="utf-8")
    return parse_registry(yaml.safe_load(text))
