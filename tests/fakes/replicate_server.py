"""A fake Replicate API on 127.0.0.1 that speaks the real wire format.

    with FakeReplicate(latency=0.05) as fake:
        monkeypatch.setenv("REPLICATE_BASE_URL", fake.base_url)   # no /v1: the client adds it
        ...
        assert fake.paid_creates == 1

Routes: POST /v1/models/{o}/{n}/predictions (official models), POST /v1/predictions (versioned),
GET /v1/predictions[?cursor=N] (list, newest first), GET /v1/predictions/{id},
POST /v1/predictions/{id}/cancel, GET /v1/models/{o}/{n}/versions/{v}, POST /v1/files
(multipart; answers every field replicate's File model needs), GET /v1/files/{id} (the file
object, with `checksums.sha256`, as the real API answers), GET /v1/files/{id}/download (its
bytes), GET /outputs/{name} (output files when output_mode="url"). Models: the registry's images, videos,
musicgen and the speech model minimax/speech-02-turbo (a WAV as long as the text would be spoken).

`Prefer: wait[=N]` is honoured by answering with a terminal prediction, or with `starting` when
the latency is longer than the wait, never `processing` with partial output (PROVIDERS §2.3).

Knobs (attributes; change them between requests):
  latency            seconds a prediction spends starting/processing (per model: latency_by_model)
  output_mode        "data" (data: URIs inline) or "url" (http URLs on this server)
  outcome            "succeeded" | "failed" | "canceled" | "aborted"  (or outcomes: a queue)
  create_429         the next N creates answer 429 with Retry-After: retry_after
  create_5xx         the next N creates answer 500 without creating anything
  create_5xx_after   the next N creates make the prediction, then answer 500 (outcome unknown)
  create_422         the next N creates answer 422 (input validation failed)
  create_drop        the next N creates make the prediction, then the connection is closed without
                     an answer (a proxy or a timeout that loses the answer)
  list_5xx           the next N GET /v1/predictions (the list) answer 500
  corrupt_outputs    the next N predictions succeed with an output that is not media (provider-side
                     corruption: the same bad bytes on every download)
  poll_5xx           the next N GET /v1/predictions/{id} answer 500
  download_fault     None | "truncated" | "html" | "404" for the next download_faults downloads
  rate_429, rate_5xx probabilistic faults on create (seeded RNG), for benchmarks
  rate_5xx_after     probability that a create makes the prediction, then answers 500
  rate_poll_5xx      probability that a GET /v1/predictions/{id} answers 500
  outcome_rates      e.g. {"failed": 0.1, "canceled": 0.05}: drawn per create (else `outcome`)
  download_rates     e.g. {"truncated": 0.1, "html": 0.05}: drawn per download
  download_delay     seconds a download stalls half-way (a slow download)
  token              when set, any other bearer token gets 401 (change it: an expired token)
  unique_outputs     each input gets outputs of its own (a hue/pitch shift), not shared bytes
  output_query       a query string on output URLs (a signed URL's token, e.g. "sig=...")
  echo_auth          every error body quotes the request's Authorization header (a careless
                     server): what adspec shows must still never contain the secret
add_traffic(n, slug) makes n predictions of other inputs, as another app on the same account
would (not counted as creates: they are not adspec's).
Counters: requests (log of dicts), creates_by_model, creates_by_input, paid_creates,
  count(method, path_prefix), uploads, connections (TCP connections accepted);
  succeeded_by_input() counts predictions that ran to
  success (what "paid twice for one recipe" means: two succeeded predictions of one input);
  succeeded_ids() their ids.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import imageio_ffmpeg

# ---- each model's input schema (from the Replicate model pages / PROVIDERS.md §3) --------------
S, I, B, N, U = "string", "integer", "boolean", "number", "uri"  # noqa: E741 (the schema's type names, short)
_ASPECTS_FLUX = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]


def _f(t: str, enum: list | None = None, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"type": t, "enum": enum, "min": lo, "max": hi}


SCHEMAS: dict[str, dict[str, Any]] = {
    "black-forest-labs/flux-dev": {"required": ["prompt"], "output": "list", "kind": "image", "fields": {
        "prompt": _f(S), "aspect_ratio": _f(S, _ASPECTS_FLUX), "image": _f(U), "prompt_strength": _f(N, None, 0, 1),
        "num_outputs": _f(I, None, 1, 4), "num_inference_steps": _f(I, None, 1, 50), "guidance": _f(N, None, 0, 10),
        "seed": _f(I), "output_format": _f(S, ["webp", "jpg", "png"]), "output_quality": _f(I, None, 0, 100),
        "disable_safety_checker": _f(B), "go_fast": _f(B), "megapixels": _f(S, ["1", "0.25"])}},
    "black-forest-labs/flux-schnell": {"required": ["prompt"], "output": "list", "kind": "image", "fields": {
        "prompt": _f(S), "aspect_ratio": _f(S, _ASPECTS_FLUX), "num_outputs": _f(I, None, 1, 4),
        "num_inference_steps": _f(I, None, 1, 4), "seed": _f(I), "output_format": _f(S, ["webp", "jpg", "png"]),
        "output_quality": _f(I, None, 0, 100), "disable_safety_checker": _f(B), "go_fast": _f(B),
        "megapixels": _f(S, ["1", "0.25"])}},
    "black-forest-labs/flux-1.1-pro": {"required": ["prompt"], "output": "single", "kind": "image", "fields": {
        "prompt": _f(S), "image_prompt": _f(U),
        "aspect_ratio": _f(S, ["custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3"]),
        "width": _f(I, None, 256, 1440), "height": _f(I, None, 256, 1440), "safety_tolerance": _f(I, None, 1, 6),
        "seed": _f(I), "prompt_upsampling": _f(B), "output_format": _f(S, ["webp", "jpg", "png"]),
        "output_quality": _f(I, None, 0, 100)}},
    "black-forest-labs/flux-kontext-pro": {"required": ["prompt"], "output": "single", "kind": "image", "fields": {
        "prompt": _f(S), "input_image": _f(U),
        "aspect_ratio": _f(S, ["match_input_image", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21", "2:1", "1:2"]),
        "output_format": _f(S, ["jpg", "png"]), "safety_tolerance": _f(I, None, 0, 6), "prompt_upsampling": _f(B),
        "seed": _f(I)}},
    # multi-reference: `input_images` is a list of URIs (up to 4 here, as ../shared/PROVIDERS.md says)
    "black-forest-labs/flux-2-pro": {"required": ["prompt"], "output": "single", "kind": "image", "fields": {
        "prompt": _f(S), "input_images": _f("array"),
        "aspect_ratio": _f(S, ["match_input_image", "custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3"]),
        "width": _f(I, None, 256, 2048), "height": _f(I, None, 256, 2048), "seed": _f(I),
        "output_format": _f(S, ["webp", "jpg", "png"]), "safety_tolerance": _f(I, None, 1, 5), "prompt_upsampling": _f(B)}},
    "minimax/hailuo-2.3-fast": {"required": ["first_frame_image"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "first_frame_image": _f(U), "duration": _f(I, [6, 10]),
        "resolution": _f(S, ["768p", "1080p"]), "prompt_optimizer": _f(B)}},
    "minimax/hailuo-2.3": {"required": ["prompt"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "first_frame_image": _f(U), "duration": _f(I, [6, 10]),
        "resolution": _f(S, ["768p", "1080p"]), "prompt_optimizer": _f(B)}},
    "minimax/hailuo-02": {"required": ["prompt"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "first_frame_image": _f(U), "last_frame_image": _f(U), "duration": _f(I, [6, 10]),
        "resolution": _f(S, ["512p", "768p", "1080p"]), "prompt_optimizer": _f(B)}},
    "google/veo-3.1-fast": {"required": ["prompt"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "image": _f(U), "last_frame": _f(U), "duration": _f(I, [4, 6, 8]),
        "resolution": _f(S, ["720p", "1080p"]), "aspect_ratio": _f(S, ["16:9", "9:16"]), "negative_prompt": _f(S),
        "generate_audio": _f(B), "seed": _f(I)}},
    "google/veo-3.1": {"required": ["prompt"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "image": _f(U), "last_frame": _f(U), "reference_images": _f("array"),
        "duration": _f(I, [4, 6, 8]), "resolution": _f(S, ["720p", "1080p"]), "aspect_ratio": _f(S, ["16:9", "9:16"]),
        "negative_prompt": _f(S), "generate_audio": _f(B), "seed": _f(I)}},
    "wan-video/wan-2.2-i2v-fast": {"required": ["prompt", "image"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "image": _f(U), "last_image": _f(U), "num_frames": _f(I, None, 81, 121),
        "frames_per_second": _f(I, None, 5, 30), "resolution": _f(S, ["480p", "720p"]), "go_fast": _f(B),
        "interpolate_output": _f(B), "sample_shift": _f(N, None, 1, 20), "seed": _f(I),
        "disable_safety_checker": _f(B)}},
    "kwaivgi/kling-v2.1": {"required": ["prompt", "start_image"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "start_image": _f(U), "end_image": _f(U), "negative_prompt": _f(S),
        "duration": _f(I, [5, 10]), "mode": _f(S, ["standard", "pro"])}},
    "bytedance/seedance-1-lite": {"required": ["prompt"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "image": _f(U), "last_frame_image": _f(U), "duration": _f(I, None, 2, 12),
        "resolution": _f(S, ["480p", "720p", "1080p"]),
        "aspect_ratio": _f(S, ["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21"]), "fps": _f(I, [24]),
        "camera_fixed": _f(B), "seed": _f(I), "reference_images": _f("array")}},
    "bytedance/seedance-1-pro": {"required": ["prompt"], "output": "single", "kind": "video", "fields": {
        "prompt": _f(S), "image": _f(U), "last_frame_image": _f(U), "duration": _f(I, None, 2, 12),
        "resolution": _f(S, ["480p", "720p", "1080p"]),
        "aspect_ratio": _f(S, ["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21"]), "fps": _f(I, [24]),
        "camera_fixed": _f(B), "seed": _f(I)}},
    "meta/musicgen": {"required": [], "output": "single", "kind": "music", "fields": {
        "model_version": _f(S, ["stereo-melody-large", "stereo-large", "melody-large", "large"]), "prompt": _f(S),
        "input_audio": _f(U), "duration": _f(I), "continuation": _f(B), "continuation_start": _f(I, None, 0),
        "continuation_end": _f(I, None, 0), "multi_band_diffusion": _f(B),
        "normalization_strategy": _f(S, ["loudness", "clip", "peak", "rms"]), "top_k": _f(I), "top_p": _f(N),
        "temperature": _f(N), "classifier_free_guidance": _f(I), "output_format": _f(S, ["wav", "mp3"]),
        "seed": _f(I)}},
    "minimax/speech-02-turbo": {"required": ["text"], "output": "single", "kind": "voice", "fields": {
        "text": _f(S), "voice_id": _f(S), "speed": _f(N, None, 0.5, 2), "volume": _f(N, None, 0, 10),
        "pitch": _f(I, None, -12, 12), "emotion": _f(S), "english_normalization": _f(B),
        "sample_rate": _f(I, [8000, 16000, 22050, 24000, 32000, 44100]), "bitrate": _f(I),
        "channel": _f(S, ["mono", "stereo"]), "language_boost": _f(S), "audio_format": _f(S, ["mp3", "wav", "flac", "pcm"]),
        "subtitle_enable": _f(B)}},
}
VERSIONS = {"671ac645ce5e552cc63a54a2bbff63fcf798043055d2dac5fc9e36a837eedcfb": "meta/musicgen"}


def validate_input(slug: str, data: dict[str, Any], file_exists=lambda url: True) -> list[str]:
    """Replicate-style validation errors ("input.field: message") for one create body's input."""
    schema = SCHEMAS[slug]
    errors = []
    for name in schema["required"]:
        if name not in data:
            errors.append(f"input: {name} is required")
    for name, value in data.items():
        spec = schema["fields"].get(name)
        if spec is None:
            errors.append(f"input: Additional property {name} is not allowed")
            continue
        t = spec["type"]
        ok = {
            S: isinstance(value, str), U: isinstance(value, str), B: isinstance(value, bool),
            I: isinstance(value, int) and not isinstance(value, bool),
            N: isinstance(value, (int, float)) and not isinstance(value, bool), "array": isinstance(value, list),
        }[t]
        if not ok:
            errors.append(f"input.{name}: Invalid type. Expected: {t}, given: {type(value).__name__}")
            continue
        if t == "array":
            if slug == "black-forest-labs/flux-2-pro" and not 1 <= len(value) <= 4:
                errors.append(f"input.{name}: Array must have between 1 and 4 items")
            if not all(isinstance(v, str) and (v.startswith("data:") or v.startswith("http")) for v in value):
                errors.append(f"input.{name}: every item must be a 'uri'")
            continue
        if spec["enum"] is not None and value not in spec["enum"]:
            errors.append(f"input.{name}: {name} must be one of the following: " + ", ".join(map(str, spec["enum"])))
        if spec["min"] is not None and value < spec["min"]:
            errors.append(f"input.{name}: Must be greater than or equal to {spec['min']}")
        if spec["max"] is not None and value > spec["max"]:
            errors.append(f"input.{name}: Must be less than or equal to {spec['max']}")
        if t == U:
            if not (value.startswith("data:") or value.startswith("http://") or value.startswith("https://")):
                errors.append(f"input.{name}: Does not match format 'uri'")
            elif not value.startswith("data:") and not file_exists(value):
                errors.append(f"input.{name}: could not fetch {value}")
    if slug == "google/veo-3.1" and data.get("reference_images"):
        # "1 to 3 reference images … only work with 16:9 aspect ratio and 8-second duration" (the
        # model page); Google's API takes no start image with them (GenerateVideosConfig.referenceImages)
        if len(data["reference_images"]) > 3:
            errors.append("input.reference_images: Array must have between 1 and 3 items")
        if data.get("aspect_ratio", "16:9") != "16:9" or data.get("duration", 8) != 8:
            errors.append("input.reference_images: reference images only work with 16:9 aspect ratio and 8-second duration")
        if "image" in data:
            errors.append("input.image: image cannot be combined with reference_images")
    if slug.startswith("minimax/hailuo") and data.get("resolution") == "1080p" and data.get("duration") == 10:
        errors.append("input.duration: 10 seconds is only available for 768p resolution")
    return errors


