"""adspec's own data files (beat library, model registry, placements, limits, safe areas) parsed
with libyaml's C parser where PyYAML has it.

Why: every `doit` start reads these files, and the pure-Python parser took ~130 ms of a no-op
build's ~400 ms (the C one: ~18 ms). User files (specs, beat files) keep the line-aware loader
of `loader.py`, which reports errors by line.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_data(text: str) -> Any:
    """The YAML document in `text`, as `yaml.safe_load` reads it (same types, same errors)."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, C or Python


__all__ = ["load_data"]
