"""Replicate: storyboard images, video chunks and music through the `replicate` client.

Recipes are pure: the registry entry's input template filled from the request (models.yaml), so
a recipe's params are exactly the JSON input that will be sent, less the file fields (those are
keyed by their bytes' sha256 in `recipe.files`).

`run` never pays twice for one recipe:
- `job.resume_id` set: poll that prediction, create nothing;
- `job.sent_before` set (an earlier create's outcome is unknown): list recent predictions and
  adopt the one with the same model and input before creating anything;
- `job.sending()` just before each create, `job.started(id)` right after it, before waiting;
- a create whose outcome is unknown (timeout after sending, 5xx, unparseable reply) is looked
  up, never blindly re-sent; 429 and 5xx are retried with backoff (the client never retries POST).

Environment: REPLICATE_API_TOKEN (required), REPLICATE_BASE_URL (optional; the base without
/v1), REPLICATE_POLL_INTERVAL (read by the client), ADSPEC_REPLICATE_TIMEOUT (seconds to wait
for one prediction, default 1800; on expiry the prediction keeps its id for the next run).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
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

from ..errors import ProviderError
from ..recipes import FileRef, Recipe
from ..registry import (
    ModelEntry,
    Registry,
    load_registry,
    model_resolution,
    price_for,
    shape_input,
    spec_resolution_for,
)
from .base import ImageRequest, Job, MusicRequest, RunResult, VideoRequest, VoiceRequest

log = logging.getLogger(__name__)

DATA_URI_MAX = 256 * 1024  # Replicate: data URLs for files of 256 kB or less, else an upload
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
FAILED = {"failed", "canceled", "aborted"}
_TRUSTED_OUTPUT_HOSTS = ("replicate.delivery", "replicate.com")


class _UnknownOutcome(Exception):
    """A create request went out and we do not know whether a prediction exists."""


def image_prompt(req: ImageRequest) -> str:
    """The text sent to an image model: the beat's prompt, the ad's style and palette."""
    parts = [req.prompt.strip().rstrip(".")]
    if req.style:
        parts.append(f"Style: {req.style.strip()}")
    if req.palette:
        parts.append("Colour palette: " + ", ".join(req.palette))
    if req.brand_name:
        parts.append(f"Brand: {req.brand_name}")
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
        self.timeout_s = timeout_s if timeout_s is not None else float(os.environ.get("ADSPEC_REPLICATE_TIMEOUT", "1800"))
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
        values = {
            "prompt": req.prompt,
            "first_frame": req.first_frame,
            "seconds": req.seconds,
            "resolution": model_resolution(entry, spec_resolution_for(req.width, req.height), req.seconds),
            "aspect_ratio": req.aspect_ratio,
            "seed": req.seed,
            "fps": entry.fps,
            "frames": req.seconds * entry.fps + 1,
            "native_audio": bool(req.native_audio and entry.native_audio),
        }
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
        return call.run(Path(out))


class _Call:
    """One run of one recipe: holds the client, the secret and what happened, for messages."""

    def __init__(self, provider: ReplicateMedia, entry: ModelEntry, recipe: Recipe, job: Job, token: str) -> None:
        self.p = provider
        self.entry = entry
        self.recipe = recipe
        self.job = job
        self._token = token
        self.retry_after: dict[int, float | None] = {}
        self._lock = threading.Lock()
        label = getattr(job, "label", None)
        self.what = f"{label}: " if label else ""
        self.what += f"replicate {entry.name} ({entry.slug})"
        self.client = replicate.Client(
            api_token=token,
            base_url=os.environ.get("REPLICATE_BASE_URL") or None,
            event_hooks={"response": [self._on_response]},
        )
        self.meta: dict[str, Any] = {"model": entry.name, "ref": entry.ref, "create_attempts": 0}

    # -- helpers --

    def _on_response(self, response: httpx.Response) -> None:
        value = response.headers.get("retry-after")
        with self._lock:
            self.retry_after[threading.get_ident()] = _parse_retry_after(value) if value else None

    def _scrub(self, text: str) -> str:
        text = str(text)
        if self._token:
            text = text.replace(self._token, "***")
        if len(text) > 600:
            text = text[:600] + "..."
        return text

    def _error(self, message: str, retryable: bool = True, resumable: bool = False) -> ProviderError:
        """`resumable`: the prediction may still finish or be fetched: the cache keeps its id
        (or its "sent, outcome unknown" mark) so the next run resumes or looks it up instead of
        paying for a new one."""
        return ProviderError(self._scrub(f"{self.what}: {message}"), retryable=retryable, resumable=resumable)

    def _backoff(self, attempt: int) -> float:
        with self._lock:
            ra = self.retry_after.get(threading.get_ident())
        if ra is not None:
            return min(ra, 60.0)
        return min(self.p.backoff_base * (2 ** attempt), self.p.backoff_max)

    def _status_error(self, e: ReplicateError, doing: str) -> ProviderError:
        status = e.status or 0
        if status == 401:
            return ProviderError(
                f"{self.what}: Replicate rejected the API token (401 Unauthorized) while {doing}: check REPLICATE_API_TOKEN",
                retryable=False,
            )
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
        raise self._error(f"{doing} failed: {type(last).__name__}: {last}", resumable=True)

    # -- the flow --

    def run(self, out: Path) -> RunResult:
        job = self.job
        pred: dict[str, Any] | None = None
        if job.resume_id:
            self.meta["resumed"] = True
            pred = self._get_json(f"/v1/predictions/{job.resume_id}", "resuming a prediction")
        else:
            if job.sent_before:
                pred = self._find_existing()
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
            raise self._error(f"prediction {pid} {status}: {msg}", retryable=True)
        size = self._download(pred.get("output"), out)
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
        self.meta.update({"prediction_id": pid, "status": status, "predict_time": predict_time, "bytes": size})
        return RunResult(job_id=pid, cost_usd=round(cost, 6), meta=self.meta)

    # -- create --

    def _input(self) -> dict[str, Any]:
        data = dict(self.recipe.params)
        for field, ref in self.recipe.files.items():
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
                    found = self._find_existing()
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
                found = self._find_existing()
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

    def _matches(self, p: dict[str, Any]) -> bool:
        if p.get("model") != self.entry.slug:
            return False
        if self.entry.version and p.get("version") not in (self.entry.version, None):
            return False
        given = p.get("input") or {}
        for k, v in self.recipe.params.items():
            if given.get(k) != v:
                return False
        for field, ref in self.recipe.files.items():
            value = given.get(field)
            if not isinstance(value, str):
                return False
            if value.startswith("data:"):
                try:
                    if hashlib.sha256(_decode_data_uri(value)).hexdigest() != ref.sha256:
                        return False
                except ValueError:
                    return False
        return True

    def _find_existing(self, max_pages: int = 3) -> dict[str, Any] | None:
        """The most recent prediction with this model and input that is not a failure, or None."""
        path: str | None = "/v1/predictions"
        pages = 0
        while path and pages < max_pages:
            page = self._get_json(path, "looking up earlier predictions")
            pages += 1
            for p in page.get("results", []):
                if p.get("status") in FAILED:
                    continue
                if p.get("status") == "succeeded" and (p.get("data_removed") or p.get("output") is None):
                    continue
                if self._matches(p):
                    log.info("%s: adopting earlier prediction %s", self.what, p.get("id"))
                    return p
            nxt = page.get("next")
            path = _relative(nxt) if nxt else None
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

    def _download(self, output: Any, out: Path) -> int:
        item = output
        if isinstance(item, (list, tuple)):
            if not item:
                raise self._error("the prediction succeeded with an empty output list")
            item = item[0]
        if isinstance(item, dict):  # e.g. {"video": url}
            item = next(iter(item.values()), None)
        if item is None:
            raise self._error("the prediction succeeded without an output (removed after an hour?)")
        url = getattr(item, "url", None) or item  # FileOutput or str
        if not isinstance(url, str):
            raise self._error(f"unexpected output type {type(item).__name__}")
        last: Exception | None = None
        expired = False
        for attempt in range(3):
            try:
                if url.startswith("data:"):
                    data = _decode_data_uri(url)
                    content_type = url[5:].split(";", 1)[0].split(",", 1)[0]
                    out.write_bytes(data)
                    size = len(data)
                else:
                    self.meta["output_url"] = url
                    size, content_type = self._fetch(url, out)
                _check_media(out, self.entry.kind, content_type)
                return size
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
        then = "the output is gone; the next run creates a new prediction" if expired else (
            "the prediction is paid for: the next run downloads its output again")
        raise self._error(f"downloading the output failed: {type(last).__name__}: {last}; {then}", resumable=not expired)

    def _fetch(self, url: str, out: Path) -> tuple[int, str]:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"unsupported output URL scheme {parsed.scheme!r}")
        base = httpx.URL(str(self.client._client.base_url))
        trusted = parsed.hostname == base.host or any(
            parsed.hostname == h or (parsed.hostname or "").endswith("." + h) for h in _TRUSTED_OUTPUT_HOSTS
        )
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


_MAGIC = {
    "image": (b"\x89PNG", b"\xff\xd8\xff", b"GIF8"),
    "music": (b"ID3", b"fLaC", b"OggS", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"),
}


def _check_media(path: Path, kind: str, content_type: str) -> None:
    """Cheap sanity check of a download (the cache's verifier does the ffprobe-level checks)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise _BadOutput("the output is empty")
    if "text/html" in content_type or head.lstrip()[:1] == b"<":
        raise _BadOutput("the output is an HTML page, not media")
    ok = False
    if kind == "image":
        ok = head.startswith(_MAGIC["image"]) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    elif kind == "video":
        ok = head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"
    elif kind in ("music", "voice"):
        ok = head.startswith(_MAGIC["music"]) or (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
    if not ok:
        raise _BadOutput(f"the output does not look like {kind} media")


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


def _relative(url: str) -> str:
    """A `next` page URL as a path the client's base URL accepts."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme:
        return url
    return parts.path + (f"?{parts.query}" if parts.query else "")
