"""The LLM planner: a spec -> a BeatPlan through OpenAI chat completions with structured output.

Chat completions with a strict `json_schema` response format is the structured path OpenAI,
vLLM, LM Studio and Ollama all support; OPENAI_API_KEY and OPENAI_BASE_URL are honoured.

The recipe is the request body itself (messages, response_format, seed, temperature) plus a
`check` entry (the total duration the plan must fill and the library version) that is used to
validate the reply and is never sent. We call `chat.completions.create` and validate the reply
ourselves (rather than `.parse`), so a refusal, a cut-off reply, invalid JSON, a schema breach
or a plan that breaks the library's rules all take the same path: one re-ask quoting the errors,
then ProviderError. Nothing is written unless the plan is valid. Cost = token usage of every
call x the planner price table in models.yaml. Retries are adspec's, never the client's (see
OpenAIPlanner): a request is sent again only when its answer proves it was not billed. Text
that comes back (a refusal, a reply) is scrubbed of credentials before it is shown or kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import openai
import pydantic
from openai.lib._pydantic import to_strict_json_schema

from ..errors import ProviderError
from ..library import load_library
from ..plan_rules import plan_problems
from ..recipes import Recipe
from ..redact import scrub
from ..registry import load_registry, planner_price
from ..spec import PERSON_FIELDS, BeatPlan
from .base import Job, PlanRequest, RunResult

log = logging.getLogger(__name__)

# JSON-schema keywords OpenAI's strict mode does not document; pydantic re-checks them locally.
_UNSUPPORTED = ("minLength", "maxLength")

SYSTEM_PROMPT = """\
You are the planner of adspec, a build system for short video ads. You turn an ad spec into a beat
plan: the music bed and an ordered list of beats, each rendered later as one storyboard image and
image-to-video clips. Answer with JSON only, matching the given schema.

Rules a plan must keep (it is rejected otherwise):
- Use only beat types from the library; each beat's duration (whole seconds) within its type's
  min..max range.
- The beat durations add up exactly to the spec's duration.
- Positions: a `first` type opens the ad (the first beat is the hook); a `last` type (end-card)
  may only be the final beat; a `closing` type (cta) is the final beat or directly before an
  end-card; `middle` types are neither first nor last. The ad ends with the cta or the end-card.
- A type that is not repeatable appears once; repeats of a repeatable type get ids like
  `feature`, `feature-2`, `feature-3`.
- Beat ids: lower-case letters, digits and '-', unique; use the type name (plus -n for repeats).
- image_prompt describes the single storyboard frame (subject, setting, composition, light, style);
  motion_prompt describes the camera and subject motion of the clip. Follow the library's prompt
  templates in spirit; keep any {{ variable }} placeholders of the spec as they are.
