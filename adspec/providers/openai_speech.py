"""Spoken lines through an OpenAI-compatible `/audio/speech` endpoint (the `openai` client).

Honours OPENAI_API_KEY and OPENAI_BASE_URL as the client does, so a local server that speaks the
same API (e.g. Ollama) works too. The recipe's params are exactly the JSON body sent.

A speech request is synchronous: there is no job to resume or look up. So it is paid for once at
most, by the same rules as the planner's chat completions: the client's own retries are off
(`max_retries=0`) and adspec sends again only when the answer proves nothing was billed (a 429
that is not a spent quota, or a connection refused before the request went out). A request whose
answer was lost (a timeout, a dropped connection, a 5xx) may have been billed: it is not re-sent
by this run, the error says so and counts it, and the next `doit` asks again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import openai

from ..errors import ProviderError
from ..limits import inflight
from ..recipes import Recipe
from ..redact import scrub
from ..registry import ModelEntry, Registry, load_registry, price_for, shape_input
from .base import Job, RunResult, VoiceRequest
from .openai_planner import _LOST, _api_message, _cause_name, _code, _never_sent

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
        with inflight("openai"):  # one of OpenAI's in-flight slots (library/limits.yaml)
            return self._run(recipe, job, out)

    def _run(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        key = os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise ProviderError("OPENAI_API_KEY is not set: OpenAI speech needs it (or use ADSPEC_BACKEND=offline)", retryable=False)
        entry = self._entry(recipe.model)
        client = openai.OpenAI(api_key=key, base_url=os.environ.get("OPENAI_BASE_URL") or None, max_retries=0,
                               timeout=self.timeout_s)
        label = getattr(job, "label", None) or f"openai speech {entry.name}"
        price = price_for(entry, chars=len(str(recipe.params.get("input", ""))))
        sent = 0

        def fail(message: str, *, retryable: bool = True, maybe_billed: bool = False) -> ProviderError:
            return ProviderError(scrub(f"{label}: {message}", (key,)), retryable=retryable, maybe_billed=maybe_billed,
                                 spent_usd=round(price, 6) if maybe_billed else 0.0, attempts=sent)

        for attempt in range(self.attempts):
            last = attempt + 1 == self.attempts
            job.sending()
            sent += 1
            try:
                response = client.audio.speech.create(**recipe.params)
                break
            except openai.AuthenticationError:
                raise fail("the API key was rejected (401): check OPENAI_API_KEY", retryable=False) from None
            except openai.RateLimitError as e:  # throttled: nothing ran, nothing billed
                if _code(e) == "insufficient_quota" or last:
                    raise fail(f"HTTP 429: {_api_message(e)}", retryable=_code(e) != "insufficient_quota") from None
            except openai.APIStatusError as e:
                if e.status_code >= 500 or e.status_code in (408, 409):
                    raise fail(f"HTTP {e.status_code}: {_detail(e)}; {_LOST}", maybe_billed=True) from None
                raise fail(f"HTTP {e.status_code}: {_detail(e)}", retryable=False) from None
            except openai.APIConnectionError as e:  # a timeout is one too
                if not _never_sent(e):
                    raise fail(f"the request went out and its answer was lost ({_cause_name(e)}); {_LOST}",
                               maybe_billed=True) from None
                if last:
                    raise fail(f"cannot reach the speech endpoint ({_cause_name(e)})") from None
            self._sleep(min(0.5 * 2 ** attempt, 8.0))
        data = response.content
        if len(data) < 44:
            raise fail("the speech endpoint answered with no audio (it may have been billed)", maybe_billed=True)
        Path(out).write_bytes(data)
        return RunResult(job_id=response.response.headers.get("x-request-id"), cost_usd=round(price, 6),
                         meta={"model": entry.name, "bytes": len(data), "requests": sent})


def _detail(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    message = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else body.get("message")
    return " ".join(str(message or e.message or "").split())[:300]
