"""`adspec serve`: the ASGI app (FastAPI) and how it is run (uvicorn).

Routes: `/` the studio (every ad: status, cost, thumbnail), `/ads/<ad>` the ad's live review
page (progress, storyboards and chunks as they land, the final video, editable beats), `/api/...`
(api.py), `/files/<path>` the build folder's artifacts (range requests, right content types),
`/docs` and `/openapi.json` the API's description.
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import socket
import sys
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from ..config import Settings, load_settings
from ..errors import AdspecError
from ..spec_checks import field_message, meant_field
from . import api, project
from .builds import BuildQueue
from .security import TOKEN_ENV, Guard, StartRefused, check_bind, confined

log = logging.getLogger("adspec.serve")

for _type, _ext in (("video/mp4", ".mp4"), ("audio/wav", ".wav"), ("image/webp", ".webp"),
                    ("application/json", ".json"), ("text/html", ".html"), ("image/png", ".png")):
    mimetypes.add_type(_type, _ext)


def _static(name: str) -> str:
    return resources.files("adspec.serve").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def _body_model(request: Request) -> type[BaseModel] | None:
    """The pydantic model of the matched route's JSON body, if it has one."""
    body = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(body, "field_info", None), "annotation", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _field_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or (str(loc[0]) if loc else None)


def _not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of If-None-Match against the file's ETag (`*` matches any)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def _check_range(request: Request, target: Path) -> None:
    """A Range header FileResponse would refuse, refused first as JSON like every other error
    (Starlette answers those in plain text from inside the response)."""
    header = request.headers.get("range")
    if not header or request.headers.get("if-range"):  # with If-Range a bad range may be served whole
        return
    size = target.stat().st_size
    parse = getattr(FileResponse, "_parse_range_header", None)  # Starlette's own parser (private: may go)
    if parse is None:
        return
    try:
        parse(header, size)
    except MalformedRangeHeader as e:
        raise api.ApiError(400, f"the Range header {header[:80]!r} is refused: {str(e.content).rstrip('.')}",
                           "Range") from None
    except RangeNotSatisfiable:
        raise api.ApiError(416, f"the range is outside the file ({size} bytes)", "Range",
                           headers={"Content-Range": f"*/{size}"}) from None


#: the body of every error the server answers (api.error_body and the handlers in create_app)
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error", "type": "object", "required": ["error", "field"],
    "properties": {
        "error": {"type": "string", "title": "Error", "description": "one line, as `adspec validate` words it"},
        "field": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Field",
                  "description": "the field it is about (dotted), if any"},
        "errors": {"type": "array", "title": "Errors", "description": "a request's every invalid field (422)",
                   "items": {"type": "object", "required": ["field", "error"],
                             "properties": {"field": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                                            "error": {"type": "string"}}}},
    },
}


def _with_error_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with FastAPI's validation error shapes replaced by ERROR_SCHEMA."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            answer = (operation.get("responses") or {}).get("422") if isinstance(operation, dict) else None
            if answer is not None:
                answer["description"] = "Invalid request: every invalid field, in adspec's words"
                answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return schema