- on_screen is a short super drawn over the beat by code (a headline, a feature's name, a price),
  or null. Write one for the library types with `on_screen_planned: true`, within that type's
  `on_screen_max_chars` (0: none); never repeat the voiceover word for word.
- No words on screen in prompts: image_prompt and motion_prompt never ask for text, letters,
  captions, signs, a logo, the brand's name, the tagline, a call to action or a URL to be drawn
  (models garble them). Describe pictures only; adspec draws every word over the frames itself.
- The video model renders clips of the listed lengths; a beat longer than a clip is covered by
  several clips and the last one is trimmed. Prefer durations that waste little clip time.
- music.prompt describes the music bed (genre, instruments, mood); music.bpm fits the style.
- voiceover is the line spoken during a beat, in the ad's tone (see the style), or null. Write
  one for every beat whose library type has `spoken: true`, none for the others, and none at all
  when the spec says "voiceover": false. A line keeps to its beat's word budget: at most
  floor(duration x WORDS_PER_SECOND) words (the library's `voice_examples` show the register).
"""


TRANSLATE_PROMPT = """\
You translate the copy of short video ads: spoken lines (voiceover), short on-screen supers
(on_screen), the brand's tagline and call to action (cta). Keep the tone and the meaning, keep
every {{ variable }} placeholder exactly as it is, keep brand and product names untranslated,
and keep each text within its limit (words for spoken lines, characters for on-screen text).
Answer with JSON only, matching the given schema.
"""


def _library() -> Any:
    return load_library()


def _library_json(lib: Any) -> list[dict[str, Any]]:
    rows = []
    for name, b in lib.beats.items():
        rows.append({
            "type": name, "purpose": b.purpose, "duration": {"min": b.min, "max": b.max, "ideal": b.ideal},
            "position": b.position, "repeatable": b.repeatable, "shows_product": b.shows_product,
            "image_prompt_template": " ".join(b.image_prompt.split()),
            "motion_prompt_template": " ".join(b.motion_prompt.split()),
            "spoken": bool(b.voiceover),
            "on_screen_planned": name in lib.on_screen.planned,
            "on_screen_max_chars": lib.on_screen.limit(name),
            "voice_examples": list(b.lines_for("default"))[:2],
        })
    return rows


_PLANNED_PROMPTS = {
    "image_prompt": {"description": "what the storyboard image shows; may use {{ var }}, {{ brand }}, {{ product }}…",
                     "pattern": "\\S", "title": "Image Prompt", "type": "string"},
    "motion_prompt": {"description": "the camera and motion of the beat's video", "pattern": "\\S",
                      "title": "Motion Prompt", "type": "string"},
}


def plan_schema(beat_types: list[str]) -> dict[str, Any]:
    """BeatPlan's strict JSON schema as OpenAI wants it, with the library's types as an enum."""
    schema = to_strict_json_schema(BeatPlan)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for k in _UNSUPPORTED:
                node.pop(k, None)
            for v in node.values():
                strip(v)
        elif isinstance(node, list):
            for v in node:
                strip(v)

    strip(schema)
    # a person's fields of a beat (adspec.spec.PERSON_FIELDS: approvals, own media, models, what it
    # shows) are not the planner's: left out, the request stays what it was before they existed
    beat_def = schema["$defs"]["Beat"]
    for name in PERSON_FIELDS:
        beat_def["properties"].pop(name, None)
        if name in beat_def.get("required", []):
            beat_def["required"].remove(name)
    for name in [k for k in schema["$defs"] if k in ("BeatModels",)]:
        schema["$defs"].pop(name)
    # a planner writes both prompts of every beat (only a person's own media goes without): as
    # they were asked for before that, so the request, and every unplanned ad's key, stay the same
    beat_def.pop("allOf", None)
    beat_def["properties"].update(_PLANNED_PROMPTS)
    props = schema["$defs"]["Beat"]["properties"]
    props["type"]["enum"] = list(beat_types)
    for name in ("voiceover", "on_screen"):  # a planner writes plain strings: maps of languages are a person's
        if name in props:
            props[name] = {"anyOf": [{"type": "string"}, {"type": "null"}],
                           **{k: v for k, v in props[name].items() if k in ("description", "default")}}
    return {"type": "json_schema", "json_schema": {"name": "BeatPlan", "strict": True, "schema": schema}}


def check_plan(plan: BeatPlan, lib: Any, duration: int | None) -> list[str]:
    """The library's rules a plan must keep (adspec.plan_rules); an empty list when it keeps them all."""
    return plan_problems(plan, duration, lib)


def _strip_fences(text: str) -> str:
    m = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.S)
    return m.group(1) if m else text


class OpenAIPlanner:
    """The live PlanProvider (chat completions, structured output).

    Each chat completion is paid for once at most: the client never retries (`max_retries=0`),
    adspec does, and only when the answer proves nothing was billed: a 429 (not a spent quota),
    or a connection refused before the request went out. A request whose answer was lost (a
    dropped connection, a timeout, a 5xx) may have been billed: it is not sent again; the error
    says so and counts it, and the next `doit` asks again. Replies are billed even when they
    cannot be used (a refusal, invalid JSON): a failed call carries what it spent."""

    name = "openai"

    # up to 5 resends of requests that were provably not billed (the API's Retry-After honoured):
    # a throttled API must not fail the plan, and with it the whole ad
    def __init__(self, *, temperature: float = 0.2, max_retries: int = 5, timeout_s: float = 120.0,
                 backoff_base: float = 0.5, backoff_max: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.temperature = temperature
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep

    # ---- recipe (pure) --------------------------------------------------------------------

    def plan_recipe(self, req: PlanRequest) -> Recipe:
        lib = _library()
        model = req.planner_model or load_registry().planner_default
        duration = req.shaping.get("duration")
        user = (
            f"Plan the ad `{req.ad}`.\n\n"
            "<spec>\n" + json.dumps(req.shaping, sort_keys=True, ensure_ascii=False, indent=1) + "\n</spec>\n\n"
            f"<duration>{duration}</duration> seconds in total.\n"
            f"<clip_lengths>{json.dumps(list(req.clip_lengths))}</clip_lengths> seconds: the video model's clip lengths.\n\n"
            "<library version=\"" + str(getattr(lib, "version", "")) + "\">\n"
            + json.dumps(_library_json(lib), ensure_ascii=False, indent=1) + "\n</library>\n\n"
            "Return the beat plan as JSON."
        )
        system = SYSTEM_PROMPT.replace("WORDS_PER_SECOND", f"{lib.voice.words_per_second:g}")
        params = {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": plan_schema(list(lib.beats)),
            "seed": int(req.shaping.get("seed", 0) or 0),
            "temperature": self.temperature,
            # not sent: what the reply is checked against (derived from the same inputs as the prompt)
            "check": {"duration": duration, "library": str(getattr(lib, "version", "")), "shaping": req.shaping},
        }
        return Recipe(provider="openai", kind="plan", model=model, version="chat.completions", params=params)

    def translate_recipe(self, texts: dict[str, str], source: str, target: str, limits: dict[str, str],
                         model: str | None = None) -> Recipe:
        """One call that translates every text of a beat file (and the brand's words) missing in
        `target`: keys like `beats.hook.voiceover` -> text; `limits` says how long each may be."""
        model = model or load_registry().planner_default
        items = [{"key": k, "text": texts[k], "limit": limits.get(k, "")} for k in sorted(texts)]
        user = (f"Translate this video ad's copy from {source} into {target}.\n\n"
                "<items>\n" + json.dumps(items, ensure_ascii=False, indent=1) + "\n</items>\n\n"
                "Return every key once, with its translation.")
        schema = {"type": "object", "additionalProperties": False, "required": ["items"], "properties": {
            "items": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                 "required": ["key", "text"],
                                                 "properties": {"key": {"type": "string"}, "text": {"type": "string"}}}}}}
        params = {
            "messages": [{"role": "system", "content": TRANSLATE_PROMPT}, {"role": "user", "content": user}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "Translation", "strict": True,
                                                                       "schema": schema}},
            "seed": 0,
            "temperature": self.temperature,
            "check": {"translate": sorted(texts), "target": target},  # not sent
        }
        return Recipe(provider="openai", kind="plan", model=model, version="chat.completions", params=params)

    def _translate(self, client: Any, recipe: Recipe, job: Job, out: Path, calls: "_Calls") -> RunResult:
        keys = set(recipe.params["check"]["translate"])
        messages = list(recipe.params["messages"])
        body = {k: v for k, v in recipe.params.items() if k not in ("messages", "check")}
        problems: list[str] = []
        for attempt in range(2):
            resp = self._send(client, calls, job, "translating", model=recipe.model, messages=messages, **body)
            content = calls.scrub(_strip_fences((resp.choices[0].message.content or "") if resp.choices else ""))
            try:
                got = {str(i["key"]): str(i["text"]).strip() for i in json.loads(content)["items"]}
                problems = [f"missing key {k}" for k in sorted(keys - set(got))]
                problems += [f"empty text for {k}" for k in sorted(keys) if k in got and not got[k]]
            except (ValueError, KeyError, TypeError) as e:
                problems = [f"the reply is not the JSON asked for ({type(e).__name__})"]
            if not problems:
                Path(out).write_text(json.dumps({k: got[k] for k in sorted(keys)}, ensure_ascii=False), encoding="utf-8")
                return RunResult(job_id=resp.id, cost_usd=calls.cost(),
                                 meta={"model": recipe.model, "completion_ids": calls.ids, "attempts": attempt + 1,
                                       "requests": calls.requests, **calls.usage})
            messages = messages + [{"role": "assistant", "content": content or "(no answer)"},
                                   {"role": "user", "content": "Your reply cannot be used:\n- " + "\n- ".join(problems)
                                    + "\nReply again with every key translated."}]
        raise calls.error("no usable translation after one re-ask: " + "; ".join(problems[:6]), retryable=True)

    # ---- run --------------------------------------------------------------------------------

    def run(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        key = os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise ProviderError("OPENAI_API_KEY is not set: the live planner needs it (or use ADSPEC_BACKEND=offline)", retryable=False)
        client = openai.OpenAI(
            api_key=key,
            base_url=os.environ.get("OPENAI_BASE_URL") or None,
            max_retries=0,  # adspec decides what may be sent again (see the class doc)
            timeout=self.timeout_s,
        )
        lib = _library()
        check = recipe.params.get("check", {})
        if check.get("translate"):
            label = getattr(job, "label", None)
            what = f"{label}: openai translator {recipe.model}" if label else f"openai translator {recipe.model}"
            return self._translate(client, recipe, job, out, _Calls(recipe.model, what, key))
        messages = list(recipe.params["messages"])
        body = {k: v for k, v in recipe.params.items() if k not in ("messages", "check")}
        label = getattr(job, "label", None)  # e.g. "trailrunner plan": which ad failed
        what = f"{label}: openai planner {recipe.model}" if label else f"openai planner {recipe.model}"
        calls = _Calls(recipe.model, what, key)
        problems: list[str] = []
        for attempt in range(2):  # the request, then one re-ask with the errors
            resp = self._send(client, calls, job, "planning" if attempt == 0 else "re-asking",
                              model=recipe.model, messages=messages, **body)
            content, problems = self._judge(resp, lib, check.get("duration"), check.get("shaping"))
            content, problems = calls.scrub(content), [calls.scrub(p) for p in problems]
            if not problems:
                plan = BeatPlan.model_validate_json(content)
                Path(out).write_text(plan.model_dump_json(), encoding="utf-8")
                meta = {"model": recipe.model, "completion_ids": calls.ids, "attempts": attempt + 1,
                        "requests": calls.requests, "billed_requests": len(calls.ids), **calls.usage,
                        "library": str(getattr(lib, "version", ""))}
                if check.get("library") and check["library"] != meta["library"]:
                    meta["library_changed"] = True
                return RunResult(job_id=resp.id, cost_usd=calls.cost(), meta=meta)
            messages = messages + [
                {"role": "assistant", "content": content or "(no answer)"},
                {"role": "user", "content": "Your reply cannot be used:\n- " + "\n- ".join(problems)
                 + "\nReply again with the complete corrected plan as JSON matching the schema."},
            ]
        raise calls.error("no valid plan after one re-ask: " + "; ".join(problems[:6]), retryable=True)

    def _send(self, client: Any, calls: "_Calls", job: Job, doing: str, **request: Any) -> Any:
        """One chat completion, sent again only while the answer proves the last one was not
        billed (429, or the connection refused before anything went out)."""
        for attempt in range(self.max_retries + 1):
            last_try = attempt == self.max_retries
            job.sending()
            job.progress(doing if attempt == 0 else f"{doing} (try {attempt + 1})")
            calls.requests += 1
            try:
                resp = client.chat.completions.create(**request)
            except openai.AuthenticationError:
                raise calls.error("the API rejected the key (401): check OPENAI_API_KEY", retryable=False) from None
            except openai.RateLimitError as e:  # throttled: nothing ran, nothing billed
                if _code(e) == "insufficient_quota" or last_try:
                    raise calls.error(f"HTTP 429: {_api_message(e)}", retryable=_code(e) != "insufficient_quota") from None
                log.info("%s: throttled (429), asking again", calls.what)
                self._sleep(self._delay(attempt, e.response))
                continue
            except openai.APIStatusError as e:
                if e.status_code >= 500 or e.status_code in (408, 409):
                    raise calls.error(f"HTTP {e.status_code}: {_api_message(e)}; {_LOST}", retryable=True,
                                      maybe_billed=True) from None
                raise calls.error(f"HTTP {e.status_code}: {_api_message(e)}", retryable=False) from None
            except openai.APIConnectionError as e:
                if _never_sent(e):
                    if last_try:
                        raise calls.error(f"cannot reach the API ({_cause_name(e)})", retryable=True) from None
                    self._sleep(self._delay(attempt, None))
                    continue
                raise calls.error(f"the request went out and its answer was lost ({_cause_name(e)}); {_LOST}",
                                  retryable=True, maybe_billed=True) from None
            except openai.OpenAIError as e:  # e.g. an answer that is not a chat completion
                raise calls.error(f"the answer cannot be read ({type(e).__name__}); {_LOST}", retryable=True,
                                  maybe_billed=True) from None
            if not hasattr(resp, "choices"):  # e.g. an HTML page with status 200 (a proxy's)
                raise calls.error(f"the answer is not a chat completion ({type(resp).__name__}); {_LOST}",
                                  retryable=True, maybe_billed=True)
            calls.answered(resp)
            return resp
        raise calls.error("no answer after retries")  # pragma: no cover

    def _delay(self, attempt: int, response: Any) -> float:
        """The API's Retry-After (retry-after-ms, then retry-after), else exponential backoff."""
        headers = getattr(response, "headers", None) or {}
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                value = float(headers.get(name) or "") * scale
            except (TypeError, ValueError):
                continue
            if 0 <= value <= 120:
                return value
        return min(self.backoff_base * (2 ** attempt), self.backoff_max)

    def _judge(self, resp: Any, lib: Any, duration: int | None, shaping: Any = None) -> tuple[str, list[str]]:
        if not resp.choices:
            return "", ["the reply has no choices"]
        choice = resp.choices[0]
        msg = choice.message
        refusal = getattr(msg, "refusal", None)
        if refusal:
            return "", [f"the model refused: {refusal}"]
        if choice.finish_reason == "length":
            return msg.content or "", ["the reply was cut off (finish_reason=length): answer more briefly"]
        if choice.finish_reason == "content_filter":
            return "", ["the reply was stopped by the content filter"]
        content = _strip_fences(msg.content or "")
        if not content.strip():
            return "", ["the reply is empty"]
        try:
            json.loads(content)
        except ValueError as e:
            return content, [f"the reply is not valid JSON: {e}"]
        try:
            plan = BeatPlan.model_validate_json(content)
        except pydantic.ValidationError as e:
            errs = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:10]]
            return content, ["the JSON does not match the schema: " + "; ".join(errs)]
        return content, check_plan(plan, lib, duration)


