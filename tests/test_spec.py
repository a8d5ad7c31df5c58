"""The spec language: loading, one-line errors with the right line, safety of the loader and the
template sandbox, and the JSON Schema."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adspec.errors import SpecError
from adspec.loader import check_ad_name, load_beat_file, load_spec, parse_spec_text
from adspec.paths import ad_name, find_specs
from adspec.spec import Beat, BeatFile, Spec, render_beat_prompts
from adspec.validate import json_schema, validate_paths, write_schemas

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
title: Test ad
prompt: A 30-second ad for the Zephyr kettle, ending on the tagline.
duration: 30
aspect_ratio: "16:9"
style: energetic
brand: {name: Zephyr, tagline: Boil better, colors: ["#FF5A1F", "#111111"]}
models: {planner: gpt-4.1, image: flux-dev, video: hailuo-2.3-fast, music: musicgen}
vars: {city: Denver}
seed: 7
"""

INLINE = """\
title: Inline
prompt: A short ad for the Zephyr kettle in {{ city }}.
duration: 10
vars: {city: Oslo}
beats:
  - id: hook
    type: hook
    duration: 4
    image_prompt: "A kettle in {{ city }}"
    motion_prompt: steam rises
  - id: cta
    type: cta
    duration: 6
    image_prompt: "{{ brand }} logo, {{ product }}"
    motion_prompt: hold
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / "specs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    err = info.value
    assert "\n" not in str(err), "errors are one line"
    assert str(err).startswith(f"{path}:"), str(err)
    return err


# ---- good specs -------------------------------------------------------------------------------


def test_good_spec_loads_with_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "ok.yaml", GOOD))
    assert spec.duration == 30 and spec.brand.name == "Zephyr" and spec.vars == {"city": "Denver"}
    minimal = load_spec(write(tmp_path, "min.yaml", "title: T\nprompt: An ad for the Zephyr kettle.\n"))
    assert minimal.duration == 30 and minimal.aspect_ratio == "16:9"
    assert (minimal.models.planner, minimal.models.image, minimal.models.video, minimal.models.music) == (
        "gpt-4.1", "flux-dev", "hailuo-2.3-fast", "musicgen")


def test_example_specs_and_beat_files_validate() -> None:
    specs = find_specs(REPO / "specs")
    assert [p.name for p in specs] == ["brewbox.yaml", "glowserum.yaml", "lumiere.yaml", "trailrunner.yaml"]
    for p in specs:
        spec = load_spec(p)
        bf = load_beat_file(p.with_name(p.stem + ".beats.yaml"), spec)
        assert sum(b.duration for b in bf.beats) == spec.duration
    assert validate_paths([], REPO) == []


def test_aliases_of_models_are_accepted(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "a.yaml", GOOD.replace("video: hailuo-2.3-fast", "video: hailuo_fast")))
    assert spec.models.video == "hailuo_fast"


def test_find_specs_and_ad_name(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", GOOD)
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "a.beats.yaml", "x: 1\n")
    (tmp_path / "specs" / "notes.txt").write_text("x")
    assert [p.name for p in find_specs(tmp_path / "specs")] == ["a.yaml", "b.yaml"]
    assert ad_name("specs/trailrunner.yaml") == "trailrunner"
    assert ad_name("specs/trailrunner.beats.yaml") == "trailrunner"


# ---- each bad input: its one-line error, on the right line --------------------------------------


@pytest.mark.parametrize(
    "text, line, field, words",
    [
        ("title: T\nprompt: p\nduration: [30\n", 4, None, "invalid YAML"),
        ("title: T\nprompt: p\n  bad: indent\n", 3, None, "(a key indented differently from the keys beside it"),
        ("title: T\nprompt: a: b\n", 2, None, "or a value with ': ' in it that needs quotes?)"),
        ("title: T\nbrand:\n    name: Z\n  tagline: x\n", 4, None, "(a line indented differently from the lines"),
        ("title: T\n\tprompt: p\n", 2, None, "invalid YAML: while scanning for the next token; found character "
                                              "'\\t' that cannot start any token (YAML indents with spaces, not tabs)"),
        ("title: T\nprompt: p\nstyle: calm\ncolour: red\n", 4, "colour", "unknown field"),
        ("title: T\nprompt: p\ntitel: x\n", 3, "titel", "did you mean 'title'"),
        ("title: T\nprompt: p\n\nduration: thirty\n", 4, "duration", "must be a whole number"),
        ("title: T\nprompt: p\nduration: 500\n", 3, "duration", "must be between 5 and 180"),
        ("title: T\nprompt: p\nduration: 2\n", 3, "duration", "must be between 5 and 180"),
        ("title: T\nprompt: p\naspect_ratio: '3:2'\n", 3, "aspect_ratio", "must be one of"),
        ("title: T\nduration: 20\n", 1, "prompt", "is required"),
        ("title: T\nprompt: p\nbrand:\n  name: X\n  colors: [red]\n", 5, "brand.colors.0", "#RRGGBB"),
        ("title: T\nprompt: p\nmodels:\n  planner: gpt-4.1\n  video: sora-9\n", 5, "models.video", "known: hailuo-02"),
        ("title: T\nprompt: p\nmodels: {image: fluxdev}\n", 3, "models.image", "did you mean 'flux-dev'"),
        ("title: T\nprompt: p\nmodels: {music: nope}\n", 3, "models.music", "known: musicgen"),
        ("title: T\nprompt: p\nmodels: {planner: ''}\n", 3, "models.planner", "must not be empty"),
        ("title: T\nprompt: p\naspect_ratio: '1:1'\nmodels: {video: veo-3.1}\n", 4, "models.video",
         "does not support aspect ratio 1:1"),
        ("title: T\nprompt: p\nvars: {product: x}\n", 3, "vars.product", "reserved"),
        ("title: T\nprompt: p\nvars:\n  city: x\n  bad name: y\n", 5, "vars.bad name", "identifier"),  # at the key's line
        ("title: T\nprompt: p\nvars: {city: [1, 2]}\n", 3, "vars.city", "text, a number or true/false"),
        ("title: T\nprompt: p\nvars: {big: 1e999}\n", 3, "vars.big", "(got inf)"),  # it rendered as 'inf'
        ("title: T\nprompt: p\nvars: {odd: .nan}\n", 3, "vars.odd", "(got nan)"),
        ("title: T\nprompt: p in {{ cty }}\nvars: {city: Oslo}\n", 2, "prompt", "unknown variable 'cty'"),
        ("title: T\nprompt: p\nbrand: {tagline: 'Own {{ city'}\n", 3, "brand.tagline", "syntax"),
        ("title: T\nprompt: p\nduration: 30\nduration: 20\n", 4, "duration", "duplicate key"),
        ("title: T\nprompt: p\nmusic: {prompt: x, bpm: 100}\n", 3, "music", "only allowed with inline"),
    ],
)
def test_bad_spec_names_line_and_field(tmp_path: Path, text: str, line: int, field: str | None, words: str) -> None:
    err = error_of(write(tmp_path, "bad.yaml", text))
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    assert words in err.message, str(err)


def test_duration_message_reads_well(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "title: T\nprompt: p\n\n\n\n\nduration: 500\n")
    assert str(error_of(path)) == f"{path}:7: duration: must be between 5 and 180 (got 500)"


def inline_with(**changes: str) -> str:
    text = INLINE
    for old, new in changes.items():
        text = text.replace(old.replace("_", " "), new)
    return text


def test_inline_beats_good(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "inl.yaml", INLINE))
    assert [b.id for b in spec.beats] == ["hook", "cta"]
    image, motion = render_beat_prompts(spec.beats[0], spec, "x")
    assert image == "A kettle in Oslo" and motion == "steam rises"
    image, _ = render_beat_prompts(spec.beats[1], spec, "x")
    assert image == "logo, Zephyr kettle"


@pytest.mark.parametrize(
    "old, new, line, field, words",
    [
        ("duration: 6\n", "duration: 7\n", 5, "beats", "last 11 s in total but the spec's duration is 10 s"),
        ("- id: cta", "- id: hook", 11, "beats.1.id", "duplicate beat id 'hook'"),
        ("type: cta", "type: call-to-action", 12, "beats.1.type", "unknown beat type 'call-to-action'"),
        ("type: hook", "type: hok", 7, "beats.0.type", "did you mean 'hook'"),
        ("A kettle in {{ city }}", "A kettle in {{ town }}", 9, "beats.0.image_prompt", "unknown variable 'town'"),
        ("A kettle in {{ city }}", "{{ ''.__class__.__mro__ }}", 9, "beats.0.image_prompt", "unsafe"),
        ("A kettle in {{ city }}", "{% for i in range(9) %}x{% endfor %}", 9, "beats.0.image_prompt", "loops"),
        ("A kettle in {{ city }}", "{{ city * 1000000000 }}", 9, "beats.0.image_prompt", "operator"),
        ("A kettle in {{ city }}", "{{ city.upper() }}", 9, "beats.0.image_prompt", "calls"),
        ("    duration: 4\n", "    duration: 4.5\n", 8, "beats.0.duration", "whole number"),
        ("    motion_prompt: steam rises\n", "", 6, "beats.0.motion_prompt", "is required"),
        # a field is named as it is written (`from`), never by its name in the code (`from_`)
        ("    motion_prompt: steam rises\n", "    motion_prompt: steam rises\n    fro: 2\n", 11, "beats.0.fro",
         "unknown field (did you mean 'from'?); allowed: id, type, duration, image_prompt, motion_prompt, voiceover, "
         "on_screen, models, image, footage, from, shows, approved"),
        ("    motion_prompt: steam rises\n", "    motion_prompt: steam rises\n    from_: 2\n", 11, "beats.0.from_",
         "unknown field (did you mean 'from'?)"),
        ("    motion_prompt: steam rises\n", "    motion_prompt: steam rises\n    from: -1\n", 11, "beats.0.from",
         "must be between 0 and 3600"),
        # a prompt of spaces was sent, and paid for, as it is
        ("    motion_prompt: steam rises\n", "    motion_prompt: '   '\n", 10, "beats.0.motion_prompt",
         "must hold words, not only spaces"),
    ],
)
def test_bad_inline_beats(tmp_path: Path, old: str, new: str, line: int, field: str, words: str) -> None:
    assert old in INLINE
    err = error_of(write(tmp_path, "inl.yaml", INLINE.replace(old, new, 1)))
    assert (err.line, err.field) == (line, field), str(err)
    assert words in err.message, str(err)


def test_inline_beats_say_how_long_the_ad_is(tmp_path: Path) -> None:
    """No `duration:` with inline beats: their sum, not the prompt's words nor the default 30."""
    text = INLINE.replace("duration: 10\n", "", 1).replace("A short ad", "A 15-second ad", 1)
    assert "duration: 10" not in text and "15-second" in text
    assert load_spec(write(tmp_path, "inl.yaml", text)).duration == 10


