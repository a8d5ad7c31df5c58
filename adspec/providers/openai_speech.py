"""Spoken lines through an OpenAI-compatible `/audio/speech` endpoint (the `openai` client).

Honours OPENAI_API_KEY and OPENAI_BASE_URL as the client does, so a local server that speaks the
same API (e.g. Ollama) works too. The recipe's params are exactly the JSON body sent.

A speech request is synchronous: there is no job to resume or look up. So a request whose
outcome is unknown (a timeout after sending) is never re-sent by this run: the client's own
retries are off, and only answers that say nothing was made (429, 5xx, a refused connection)
are retried here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import openai

from ..errors import ProviderError
from ..recipes import Recipe
from ..registry import ModelEntry, Registry, load_registry, price_for, shape_input
from .base import Job, RunResult, VoiceRequest

log = logging.getLogger(__name__)


class OpenAISpeech:
    """The voice provider for registry entries with `provider: openai`."""

    name = "openai"

    def __init__(self, registry: Registry | None = None, *, attempts: int = 4, timeout_s: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.registry = registry or load_registry()
        self.attempts = attempts
        self.timeout_s = timeout_s
        self._sleep = sleep

    def _entry(self, name: str) -> ModelEntry:
        entry = self.registry.resolve(name, "voice")
        if entry.provider != "openai":
            raise ProviderError(f"voice model {entry.name!r} is not an OpenAI speech model", retryable=False)
        return entry

    def voice_recipe(self, req: VoiceRequest) -> Recipe:
        entry = self._entry(req.model)
        params, _ = shape_input(entry, {"text": req.text, "voice": req.voice, "speed": req.speed})
        return Recipe(provider="openai", kind="voice", model=entry.name, version=f"audio.speech/{entry.slug}",
                      params=params)

    def run(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        key = os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise ProviderError("OPENAI_API_KEY is not set: OpenAI speech needs it (or use ADSPEC_BACKEND=offline)", retryable=False)
        entry = self._entry(recipe.model)
        client = openai.OpenAI(api_key=key, base_url=os.environ.get("OPENAI_BASE_URL") or None, max_retries=0,
                               timeout=self.timeout_s)
        label = getattr(job, "label", None) or f"openai speech {entry.name}"
        for attempt in range(self.attempts):
            last = attempt + 1 == self.attempts
            job.sending()
            try:
                response = client.audio.speech.create(**recipe.params)
                break
            except openai.APITimeoutError:
                raise ProviderError(f"{label}: the speech request timed out after it was sent; not re-sent in this run",
                                    retryable=True) from None
            except openai.APIConnectionError as e:
                if last:
                    raise ProviderError(f"{label}: cannot reach the speech endpoint: {type(e).__name__}") from None
            except openai.AuthenticationError:
                raise ProviderError(f"{label}: the API key was rejected (401): check OPENAI_API_KEY", retryable=False) from None
            except openai.APIStatusError as e:
                if e.status_code != 429 and e.status_code < 500:
                    raise ProviderError(f"{label}: HTTP {e.status_code}: {_detail(e)}", retryable=False) from None
                if last:
                    raise ProviderError(f"{label}: HTTP {e.status_code} after {self.attempts} tries") from None
            self._sleep(min(0.5 * 2 ** attempt, 8.0))
        data = response.content
        if len(data) < 44:
            raise ProviderError(f"{label}: the speech endpoint answered with no audio")
        Path(out).write_bytes(data)
        cost = price_for(entry, chars=len(str(recipe.params.get("input", ""))))
        return RunResult(job_id=response.response.headers.get("x-request-id"), cost_usd=round(cost, 6),
                         meta={"model": entry.name, "bytes": len(data)})


def _detail(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    message = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else body.get("message")
    return " ".join(str(message or e.message or "").split())[:300]
