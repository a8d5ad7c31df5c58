"""A fake OpenAI API on 127.0.0.1: POST /v1/chat/completions with spec-complete payloads, and
POST /v1/audio/speech (CreateSpeechRequest checked; answers a WAV of speech-like sound about as
long as the text would be spoken; `speech` lists the bodies, one per request).

    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)      # ends in /v1
        fake.script.extend(["refusal", "ok"])                      # per-request modes, then "ok"

Modes: "ok" (the responder's plan), "refusal", "invalid_json", "length" (cut off),
"rule_break" (valid JSON, durations that do not add up), "429" (with retry-after-ms),
"500", "401", "drop" (the request is read, then the connection is closed without an answer:
the model may have run and billed), "html" (status 200, an HTML page: a proxy's). `responder(body) -> dict` makes the plan for "ok" (default: a valid plan built
from the request's <spec>, <duration> and <library> blocks and the schema's type enum).
`rates` (e.g. {"429": 0.2, "500": 0.1}) draws a mode per request (seeded RNG) when the script
is empty; `echo_auth` makes error messages quote the request's Authorization header (a careless
server: adspec must still never show the key); `quote_auth` makes a refusal and an "ok" plan's
prompts quote it (a model that repeats what it was sent). `hold` (an Event, set by default):
cleared, every request is recorded and then waits for it before being answered.
Counters: requests (bodies), count, headers, answered (replies with a plan or refusal: billed).
usage = (prompt_tokens, completion_tokens) per reply.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


def default_plan(body: dict[str, Any]) -> dict[str, Any]:
    """A plan that keeps the library's rules, from what the planner's prompt carries."""
    text = "\n".join(m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user")
    duration = int(re.search(r"<duration>(\d+)</duration>", text).group(1))
    lib = json.loads(re.search(r"<library[^>]*>\s*(.*?)\s*</library>", text, re.S).group(1))
    types = {row["type"]: row for row in lib}
    first = next(t for t, r in types.items() if r["position"] == "first")
    closing = next(t for t, r in types.items() if r["position"] == "closing")
    middle = [t for t, r in types.items() if r["position"] == "middle"]
    repeat = next(t for t in middle if types[t]["repeatable"])
    seq = [first]
    rest = duration - types[first]["duration"]["ideal"] - types[closing]["duration"]["ideal"]
    used = 0
    for t in middle:
        if used + types[t]["duration"]["min"] > rest:
            break
        seq.append(t)
        used += types[t]["duration"]["ideal"]
        if used >= rest:
            break
    seq.append(closing)
    durs = [types[t]["duration"]["ideal"] for t in seq]
    # fit the total: stretch/shrink within ranges, then add repeats of a repeatable middle type
    def fit() -> int:
        diff = duration - sum(durs)
        for i, t in enumerate(seq):
            lo, hi = types[t]["duration"]["min"], types[t]["duration"]["max"]
            step = max(lo - durs[i], min(hi - durs[i], diff))
            durs[i] += step
            diff -= step
        return diff

    while fit() > 0:
        seq.insert(-1, repeat)
        durs.insert(-1, types[repeat]["duration"]["min"])
    seen: dict[str, int] = {}
    beats = []
    for t, d in zip(seq, durs):
        seen[t] = seen.get(t, 0) + 1
        bid = t if seen[t] == 1 else f"{t}-{seen[t]}"
        beats.append({"id": bid, "type": t, "duration": d, "image_prompt": f"{t} frame of the product",
                      "motion_prompt": "slow push-in"})
    return {"music": {"prompt": "upbeat electronic bed", "bpm": 120}, "beats": beats}


def speech_seconds(text: str, speed: float = 1.0) -> float:
    """How long a fake voice speaks `text`: about 15 characters a second, like a real one."""
    return round(max(0.4, len(text) / 15.0) / max(speed, 0.25), 3)


class FakeOpenAI:
    def __init__(self, *, responder: Callable[[dict[str, Any]], dict[str, Any]] = default_plan,
                 usage: tuple[int, int] = (1000, 500), latency: float = 0.0):
        self.responder = responder
        self.usage = usage
        self.latency = latency
        self.script: deque[str] = deque()
        self.rates: dict[str, float] = {}
        self.echo_auth = False
        self.quote_auth = False
        self.hold = threading.Event()
        self.hold.set()
        self.dropped = 0
        self.answered = 0
        self._rng = random.Random(0)
        self.requests: list[dict[str, Any]] = []
        self.speech: list[dict[str, Any]] = []  # bodies of POST /v1/audio/speech
        self.speech_failures: list[int] = []  # statuses the next speech requests answer with, in order
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._n = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "FakeOpenAI":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    def _draw(self) -> str:
        x = self._rng.random()
        for mode, rate in self.rates.items():
            if x < rate:
                return mode
            x -= rate
        return "ok"

    def next_mode(self) -> str:
        with self._lock:
            return self.script.popleft() if self.script else self._draw()

    def reply(self, body: dict[str, Any], mode: str, auth: str = "") -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            if mode not in ("429", "500", "401"):
                self.answered += 1
            self._n += 1
            n = self._n
        if mode in ("429", "500", "401"):
            status = int(mode)
            err = {"429": ("Rate limit reached", "requests", "rate_limit_exceeded"),
                   "500": ("The server had an error", "server_error", None),
                   "401": ("Incorrect API key provided", "invalid_request_error", "invalid_api_key")}[mode]
            headers = {"retry-after-ms": "1"} if status == 429 else {}
            return status, {"error": {"message": err[0], "type": err[1], "param": None, "code": err[2]}}, headers
        content: str | None
        refusal = None
        finish = "stop"
        quoted = f" (you sent {auth})" if self.quote_auth else ""
        if mode == "refusal":
            content, refusal = None, "I'm sorry, I can't help with that." + quoted
        elif mode == "invalid_json":
            content = '{"music": {"prompt": "x", "bpm": 120}, "beats": [ {"id": "hook",'
        elif mode == "length":
            content, finish = json.dumps(self.responder(body))[:80], "length"
        elif mode == "rule_break":
            plan = self.responder(body)
            plan["beats"][0]["duration"] += 1  # the durations no longer add up (or leave a range)
            content = json.dumps(plan)
        else:
            plan = self.responder(body)
            if quoted:
                plan["beats"][0]["image_prompt"] += quoted
            content = json.dumps(plan)
        pt, ct = self.usage
        return 200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "gpt-4.1") + "-2025-04-14", "system_fingerprint": "fp_fake", "service_tier": "default",
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        }, {}


SPEECH_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
                 "marin", "cedar"}
SPEECH_FORMATS = {"mp3", "opus", "aac", "flac", "wav", "pcm"}


def speech_errors(body: dict[str, Any]) -> list[str]:
    """The checks of CreateSpeechRequest (openai-openapi): model, input <= 4096, voice, format, speed."""
    errors = []
    for name in ("model", "input", "voice"):
        if name not in body:
            errors.append(f"'{name}' is a required property")
    if not isinstance(body.get("input", ""), str) or len(body.get("input", "")) > 4096:
        errors.append("input must be a string of at most 4096 characters")
    if "voice" in body and body["voice"] not in SPEECH_VOICES:
        errors.append(f"voice {body['voice']!r} is not one of the voices")
    if body.get("response_format", "mp3") not in SPEECH_FORMATS:
        errors.append("response_format is not one of " + ", ".join(sorted(SPEECH_FORMATS)))
    if not 0.25 <= float(body.get("speed", 1.0)) <= 4.0:
        errors.append("speed must be between 0.25 and 4.0")
    extra = set(body) - {"model", "input", "voice", "instructions", "response_format", "speed", "stream_format"}
    if extra:
        errors.append(f"unknown fields: {', '.join(sorted(extra))}")
    return errors


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{int(time.time() * 1000)}")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
            self.close_connection = True

    def _speech(self, raw: bytes) -> None:
        from .replicate_server import make_media

        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self._send(401, {"error": {"message": "Missing bearer", "type": "invalid_request_error", "param": None, "code": None}})
        body = json.loads(raw or b"{}")
        with self.fake._lock:
            self.fake.speech.append(body)
        with self.fake._lock:
            failure = self.fake.speech_failures.pop(0) if self.fake.speech_failures else None
        if failure is not None:
            kind = "rate_limit_exceeded" if failure == 429 else "server_error"
            return self._send(failure, {"error": {"message": f"injected {failure}", "type": kind, "param": None, "code": kind}})
        errors = speech_errors(body)
        if errors:
            return self._send(400, {"error": {"message": "; ".join(errors), "type": "invalid_request_error", "param": None, "code": None}})
        data = make_media("voice", seconds=speech_seconds(body["input"], float(body.get("speed", 1.0))))
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_speech_{len(self.fake.speech)}")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path == "/v1/audio/speech":
            return self._speech(raw)
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": "Not found", "type": "invalid_request_error", "param": None, "code": None}})
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self._send(401, {"error": {"message": "Missing bearer", "type": "invalid_request_error", "param": None, "code": None}})
        body = json.loads(raw or b"{}")
        with self.fake._lock:
            self.fake.requests.append(body)
            self.fake.headers.append({k.lower(): v for k, v in self.headers.items()})
        if self.fake.latency:
            time.sleep(self.fake.latency)
        self.fake.hold.wait(120)
        mode = self.fake.next_mode()
        if mode == "drop":  # read, maybe run and billed, never answered
            with self.fake._lock:
                self.fake.dropped += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "html":  # a proxy's error page with status 200: not a chat completion
            with self.fake._lock:
                self.fake.answered += 1  # the model may have run behind the proxy
            page = b"<html><body>upstream said something</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        status, payload, headers = self.fake.reply(body, mode, self.headers.get("Authorization", ""))
        if status >= 400 and self.fake.echo_auth:
            payload["error"]["message"] += f" (request authorization: {self.headers.get('Authorization', '')})"
        self._send(status, payload, headers)