def test_inline_beats_default_music_from_style(tmp_path: Path) -> None:
    from adspec.spec import default_music, inline_plan

    spec = load_spec(write(tmp_path, "inl.yaml", INLINE.replace("duration: 10\n", "duration: 10\nstyle: calm\n")))
    plan = inline_plan(spec)
    assert plan is not None and plan.music == default_music(spec) and plan.music.bpm == 80


# ---- assets and names --------------------------------------------------------------------------


def spec_with_asset(rel: str) -> str:
    return GOOD + f"assets:\n  product: {rel}\n"


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


TINY_PNG = _tiny_png()


def test_asset_inside_project_ok(tmp_path: Path) -> None:
    (tmp_path / "specs" / "assets").mkdir(parents=True)
    (tmp_path / "specs" / "assets" / "p.png").write_bytes(TINY_PNG)  # a real image: assets are opened
    (tmp_path / "logo.png").write_bytes(TINY_PNG)
    assert load_spec(write(tmp_path, "a.yaml", spec_with_asset("assets/p.png"))).assets == {"product": "assets/p.png"}
    assert load_spec(write(tmp_path, "b.yaml", spec_with_asset("../logo.png"))).assets["product"] == "../logo.png"


@pytest.mark.parametrize(
    "rel, words",
    [
        ("assets/missing.png", "not found"),
        ("../../outside.png", "outside the project"),
        ("assets/../../../etc/passwd", "outside the project"),
        ("/etc/hostname", "not absolute"),
        ("assets/link.png", "symlink that leads outside"),
        ("assets", "not a file"),
        ("assets/notes.txt", "must be an image"),
    ],
)
def test_bad_assets(tmp_path: Path, rel: str, words: str) -> None:
    project = tmp_path / "proj"
    (project / "specs" / "assets").mkdir(parents=True)
    (tmp_path / "outside.png").write_bytes(TINY_PNG)
    (project / "specs" / "assets" / "notes.txt").write_text("x")
    os.symlink(tmp_path / "outside.png", project / "specs" / "assets" / "link.png")
    err = error_of(write(project, "a.yaml", spec_with_asset(rel)))
    assert err.line == GOOD.count("\n") + 2 and err.field in ("assets.product", "assets"), str(err)
    assert words in err.message, str(err)


