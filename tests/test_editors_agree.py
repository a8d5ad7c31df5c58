"""Editors agree with adspec: the `$schema` modelines point at schemas a fresh clone has, YAML
is read as YAML 1.2 (as the YAML language server and check-jsonschema read it), and the JSON
Schema and `adspec validate` accept and refuse the same specs, with every field, model and
beat type described."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from adspec.loader import parse_spec_text
from adspec.validate import json_schema
from conftest import REPO

MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.M)


def _strip_words(schema: object) -> object:
    """A schema without its prose: what it accepts and refuses."""
    if isinstance(schema, dict):
        return {k: _strip_words(v) for k, v in schema.items() if k not in ("description", "enumDescriptions")}
    if isinstance(schema, list):
        return [_strip_words(v) for v in schema]
    return schema


def test_modelines_point_at_committed_schemas_that_match_adspec() -> None:
    git = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    # what a fresh clone has: git's tracked files (or, in a copy without .git, the files there are)
    tracked = git.stdout.split() if git.returncode == 0 and git.stdout.strip() else \
        [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file() and "build" not in p.parts]
    files = [REPO / f for f in tracked if f.startswith("specs/") and f.endswith(".yaml")]
    assert files
    generated = json_schema()
    from adspec.beat_lock import SCHEMA_COMMENT_BEATS  # what the planner writes into new beat files

    for path in files:
        found = MODELINE.findall(path.read_text(encoding="utf-8"))
        assert len(found) == 1, f"{path.name}: no $schema modeline"
        target = (path.parent / found[0]).resolve()
        rel = str(target.relative_to(REPO))
        assert rel in tracked, f"{path.name} points at {rel}, which a fresh clone does not have"
        key = "beat_file" if path.name.endswith(".beats.yaml") else "spec"
        committed = json.loads(target.read_text(encoding="utf-8"))
        assert _strip_words(committed) == _strip_words(generated[key]), \
            f"{rel} is stale: run `adspec schema --write schema`"
        if key == "beat_file":
            assert SCHEMA_COMMENT_BEATS.split("$schema=")[1] == found[0]


BASE = "title: T\nprompt: An ad for a bottle\n"
CASES = {
    # YAML 1.2: strings, as editors read them (YAML 1.1 made 969 and booleans of them)
    "aspect ratio unquoted": (BASE + "aspect_ratio: 16:9\n", True),
    "country code NO": (BASE + "vars: {country: NO, answer: yes, flag: off}\n", True),
    "octal-looking seed is ten": (BASE + "seed: 010\n", True),
    "variant aspect ratios unquoted": (BASE + "variants:\n  matrix:\n    aspect_ratio: [16:9, 9:16, 1:1]\n", True),
    # refused by both
    "seed as text": (BASE + 'seed: "7"\n', False),
    "title as a number": ("title: 2024\nprompt: An ad\n", False),
    "native_audio yes": (BASE + "native_audio: yes\n", False),
    "asset name with capitals": (BASE + "assets: {Product_Shot: assets/p.png}\n", False),
    "var named like a reserved one": (BASE + "vars: {brand: x}\n", False),
    "var name not an identifier": (BASE + "vars: {my-city: x}\n", False),
    "unknown video model": (BASE + "models: {video: hailou}\n", False),
    "duration as float text": (BASE + 'duration: "30"\n', False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_schema_and_validate_accept_and_refuse_the_same(name: str, tmp_path: Path) -> None:
    text, ok = CASES[name]
    (tmp_path / "specs" / "assets").mkdir(parents=True)
    (tmp_path / "specs" / "assets" / "p.png").write_bytes(b"")
    spec_path = tmp_path / "specs" / "x.yaml"
    spec_path.write_text(text, encoding="utf-8")
    spec, errors = parse_spec_text(text.encode(), "specs/x.yaml", spec_path)
    errors = [e for e in errors if "p.png" not in str(e)]  # the empty stand-in image is not the point here
    editor_view = YAML(typ="safe", pure=True).load(text)  # YAML 1.2, as the language server reads it
    schema_ok = jsonschema.Draft202012Validator(json_schema()["spec"]).is_valid(editor_view)
    assert schema_ok == ok, f"schema says {schema_ok} for {editor_view}"
    assert (not errors) == ok, [str(e) for e in errors]
    for e in errors:  # refused with a located line, never silently
        assert re.match(r"specs/x\.yaml:\d+: ", str(e.one_line())), e.one_line()
    if name == "aspect ratio unquoted":
        assert spec is not None and spec.aspect_ratio == "16:9"
    if name == "country code NO":
        assert spec is not None and spec.vars == {"country": "NO", "answer": "yes", "flag": "off"}
    if name == "octal-looking seed is ten":
        assert spec is not None and spec.seed == 10


def test_every_field_model_and_beat_type_is_described() -> None:
    from adspec.library import load_library
    from adspec.registry import load_registry

    missing: list[str] = []

    def walk(node: dict, where: str) -> None:
        for name, prop in (node.get("properties") or {}).items():
            if "description" not in prop:
                missing.append(f"{where}.{name}")
            walk(prop, f"{where}.{name}")
        for name, sub in (node.get("$defs") or {}).items():
            if "description" not in sub:
                missing.append(f"$defs.{name}")
            walk(sub, f"$defs.{name}")
        for prop in (node.get("properties") or {}).values():
            if "enum" in prop and len(prop["enum"]) > 1:
                words = prop.get("enumDescriptions") or []
                if len(words) != len(prop["enum"]) or not all(words):
                    missing.append(f"{where}: enum {prop['enum'][:3]}… without descriptions")

    schemas = json_schema()
    for key, schema in schemas.items():
        walk(schema, key)
    assert not missing, missing
    video = schemas["spec"]["$defs"]["Models"]["properties"]["video"]
    hailuo = video["enumDescriptions"][video["enum"].index("hailuo-2.3-fast")]
    assert "6, 10 s" in hailuo and "$" in hailuo, hailuo  # clip lengths and price
    assert set(video["enum"]) >= set(load_registry().names("video"))
    beat = schemas["beat_file"]["$defs"]["Beat"]["properties"]["type"]
    hook = beat["enumDescriptions"][beat["enum"].index("hook")]
    lib = load_library().beats["hook"]
    assert lib.purpose in hook and f"{lib.min}-{lib.max} s" in hook, hook