def _add_usage(total: dict[str, int], usage: Any) -> None:
    if usage is None:
        return
    total["prompt_tokens"] += int(getattr(usage, "prompt_tokens", 0) or 0)
    total["completion_tokens"] += int(getattr(usage, "completion_tokens", 0) or 0)
    details = getattr(usage, "prompt_tokens_details", None)
    total["cached_tokens"] += int(getattr(details, "cached_tokens", 0) or 0) if details else 0


_LOST = ("it may have been billed, so it is not sent again (counted as spent); "
         "the next run asks again")


class _Calls:
    """What the chat completions of one run cost and said: billed usage, ids, requests sent."""

    def __init__(self, model: str, what: str, key: str) -> None:
        self.model, self.what, self._key = model, what, key
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
        self.ids: list[str] = []
        self.requests = 0

    def answered(self, resp: Any) -> None:
        self.ids.append(resp.id)
        _add_usage(self.usage, resp.usage)

    def cost(self) -> float:
        u = self.usage
        return round(planner_price(self.model, u["prompt_tokens"], u["completion_tokens"], u["cached_tokens"]), 6)

    def scrub(self, text: str) -> str:
        return scrub(text, (self._key,))

    def error(self, message: str, *, retryable: bool = True, maybe_billed: bool = False) -> ProviderError:
        """The call failed: says what, holds no secret, and carries what was billed."""
        return ProviderError(self.scrub(f"{self.what}: {message}"), retryable=retryable, spent_usd=self.cost(),
                             maybe_billed=maybe_billed, attempts=self.requests)


def _never_sent(e: BaseException) -> bool:
    """A connection error that proves the request never went out: the connection could not be
    made (refused, host not found, connect timeout), not a read timeout or a dropped connection."""
    cause = e.__cause__ or e.__context__
    # openai 3 runs on httpx2, earlier versions on httpx: the same exception names in both
    return any(cls.__name__ in ("ConnectError", "ConnectTimeout") and cls.__module__.split(".")[0] in _TRANSPORTS
               for cls in type(cause).__mro__) if cause is not None else False


_TRANSPORTS = ("httpx", "httpx2", "httpcore")


def _cause_name(e: BaseException) -> str:
    cause = e.__cause__ or e.__context__
    return type(cause).__name__ if cause is not None else type(e).__name__


def _code(e: Any) -> str | None:
    body = getattr(e, "body", None)
    return body.get("code") if isinstance(body, dict) else getattr(e, "code", None)


def _api_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body)
    return str(getattr(e, "message", "") or e)