@pytest.mark.parametrize(
    "brand, field, words",
    [
        ("logo: ../../../etc/passwd", "brand.logo", "outside the project"),
        ("logo: missing.png", "brand.logo", "not found"),
        ("font: nope.ttf", "brand.font", "not found"),
        ("font: assets/p.png", "brand.font", "must be a font"),
        ("font: assets/fake.ttf", "brand.font", "not a font FreeType can read"),  # was a traceback at the plan step
    ],
)
def test_brand_kit_files_are_checked_like_assets(tmp_path: Path, brand: str, field: str, words: str) -> None:
    """The brand's logo and font are files of the project too: validate names them with the
    line, before a plan is made (they were only found missing when planning, and never outside)."""
    project = tmp_path / "proj"
    (project / "specs" / "assets").mkdir(parents=True)
    (project / "specs" / "assets" / "p.png").write_bytes(TINY_PNG)
    (project / "specs" / "assets" / "fake.ttf").write_text("not a font")
    text = GOOD.replace('brand: {name: Zephyr,', "brand: {" + brand + ", name: Zephyr,")
    err = error_of(write(project, "a.yaml", text))
    assert err.line == 6 and err.field == field and words in err.message, str(err)


@pytest.mark.parametrize("name", ["Trail.yaml", "my ad.yaml", "-x.yaml", "é.yaml", f"{'a' * 65}.yaml"])
def test_unsafe_ad_names(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, GOOD)
    with pytest.raises(SpecError, match="ad name"):
        load_spec(path)
    with pytest.raises(SpecError):
        check_ad_name(path)


