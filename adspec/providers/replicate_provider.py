"""Replicate: storyboard images, video chunks and music through the `replicate` client.

Recipes are pure: the registry entry's input template filled from the request (models.yaml), so
a recipe's params are exactly the JSON input that will be sent, less the file fields (those are
keyed by their bytes' sha256 in `recipe.files`).

`run` never pays twice for one recipe:
- `job.resume_id` set: poll that prediction, create nothing;
- `job.sent_before` set (an earlier create's outcome is unknown): list the predictions made
  since that create was sent (`job.sent_at`, recorded before sending) and adopt the one whose
  model and every input match, files by content, before creating anything;
- `job.sending()` just before each create, `job.started(id)` right after it, before waiting;
- a create whose outcome is unknown (timeout after sending, 5xx, unparseable reply) is looked
  up, never blindly re-sent; 429 and 5xx are retried with backoff (the client never retries POST);
- when the look-up cannot decide (the list fails, the window is too long, a candidate's file
  cannot be checked) the target stops with one line: nothing is sent on a guess;
- only the provider's terminal answer about the prediction (failed, canceled, output gone) ends
  the request (`ProviderError.ended`): a 401, 403 or 404 keeps the stored id for the next run.

One `replicate.Client` per process and settings (token, base URL), shared by every thread: its
connections are reused, not opened per request.

Environment: REPLICATE_API_TOKEN (required), REPLICATE_BASE_URL (optional; the base without
/v1), REPLICATE_POLL_INTERVAL (read by the client), ADSPEC_REPLICATE_TIMEOUT (seconds to wait
for one prediction, default 1800; on expiry the prediction keeps its id for the next run).
"""

from __future__ import annotations

import atexit
import base64
import email.utils
import hashlib
import json
import logging
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import httpx
import replicate
from replicate.exceptions import ReplicateError

from ..config import load_settings
from ..errors import BadOutputError, ProviderError
from ..limits import inflight
from ..recipes import FileRef, Recipe
from ..redact import redact_url, scrub
from ..registry import (
    ModelEntry,
    Registry,
    list_field,
    load_registry,
    model_resolution,
    price_for,
    reference_capacity,
    reference_problem,
    shape_input,
    spec_resolution_for,
)
from .base import ImageRequest, Job, MusicRequest, RunResult, VideoRequest, VoiceRequest

log = logging.getLogger(__name__)

DATA_URI_MAX = 256 * 1024  # Replicate: data URLs for files of 256 kB or less, else an upload
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
FAILED = {"failed", "canceled", "aborted"}
_TRUSTED_OUTPUT_HOSTS = ("replicate.delivery", "replicate.com")
# The look-up of a create whose answer was lost lists predictions back to the time it was sent,
# less this margin for the difference between our clock and Replicate's.
CLOCK_SKEW_S = 900.0
# More pages than this (100 predictions each) without reaching that time: the look-up cannot decide.
LOOKUP_MAX_PAGES = 50

_clients: dict[tuple[str, str | None], replicate.Client] = {}
_clients_lock = threading.Lock()
_local = threading.local()  # the last response's Retry-After, per thread


def _on_response(response: httpx.Response) -> None:
    value = response.headers.get("retry-after")
    _local.retry_after = _parse_retry_after(value) if value else None


def shared_client(token: str, base_url: str | None) -> replicate.Client:
    """The process's client for these settings, made once and reused by every thread (httpx's
    connection pool is thread-safe); a changed token or base URL gets a client of its own."""
    key = (hashlib.sha256(token.encode("utf-8")).hexdigest(), base_url)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = replicate.Client(api_token=token, base_url=base_url, event_hooks={"response": [_on_response]})
            _ = client._client  # built here, under the lock, not lazily by two threads at once
            _clients[key] = client
        return client


def close_clients() -> None:
    """Close every shared client's connections (at exit; tests)."""
    with _clients_lock:
        for client in _clients.values():
            client._client.close()
        _clients.clear()


