"""Issue 15, point 2: adspec outside this repository. `adspec init` in an empty folder makes a
working project that `doit` builds offline; adspec finds the project from a subfolder; `.yml`
specs build like `.yaml` ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adspec.media import probe
from conftest import _SCRUB, REPO, Project, small_spec


def _env(tmp_path: Path) -> dict[str, str]:
    """The installed adspec (this repository, on PYTHONPATH), no ADSPEC_SPECS/BUILD: the folder decides."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(PYTHONPATH=str(REPO), ADSPEC_CACHE_DIR=str(tmp_path / "cache"), ADSPEC_BACKEND="offline")
    return env


def _run(cwd: Path, env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *cmd], cwd=cwd, env=env, text=True, capture_output=True, timeout=600)


def test_init_makes_a_project_that_doit_builds_offline(tmp_path: Path) -> None:
    folder = tmp_path / "myads"
    folder.mkdir()
    assert not str(folder).startswith(str(REPO))  # outside this repository
    env = _env(tmp_path)
    made = _run(folder, env, "adspec.cli", "init")
    assert made.returncode == 0, made.stderr
    assert (folder / "dodo.py").read_text() == (REPO / "dodo.py").read_text()  # the repo's own, thin
    ignored = (folder / ".gitignore").read_text().splitlines()
    assert "build/" in ignored
    # the folders the example CI workflow keeps in the workspace (they showed as untracked)
    workflow = (REPO / "examples" / "github-actions.yml").read_text()
    assert "/.adspec-cache" in workflow and "--into paid-cache" in workflow and "> paid.json" in workflow
    assert {".adspec-cache/", "paid-cache/", "paid.json"} <= set(ignored)
    [spec] = sorted((folder / "specs").iterdir())
    first = spec.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schema/spec.schema.json"
    schema = json.loads((spec.parent / "../schema/spec.schema.json").resolve().read_text())
    assert "prompt" in schema["properties"] and (folder / "schema" / "beats.schema.json").is_file()
    assert _run(folder, env, "adspec.cli", "validate").returncode == 0

    built = _run(folder, env, "doit")  # doit's own dodo.py lookup: the folder's dodo.py
    assert built.returncode == 0, built.stdout + built.stderr
    final = probe(folder / "build" / spec.stem / "final.mp4")
    assert final.vcodec == "h264" and final.has_audio and abs(final.duration - 15) < 0.1
    assert (folder / "specs" / f"{spec.stem}.beats.yaml").is_file()

    # from a subfolder: adspec finds the project; doit does with its own -k (seek dodo.py upwards)
    sub = folder / "specs"
    status = _run(sub, env, "adspec.cli", "status", "--json")
    assert [s["state"] for s in json.loads(status.stdout)] == ["done"], status.stderr
    assert _run(sub, env, "adspec.cli", "validate").returncode == 0
    again = _run(sub, env, "doit", "-k")
    assert again.returncode == 0 and "nothing to build" in again.stdout, again.stdout + again.stderr

    # init again keeps every file the user has, a hand-edited schema too (it was overwritten)
    (folder / "dodo.py").write_text((folder / "dodo.py").read_text() + "# mine\n")
    (folder / "schema" / "spec.schema.json").write_text('{"mine": true}\n')
    rerun = _run(folder, env, "adspec.cli", "init")
    assert rerun.returncode == 0 and "kept  dodo.py" in rerun.stdout
    assert (folder / "dodo.py").read_text().endswith("# mine\n")
    assert (folder / "schema" / "spec.schema.json").read_text() == '{"mine": true}\n'
    assert "kept  schema/spec.schema.json (not this adspec's schema" in rerun.stdout, rerun.stdout
    assert "kept  schema/beats.schema.json\n" in rerun.stdout, rerun.stdout


def test_init_into_a_new_folder(tmp_path: Path) -> None:
    made = _run(tmp_path, _env(tmp_path), "adspec.cli", "init", "new")
    assert made.returncode == 0 and "cd new && doit" in made.stdout
    assert (tmp_path / "new" / "dodo.py").is_file() and (tmp_path / "new" / "specs" / "example.yaml").is_file()


def test_no_project_says_what_to_do_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for cmd in (("estimate",), ("plan",), ("validate",), ("status",), ("check",)):
        out = _run(empty, _env(tmp_path), "adspec.cli", *cmd)
        assert out.returncode == 1
        assert out.stderr.count("\n") == 1 and "adspec init" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_yml_specs_build_like_yaml_ones(project: Project) -> None:
    spec = small_spec()
    del spec["beats"], spec["music"]
    spec["voiceover"] = False
    path = project.write_spec("zip", spec)
    path.rename(path.with_suffix(".yml"))
    valid = project.adspec("validate", str(project.specs))
    assert valid.returncode == 0 and "ok" in valid.stdout
    estimate = json.loads(project.adspec("estimate", "--json").stdout)
    assert [a["ad"] for a in estimate["ads"]] == ["zip"]
    project.doit()
    assert abs(probe(project.build / "zip" / "final.mp4").duration - 8) < 0.1
    assert (project.specs / "zip.beats.yml").is_file() and not (project.specs / "zip.beats.yaml").exists()
    # a mistake in the .yml beat file is found by `adspec validate specs/`
    beats = project.specs / "zip.beats.yml"
    beats.write_text(beats.read_text().replace("duration: ", "duration: 1", 1))
    bad = project.adspec("validate", str(project.specs))
    assert bad.returncode == 1 and "zip.beats.yml" in bad.stderr


def test_a_yaml_and_a_yml_spec_of_one_name_are_refused(project: Project) -> None:
    path = project.write_spec("zip", small_spec())
    (project.specs / "zip.yml").write_text(path.read_text())
    out = project.adspec("validate")
    assert out.returncode == 1 and "zip.yaml and zip.yml are both the ad 'zip'" in out.stderr
    run = project.doit(check=False)
    assert run.returncode != 0 and "are both the ad 'zip'" in run.stdout + run.stderr


@pytest.mark.parametrize("name,beats", [("x.yaml", "x.beats.yaml"), ("x.yml", "x.beats.yml")])
def test_beat_file_names_follow_the_spec(name: str, beats: str) -> None:
    from adspec.paths import ad_name, beat_file_path, find_specs, spec_of_beat_file

    assert beat_file_path(Path("specs") / name) == Path("specs") / beats
    assert spec_of_beat_file(Path("specs") / beats) == Path("specs") / name
    assert ad_name(beats) == ad_name(name) == "x"
    assert find_specs(REPO / "specs")  # the examples are still found