@pytest.mark.parametrize("name", ["trailrunner", "a", "ad_2-b", "9lives"])
def test_safe_ad_names(name: str) -> None:
    assert check_ad_name(f"specs/{name}.yaml") == name


# ---- the loader's robustness --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"# only a comment\n", "empty"),
        (b"- a\n- b\n", "must be a mapping"),
        (b"just text", "must be a mapping"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "UTF-8"),
        (b"title: \x00x", "NUL"),
        (b"a: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
        (b"a: &x [1]\nb: *x\n", "aliases"),
        (b"[" * 5000, "invalid YAML"),
        (b"duration: " + b"9" * 20000 + b"\n", "invalid YAML"),
        (b"---\na: 1\n---\nb: 2\n", "invalid YAML"),
        (b"? [a, b]\n: c\n", "invalid YAML"),
    ],
)
def test_junk_gives_clean_error(data: bytes, words: str) -> None:
    spec, errors = parse_spec_text(data, "specs/j.yaml")
    assert spec is None and errors, data
    assert words in errors[0].message, str(errors[0])


def test_huge_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "specs" / "big.yaml"
    path.parent.mkdir()
    path.write_bytes(b"title: T\nprompt: " + b"x" * (1 << 20) + b"\n")
    assert "larger than" in error_of(path).message


def test_alias_bomb_returns_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    start = time.monotonic()
    spec, errors = parse_spec_text(bomb, "specs/bomb.yaml")
    assert time.monotonic() - start < 1.0
    assert spec is None and "aliases" in errors[0].message and errors[0].line == 2


