"""The HTTP API: the seed's three calls (generate, status, upload) and the studio's calls behind
the live pages (ads, beats, edits, estimates, builds, event streams). Every 4xx is JSON
`{"error": "<one line>", "field": "<the field at fault or null>"}` (see app.py's handlers).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from ..images import asset_problem
from . import live, project, seed
from .builds import BuildQueue, estimate_ad
from .security import MAX_UPLOAD_BODY, MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, image_suffix

router = APIRouter(prefix="/api")


@dataclass
class Context:
    settings: Settings
    queue: BuildQueue
    closing: threading.Event = field(default_factory=threading.Event)  # set when the server stops: streams end


class ApiError(Exception):
    """A request the server refuses: becomes `{"error", "field", ...}` with `status`."""

    def __init__(self, http_status: int, message: str, field: str | None = None, *,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.field, self.extra = http_status, message, field, extra
        self.headers = headers


def ctx(request: Request) -> Context:
    return request.app.state.ctx


def _ad(c: Context, ad: str) -> Any:
    try:
        return project.spec_of(c.settings, ad)
    except project.NotFound as e:
        raise ApiError(404, str(e), "ad") from None


def start_build(c: Context, ad: str, spec_path: Any, reason: str) -> dict[str, Any]:
    """Estimate, then queue the build unless the ad does not validate ("invalid") or is over the
    budget ("refused"): {"build", "estimate", "refusal"}."""
    est = estimate_ad(ad, spec_path)
    refusal = est["error"] or est["refusal"]
    if refusal:
        c.queue.refuse(ad, refusal)
        return {"build": "invalid" if est["error"] else "refused", "estimate": est, "refusal": refusal}
    c.queue.request(ad, reason)
    return {"build": "queued", "estimate": est, "refusal": None}


def _status_and_field(e: Any, fields: dict[str, str], message: str) -> tuple[int, str, str | None]:
    status, field = project.edit_failure(e, fields)
    return status, message, field


def _not_started(started: dict[str, Any]) -> int:
    """The HTTP status of a build not started: 422 for an ad that does not validate, 402 over the budget."""
    return 422 if started["build"] == "invalid" else 402


# ---- the seed's API ---------------------------------------------------------------------------


@router.post("/generate", response_model=seed.GenerateResponse, status_code=202, tags=["seed"],
             summary="Write specs/<slug>.yaml from a prompt and queue its build")
def generate(body: seed.GenerateRequest, request: Request) -> Any:
    c = ctx(request)
    try:
        ad, path = seed.write_spec(c.settings, body)
    except project.SpecError as e:
        raise ApiError(422, e.message, e.field) from None
    started = start_build(c, ad, path, "generate")
    if started["build"] != "queued":
        raise ApiError(_not_started(started), started["refusal"], started["estimate"]["error_field"], video_id=ad,
                       status="refused")
    return {"video_id": ad, "status": "queued"}


@router.get("/status/{video_id}", response_model=seed.StatusResponse, tags=["seed"],
            summary="Progress, storyboards, videos, cost and error of an ad's build")
def status(video_id: str, request: Request) -> Any:
    c = ctx(request)
    try:
        project.spec_of(c.settings, video_id)
    except project.NotFound as e:
        raise ApiError(404, str(e), "video_id") from None
    return live.seed_status(c.settings, c.queue, video_id)


@router.post("/upload", response_model=seed.UploadResponse, tags=["seed"],
             summary="Upload reference images (PNG, JPEG, WebP); returns asset ids for reference_assets",
             max_body_size=MAX_UPLOAD_BODY)
def upload(request: Request, files: Annotated[list[UploadFile], File(description="one or more images")]) -> Any:
    c = ctx(request)
    if len(files) > MAX_UPLOAD_FILES:
        raise ApiError(413, f"at most {MAX_UPLOAD_FILES} files per upload", "files")
    ids = []
    for i, f in enumerate(files):
        data = f.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, f"{f.filename or 'file'} is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB",
                           f"files.{i}")
        # what validate would refuse of it as an asset (too many pixels, another format), then whole?
        why = asset_problem(io.BytesIO(data))
        suffix = None if why else image_suffix(data)
        if suffix is None:
            raise ApiError(415, f"{f.filename or 'file'} {why or 'is not a whole PNG, JPEG or WebP image'}", f"files.{i}")
        ids.append((data, suffix))
    return {"asset_ids": [seed.store_upload(c.settings, data, suffix) for data, suffix in ids]}


# ---- the studio ---------------------------------------------------------------------------------


def ads_view(c: Context) -> list[dict[str, Any]]:
    rows = []
    for ad, spec_path in project.list_ads(c.settings):
        v = live.ad_view(c.settings, c.queue, ad)
        row = {k: v[k] for k in ("ad", "title", "state", "phase", "progress", "cost", "error", "refusal", "thumbnail",
                                 "final")}
        if row["title"] is None:  # never planned: the spec's title, or what stops it from being planned
            title, problem = project.spec_title(spec_path)
            row["title"] = title
            if row["state"] == "not built" and row["error"] is None:
                row["error"] = problem
        rows.append(row)
    return rows


@router.get("/ads", tags=["studio"], summary="Every ad with its status, cost and thumbnail")
def ads(request: Request) -> Any:
    return ads_view(ctx(request))


def _full_view(c: Context, ad: str) -> dict[str, Any]:
    view = live.ad_view(c.settings, c.queue, ad)
    if view["title"] is None:  # never planned: the spec's title (the page's heading showed the name)
        view["title"] = project.spec_title(project.spec_of(c.settings, ad))[0]
    try:
        view["source"] = project.read_beats(c.settings, ad)
    except project.SpecError as e:
        view["source"] = {"error": e.one_line(), "beats": []}
    return view


@router.get("/ads/{ad}", tags=["studio"], summary="One ad's live view and its beats as written")
def ad_detail(ad: str, request: Request) -> Any:
    c = ctx(request)
    _ad(c, ad)
    return _full_view(c, ad)


def _known_ad(ad: str, request: Request) -> str:
    """An event stream's ad, checked before the stream starts (a 404, not a 200 cut short)."""
    _ad(ctx(request), ad)
    return ad


