"""What dodo.py loads: the ads under ADSPEC_SPECS and their task creators, and doit's config."""

from __future__ import annotations

from typing import Any, Callable

from .config import load_settings
from .graph import task_creators
from .loader import ad_name, find_specs


def doit_config() -> dict[str, Any]:
    settings = load_settings()
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    return {
        # sqlite3: two doit processes at once must not corrupt the state DB (dbm.dumb would)
        "backend": "sqlite3",
        "dep_file": str(settings.build_dir / ".doit.sqlite3"),
        "verbosity": 1,
        "action_string_formatting": "new",
    }


def task_creators_from_env() -> dict[str, Callable[..., Any]]:
    settings = load_settings()
    ads = [(ad_name(p), p) for p in find_specs(settings.specs_dir)]
    return task_creators(ads, settings.build_dir)