FIELDS = ["title", "prompt", "duration", "aspect_ratio", "style", "brand", "models", "assets", "vars", "seed",
          "beats", "music", "native_audio", "resolution", "version", "bogus"]
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS + ["id", "type", "name"]), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), yaml_values, max_size=8))
def test_generated_specs_never_crash(doc: dict) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        spec, errors = parse_spec_text(text, "specs/h.yaml")
    except SpecError:  # pragma: no cover - parse_spec_text returns them
        return
    assert (spec is None) == bool(errors)
    for e in errors:
        assert isinstance(e, SpecError) and "\n" not in str(e) and str(e).startswith("specs/h.yaml")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_only_spec_errors(data: bytes) -> None:
    spec, errors = parse_spec_text(data, "specs/b.yaml")
    assert spec is None and errors and all(isinstance(e, SpecError) for e in errors)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_load_spec_file_only_raises_spec_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("h") / "specs" / "x.yaml"
    path.parent.mkdir()
    path.write_bytes(data)
    with pytest.raises(SpecError):
        load_spec(path)
        load_beat_file(path)


# ---- beat files -------------------------------------------------------------------------------


BEATS = """\
version: 1
music: {prompt: calm piano, bpm: 80}
beats:
  - id: hook
    type: hook
    duration: 4
    image_prompt: "Kettle in {{ city }}"
    motion_prompt: steam
  - id: cta
    type: cta
    duration: 26
    image_prompt: "{{ tagline }}"
    motion_prompt: hold
"""


def test_beat_file_checked_against_spec(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "k.yaml", GOOD))
    bf = load_beat_file(write(tmp_path, "k.beats.yaml", BEATS), spec)
    assert render_beat_prompts(bf.beats[0], spec, "k.beats.yaml") == ("Kettle in Denver", "steam")
    assert render_beat_prompts(bf.beats[1], spec, "k.beats.yaml")[0] == "Boil better"
    path = write(tmp_path, "k.beats.yaml", BEATS.replace("duration: 26", "duration: 20"))
    load_beat_file(path)  # structurally fine alone
    with pytest.raises(SpecError, match=r"k.beats.yaml:3: beats: the beats last 24 s in total"):
        load_beat_file(path, spec)
    path = write(tmp_path, "k.beats.yaml", BEATS.replace("{{ city }}", "{{ ''.__class__.__mro__ }}"))
    with pytest.raises(SpecError, match=r"k.beats.yaml:7: beats.0.image_prompt: beat 'hook'"):
        load_beat_file(path, spec)
    path = write(tmp_path, "k.beats.yaml", BEATS.replace("id: cta", "id: hook"))
    with pytest.raises(SpecError, match=r"k.beats.yaml:9: beats.1.id: duplicate beat id"):
        load_beat_file(path)


def test_render_beat_prompts_names_file_beat_and_field(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "k.yaml", GOOD))
    beat = Beat(id="hook", type="hook", duration=3, image_prompt="ok", motion_prompt="in {{ nowhere }}")
    with pytest.raises(SpecError) as info:
        render_beat_prompts(beat, spec, "specs/k.beats.yaml")
    assert info.value.field == "beats.hook.motion_prompt" and "specs/k.beats.yaml" in str(info.value)
    assert "unknown variable 'nowhere'" in str(info.value)


def test_var_value_change_changes_only_rendering(tmp_path: Path) -> None:
    a = load_spec(write(tmp_path, "a.yaml", GOOD))
    b = load_spec(write(tmp_path, "b.yaml", GOOD.replace("Denver", "Boulder")))
    beat = Beat(id="x", type="feature", duration=4, image_prompt="run in {{ city }}", motion_prompt="go")
    assert render_beat_prompts(beat, a)[0] == "run in Denver"
    assert render_beat_prompts(beat, b)[0] == "run in Boulder"


# ---- validate and schema -------------------------------------------------------------------------


