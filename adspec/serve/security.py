"""Safe by default: what `adspec serve` lets in.

- It binds loopback. Any other host needs ADSPEC_SERVE_TOKEN, or it refuses to start.
- With a token set, every request (API, page, files, /docs) carries it: `Authorization: Bearer
  <token>`, or the page's cookie, set by opening the page once as `/?token=<token>` (the browser
  then sends it with the page's fetches, its event stream, images and videos). Else 401.
- Without a token (loopback only) the Host header must name loopback, so a web page elsewhere
  cannot reach the server through DNS rebinding; and a request that changes something and comes
  from a page of another origin (its Origin header) is refused, so no other site can post to it.
- Files: only under specs/ and build/, resolved (symlinks included) before the check.
- Bodies: at most 1 MiB (uploads: 10 MiB an image), with a Content-Length.
- Uploads: size-limited, and must decode as a PNG, JPEG or WebP image.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_ENV = "ADSPEC_SERVE_TOKEN"
COOKIE = "adspec_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # one image
MAX_UPLOAD_FILES = 8
MAX_BODY_BYTES = 1024 * 1024  # any other request body
MAX_UPLOAD_BODY = MAX_UPLOAD_FILES * MAX_UPLOAD_BYTES + 64 * 1024
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


class StartRefused(Exception):
    """The server will not start as asked (e.g. beyond loopback without a token)."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: the shortest token adspec serves beyond loopback with (`python -c "import secrets; print(secrets.token_urlsafe())"`)
MIN_TOKEN_CHARS = 16


def check_bind(host: str, token: str | None) -> None:
    if is_loopback(host):
        return
    if not token:
        raise StartRefused(f"adspec serve: refusing to listen on {host} without a token: set {TOKEN_ENV} "
                           f"(clients then send `Authorization: Bearer <token>`), or serve on 127.0.0.1")
    if len(token) < MIN_TOKEN_CHARS:  # a guessable token is no lock on a network
        raise StartRefused(f"adspec serve: refusing to listen on {host} with an {TOKEN_ENV} of {len(token)} characters: "
                           f"use at least {MIN_TOKEN_CHARS}, e.g. `python -c \"import secrets; "
                           f"print(secrets.token_urlsafe())\"`")


def _json(status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, bytes, list]:
    data = json.dumps(body).encode("utf-8")
    return status, data, [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                          *(headers or [])]


class Guard:
    """ASGI middleware applying the rules above to every HTTP request."""

    def __init__(self, app: ASGIApp, token: str | None):
        self.app = app
        self.token = token or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._check(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, body, hdrs = refusal
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[int, bytes, list] | None:
        method = scope.get("method", "GET")
        host = headers.get("host", "")
        hostname = urlsplit(f"//{host}").hostname or ""
        if self.token is None and not is_loopback(hostname):
            return _json(403, {"error": f"host '{host}' is not loopback; this server answers on 127.0.0.1 only "
                                        f"(set {TOKEN_ENV} to serve other hosts)", "field": "Host"})
        origin = headers.get("origin")
        # a change comes from this server's own page: another site's form or script (an `Origin:
        # null` one too: a sandboxed frame, a file:// page) is refused
        if method not in ("GET", "HEAD", "OPTIONS") and origin:
            if origin == "null" or urlsplit(origin).netloc != host:
                return _json(403, {"error": f"cross-origin request from {origin} refused", "field": "Origin"})
        length = headers.get("content-length", "")
        limit = MAX_UPLOAD_BODY if scope.get("path") == "/api/upload" else MAX_BODY_BYTES
        if length.isdigit() and int(length) > limit:
            return _json(413, {"error": f"the request body is larger than {limit // 1024} KiB", "field": "body"})
        if not length and "chunked" in headers.get("transfer-encoding", "").lower():
            return _json(411, {"error": "send the body with a Content-Length", "field": "Content-Length"})
        if self.token is None:
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[0]
        if given is not None and method == "GET" and hmac.compare_digest(given.encode(), self.token.encode()):
            # open the page once as /?token=...: keep it in a cookie, drop it from the address bar
            rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs], doseq=True)
            path = "/" + str(scope.get("path", "/")).lstrip("/")  # `//evil.example/x` is another site's address
            location = path + (f"?{rest}" if rest else "")
            set_cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            return 303, b"", [(b"location", location.encode("latin-1")), (b"set-cookie", set_cookie.encode("latin-1")),
                              (b"content-length", b"0")]
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        for candidate in (bearer, cookie):
            if candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode()):
                return None
        what = "wrong token" if bearer or cookie or given is not None else "missing bearer token"
        return _json(401, {"error": f"{what}: send `Authorization: Bearer <token>` ({TOKEN_ENV}), or open the page "
                                    f"once as /?token=<token>", "field": "Authorization"},
                     [(b"www-authenticate", b'Bearer realm="adspec"')])


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def confined(root: Path, rel: str) -> Path | None:
    """`root/rel` when it is a regular file inside `root` (after resolving symlinks) and no part
    of `rel` is hidden (doit's state, locks, temp files); else None."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p]
    if not parts or any(p.startswith(".") or "\0" in p for p in parts):
        return None
    real_root = Path(root).resolve()
    try:
        target = (real_root.joinpath(*parts)).resolve()
        target.relative_to(real_root)
    except (ValueError, OSError, RuntimeError):
        return None
    return target if target.is_file() else None


def image_suffix(data: bytes) -> str | None:
    """'.png' / '.jpg' / '.webp' when `data` is a whole image of those formats, else None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # verify() does not decode the pixels: a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return IMAGE_FORMATS.get(fmt or "")
