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


@lru_cache(maxsize=2)
def _openai_speech() -> object:
    from .openai_speech import OpenAISpeech

    return OpenAISpeech()


def voice_provider(settings: Settings, model: str) -> MediaProvider:
    """Who speaks a line of `model`: its own provider when that provider's key is set (and the
    backend is not forced offline), else eSpeak NG offline."""
    from ..registry import load_registry

    entry = load_registry().resolve(model, "voice")
    if not settings.offline_forced:
        if entry.provider == "replicate" and settings.has_replicate_token:
            return _media(True)
        if entry.provider == "openai" and settings.has_openai_key:
            return _openai_speech()  # type: ignore[return-value]
    return _media(False)