def test_validate_paths_reports_every_file(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "bad.yaml", "title: T\nprompt: p\nduration: 500\nfoo: 1\n")
    write(tmp_path, "good.beats.yaml", BEATS.replace("duration: 26", "duration: 20"))
    write(tmp_path, "orphan.beats.yaml", BEATS)
    errors = validate_paths([], tmp_path)
    lines = sorted(str(e) for e in errors)
    assert any("bad.yaml:3: duration: must be between 5 and 180" in s for s in lines)
    assert any("bad.yaml:4: foo: unknown field" in s for s in lines)
    assert any("good.beats.yaml:3: beats:" in s for s in lines)
    assert any("orphan.beats.yaml" in s and "no spec" in s for s in lines)
    only = validate_paths([tmp_path / "specs" / "good.yaml"], tmp_path)
    assert len(only) == 1 and "good.beats.yaml" in str(only[0])


def test_json_schema_round_trip(tmp_path: Path) -> None:
    schemas = json_schema()
    assert set(schemas) == {"spec", "beat_file"}
    spec_schema = schemas["spec"]
    assert spec_schema["additionalProperties"] is False
    assert {"title", "prompt", "duration", "aspect_ratio", "brand", "models", "assets", "vars", "seed", "beats"} <= set(
        spec_schema["properties"])
    assert spec_schema["properties"]["duration"]["minimum"] == 5
    assert "hook" in spec_schema["$defs"]["Beat"]["properties"]["type"]["enum"]
    assert "hailuo_fast" in spec_schema["$defs"]["Models"]["properties"]["video"]["enum"]
    import jsonschema  # a test dependency: never skipped
    for p in find_specs(REPO / "specs"):
        jsonschema.validate(yaml.safe_load(p.read_text()), spec_schema)
        jsonschema.validate(yaml.safe_load(p.with_name(p.stem + ".beats.yaml").read_text()), schemas["beat_file"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"title": "t", "prompt": "p", "duration": 500}, spec_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"title": "t", "prompt": "p", "colour": "red"}, spec_schema)
    # and pydantic reads back what the schema accepts
    for p in find_specs(REPO / "specs"):
        assert Spec.model_validate(yaml.safe_load(p.read_text()))
        assert BeatFile.model_validate(yaml.safe_load(p.with_name(p.stem + ".beats.yaml").read_text()))
    written = write_schemas(tmp_path / "schema")
    assert [w.name for w in written] == ["spec.schema.json", "beats.schema.json"]


def test_a_file_parsed_once_per_process_gives_every_caller_its_own_copy() -> None:
    """The loader parses the same bytes once (adspec.loader._parse_yaml); one caller changing
    what it got never changes what the next one reads, and a prompt compiled once renders each
    context on its own, its unknown variables still refused."""
    from adspec.library import TemplateProblem, render_template
    from adspec.loader import _parse_yaml

    data = b"prompt: a runner at dawn\nduration: 15\nbrand:\n  name: Zip\n"
    first, lines = _parse_yaml(data, "specs/a.yaml", "spec")
    first["brand"]["name"] = "changed"
    lines.clear()
    again, lines_again = _parse_yaml(data, "specs/a.yaml", "spec")
    assert again["brand"]["name"] == "Zip" and lines_again[("brand", "name")] == 4
    text = "{{ product }} on a trail at {{ time }}"
    assert render_template(text, {"product": "the bag", "time": "dawn"}) == "the bag on a trail at dawn"
    assert render_template(text, {"product": "the shoe", "time": "dusk"}) == "the shoe on a trail at dusk"
    with pytest.raises(TemplateProblem, match="unknown variable 'time'"):
        render_template(text, {"product": "the bag"})


def test_a_wrong_value_in_a_section_does_not_hide_a_missing_file_beside_it(tmp_path: Path) -> None:
    """`captions: {size: 3, font: x.ttf}` reported the size only (the whole section was set aside
    for the later checks); now every field of the section that parsed is checked too."""
    project = tmp_path / "proj"
    text = GOOD.replace("tagline: Boil better", "tagline: 5, logo: nope.png").replace(
        "style: energetic\n", "style: energetic\ncaptions: {size: 3, font: fonts/x.ttf}\n")
    path = write(project, "a.yaml", text)
    errors = validate_paths([path], project)
    assert [(e.field, e.message.split(" (")[0]) for e in errors] == [
        ("captions.size", "must be between 0.5 and 2.0"), ("captions.font", "file 'fonts/x.ttf' not found"),
        ("brand.tagline", "must be text"), ("brand.logo", "file 'nope.png' not found")], [str(e) for e in errors]