atexit.register(close_clients)


#: image models take no negative prompt (FLUX): the prompt itself says no words are wanted. Words
#: on screen (tagline, CTA, URL, supers) are drawn by code over the frames (issue 17).
NO_TEXT = "No text, letters, words, captions, signage or logos anywhere in the picture"


def image_prompt(req: ImageRequest) -> str:
    """The text sent to an image model: the beat's prompt, the ad's style, and that the picture
    carries no words. The brand kit is not sent (issue 17): a model paints a brand's name as
    garbled text, and the colours are the text layer's, free to change without a new picture."""
    parts = [req.prompt.strip().rstrip(".")]
    if req.style:
        parts.append(f"Style: {req.style.strip()}")
    parts.append(NO_TEXT)
    return ". ".join(parts) + "."


def music_prompt(req: MusicRequest) -> str:
    return f"{req.prompt.strip()}, {req.bpm} bpm"


class ReplicateMedia:
    """The live MediaProvider. Construct once; `run` may be called from many threads."""

    name = "replicate"

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        max_create_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        poll_error_attempts: int = 8,
        timeout_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry or load_registry()
        self.max_create_attempts = max_create_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.poll_error_attempts = poll_error_attempts
        self.timeout_s = timeout_s if timeout_s is not None else load_settings().replicate_timeout_s
        self._sleep = sleep

    # ---- recipes (pure) ---------------------------------------------------------------------

    def _entry(self, name: str, kind: str) -> ModelEntry:
        try:
            entry = self.registry.resolve(name, kind)
        except KeyError:
            known = ", ".join(self.registry.names(kind))
            raise ProviderError(f"unknown {kind} model {name!r} (known: {known})", retryable=False) from None
        if entry.provider != "replicate" or not entry.input:
            raise ProviderError(f"{kind} model {entry.name!r} is not a Replicate model with an input template", retryable=False)
        return entry

    def _recipe(self, entry: ModelEntry, values: dict[str, Any]) -> Recipe:
        params, files = shape_input(entry, values)
        return Recipe(
            provider="replicate",
            kind=entry.kind,  # type: ignore[arg-type]
            model=entry.name,
            version=entry.ref,
            params=params,
            files={k: FileRef.of(v) for k, v in sorted(files.items())},
        )

    def image_recipe(self, req: ImageRequest) -> Recipe:
        entry = self._entry(req.model, "image")
        if entry.aspect_ratios and req.aspect_ratio not in entry.aspect_ratios:
            raise ProviderError(f"{entry.name} has no aspect ratio {req.aspect_ratio} (has {', '.join(entry.aspect_ratios)})", retryable=False)
        values = {
            "prompt": image_prompt(req),
            "aspect_ratio": req.aspect_ratio,
            "seed": req.seed,
            "width": req.width,
            "height": req.height,
            "reference": req.reference if entry.uses_reference else None,
        }
        if req.references:  # what the beat shows: one reference field, or a list of them
            values["reference"] = req.references[0] if entry.uses_reference else None
            values["references"] = list(req.references[:reference_capacity(entry)])
        elif req.reference is not None and entry.max_references:
            values["references"] = [req.reference]
        return self._recipe(entry, values)

    def video_recipe(self, req: VideoRequest) -> Recipe:
        entry = self._entry(req.model, "video")
        if req.seconds not in entry.clip_lengths:
            raise ProviderError(
                f"{entry.name} makes clips of {', '.join(map(str, entry.clip_lengths))} s, not {req.seconds} s",
                retryable=False,
            )
        if entry.aspect_ratios and req.aspect_ratio not in entry.aspect_ratios:
            raise ProviderError(f"{entry.name} has no aspect ratio {req.aspect_ratio} (has {', '.join(entry.aspect_ratios)})", retryable=False)
        resolution = model_resolution(entry, spec_resolution_for(req.width, req.height), req.seconds)
        values: dict[str, Any] = {
            "prompt": req.prompt,
            "first_frame": req.first_frame,
            "seconds": req.seconds,
            "resolution": resolution,
            "aspect_ratio": req.aspect_ratio,
            "seed": req.seed,
            "fps": entry.fps,
            "frames": req.seconds * entry.fps + 1,
            "native_audio": bool(req.native_audio and entry.native_audio),
        }
        if req.references:  # what the beat shows, where the model's rule holds (media_requests.video_references)
            problem = reference_problem(entry, len(req.references), req.aspect_ratio, req.seconds, resolution)
            if problem is not None or entry.references is None:
                raise ProviderError(f"{entry.name} {problem}: this chunk cannot carry reference images", retryable=False)
            values["references"] = list(req.references)
            if not entry.references.first_frame:  # reference-to-video: the start image is not sent with them
                values["first_frame"] = None
        return self._recipe(entry, values)

    def music_recipe(self, req: MusicRequest) -> Recipe:
        entry = self._entry(req.model, "music")
        seconds = req.seconds if entry.max_seconds is None else min(req.seconds, entry.max_seconds)
        values = {"prompt": music_prompt(req), "seconds": seconds, "seed": req.seed, "bpm": req.bpm}
        return self._recipe(entry, values)

    def voice_recipe(self, req: VoiceRequest) -> Recipe:
        entry = self._entry(req.model, "voice")
        return self._recipe(entry, {"text": req.text, "voice": req.voice, "speed": req.speed})

    # ---- running ----------------------------------------------------------------------------

    def run(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        entry = self.registry.models.get(recipe.model)
        if entry is None:
            raise ProviderError(f"unknown model {recipe.model!r} in recipe", retryable=False)
        token = os.environ.get("REPLICATE_API_TOKEN", "")
        if not token:
            raise ProviderError("REPLICATE_API_TOKEN is not set: live Replicate calls need it (or use ADSPEC_BACKEND=offline)", retryable=False)
        call = _Call(self, entry, recipe, job, token)
        with inflight(self.name):  # one of Replicate's in-flight slots, from create to download
            return call.run(Path(out))


class _Call:
    """One run of one recipe: holds the client, the secret and what happened, for messages."""

    def __init__(self, provider: ReplicateMedia, entry: ModelEntry, recipe: Recipe, job: Job, token: str) -> None:
        self.p = provider
        self.entry = entry
        self.recipe = recipe
        self.job = job
        self._token = token
        label = getattr(job, "label", None)
        self.what = f"{label}: " if label else ""
        self.what += f"replicate {entry.name} ({entry.slug})"
        self.client = shared_client(token, os.environ.get("REPLICATE_BASE_URL") or None)
        self.meta: dict[str, Any] = {"model": entry.name, "ref": entry.ref, "create_attempts": 0}
        self._first_send: float | None = None  # when this run first sent a create
        self._uploaded: dict[str, str] = {}  # file URL -> sha256 of what this run uploaded there
        self._file_shas: dict[str, str | None] = {}  # file URL -> sha256 read back, during a look-up

    # -- helpers --

    def _scrub(self, text: str) -> str:
        text = scrub(str(text), (self._token,))  # the token, and any other credential of the environment
        if len(text) > 1000:  # bounds what a provider's reply can put into one line
            text = text[:1000] + "..."
        return text

    def _error(self, message: str, retryable: bool = True, resumable: bool = False, ended: bool = False) -> ProviderError:
        """`resumable`: the prediction may still finish or be fetched. `ended`: the provider
        answered that the prediction is over (failed, canceled, output gone): the cache forgets
        its id so a retry creates anew. Without `ended` the cache keeps the id or the "sent,
        outcome unknown" mark, whatever the error, so the next run resumes or looks it up."""
        return ProviderError(self._scrub(f"{self.what}: {message}"), retryable=retryable, resumable=resumable,
                             ended=ended)

    def _backoff(self, attempt: int) -> float:
        ra = getattr(_local, "retry_after", None)
        if ra is not None:
            return min(ra, 60.0)
        return min(self.p.backoff_base * (2 ** attempt), self.p.backoff_max)

    def _kept(self) -> str:
        """What happens to an earlier request of this recipe when this run fails."""
        if self.job.resume_id:
            return f"; prediction {self.job.resume_id} is kept: the next run resumes it"
        if self.job.sent_before or self._first_send is not None:
            return "; the create that was sent is kept on record: the next run looks it up before creating"
        return ""

    def _status_error(self, e: ReplicateError, doing: str) -> ProviderError:
        status = e.status or 0
        if status == 401:
            return ProviderError(
                f"{self.what}: Replicate rejected the API token (401 Unauthorized) while {doing}: check REPLICATE_API_TOKEN"
                + self._kept(),
                retryable=False,
            )
        if status in (403, 404):
            what = "refused access (403 Forbidden)" if status == 403 else "answered 404 Not Found"
            gone = f" (if it is gone for good: `adspec cache forget {self.recipe.key}`)" if self.job.resume_id else ""
            return self._error(f"Replicate {what} while {doing}: check REPLICATE_API_TOKEN and REPLICATE_BASE_URL"
                               + self._kept() + gone, retryable=False)
        if status == 422:
            return self._error(f"invalid input (422) while {doing}: {e.detail or e.title or 'input validation failed'}", retryable=False)
        if status == 402:
            return self._error(f"payment required (402) while {doing}: {e.detail or ''}", retryable=False)
        retryable = status == 429 or status >= 500
        return self._error(f"HTTP {status} while {doing}: {e.detail or e.title or ''}", retryable=retryable)

    def _get_json(self, path: str, doing: str) -> Any:
        """GET through the client's own httpx client (auth, base URL, its GET retries), parsed
        as plain JSON: the client's pydantic model cannot parse status "aborted"."""
        last: Exception | None = None
        for attempt in range(self.p.poll_error_attempts):
            try:
                return self.client._request("GET", path).json()
            except ReplicateError as e:
                if (e.status or 0) >= 500 or e.status == 429:
                    last = e
                    self.p._sleep(self._backoff(attempt))
                    continue
                raise self._status_error(e, doing) from None
            except (httpx.TransportError, ValueError) as e:
                last = e
                self.p._sleep(self._backoff(attempt))
        why = f"HTTP {last.status}" if isinstance(last, ReplicateError) else f"{type(last).__name__}: {last}"
        raise self._error(f"{doing} failed: {why}", resumable=True)

    # -- the flow --

    def run(self, out: Path) -> RunResult:
        job = self.job
        pred: dict[str, Any] | None = None
        if job.resume_id:
            self.meta["resumed"] = True
            pred = self._get_json(f"/v1/predictions/{job.resume_id}", f"resuming prediction {job.resume_id}")
        else:
            if job.sent_before:
                pred = self._find_existing(getattr(job, "sent_at", None))
                if pred is not None:
                    self.meta["found_existing"] = True
                    job.started(pred["id"])
            if pred is None:
                pred = self._create()
        pred = self._wait(pred)
        pid = pred.get("id")
        status = pred.get("status")
        if status in FAILED:
            msg = pred.get("error") or {"canceled": "the prediction was canceled", "aborted": "the prediction was aborted before it started"}.get(status, "")
            raise self._error(f"prediction {pid} {status}: {msg}", retryable=True, ended=True)
        metrics = pred.get("metrics") or {}
        predict_time = metrics.get("predict_time")
        cost = price_for(
            self.entry,
            seconds=self._seconds(),
            native_audio=bool(self._template_value("native_audio")),
            resolution=self._template_value("resolution"),
            predict_time=float(predict_time) if predict_time is not None else None,
            chars=len(str(self._template_value("text") or "")),
        )
        size = self._download(pred.get("output"), out, str(pid), cost)
        self.meta.update({"prediction_id": pid, "status": status, "predict_time": predict_time, "bytes": size})
        return RunResult(job_id=pid, cost_usd=round(cost, 6), meta=self.meta)

    # -- create --

    def _input(self) -> dict[str, Any]:
        data = dict(self.recipe.params)
        for field, ref in sorted(self.recipe.files.items(), key=lambda kv: list_field(kv[0]) or (kv[0], -1)):
            listed = list_field(field)
            if listed is not None:  # `input_images[1]`: the second item of the list input
                data.setdefault(listed[0], []).append(self._file_value(ref))
            else:
                data[field] = self._file_value(ref)
        return data

    def _file_value(self, ref: FileRef) -> str:
        raw = Path(ref.path).read_bytes()
        if hashlib.sha256(raw).hexdigest() != ref.sha256:
            raise self._error(f"input file {ref.path.name} changed since the recipe was made", retryable=True)
        mime = _mime_for(raw, ref.path)
        if len(raw) <= DATA_URI_MAX:
            return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
        for attempt in range(self.p.max_create_attempts):
            try:
                with open(ref.path, "rb") as fh:
                    f = self.client.files.create(fh, metadata={"sha256": ref.sha256})
                self._uploaded[f.urls["get"]] = ref.sha256
                return f.urls["get"]
            except ReplicateError as e:
                if (e.status == 429 or (e.status or 0) >= 500) and attempt + 1 < self.p.max_create_attempts:
                    self.p._sleep(self._backoff(attempt))
                    continue
                raise self._status_error(e, f"uploading {ref.path.name}") from None
            except httpx.TransportError as e:
                if attempt + 1 < self.p.max_create_attempts:
                    self.p._sleep(self._backoff(attempt))
                    continue
                raise self._error(f"uploading {ref.path.name} failed: {type(e).__name__}") from None
        raise self._error(f"uploading {ref.path.name} failed")  # pragma: no cover

    def _create_once(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.entry.version:
            p = self.client.predictions.create(version=self.entry.version, input=data)
        else:
            owner, name = self.entry.slug.split("/", 1)  # type: ignore[union-attr]
            p = self.client.models.predictions.create(model=(owner, name), input=data)
        return {"id": p.id, "status": p.status, "output": p.output, "error": p.error, "metrics": p.metrics}

    def _create(self) -> dict[str, Any]:
        data = self._input()
        for attempt in range(self.p.max_create_attempts):
            last_try = attempt + 1 == self.p.max_create_attempts
            if self._first_send is None:
                self._first_send = time.time()
            self.job.sending()
            self.meta["create_attempts"] += 1
            try:
                pred = self._create_once(data)
            except ReplicateError as e:
                status = e.status or 0
                if status == 429 and not last_try:
                    log.info("%s: throttled (429), retrying", self.what)
                    self.p._sleep(self._backoff(attempt))
                    continue
                if status >= 500:
                    # the server may or may not have made the prediction: look before resending
                    found = self._find_existing(self._first_send)
                    if found is not None:
                        self.job.started(found["id"])
                        return found
                    if not last_try:
                        self.p._sleep(self._backoff(attempt))
                        continue
                raise self._status_error(e, "creating the prediction") from None
            except httpx.ConnectError as e:
                # nothing was sent: safe to try again
                if not last_try:
                    self.p._sleep(self._backoff(attempt))
                    continue
                raise self._error(f"cannot reach Replicate: {type(e).__name__}") from None
            except (httpx.TransportError, ValueError) as e:
                # sent, outcome unknown (timeout, dropped connection, a reply the client cannot
                # parse, e.g. status "aborted"): look it up, never blindly resubmit
                found = self._find_existing(self._first_send)
                if found is not None:
                    self.job.started(found["id"])
                    return found
                raise self._error(
                    f"the create request's outcome is unknown ({type(e).__name__}) and no matching prediction was found; "
                    "the next run looks again before creating",
                    resumable=True,
                ) from None
            self.job.started(pred["id"])
            return pred
        raise self._error("creating the prediction failed after retries")  # pragma: no cover

    # -- look-up of an earlier create --

    def _judge(self, p: dict[str, Any]) -> str | None:
        """"match" when `p` is this recipe's prediction (same model, every input equal, files by
        content), None when it is not, or why it cannot be told."""
        if p.get("model") != self.entry.slug:
            return None
        if self.entry.version and p.get("version") not in (self.entry.version, None):
            return None
        if p.get("status") in FAILED:
            return None  # failed at the provider: not billed as a result, a retry creates anew
        if p.get("data_removed") or (p.get("status") == "succeeded" and p.get("output") is None):
            return None  # even if it were ours its output is gone: a retry creates anew
        given = p.get("input")
        fields = {(list_field(f) or (f, -1))[0] for f in self.recipe.files}
        if not isinstance(given, dict) or set(given) != set(self.recipe.params) | fields:
            return None
        for k, v in self.recipe.params.items():
            if json.dumps(given[k], sort_keys=True) != json.dumps(v, sort_keys=True):
                return None
        for field, ref in self.recipe.files.items():
            listed = list_field(field)
            if listed is not None:
                items = given.get(listed[0])
                value = items[listed[1]] if isinstance(items, list) and len(items) > listed[1] else None
            else:
                value = given[field]
            if not isinstance(value, str):
                return None
            if value.startswith("data:"):
                try:
                    sha: str | None = hashlib.sha256(_decode_data_uri(value)).hexdigest()
                except ValueError:
                    return None
            else:
                sha, why = self._file_sha(value)
                if why:
                    return f"prediction {p.get('id')} has this request's model and inputs, but its {field} {why}"
            if sha != ref.sha256:
                return None
        return "match"

    def _file_sha(self, url: str) -> tuple[str | None, str | None]:
        """The sha256 of the file behind an input URL (the Files API's recorded checksum, or the
        bytes), or why it cannot be read. A URL adspec would never send has no sha256."""
        if url in self._uploaded:
            return self._uploaded[url], None
        if url in self._file_shas:
            return self._file_shas[url], None
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not self._trusted(parsed.hostname):
            return None, None
        try:
            r = self.client._client.get(url)
        except httpx.HTTPError as e:
            return None, f"cannot be read: {type(e).__name__}"
        if r.status_code != 200:
            return None, f"cannot be read: HTTP {r.status_code}"
        sha: str | None
        if "json" in r.headers.get("content-type", ""):  # a Files API object: its recorded checksum
            try:
                sha = (r.json().get("checksums") or {}).get("sha256")
            except ValueError:
                sha = None
            if not sha:
                return None, "has no recorded sha256"
        else:
            sha = hashlib.sha256(r.content).hexdigest()
        self._file_shas[url] = sha
        return sha, None

    def _undecided(self, since: float | None, why: str) -> ProviderError:
        when = time.strftime(" at %Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since else ""
        return self._error(
            f"a create was sent{when} and its answer lost: a paid prediction may exist and the look-up cannot tell "
            f"({why}); nothing is sent on a guess. Run again to look again; if no such prediction exists "
            f"(replicate.com/predictions), `adspec cache forget {self.recipe.key}` lets the next run pay for it",
            retryable=True,
            resumable=True,
        )

    def _find_existing(self, since: float | None, max_pages: int | None = None) -> dict[str, Any] | None:
        """This recipe's prediction among those made since `since` (when the create was sent,
        less CLOCK_SKEW_S), newest first; None when there is surely none. Raises (resumable,
        the mark kept) when it cannot be decided: listing fails, more than `max_pages` pages,
        or a candidate whose files cannot be checked."""
        max_pages = LOOKUP_MAX_PAGES if max_pages is None else max_pages
        bound = since - CLOCK_SKEW_S if since is not None else None
        path: str | None = "/v1/predictions"
        pages = 0
        unsure: str | None = None
        self._file_shas.clear()
        while path:
            if pages >= max_pages:
                raise self._undecided(since, f"{pages} pages of predictions listed without reaching the time it was sent")
            try:
                page = self._get_json(path, "looking up earlier predictions")
            except ProviderError as e:
                why = str(e).removeprefix(f"{self.what}: ").removeprefix("looking up earlier predictions failed: ")
                why = why.split("; the create that was sent", 1)[0]
                raise self._undecided(since, f"listing predictions failed: {why}") from None
            pages += 1
            reached = False
            for p in page.get("results", []):
                created = _parse_time(p.get("created_at"))
                if bound is not None and created is not None and created < bound:
                    reached = True  # newest first: everything after this is older still
                    break
                verdict = self._judge(p)
                if verdict == "match":
                    log.info("%s: adopting earlier prediction %s", self.what, p.get("id"))
                    return p
                unsure = unsure or verdict
            nxt = page.get("next")
            path = None if reached or not nxt else _relative(nxt)
        if unsure:
            raise self._undecided(since, unsure)
        return None

    # -- wait --

    def _wait(self, pred: dict[str, Any]) -> dict[str, Any]:
        pid = pred["id"]
        deadline = time.monotonic() + self.p.timeout_s
        last_status = None
        while True:
            status = pred.get("status")
            if status != last_status:
                log.info("%s: prediction %s %s", self.what, pid, status)
                last_status = status
            self.job.progress(str(status))
            if status in TERMINAL:
                return pred
            if time.monotonic() > deadline:
                raise self._error(
                    f"prediction {pid} still {status} after {self.p.timeout_s:.0f} s; the next run resumes it",
                    retryable=True,
                    resumable=True,
                )
            self.p._sleep(self.client.poll_interval)
            pred = self._get_json(f"/v1/predictions/{pid}", f"polling prediction {pid}")

    # -- output --

    def _download(self, output: Any, out: Path, pid: str, cost: float) -> int:
        item = output
        if isinstance(item, (list, tuple)):
            if not item:
                raise self._error(f"prediction {pid} succeeded with an empty output list; the next run creates a new one",
                                  ended=True)
            item = item[0]
        if isinstance(item, dict):  # e.g. {"video": url}
            item = next(iter(item.values()), None)
        if item is None:
            raise self._error(f"prediction {pid} succeeded but its output is gone (removed after an hour); "
                              "the next run creates a new one", ended=True)
        url = getattr(item, "url", None) or item  # FileOutput or str
        if not isinstance(url, str):
            raise self._error(f"unexpected output type {type(item).__name__}")
        last: Exception | None = None
        expired = False
        bad_sha: str | None = None  # the last complete download, when it was not media
        for attempt in range(3):
            bad_sha = None
            try:
                if url.startswith("data:"):
                    data = _decode_data_uri(url)
                    content_type = url[5:].split(";", 1)[0].split(",", 1)[0]
                    out.write_bytes(data)
                    size = len(data)
                else:
                    self.meta["output_url"] = redact_url(url)  # signed URLs carry their token in the query
                    size, content_type = self._fetch(url, out)
                _check_media(out, self.entry.kind, content_type)
                return size
            except _NotMedia as e:
                last = e
                bad_sha = sha256_of(out)
            except _BadOutput as e:
                last = e
                # 410 says the output is gone; a 404 may be a passing glitch of the file host: the
                # next run re-reads the prediction, whose output is null once Replicate removed it
                expired = str(e).startswith("HTTP 410")
            except (httpx.HTTPError, ValueError, OSError) as e:
                last = e
            self.p._sleep(self._backoff(attempt))
        # The prediction is paid for: keep its id so the next run fetches the output again,
        # unless the output is gone (Replicate deletes outputs after an hour).
        if bad_sha is not None and not expired:
            raise BadOutputError(self._scrub(
                f"{self.what}: downloading the output of prediction {pid} gave a file that is not media ({last}); "
                "the prediction is paid for: the next run downloads its output again"), sha256=bad_sha, cost_usd=round(cost, 6))
        then = "the output is gone; the next run creates a new prediction" if expired else (
            "the prediction is paid for: the next run downloads its output again")
        raise self._error(f"downloading the output failed: {type(last).__name__}: {last}; {then}", resumable=not expired,
                          ended=expired)

    def _fetch(self, url: str, out: Path) -> tuple[int, str]:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"unsupported output URL scheme {parsed.scheme!r}")
        trusted = self._trusted(parsed.hostname)
        # Replicate asks for the Authorization header on its file URLs; never send it elsewhere.
        http = self.client._client if trusted else httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=True)
        try:
            with http.stream("GET", url) as r:
                if r.status_code != 200:
                    raise _BadOutput(f"HTTP {r.status_code} from the output URL")
                expected = r.headers.get("content-length")
                size = 0
                with open(out, "wb") as f:
                    for chunk in r.iter_bytes(1 << 16):
                        f.write(chunk)
                        size += len(chunk)
                if expected is not None and int(expected) != size:
                    raise _BadOutput(f"truncated download: {size} of {expected} bytes")
                return size, r.headers.get("content-type", "")
        finally:
            if http is not self.client._client:
                http.close()

    def _trusted(self, host: str | None) -> bool:
        """Hosts that get the Authorization header: the API's own and Replicate's file hosts."""
        base = httpx.URL(str(self.client._client.base_url))
        return host == base.host or any(host == h or (host or "").endswith("." + h) for h in _TRUSTED_OUTPUT_HOSTS)

    # -- cost inputs --

    def _template_value(self, placeholder: str) -> Any:
        for field, template in self.entry.input.items():
            if template == "{" + placeholder + "}":
                return self.recipe.params.get(field)
        return None

    def _seconds(self) -> float | None:
        seconds = self._template_value("seconds")
        if seconds is not None:
            return float(seconds)
        frames = self._template_value("frames")
        if frames is not None:
            return (float(frames) - 1) / float(self._template_value("fps") or self.entry.fps)
        return None


class _BadOutput(Exception):
    pass


class _NotMedia(_BadOutput):
    """The output downloaded in full, and its bytes are not media."""


_MAGIC = {
    "image": (b"\x89PNG", b"\xff\xd8\xff", b"GIF8"),
    "music": (b"ID3", b"fLaC", b"OggS", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"),
}


def _check_media(path: Path, kind: str, content_type: str) -> None:
    """Cheap sanity check of a download (the cache's verifier does the ffprobe-level checks)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise _NotMedia("the output is empty")
    if "text/html" in content_type or head.lstrip()[:1] == b"<":
        raise _NotMedia("the output is an HTML page, not media")
    ok = False
    if kind == "image":
        ok = head.startswith(_MAGIC["image"]) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    elif kind == "video":
        ok = head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"
    elif kind in ("music", "voice"):
        ok = head.startswith(_MAGIC["music"]) or (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
    if not ok:
        raise _NotMedia(f"the output does not look like {kind} media")


def _decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ValueError("malformed data URI")
    if header.endswith(";base64"):
        return base64.b64decode(payload, validate=False)
    return urllib.parse.unquote_to_bytes(payload)


def _mime_for(raw: bytes, path: Path) -> str:
    if raw.startswith(b"\x89PNG"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
        return "audio/wav"
    if raw[4:8] == b"ftyp":
        return "video/mp4"
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _parse_retry_after(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_time(value: Any) -> float | None:
    """A prediction's `created_at` (ISO 8601, "Z") as a Unix time, or None."""
    if not isinstance(value, str):
        return None
    try:
        from datetime import datetime

        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _relative(url: str) -> str:
    """A `next` page URL as a path the client's base URL accepts."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme:
        return url
    return parts.path + (f"?{parts.query}" if parts.query else "")
