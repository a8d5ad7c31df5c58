"""`adspec mcp` spoken to by the `mcp` SDK's own client over stdio, as an agent's host would:
list, validate, plan, estimate, build, status, read and edit a beat; an over-budget build is
refused with the budget's message and asks nothing of the providers."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from conftest import REPO, Project, small_spec
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"


def _server(project: Project, **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "adspec.cli", "mcp"], cwd=str(project.root),
                                 env=project.run_env(**env))


async def _call(client: Client, tool: str, *, failing: bool = False, **args: Any) -> dict[str, Any]:
    """A tool's structured result; `failing`: the call must come back as MCP's error result (isError,
    which a host shows its model), with the same object: ok false, error, field."""
    result = await client.call_tool(tool, args)
    assert result.is_error is failing, result
    assert isinstance(result.structured_content, dict), result  # structured results
    assert result.structured_content["ok"] is not failing, result
    if failing:  # the text a host shows is that object too
        assert json.loads(result.content[0].text) == result.structured_content, result
    return result.structured_content


def test_mcp_over_stdio_list_estimate_build_status_edit(project: Project) -> None:
    project.write_spec("zip", small_spec())

    async def session() -> None:
        async with Client(_server(project)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"list_ads", "validate", "plan", "estimate", "build", "status", "read_beat", "edit_beat"} <= tools
            listed = await _call(client, "list_ads")
            assert [(a["ad"], a["state"]) for a in listed["ads"]] == [("zip", "not built")]
            assert (await _call(client, "validate"))["ok"] is True
            plan = await _call(client, "plan", ad="zip")
            assert [b["id"] for b in plan["beats"]] == ["hook", "cta"] and plan["beats"][1]["start"] == 3
            # what each beat says and shows, too (they were left out)
            assert {"voiceover", "on_screen", "shows", "models"} <= set(plan["beats"][0]) and plan["language"] == "en"
            est = await _call(client, "estimate", ad="zip")
            assert est["total_usd"] == 0 and est["within_budget"] and est["refusal"] is None
            assert any(t["target"] == "storyboard:zip/hook" for t in est["targets"])
            never = await _call(client, "build", ad="zip", timeout_s=-5, failing=True)  # was taken: no wait at all
            assert never["field"] == "timeout_s", never
            # an argument it does not take was ignored (`timeout` waited the default 900 s), a bad one
            # said in the SDK's text: adspec's error object, as every other failure
            typo = await _call(client, "build", ad="zip", timeout=30, failing=True)
            assert typo == {"ok": False, "field": "timeout",
                            "error": "build: unknown argument 'timeout' (did you mean 'timeout_s'?); it takes: ad, wait, "
                                     "timeout_s"}, typo
            wrong = await _call(client, "estimate", ad=5, failing=True)
            assert wrong == {"ok": False, "field": "ad", "error": "estimate: ad: must be text (got 5)"}, wrong
            first = await _call(client, "build", ad="zip", wait=False)
            assert first["started"] is True and first["queued"] is False, first
            second = await _call(client, "build", ad="zip", wait=False)  # while the first runs: it follows it
            assert second["started"] is False and second["queued"] is True, second
            built = await _call(client, "build", ad="zip")
            assert built["ok"] and built["done"] and built["final"] == "build/zip/final.mp4", built
            assert built["timed_out"] is False
            st = await _call(client, "status", ad="zip")
            assert st["state"] == "done" and st["progress"] == 100 and st["total_chunks"] == 2
            assert st["files"]["final"] == "build/zip/final.mp4" and len(st["storyboards"]) == 2
            assert all((project.root / p).is_file() for p in [*st["files"].values(), *st["storyboards"]]), st

            beats = await _call(client, "read_beat", ad="zip", beat_id="cta")
            assert beats["file"] == "specs/zip.yaml" and beats["inline"] is True
            assert beats["beats"][0]["fields"]["motion_prompt"] == "pan left"
            stale = await _call(client, "edit_beat", ad="zip", beat_id="cta", fields={"motion_prompt": "tilt up"},
                                sha256="0" * 64, failing=True)
            assert stale["ok"] is False and "changed on disk since it was read" in stale["error"]
            assert stale["field"] == "sha256", stale  # named as the REST API names it
            unknown = await _call(client, "edit_beat", ad="zip", beat_id="nope", fields={"motion_prompt": "x"},
                                  sha256=beats["sha256"], failing=True)
            assert unknown["field"] == "beat_id", unknown
            template = await _call(client, "edit_beat", ad="zip", beat_id="cta", fields={"image_prompt": "in {{ twon }}"},
                                   sha256=beats["sha256"], failing=True)
            assert template["field"] == "fields.image_prompt" and "twon" in template["error"], template
            edited = await _call(client, "edit_beat", ad="zip", beat_id="cta", fields={"motion_prompt": "tilt up"},
                                 sha256=beats["sha256"])
            assert edited["ok"] and edited["changed"]
            est = await _call(client, "estimate", ad="zip")
            assert {t["target"] for t in est["targets"] if t["phase"] in ("storyboard", "chunks")} == {"chunk:zip/cta/0"}
            bad = await _call(client, "estimate", ad="nope", failing=True)
            assert bad["ok"] is False and "no ad named 'nope'" in bad["error"] and bad["field"] == "ad", bad

    anyio.run(session)
    assert "motion_prompt: tilt up" in (project.specs / "zip.yaml").read_text()


def test_mcp_refuses_a_build_over_the_budget(project: Project) -> None:
    project.write_spec("zip", small_spec())
    with FakeReplicate(latency=0.05) as replicate:
        env = dict(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                   ADSPEC_BUDGET_USD="0.05")

        async def session() -> dict[str, Any]:
            async with Client(_server(project, **env)) as client:
                return await _call(client, "build", ad="zip", failing=True)

        refused = anyio.run(session)
        assert refused["started"] is False and refused["ok"] is False
        assert "over the cap of $0.050 per run (ADSPEC_BUDGET_USD); nothing was paid" in refused["refused"]
        assert refused["estimate_usd"] > refused["budget_usd"] == 0.05
        assert replicate.requests == [] and not (project.build / "zip" / "final.mp4").exists()


def test_status_paths_are_files_not_urls() -> None:
    """A variant's `@` is quoted in the studio's URLs; the paths an agent is given are not."""
    from adspec.mcp_server import _file_path

    assert _file_path("/files/zip%40fr/beats/hook/storyboard.png?v=3") == "build/zip@fr/beats/hook/storyboard.png"
    assert _file_path("/files/zip/final.mp4") == "build/zip/final.mp4"


def test_mcp_outside_a_project_says_so(tmp_path) -> None:
    # it answered list_ads with an empty list, as if the folder were an empty project
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSPEC_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "adspec.cli", "mcp"], cwd=tmp_path, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, env=env)
    assert proc.returncode == 1 and "adspec: no adspec project here" in proc.stderr, proc.stderr