def _ads_listed(request: Request) -> None:
    """The project's ads list before the stream starts (a spec error is a 422, not a 200 cut short)."""
    try:
        project.list_ads(ctx(request).settings)
    except project.SpecError as e:
        raise ApiError(422, e.one_line(), e.field) from None


def _gone(c: Context, request: Request) -> Any:
    async def gone() -> bool:
        return c.closing.is_set() or await request.is_disconnected()

    return gone


@router.get("/ads/{ad}/events", response_class=EventSourceResponse, tags=["studio"],
            summary="Server-sent events: the ad's view each time its build writes")
async def ad_events(request: Request, ad: Annotated[str, Depends(_known_ad)]) -> Any:
    c = ctx(request)
    spec = _ad(c, ad)

    def stamp() -> tuple:
        src = []
        try:
            src = [project.beat_source(ad, spec).path]
        except project.SpecError:
            pass
        return live.stamp(c.settings, c.queue, [ad], [spec, *src])

    def view() -> dict[str, Any]:
        try:
            return _full_view(c, ad)
        except project.NotFound as e:  # its spec was deleted (or renamed) while the page was open
            return {"ad": ad, "gone": True, "error": str(e)}

    async for shown in live.events(view, stamp, _gone(c, request)):
        if shown is not None and shown.get("gone"):
            yield ServerSentEvent(data=shown, event="gone")  # the last event: the page says so, the stream ends
            return
        yield ServerSentEvent(comment="keep-alive") if shown is None else ServerSentEvent(data=shown, event="ad")


@router.get("/events", response_class=EventSourceResponse, tags=["studio"],
            summary="Server-sent events: the list of ads each time a build writes")
async def all_events(request: Request, _: Annotated[None, Depends(_ads_listed)]) -> Any:
    c = ctx(request)

    def stamp() -> tuple:
        ads = project.list_ads(c.settings)
        return live.stamp(c.settings, c.queue, [a for a, _ in ads], [p for _, p in ads])

    async for view in live.events(lambda: ads_view(c), stamp, _gone(c, request)):
        yield ServerSentEvent(comment="keep-alive") if view is None else ServerSentEvent(data=view, event="ads")


@router.post("/ads/{ad}/estimate", tags=["studio"], summary="What building the ad now would pay (`adspec estimate`)")
def ad_estimate(ad: str, request: Request) -> Any:
    c = ctx(request)
    return estimate_ad(ad, _ad(c, ad))


@router.post("/ads/{ad}/build", tags=["studio"], summary="Build the ad (refused over ADSPEC_BUDGET_USD)")
def ad_build(ad: str, request: Request) -> Any:
    c = ctx(request)
    started = start_build(c, ad, _ad(c, ad), "page")
    if started["build"] != "queued":
        raise ApiError(_not_started(started), started["refusal"], started["estimate"]["error_field"],
                       estimate=started["estimate"])
    return started


class BeatEdit(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # `"build": "yes"` is refused, not read as true
    sha256: str | None = Field(description="content hash of the file when it was read (GET /api/ads/{ad})")
    fields: dict[str, str] = Field(min_length=1, description="text field -> new text, e.g. image_prompt")
    build: bool = Field(True, description="start a build of the ad after saving (not over the budget)")


@router.put("/ads/{ad}/beats/{beat_id}", tags=["studio"],
            summary="Edit a beat's text like a hand edit (refused if the file changed since it was read), then build")
def edit_beat(ad: str, beat_id: str, body: BeatEdit, request: Request) -> Any:
    c = ctx(request)
    spec = _ad(c, ad)
    try:
        saved = project.edit_beat(c.settings, ad, beat_id, body.fields, body.sha256)
    except (project.StaleEdit, project.NotFound) as e:
        raise ApiError(*_status_and_field(e, body.fields, str(e))) from None
    except project.SpecError as e:
        raise ApiError(*_status_and_field(e, body.fields, e.one_line())) from None
    out: dict[str, Any] = {**saved, "build": None, "estimate": None, "refusal": None}
    if body.build:
        out.update(start_build(c, ad, spec, f"edit of {beat_id}"))
    return out


def error_body(e: ApiError) -> JSONResponse:
    """The JSON of an error: a 422 lists its errors in `errors` too, as a body's field errors do."""
    body = {"error": e.message, "field": e.field, **e.extra}
    if e.status == 422 and "errors" not in body:
        body["errors"] = [{"field": e.field, "error": e.message}]
    return JSONResponse(body, status_code=e.status, headers=e.headers)


__all__ = ["router", "Context", "ApiError", "error_body"]