# ---- media made with ffmpeg -------------------------------------------------------------------
_media_cache: dict[tuple, bytes] = {}
_media_lock = threading.Lock()
_SIZES = {"16:9": (320, 180), "9:16": (180, 320), "1:1": (256, 256), "4:5": (256, 320)}


def make_media(kind: str, aspect: str = "16:9", seconds: float = 1.0, audio: bool = False, fmt: str = "png",
               tint: int = 0) -> bytes:
    """Real media bytes (PNG/JPEG image, H.264 MP4, WAV), cached per arguments. `tint` (0-359)
    shifts the hue of pictures and the pitch of sounds, so different inputs give different bytes."""
    key = (kind, aspect, round(seconds, 3), audio, fmt, tint)
    with _media_lock:
        if key in _media_cache:
            return _media_cache[key]
    w, h = _SIZES.get(aspect, (320, 180))
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory() as d:
        if kind == "image":
            out = Path(d) / ("o.jpg" if fmt == "jpg" else "o.png")
            args = ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=1", "-frames:v", "1"]
            args += (["-vf", f"hue=h={tint}"] if tint else []) + [str(out)]
        elif kind == "video":
            out = Path(d) / "o.mp4"
            args = ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=24:duration={seconds}"]
            if audio:  # every input before the output options (a -vf before it was taken as its option)
                args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-c:a", "aac"]
            args += ["-vf", f"hue=h={tint}"] if tint else []
            args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out)]
        elif kind == "voice":  # speech-like: a gliding voiced tone, syllables at 4 Hz, mono 32 kHz
            out = Path(d) / "o.wav"
            f0 = round(140 + tint / 6, 3)  # 140-200 Hz, its own pitch for each tint
            expr = f"0.5*sin(2*PI*({f0}*t+8*sin(2*PI*1.5*t)))*(0.55+0.45*sin(2*PI*4*t))"
            args = ["-f", "lavfi", "-i", f"aevalsrc={expr}:s=32000:d={seconds}", "-ac", "1", str(out)]
        else:
            out = Path(d) / "o.wav"
            args = ["-f", "lavfi", "-i", f"sine=frequency={220 + tint}:sample_rate=32000:duration={seconds}", "-ac", "2", str(out)]
        subprocess.run([ff, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, capture_output=True)
        data = out.read_bytes()
    with _media_lock:
        _media_cache[key] = data
    return data


# ---- the server -------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class FakeReplicate:
    def __init__(self, *, latency: float = 0.0, output_mode: str = "data", token: str | None = None, seed: int = 0):
        self.latency = latency
        self.latency_by_model: dict[str, float] = {}
        self.output_mode = output_mode
        self.outcome = "succeeded"
        self.outcomes: deque[str] = deque()
        self.error_message = "CUDA out of memory (fake)"
        self.create_429 = 0
        self.create_5xx = 0
        self.create_5xx_after = 0
        self.create_422 = 0
        self.create_drop = 0
        self.list_5xx = 0
        self.corrupt_outputs = 0
        self.poll_5xx = 0
        self.download_fault: str | None = None
        self.download_faults = 1
        self.rate_429 = 0.0
        self.rate_5xx = 0.0
        self.rate_5xx_after = 0.0
        self.rate_poll_5xx = 0.0
        self.outcome_rates: dict[str, float] = {}
        self.download_rates: dict[str, float] = {}
        self.download_delay = 0.0
        self.echo_auth = False
        self.unique_outputs = False
        self.output_query = ""
        self.retry_after = "0"
        self.token = token
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self.predictions: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self.files: dict[str, tuple[bytes, str, str]] = {}
        self.file_meta: dict[str, tuple[dict[str, Any], datetime]] = {}
        self.outputs: dict[str, tuple[bytes, str]] = {}
        self._tints: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.creates_by_model: Counter[str] = Counter()
        self.creates_by_input: Counter[str] = Counter()
        self.create_bodies: list[dict[str, Any]] = []
        self.paid_creates = 0
        self.uploads = 0
        self.connections = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def start(self) -> "FakeReplicate":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeReplicate":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- counters --
    def count(self, method: str, path_prefix: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix))

    @staticmethod
    def input_hash(data: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def _succeeds(self, p: dict[str, Any]) -> bool:
        return p["outcome"] == "succeeded" and not p["canceled"] and not p.get("traffic")

    def succeeded_by_input(self) -> Counter:
        """Predictions that ran (or are running) to success, by input: each is a paid result."""
        with self._lock:
            return Counter(self.input_hash(p["input"]) for p in self.predictions.values() if self._succeeds(p))

    def succeeded_ids(self) -> set[str]:
        with self._lock:
            return {pid for pid, p in self.predictions.items() if self._succeeds(p)}

    def _draw(self, rates: dict[str, float]) -> str | None:
        """One of `rates`' keys with its probability (seeded), or None."""
        x = self._rng.random()
        for name, rate in rates.items():
            if x < rate:
                return name
            x -= rate
        return None

    # -- predictions --
    def _latency(self, slug: str) -> float:
        return self.latency_by_model.get(slug, self.latency)

    def create_prediction(self, slug: str, version: str | None, data: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            outcome = self.outcomes.popleft() if self.outcomes else (self._draw(self.outcome_rates) or self.outcome)
            pid = uuid.uuid4().hex[:26]
            self.predictions[pid] = {
                "id": pid, "slug": slug, "version": version or "hidden", "input": data, "created": _now(),
                "created_mono": time.monotonic(), "outcome": outcome, "canceled": False, "output": None,
            }
            self._order.append(pid)
            if self.corrupt_outputs > 0:
                self.corrupt_outputs -= 1
                self.predictions[pid]["corrupt"] = True
            self.paid_creates += 1
            self.creates_by_model[slug] += 1
            self.creates_by_input[self.input_hash(data)] += 1
            return self.predictions[pid]

    def max_in_flight(self) -> int:
        """The most predictions of ours that were running at one moment (created, not yet at
        their end by the fake's clock): a client's in-flight slot covers at least that span."""
        with self._lock:
            spans = [(p["created_mono"], p["created_mono"] + self._latency(p["slug"]))
                     for p in self.predictions.values() if not p.get("traffic")]
        events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
        most = now = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most

    def add_traffic(self, n: int, slug: str = "black-forest-labs/flux-dev", age_s: float = 0.0) -> None:
        """`n` succeeded predictions of other inputs made by another app on the account, `age_s`
        seconds ago (listed in the order added: add older traffic first)."""
        with self._lock:
            for i in range(n):
                pid = uuid.uuid4().hex[:26]
                self.predictions[pid] = {
                    "id": pid, "slug": slug, "version": "hidden", "input": {"prompt": f"someone else's picture {i}"},
                    "created": _now() - timedelta(seconds=age_s), "created_mono": time.monotonic() - 3600, "outcome": "succeeded",
                    "canceled": False, "output": None, "traffic": True,
                }
                self._order.append(pid)

    def _status(self, p: dict[str, Any]) -> str:
        if p["canceled"]:
            return "canceled"
        age = time.monotonic() - p["created_mono"]
        lat = self._latency(p["slug"])
        if age < lat / 3:
            return "starting"
        if age < lat:
            return "processing"
        return p["outcome"]

    def _tint_for(self, data: dict[str, Any]) -> int:
        """The hue shift of one input's outputs: from its hash, and never one another input of
        this server already has (two inputs sharing a hue would share bytes, and a test that tells
        artifacts apart by their bytes would fail one run in a few hundred)."""
        key = self.input_hash(data)
        with self._lock:
            if key not in self._tints:
                taken = set(self._tints.values())
                tint = 1 + int(key[:4], 16) % 359
                for _ in range(359):
                    if tint not in taken:
                        break
                    tint = tint % 359 + 1
                self._tints[key] = tint
            return self._tints[key]

    def _output_for(self, p: dict[str, Any]) -> Any:
        if p["output"] is not None:
            return p["output"]
        schema = SCHEMAS[p["slug"]]
        data = p["input"]
        kind = schema["kind"]
        tint = self._tint_for(data) if self.unique_outputs else 0
        if p.get("corrupt"):  # the provider stored a broken file: every download gives these bytes
            blob, mime, ext = b"\x00corrupt at the provider " + p["id"].encode() * 8, \
                {"image": "image/png", "video": "video/mp4"}.get(kind, "audio/wav"), "bin"
        elif kind == "image":
            fmt = data.get("output_format", "webp")
            fmt = "jpg" if fmt == "jpg" else "png"
            blob = make_media("image", data.get("aspect_ratio", "16:9"), fmt=fmt, tint=tint)
            mime, ext = ("image/jpeg", "jpg") if fmt == "jpg" else ("image/png", "png")
        elif kind == "video":
            if "num_frames" in data:
                seconds = (data["num_frames"] - 1) / data.get("frames_per_second", 16)
            else:
                seconds = float(data.get("duration", 5))
            blob = make_media("video", data.get("aspect_ratio", "16:9"), seconds, audio=bool(data.get("generate_audio")), tint=tint)
            mime, ext = "video/mp4", "mp4"
        elif kind == "voice":
            from .openai_server import speech_seconds

            blob = make_media("voice", seconds=speech_seconds(data["text"], float(data.get("speed", 1.0))), tint=tint)
            mime, ext = "audio/wav", "wav"
        else:
            blob = make_media("music", seconds=float(data.get("duration", 8)), tint=tint)
            mime, ext = "audio/wav", "wav"
        if self.output_mode == "data" or p.get("traffic"):
            item: Any = f"data:{mime};base64," + base64.b64encode(blob).decode()
        else:
            name = f"{p['id']}.{ext}"
            self.outputs[name] = (blob, mime)
            item = f"{self.base_url}/outputs/{name}" + (f"?{self.output_query}" if self.output_query else "")
        p["output"] = [item] if schema["output"] == "list" else item
        return p["output"]

    def file_json(self, fid: str) -> dict[str, Any]:
        """The Files API's file object (`schemas_file_response`)."""
        content, mime, name = self.files[fid]
        meta, created = self.file_meta.get(fid, ({}, _now()))
        sha = hashlib.sha256(content).hexdigest()
        return {
            "id": fid, "name": name, "content_type": mime, "size": len(content), "etag": sha[:32],
            "checksums": {"sha256": sha, "md5": hashlib.md5(content).hexdigest()}, "metadata": meta,
            "created_at": _iso(created), "expires_at": _iso(created + timedelta(days=1)),
            "urls": {"get": f"{self.base_url}/v1/files/{fid}"},
        }

    def prediction_json(self, p: dict[str, Any]) -> dict[str, Any]:
        status = self._status(p)
        terminal = status in ("succeeded", "failed", "canceled", "aborted")
        base = self.base_url
        out = {
            "id": p["id"], "model": p["slug"], "version": p["version"], "input": p["input"],
            "output": self._output_for(p) if status == "succeeded" else None,
            "data_removed": False, "error": self.error_message if status == "failed" else None,
            "status": status, "created_at": _iso(p["created"]), "source": "api", "logs": "",
            "started_at": _iso(p["created"]) if status != "starting" else None,
            "completed_at": _iso(p["created"] + timedelta(seconds=self._latency(p["slug"]))) if terminal else None,
            "urls": {"get": f"{base}/v1/predictions/{p['id']}", "cancel": f"{base}/v1/predictions/{p['id']}/cancel",
                     "web": f"https://replicate.com/p/{p['id']}"},
            "metrics": {"predict_time": max(self._latency(p["slug"]), 0.5), "total_time": self._latency(p["slug"])} if terminal else {},
        }
        return out


class _Handler(BaseHTTPRequestHandler):
    fake: FakeReplicate
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake.connections += 1

    # -- plumbing --
    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None,
              content_type: str = "application/json") -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self._log(status)  # before answering: a client that got its answer sees its request counted
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _problem(self, status: int, detail: str, title: str = "", headers: dict[str, str] | None = None) -> None:
        if self.fake.echo_auth:
            detail = f"{detail} (request authorization: {self.headers.get('Authorization', '')})"
        self._send(status, {"type": "about:blank", "title": title or detail, "status": status, "detail": detail},
                   headers=headers, content_type="application/problem+json")

    def _log(self, status: int) -> None:
        with self.fake._lock:
            self.fake.requests.append({"method": self.command, "path": self.path, "status": status,
                                       "prefer": self.headers.get("Prefer"), "time": time.time()})

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        ok = auth.startswith("Bearer ") and len(auth) > 7
        if ok and self.fake.token is not None:
            ok = auth == f"Bearer {self.fake.token}"
        if not ok:
            self._problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        return ok

    # -- verbs --
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        f = self.fake
        if path.startswith("/outputs/"):
            return self._download(path.rsplit("/", 1)[1])
        if not self._authorized():
            return
        m = re.fullmatch(r"/v1/predictions/([^/]+)", path)
        if m:
            with f._lock:
                if f.poll_5xx > 0 or (f.rate_poll_5xx and f._rng.random() < f.rate_poll_5xx):
                    f.poll_5xx = max(0, f.poll_5xx - 1)
                    return self._problem(500, "Internal server error")
                p = f.predictions.get(m.group(1))
                body = f.prediction_json(p) if p else None
            return self._send(200, body) if body else self._problem(404, "Not found")
        if path == "/v1/predictions":
            cursor = int(parse_qs(parts.query).get("cursor", ["0"])[0])
            with f._lock:
                if f.list_5xx > 0:
                    f.list_5xx -= 1
                    return self._problem(500, "Internal server error")
                ids = list(reversed(f._order))
                page = [f.prediction_json(f.predictions[i]) for i in ids[cursor:cursor + 100]]
                nxt = f"{f.base_url}/v1/predictions?cursor={cursor + 100}" if cursor + 100 < len(ids) else None
                prev = f"{f.base_url}/v1/predictions?cursor={max(0, cursor - 100)}" if cursor else None
            return self._send(200, {"next": nxt, "previous": prev, "results": page})
        m = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/versions/([^/]+)", path)
        if m:
            slug = f"{m.group(1)}/{m.group(2)}"
            if VERSIONS.get(m.group(3)) != slug:
                return self._problem(404, "Not found")
            return self._send(200, {"id": m.group(3), "created_at": "2023-06-01T00:00:00Z", "cog_version": "0.8.0",
                                    "openapi_schema": {"components": {"schemas": {"Output": {"type": "string", "format": "uri"}}}}})
        m = re.fullmatch(r"/v1/files/([^/]+)(/download)?", path)
        if m:
            item = f.files.get(m.group(1))
            if item is None:
                return self._problem(404, "Not found")
            if m.group(2):
                return self._send(200, raw=item[0], content_type=item[1])
            return self._send(200, f.file_json(m.group(1)))
        return self._problem(404, "Not found")

    def _download(self, name: str) -> None:
        f = self.fake
        with f._lock:
            item = f.outputs.get(name)
            fault = None
            if f.download_fault and f.download_faults > 0:
                fault = f.download_fault
                f.download_faults -= 1
            elif f.download_rates:
                fault = f._draw(f.download_rates)
        if item is None:
            return self._problem(404, "Not found")
        blob, mime = item
        if fault == "404":
            return self._problem(404, "Not found")
        if fault == "html":
            return self._send(200, raw=b"<!doctype html><html><body>Gateway error</body></html>", content_type="text/html")
        if fault == "garbage":  # not media at all, served as if it were
            return self._send(200, raw=b"\x00garbage" * 64, content_type=mime)
        if f.download_delay:  # slow: half the bytes, a stall, the rest
            self.send_response(200)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob[: len(blob) // 2])
            self.wfile.flush()
            time.sleep(f.download_delay)
            self.wfile.write(blob[len(blob) // 2:])
            self._log(200)
            return
        if fault == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(blob)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(blob[: len(blob) // 2])
            self.wfile.flush()
            self.close_connection = True
            self._log(200)
            return
        self._send(200, raw=blob, content_type=mime)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        f = self.fake
        raw = self._body()
        if not self._authorized():
            return
        if path == "/v1/files":
            return self._upload(raw)
        m = re.fullmatch(r"/v1/predictions/([^/]+)/cancel", path)
        if m:
            with f._lock:
                p = f.predictions.get(m.group(1))
                if p is None:
                    return self._problem(404, "Not found")
                if f._status(p) not in ("succeeded", "failed", "aborted"):
                    p["canceled"] = True
                body = f.prediction_json(p)
            return self._send(200, body)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._problem(400, "Invalid JSON")
        m = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", path)
        if m:
            slug, version = f"{m.group(1)}/{m.group(2)}", None
            allowed = {"input", "webhook", "webhook_events_filter", "stream"}
        elif path == "/v1/predictions":
            ref = str(body.get("version", ""))
            version = ref.split(":", 1)[1] if ":" in ref else ref
            slug = VERSIONS.get(version)
            if slug is None:
                return self._problem(422, f"- version: Invalid version or not permitted: {ref}", "Invalid version")
            allowed = {"version", "input", "webhook", "webhook_events_filter", "stream"}
        else:
            return self._problem(404, "Not found")
        if slug not in SCHEMAS:
            return self._problem(404, f"Model {slug} not found")
        if version is None and slug in VERSIONS.values():
            return self._problem(422, "This model needs a version: POST /v1/predictions with version", "Invalid request")
        extra = set(body) - allowed
        if extra or "input" not in body:
            return self._problem(422, f"- body: unexpected {sorted(extra)} or missing input", "Invalid request")
        with f._lock:
            f.create_bodies.append({"slug": slug, "path": path, "body": body, "prefer": self.headers.get("Prefer")})
            if f.create_429 > 0 or (f.rate_429 and f._rng.random() < f.rate_429):
                f.create_429 = max(0, f.create_429 - 1)
                return self._problem(429, "Request was throttled. Your rate limit resets in ~1s.", "Too Many Requests",
                                     headers={"Retry-After": f.retry_after})
            if f.create_5xx > 0 or (f.rate_5xx and f._rng.random() < f.rate_5xx):
                f.create_5xx = max(0, f.create_5xx - 1)
                return self._problem(500, "Internal server error")
            fail_after = f.rate_5xx_after and f._rng.random() < f.rate_5xx_after
        errors = validate_input(slug, body["input"], file_exists=self._file_exists)
        with f._lock:
            if f.create_422 > 0:
                f.create_422 -= 1
                errors = errors or ["input.prompt: flagged by the input checker (fake)"]
        if errors and f.echo_auth:
            errors = errors + [f"request authorization: {self.headers.get('Authorization', '')}"]
        if errors:
            return self._send(422, {"type": "about:blank", "title": "Input validation failed", "status": 422,
                                    "detail": "\n".join("- " + e for e in errors),
                                    "invalid_fields": [{"field": e.split(":", 1)[0], "description": e} for e in errors]},
                              content_type="application/problem+json")
        p = f.create_prediction(slug, version, body["input"])
        with f._lock:
            drop = f.create_drop > 0
            f.create_drop = max(0, f.create_drop - 1)
        if drop:  # the answer is lost on the way back: the client sees the connection close
            self._log(0)
            self.close_connection = True
            return
        with f._lock:
            if f.create_5xx_after > 0 or fail_after:
                f.create_5xx_after = max(0, f.create_5xx_after - 1)
                return self._problem(500, "Internal server error")
        wait = self._prefer_wait()
        if wait is not None:
            lat = f._latency(slug)
            if lat <= wait:
                time.sleep(max(0.0, lat - (time.monotonic() - p["created_mono"])) + 0.001)
        with f._lock:
            pj = f.prediction_json(p)
            if wait is not None and pj["status"] == "processing":
                pj["status"], pj["output"], pj["started_at"] = "starting", None, None  # never partial (§2.3)
        terminal = pj["status"] in ("succeeded", "failed", "canceled", "aborted")
        self._send(201 if terminal else 202, pj, headers={"Location": pj["urls"]["get"]})

    def _prefer_wait(self) -> float | None:
        prefer = self.headers.get("Prefer")
        if not prefer:
            return None
        m = re.fullmatch(r"wait(=([1-9]|[1-9][0-9]|60))?", prefer.strip())
        if not m:
            return None
        return float(m.group(2)) if m.group(2) else 60.0

    def _file_exists(self, url: str) -> bool:
        path = urlsplit(url).path
        m = re.fullmatch(r"/v1/files/([^/]+)", path)
        return bool(m and m.group(1) in self.fake.files)

    def _upload(self, raw: bytes) -> None:
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return self._problem(400, "Expected multipart/form-data")
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
        fields: dict[str, tuple[bytes, str | None, str]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_payload(decode=True) or b"", part.get_filename(), part.get_content_type())
        if "content" not in fields:
            return self._problem(422, "- content: required", "Invalid request")
        content, filename, mime = fields["content"]
        if len(content) > 100 * 1024 * 1024:
            return self._problem(413, "Files must be less than 100MB in size")
        fid = uuid.uuid4().hex[:24]
        meta = json.loads(fields["metadata"][0] or b"{}") if "metadata" in fields else {}
        with self.fake._lock:
            self.fake.files[fid] = (content, mime, filename or "file")
            self.fake.file_meta[fid] = (meta, _now())
            self.fake.uploads += 1
        self._send(201, self.fake.file_json(fid))
