"""Issue 15, point 8: quiet edges. A reader that leaves early (`adspec schema | head`) ends the
command without a traceback; `adspec status` after `doit clean` does not say "done"."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import Project, small_spec


@pytest.mark.parametrize("args", [("schema",), ("estimate", "--json"), ("status", "--json"), ("models", "--json"),
                                  ("models",)])
def test_a_closed_pipe_ends_quietly(project: Project, args: tuple[str, ...]) -> None:
    project.write_spec("zip", small_spec())
    project.build.mkdir()
    (project.build / "zip").mkdir()
    (project.build / "zip" / "status.json").write_text(json.dumps({"ad": "zip", "state": "failed", "pad": "x" * 100_000}))
    # the reader is gone before adspec writes a byte: what `| head` does to the rest of the output
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "adspec.cli", *args], cwd=project.root, env=project.run_env(),
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    assert proc.returncode != 0  # it could not say everything: not a success, as with `cat`


def test_status_after_doit_clean_is_not_done(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit()
    done = json.loads(project.adspec("status", "--json", check=True).stdout)
    assert [s["state"] for s in done] == ["done"]
    project.doit("clean")
    assert not (project.build / "zip" / "final.mp4").exists()
    out = project.adspec("status", "--json")
    [status] = json.loads(out.stdout)
    assert status["state"] == "cleaned" and status["final"] is None
    assert status["tasks"]["done"] == 0 and status["progress_pct"] == 0  # nothing built is left to count
    table = project.adspec("status").stdout
    assert "cleaned" in table and " done " not in table and "100%" not in table


def test_status_of_a_final_removed_by_hand_is_not_done(project: Project) -> None:
    project.write_spec("zip", small_spec())
    project.doit()
    (project.build / "zip" / "final.mp4").unlink()
    [status] = json.loads(project.adspec("status", "--json").stdout)
    assert status["state"] != "done" and status["final"] is None


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`adspec serve --help` showed `--port PORT` with neither help nor default, and `--json` bare
    in several commands: each option and argument of each command (and subcommand) has its text."""
    import argparse

    from adspec.cli import build_parser

    bare: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:  # noqa: SLF001 (argparse keeps them here)
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:  # noqa: SLF001
                bare.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "adspec")
    assert not bare, bare


@pytest.mark.parametrize("env, said", [
    ({"ADSPEC_VIDEO_KBPS": "abc"}, "ADSPEC_VIDEO_KBPS='abc': expected a number of kb/s of at least 100, or crf"),
    ({"ADSPEC_VIDEO_KBPS": "-5"}, "ADSPEC_VIDEO_KBPS='-5': expected a number of kb/s of at least 100, or crf"),
    ({"ADSPEC_FFMPEG": "/nope/ffmpeg"}, "ADSPEC_FFMPEG='/nope/ffmpeg': no such program"),
    ({"ADSPEC_BACKEND": "off"}, "ADSPEC_BACKEND='off': expected offline"),  # was: live, and paying
    ({"ADSPEC_PROGRESS": "fancy"}, "ADSPEC_PROGRESS='fancy': expected one of auto, plain, live"),  # was: auto
    ({"ADSPEC_C2PA": "maybe"}, "ADSPEC_C2PA='maybe': expected one of on, off"),  # was: on
    ({"ADSPEC_REPLICATE_TIMEOUT": "0"}, "ADSPEC_REPLICATE_TIMEOUT='0': expected a number above 0"),  # was: taken
    ({"ADSPEC_CLAIM_STALE": "0"}, "ADSPEC_CLAIM_STALE='0': expected a number above 0"),  # was: 60 without a word
    ({"ADSPEC_BUDGET_USD": "inf"}, "ADSPEC_BUDGET_USD='inf': expected a number of at least 0"),  # was: no cap
    # was: every paid target "a create was sent and its answer lost" (nothing was sent)
    ({"ADSPEC_BACKEND": "", "REPLICATE_API_TOKEN": "r8_not_a_real_token", "REPLICATE_BASE_URL": "127.0.0.1:9"},
     "REPLICATE_BASE_URL='127.0.0.1:9': expected an http:// or https:// address"),
    ({"ADSPEC_BACKEND": "", "OPENAI_API_KEY": "sk-not-a-real-key", "OPENAI_BASE_URL": "me:pw@127.0.0.1:9/v1"},
     "OPENAI_BASE_URL=(an address with user info, not shown): expected an http:// or https:// address"),
])
def test_a_setting_adspec_cannot_use_is_one_line_before_any_work(project: Project, env: dict[str, str],
                                                                 said: str) -> None:
    # each was a traceback from every task that encodes or runs ffmpeg (-5 was taken as 100)
    project.write_spec("example", small_spec())
    out = project.doit(check=False, **env)
    assert out.returncode != 0 and f"adspec: {said}" in out.stderr and "Traceback" not in out.stdout + out.stderr
    assert "pw@" not in out.stdout + out.stderr  # a password in a base URL is not echoed
    assert not (project.build / "example" / "final.mp4").exists()
    fine = project.adspec("validate", ADSPEC_VIDEO_KBPS="crf")
    assert fine.returncode == 0, fine.stderr


def test_adspec_build_takes_a_count_of_tasks_of_at_least_one(project: Project) -> None:
    # -n 0 was taken as 1 without a word, and -n 1 left doit's parallel default in place
    project.write_spec("example", small_spec())
    zero = project.adspec("build", "-n", "0")
    assert zero.returncode == 2 and "-n/--jobs: expected a whole number of at least 1, got '0'" in zero.stderr
    assert not (project.build / "example").exists()
    one = project.adspec("build", "--json", "-n", "1")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["totals"]["ok"] == 1