END_CARD_BEATS = """\
title: Zip
prompt: A short ad for the Zip bottle
duration: 10
resolution: 360p
brand: {name: Zip, tagline: Drink more}
beats:
  - {id: hook, type: hook, duration: 4, image_prompt: A bottle on a rock, motion_prompt: push in}
  - {id: cta, type: cta, duration: 4, image_prompt: The bottle in a hand, motion_prompt: pan left}
  - {id: card, type: end-card, duration: 2}
"""


def test_an_end_card_composed_from_the_brand_needs_no_prompts(project) -> None:
    """The end card is drawn from the brand kit and asks no model, yet validate (and the JSON
    Schema) asked for its two prompts, "the storyboard image is asked for with it" (found by a
    trial). Without anything of the brand to compose it from, a model draws it: they are needed."""
    import jsonschema

    _, errors = parse_spec_text(END_CARD_BEATS, "specs/zip.yaml")
    assert errors == [], [str(e) for e in errors]
    jsonschema.validate(yaml.safe_load(END_CARD_BEATS), json_schema()["spec"])
    _, errors = parse_spec_text(END_CARD_BEATS.replace("brand: {name: Zip, tagline: Drink more}\n", ""), "specs/zip.yaml")
    assert [(e.line, e.field) for e in errors] == [(8, "beats.2.motion_prompt"), (8, "beats.2.image_prompt")], errors
    # and it builds (its picture under the card is drawn locally, from no prompt)
    project.write_spec("zip", yaml.safe_load(END_CARD_BEATS))
    run = project.doit()
    assert run.returncode == 0 and (project.build / "zip" / "final.mp4").is_file(), run.stdout + run.stderr


OWN_MEDIA_BEATS = """\
title: Zip
prompt: A short ad for the Zip bottle
duration: 14
beats:
  - {id: hook, type: hook, duration: 3, footage: clip.mp4}
  - {id: reveal, type: product-reveal, duration: 4, image: still.png, motion_prompt: slow push in}
  - {id: demo, type: demo, duration: 4, image_prompt: The bottle in ice}
  - {id: cta, type: cta, duration: 3, motion_prompt: pan left}
"""


def test_a_beat_needs_only_the_prompts_that_are_sent_for_it() -> None:
    """Your own footage needs no prompt and your own still no image prompt (nothing is asked with
    them); every other beat needs both, said where the beat is, in validate and the JSON Schema."""
    _, errors = parse_spec_text(OWN_MEDIA_BEATS, "specs/zip.yaml")
    assert [(e.line, e.field) for e in errors] == [(7, "beats.2.motion_prompt"), (8, "beats.3.image_prompt")], errors
    assert "your own `footage:` needs none" in errors[0].message
    import jsonschema

    schema = json_schema()["spec"]
    data = yaml.safe_load(OWN_MEDIA_BEATS)

    def leaves(errors) -> list[str]:  # beats: is anyOf(list, null): the reasons are in each error's context
        return [m for e in errors for m in (leaves(e.context) if e.context else [e.message])]

    found = sorted(m for m in leaves(jsonschema.Draft202012Validator(schema).iter_errors(data)) if "required" in m)
    assert found == ["'image_prompt' is a required property", "'motion_prompt' is a required property"], found
    data["beats"] = data["beats"][:2]
    data["duration"] = 7
    jsonschema.validate(data, schema)
    # a beat file the same (a planner's plan always has both: its beats have no media of yours)
    beat_file = {"version": 1, "music": {"prompt": "calm piano", "bpm": 90}, "beats": data["beats"]}
    assert BeatFile.model_validate(beat_file).beats[0].motion_prompt is None
    with pytest.raises(ValueError, match="motion_prompt"):
        BeatFile.model_validate({**beat_file, "beats": [{"id": "a", "type": "hook", "duration": 3, "image_prompt": "x"}]})
