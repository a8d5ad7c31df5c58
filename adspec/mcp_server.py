"""`adspec mcp`: a Model Context Protocol server over stdio (the official `mcp` SDK), so an agent
can drive adspec the way a person does: list the ads, validate, see the plan, estimate, build
under the budget, follow the status, and read and edit a beat. Every tool returns structured
results (JSON objects); a failure (an unknown ad, a stale edit, a refused or failed build) is an
error result, `isError`, carrying the same object with `ok` false, `error` and `field`. Builds run
`adspec build AD` in a child process, one ad at a time (a queue like `adspec serve`'s, of this
process: a studio and an agent over one project can build the same ad at once; the request
cache's per-key lock keeps that from paying twice): nothing bypasses the specs, the beat files,
the cache or the budget.

There is no approve tool, on purpose: approving a storyboard before its video is paid for is a
person's act (`adspec approve`, reviewed in git), not an agent's.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
from mcp.server.mcpserver import MCPServer

from . import __version__
from .config import load_settings
from .errors import AdspecError, SpecError, SpecWarning, error_line

log = logging.getLogger("adspec.mcp")

INSTRUCTIONS = """adspec builds AI video ads from YAML specs (specs/<ad>.yaml) and beat files
(specs/<ad>.beats.yaml). Typical loop: list_ads -> estimate -> build -> status; to change an ad,
read_beat, edit_beat (pass the sha256 you read), estimate, build. Builds never go over the
budget (ADSPEC_BUDGET_USD): an over-budget build is refused with the reason."""


def _file_path(url: str) -> str:
    """A studio file URL (/files/<ad>/..., quoted, maybe ?v=) as the path under build/ it serves:
    an agent opens paths, and a variant's `@` is `%40` in the URL."""
    return "build/" + unquote(url.split("?")[0].removeprefix("/files/"))


def _failed(result: dict[str, Any]) -> Any:
    """A tool's failure as MCP says to report one: an error result (`isError`, which a host shows its
    model), carrying the same object as structured content: `ok` false, `error`, `field`."""
    from mcp.types import CallToolResult, TextContent

    return CallToolResult(content=[TextContent(type="text", text=json.dumps(result))], structured_content=result,
                          is_error=True)


def _error(e: Exception) -> Any:
    from .serve.project import NotFound

    text = error_line(e) or f"{type(e).__name__}: {e}"
    field = "ad" if isinstance(e, NotFound) else getattr(e, "field", None)  # every tool's unknown ad, as REST says
    return _failed({"ok": False, "error": text, "field": field})


def argument_problem(tool: str, takes: dict[str, Any], model: Any, arguments: dict[str, Any]) -> dict[str, Any] | None:
    """adspec's error object for arguments a tool does not take or cannot read (None: fine): an
    unknown one was ignored (`timeout: 30` for `timeout_s` waited 900 s) and a bad one said in
    the SDK's pydantic text, unlike every other failure of these tools."""
    import difflib

    from pydantic import ValidationError

    from .spec_checks import field_message

    names = list(takes)
    for key in arguments:
        if key not in takes:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return {"ok": False, "error": f"{tool}: unknown argument '{key}'{hint}; it takes: {', '.join(names) or 'none'}",
                    "field": key}
    try:
        model.model_validate(arguments)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc)
        return {"ok": False, "error": f"{tool}: {where}: {field_message(err, model, loc)}", "field": where}
    return None


