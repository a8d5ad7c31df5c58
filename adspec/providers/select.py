"""Which provider runs: live when its key is set and ADSPEC_BACKEND is not 'offline'.

Providers are imported when chosen (start-up time: an offline build never loads the openai and
replicate clients, a live one never loads the offline renderers)."""

from __future__ import annotations

from functools import lru_cache

from ..config import Settings
from .base import MediaProvider, PlanProvider


@lru_cache(maxsize=4)
def _media(live: bool) -> MediaProvider:
    if live:
        from .replicate_provider import ReplicateMedia

        return ReplicateMedia()
    from .offline import OfflineMedia

    return OfflineMedia()


@lru_cache(maxsize=4)
def _planner(live: bool) -> PlanProvider:
    if live:
        from .openai_planner import OpenAIPlanner

        return OpenAIPlanner()
    from ..offline_planner import OfflinePlanner

    return OfflinePlanner()


def media_provider(settings: Settings) -> MediaProvider:
    return _media(settings.live_media)


def plan_provider(settings: Settings) -> PlanProvider:
    return _planner(settings.live_planner)