def create_app(settings: Settings | None = None, *, token: str | None = None, watch: bool = False,
               queue: BuildQueue | None = None) -> FastAPI:
    """The server over the project of `settings` (default: from the environment and cwd)."""
    settings = settings or load_settings()
    queue = queue or BuildQueue(Path.cwd(), settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        watcher = None
        if watch:
            from .watch import Watcher

            watcher = Watcher(settings, queue)
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            queue.stop()

    # /docs and /redoc with Swagger UI and ReDoc served from the package: no CDN, works offline
    app = FastAPIOffline(title="adspec", summary="Live studio and the seed's REST API over adspec's build",
                  description="Every build goes through the specs, the beat files, the request cache and the budget. "
                              "Errors are JSON: {\"error\": \"...\", \"field\": \"...\"}.",
                  version="1", lifespan=lifespan)
    app.state.ctx = api.Context(settings, queue)
    app.add_middleware(Guard, token=token)
    app.include_router(api.router)
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's schema with the 422 every route documents as it is sent: adspec's error
        object, not FastAPI's `HTTPValidationError` (the handler below replaces that body)."""
        if app.openapi_schema is None:
            app.openapi_schema = _with_error_schema(base_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(api.ApiError)
    async def _api_error(request: Request, e: api.ApiError) -> JSONResponse:
        return api.error_body(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = []
        body = _body_model(request)  # its fields' bounds and names: the words `adspec validate` uses
        found = list(e.errors())
        # a misspelt field is one error, its "unknown field (did you mean ...)", as in a spec
        misspelt = {(*loc[:-1], meant) for err in found if err.get("type") == "extra_forbidden" and body is not None
                    and len(loc := tuple(err.get("loc", ()))) > 1 and (meant := meant_field(body, loc[1:])) is not None}
        for err in found:
            loc = tuple(err.get("loc", ()))
            if err.get("type") == "missing" and loc in misspelt:
                continue
            field = _field_of(loc)
            kind = err.get("type", "")
            if kind == "json_invalid":
                message, field = "the body is not valid JSON", "body"
            elif body is not None and loc[:1] == ("body",) and len(loc) > 1:
                message = field_message(err, body, loc[1:])
            elif kind == "missing":
                message = "required"
            elif kind == "extra_forbidden":
                message = "unknown field"
            else:
                message = err.get("msg", "invalid")
            errors.append({"field": field, "error": message})
        first = errors[0] if errors else {"field": None, "error": "invalid request"}
        return JSONResponse({"error": f"{first['field']}: {first['error']}" if first["field"] else first["error"],
                             "field": first["field"], "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        message = e.detail if isinstance(e.detail, str) else "request refused"
        if e.status_code == 413:
            message = "the request body is too large"
        return JSONResponse({"error": message, "field": "body" if e.status_code == 413 else None},
                            status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(AdspecError)
    async def _adspec(request: Request, e: AdspecError) -> JSONResponse:
        status = 404 if isinstance(e, project.NotFound) else 409 if isinstance(e, project.StaleEdit) else 422
        return JSONResponse({"error": e.one_line(), "field": getattr(e, "field", None)}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:  # never a traceback to the client
        log.exception("adspec serve: %s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(e).__name__}); see the server's log", "field": None},
                            status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def studio() -> str:
        return _static("index.html")

    @app.get("/ads/{ad}", response_class=HTMLResponse, include_in_schema=False)
    def ad_page(ad: str) -> str:
        try:
            project.spec_of(settings, ad)
        except project.NotFound as e:
            raise api.ApiError(404, str(e), "ad") from None
        return _static("ad.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Any:
        if name not in ("studio.js", "studio.css"):
            raise api.ApiError(404, f"no static file {name}", "name")
        if name.endswith(".js"):
            return HTMLResponse(_static(name), media_type="text/javascript")
        report_css = resources.files("adspec").joinpath("report").joinpath("style.css.j2").read_text(encoding="utf-8")
        return HTMLResponse(report_css + "\n" + _static(name), media_type="text/css")  # the review page's look

    @app.get("/files/{path:path}", include_in_schema=True, tags=["seed"],
             summary="An artifact under build/ (video with range requests; HEAD too, for its size and type)")
    def files(path: str, request: Request) -> Any:
        target = confined(settings.build_dir, path)
        if target is None:
            raise api.ApiError(404, f"no file {path} under build/", "path")
        _check_range(request, target)
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        response = FileResponse(target, media_type=media_type, stat_result=os.stat(target))
        if _not_modified(request.headers.get("if-none-match"), response.headers["etag"]):
            # the page's storyboards, clips and finals asked again: the browser's copy is current
            return Response(status_code=304, headers={k: response.headers[k] for k in ("etag", "last-modified")})
        return response

    # HEAD (`curl -I`, download tools) answers as GET does, without the body (it was 405)
    app.add_api_route("/files/{path:path}", files, methods=["HEAD"], include_in_schema=False)

    return app


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything starts: an address in use (another studio on
    that port) is one line of ours and exit 2, not uvicorn's log line after the app has started."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise StartRefused(f"adspec serve: cannot listen on {shown}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart after a stop binds
        sock.bind(address)
    except OSError as e:
        sock.close()
        why = (e.strerror or str(e)).lower()
        hint = f" (another server is there: stop it, or choose another port with --port {port + 1})" \
            if e.errno == errno.EADDRINUSE else ""
        raise StartRefused(f"adspec serve: cannot listen on {shown}: {why}{hint}") from None
    return sock


def serve(host: str = "127.0.0.1", port: int = 8000, *, watch: bool = False) -> int:
    """Run the server until interrupted. Refuses (exit 2) to bind beyond loopback without a token,
    and (exit 2) when the address cannot be bound."""
    import uvicorn

    token = os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(host, token)
        sock = listen(host, port)
    except StartRefused as e:
        print(str(e), file=sys.stderr)
        return 2
    settings = load_settings()
    app = create_app(settings, token=token, watch=watch)
    logging.getLogger("adspec.serve").setLevel(logging.INFO)  # a line when a build starts and ends (its terminal)
    shown = f"[{host}]" if ":" in host else host
    closing = app.state.ctx.closing

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # the address is announced only once it answers
                print(f"adspec serve: http://{shown}:{port}/ (API: /docs){' — watching specs/' if watch else ''}"
                      f"{' — token required' if token else ''}", flush=True)

        def handle_exit(self, sig: int, frame: Any) -> None:
            closing.set()  # end the event streams, or they would hold the graceful shutdown open
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5)
    with sock:
        _Server(config).run(sockets=[sock])
    return 0