class _CheckedServer(MCPServer):
    """An MCPServer whose tools answer wrong arguments with adspec's error object."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            problem = argument_problem(name, tool.parameters.get("properties", {}), tool.fn_metadata.arg_model, arguments)
            if problem is not None:
                return _failed(problem)
        return await super().call_tool(name, arguments, context)


def create_server() -> MCPServer:
    """The MCP server over the project in the working directory (ADSPEC_SPECS etc. apply)."""
    from .serve import live, project
    from .serve.builds import DONE, FAILED, QUEUED, RUNNING, BuildQueue, estimate_ad

    settings = load_settings()
    queue = BuildQueue(Path.cwd(), settings=settings)
    started = False

    def ensure_queue() -> None:
        nonlocal started
        if not started:
            queue.start()
            started = True

    server = _CheckedServer("adspec", instructions=INSTRUCTIONS, version=__version__)

    @server.tool()
    def list_ads() -> dict[str, Any]:
        """Every ad under specs/ (variants expanded) with its build state, progress and spend."""
        try:
            out = []
            for ad, spec in project.list_ads(settings):
                v = live.ad_view(settings, queue, ad)
                out.append({"ad": ad, "spec": project.shown(spec, settings), "state": v["state"],
                            "progress": v["progress"], "spent_usd": v["cost"]["spent_usd"],
                            "final": f"build/{ad}/final.mp4" if v["final"] else None, "error": v["error"]})
            return {"ok": True, "ads": out}
        except Exception as e:
            return _error(e)

    @server.tool()
    def validate(paths: list[str] | None = None) -> dict[str, Any]:
        """Check specs and beat files (default: all of specs/): every error with file, line and field."""
        from .validate import validate_paths

        targets = [Path(p) if Path(p).is_absolute() else settings.specs_dir.parent / p for p in (paths or [])]
        for t in targets:
            if not _inside(t, settings.specs_dir):
                return _failed({"ok": False, "error": f"{t} is not under specs/", "field": "paths"})
        found = validate_paths(targets or [settings.specs_dir], settings.specs_dir.parent)
        errors = [e for e in found if not isinstance(e, SpecWarning)]

        def row(e: SpecError) -> dict[str, Any]:
            return {"file": e.path, "line": e.line, "field": e.field, "message": e.message, "text": e.one_line()}

        return {"ok": not errors, "errors": [row(e) for e in errors],
                "warnings": [row(e) for e in found if isinstance(e, SpecWarning)]}

    @server.tool()
    def plan(ad: str) -> dict[str, Any]:
        """The plan a build of `ad` would use now: beats, timing, chunks, rendered prompts, the
        spoken line and super of each beat in the ad's language, what it shows, its own models.
        Made in memory: nothing is written and no planner is paid (`stand_in` is true when the live
        planner would still have to run and the offline planner's plan is shown in its place)."""
        from .plan_step import dry_plan

        try:
            dp = dry_plan(ad, project.spec_of(settings, ad))
        except Exception as e:
            return _error(e)
        p = dp.plan
        return {"ok": True, "ad": ad, "title": p.title, "duration": p.duration, "aspect_ratio": p.aspect_ratio,
                "resolution": p.resolution, "language": p.language,
                "models": {"image": p.image_model, "video": p.video_model, "music": p.music_model,
                           "voice": p.voice_model if p.voiced else None},
                "stand_in": dp.stand_in, "music": {"prompt": p.music_prompt, "bpm": p.bpm},
                "beats": [{"id": b.id, "type": b.type, "start": b.start, "duration": b.duration, "clips": list(b.clips),
                           "image_prompt": b.image_prompt, "motion_prompt": b.motion_prompt,
                           "voiceover": b.voiceover, "on_screen": b.on_screen,
                           "shows": [r["name"] for r in b.references or ()],
                           "models": {"image": p.image_model_of(b), "video": p.video_model_of(b)}} for b in p.beats]}

    @server.tool()
    def estimate(ad: str) -> dict[str, Any]:
        """What building `ad` now would pay (cache-aware, calls nothing paid), and whether it fits
        the budget (`refusal` is the budget's message when it does not)."""
        try:
            return {"ok": True, **estimate_ad(ad, project.spec_of(settings, ad))}
        except Exception as e:
            return _error(e)

    @server.tool()
    async def build(ad: str, wait: bool = True, timeout_s: float = 900.0) -> dict[str, Any]:
        """Build `ad` (doit, through the request cache) unless its estimate is over the budget; with
        `wait`, return when the build ends or after `timeout_s` seconds (`timed_out`: it goes on; ask
        `status`). Refused builds say why and pay nothing."""
        if not timeout_s > 0:
            return _failed({"ok": False, "error": f"timeout_s must be a number of seconds above 0 (got {timeout_s})",
                            "field": "timeout_s"})
        try:
            spec = project.spec_of(settings, ad)
            est = await anyio.to_thread.run_sync(estimate_ad, ad, spec)
        except Exception as e:
            return _error(e)
        refusal = est["refusal"] or est["error"]
        if refusal:
            return _failed({"ok": False, "ad": ad, "started": False, "refused": refusal, "error": refusal,
                            "estimate_usd": est["total_usd"], "budget_usd": est["budget_usd"]})
        ensure_queue()
        queue.request(ad, "mcp")
        if wait:
            deadline = time.time() + timeout_s
            while queue.busy(ad) and time.time() < deadline:
                await anyio.sleep(0.2)
        else:  # until its process has started: a started build outlives this server, a queued one does not
            deadline = time.time() + 10
            while (r := queue.get(ad)) is not None and r.state == QUEUED and time.time() < deadline:
                await anyio.sleep(0.05)
        run = queue.get(ad)
        # a build of the ad that was running when asked: this one follows it (said, not "started")
        behind = run is not None and (run.state == QUEUED or (run.state == RUNNING and run.again))
        v = live.seed_status(settings, queue, ad)
        out = {"ok": run is not None and run.state != FAILED, "ad": ad, "started": not behind, "queued": behind,
               "estimate_usd": est["total_usd"], "budget_usd": est["budget_usd"], "state": v["status"],
               "done": run is not None and run.state == DONE, "timed_out": wait and queue.busy(ad),
               "final": f"build/{ad}/final.mp4" if v["final_video_url"] else None, "error": v["error"]}
        return out if out["ok"] else _failed(out)  # a build that failed is the tool's error: the model is shown it

    @server.tool()
    def status(ad: str) -> dict[str, Any]:
        """The ad's build status: state, progress (percent), phase, chunk i of n, spend, error, files."""
        try:
            project.spec_of(settings, ad)
        except Exception as e:
            return _error(e)
        s = live.seed_status(settings, queue, ad)
        files = {k: (_file_path(v) if isinstance(v, str) else v)
                 for k, v in (("final", s["final_video_url"]), ("video", s["stitched_video_url"]))}
        return {"ok": True, "ad": ad, "state": s["status"], "progress": s["progress"], "phase": s["current_phase"],
                "current_chunk_index": s["current_chunk_index"], "total_chunks": s["total_chunks"],
                "spent_usd": s["cost_usd"], "error": s["error"], "files": files,
                "storyboards": [_file_path(u) for u in s["animatic_urls"]]}

    @server.tool()
    def read_beat(ad: str, beat_id: str | None = None) -> dict[str, Any]:
        """The ad's beats as written in its beat file (or the spec's inline beats), with the file's
        sha256 to pass to edit_beat; one beat with `beat_id`."""
        try:
            src = project.read_beats(settings, ad)
        except Exception as e:
            return _error(e)
        beats = src["beats"]
        if beat_id is not None:
            beats = [b for b in beats if b["id"] == beat_id]
            if not beats:
                return _failed({"ok": False, "error": f"{src['file']}: no beat with id '{beat_id}'",
                                "field": "beat_id"})
        return {"ok": True, **src, "beats": beats}

    @server.tool()
    def edit_beat(ad: str, beat_id: str, fields: dict[str, str], sha256: str) -> dict[str, Any]:
        """Set a beat's text fields (e.g. image_prompt, motion_prompt) like a hand edit: comments and
        order kept, checked as `adspec validate` does, refused when the file changed since you read
        it (pass read_beat's sha256). Does not build: call estimate and build next."""
        try:
            project.spec_of(settings, ad)
        except Exception as e:
            return _error(e)
        try:
            return {"ok": True, **project.edit_beat(settings, ad, beat_id, fields, sha256)}
        except AdspecError as e:  # the field named as the REST API names it (the stale sha256, ...)
            return _failed({"ok": False, "error": error_line(e) or str(e), "field": project.edit_failure(e, fields)[1]})
        except Exception as e:
            return _error(e)

    return server


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def run_stdio() -> int:
    """`adspec mcp`: serve over stdin/stdout until the client closes them."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # stderr: stdout is the protocol
    create_server().run("stdio")
    return 0
