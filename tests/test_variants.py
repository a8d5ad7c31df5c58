"""Variants: the matrix semantics (GitHub Actions'), names, located errors, which beat file each
variant uses, doit's view of them, and the exact requests a 3 x 2 matrix pays for (live mode
against the loopback fakes: shared work is paid once)."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
import yaml

from adspec import media
from adspec.ads import expansion, list_ads, select_ads
from adspec.errors import SpecError
from adspec.loader import parse_spec_text
from adspec.variants import value_slug
from conftest import Project, executed_tasks, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate


def test_every_variant_error_of_a_file_in_one_run(tmp_path: Path) -> None:
    # an undeclared var or asset in one variant hid every other variant's errors until fixed
    path = spec_file(tmp_path, """\
     variants:
       matrix:
         vars.cty: [Denver, Austin]
       named:
         badm: {models.video: seedanse}
         long: {duration: 500}
     """)
    found = [(e.line, e.field) for e in errors_of(path)]
    assert found == [(9, "variants.matrix.vars.cty"), (11, "variants.named.badm.models.video"),
                     (12, "variants.named.long.duration")], found


BASE = """\
title: Zip
prompt: A short ad for the Zip bottle in {{ city }}
duration: 8
aspect_ratio: "16:9"
resolution: 360p
vars: {city: Denver, hook: "Thirsty?"}
"""


def spec_file(tmp_path: Path, variants: str, base: str = BASE, name: str = "zip") -> Path:
    path = tmp_path / "specs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(base + textwrap.dedent(variants), encoding="utf-8")
    return path


def names(path: Path) -> list[str]:
    return [v.ad for v in expansion(path).variants]


def errors_of(path: Path) -> list[SpecError]:
    _, errors = parse_spec_text(path.read_bytes(), "specs/zip.yaml", spec_path=path)
    return errors


# ---- semantics -------------------------------------------------------------------------------------


def test_matrix_is_the_product_in_written_order_with_readable_names(tmp_path: Path) -> None:
    path = spec_file(tmp_path, """\
        variants:
          matrix:
            aspect_ratio: ["16:9", "9:16", "1:1"]
            vars.city: [Denver, New York]
        """)
    assert names(path) == ["zip@16x9-denver", "zip@16x9-new-york", "zip@9x16-denver", "zip@9x16-new-york",
                           "zip@1x1-denver", "zip@1x1-new-york"]
    v = expansion(path).variants[3]
    assert (v.spec.aspect_ratio, v.spec.vars["city"], v.spec.vars["hook"]) == ("9:16", "New York", "Thirsty?")
    assert v.spec.variants is None
    assert value_slug("vars.city", "São Paulo") == "sao-paulo" and value_slug("seed", True) == "true"


def test_exclude_include_and_named_follow_github_semantics(tmp_path: Path) -> None:
    path = spec_file(tmp_path, """\
        variants:
          matrix:
            aspect_ratio: ["16:9", "9:16"]
            vars.city: [Denver, Austin]
          exclude:
            - {aspect_ratio: "9:16", vars.city: Austin}    # one combination
          include:
            - {vars.city: Denver, seed: 11}                 # extends the Denver combinations
            - {aspect_ratio: "4:5", vars.city: Boston}      # fits none: a combination of its own
          named:
            base: {}
            holiday: {title: Holiday Zip, vars.hook: "Cold out?"}
        """)
    exp = expansion(path)
    assert [v.ad for v in exp.variants] == ["zip@16x9-denver", "zip@16x9-austin", "zip@9x16-denver",
                                            "zip@4x5-boston", "zip@base", "zip@holiday"]
    seeds = {v.name: v.spec.seed for v in exp.variants}
    assert seeds == {"16x9-denver": 11, "16x9-austin": 0, "9x16-denver": 11, "4x5-boston": 0, "base": 0, "holiday": 0}
    holiday = exp.variants[-1].spec
    assert (holiday.title, holiday.vars["hook"], holiday.aspect_ratio) == ("Holiday Zip", "Cold out?", "16:9")
    # a partial exclude removes every combination it matches
    path2 = spec_file(tmp_path, """\
        variants:
          matrix: {aspect_ratio: ["16:9", "9:16"], vars.city: [Denver, Austin]}
          exclude: [{vars.city: Austin}]
        """, name="zip2")
    assert names(path2) == ["zip2@16x9-denver", "zip2@9x16-denver"]


def test_variants_share_the_beat_file_unless_they_change_the_plan(tmp_path: Path) -> None:
    path = spec_file(tmp_path, """\
        variants:
          matrix:
            duration: [8, 15]
            aspect_ratio: ["16:9", "9:16"]
            vars.city: [Denver, Austin]
          named:
            short-title: {title: Other title, resolution: 720p, seed: 3}
            holiday: {prompt: "A holiday ad for the Zip bottle in {{ city }}"}
        """)
    exp = expansion(path)
    beats = {v.name: exp.beats_path(v.beats_tag).name for v in exp.variants}
    # duration shapes the plan: one beat file per duration, shared by its aspect ratios and cities
    assert {k: b for k, b in beats.items() if k.startswith("8-")} == {
        "8-16x9-denver": "zip.beats.yaml", "8-16x9-austin": "zip.beats.yaml",
        "8-9x16-denver": "zip.beats.yaml", "8-9x16-austin": "zip.beats.yaml"}
    assert {b for k, b in beats.items() if k.startswith("15-")} == {"zip@15.beats.yaml"}
    assert beats["short-title"] == "zip.beats.yaml"  # title, resolution, seed: not plan-shaping
    assert beats["holiday"] == "zip@holiday.beats.yaml"


def test_a_variant_sets_its_own_font_voice_and_caption_style(tmp_path: Path) -> None:
    # a Japanese variant needed a CJK brand.font on every language: the brand kit, the voice and
    # the captions' style were not fields a variant could set
    from adspec.text_fit import bundled_font

    font = tmp_path / "specs" / "fonts" / "jp.ttf"
    font.parent.mkdir(parents=True)
    font.write_bytes(bundled_font().read_bytes())
    path = spec_file(tmp_path, """\
        variants:
          matrix: {language: [en, ja]}
          include:
            - {language: ja, brand.font: fonts/jp.ttf, voice.name: nova, voice.speed: 1.2, models.voice: tts-1,
               captions.size: 1.4, captions.burn: false, brand.cta: 今すぐ}
        """)
    assert errors_of(path) == []
    specs = {v.name: v.spec for v in expansion(path).variants}
    en, ja = specs["en"], specs["ja"]
    assert (en.brand.font, en.voice.name, en.captions.size, en.captions.burn) == (None, None, 1.0, True)
    assert (ja.brand.font, ja.voice.name, ja.voice.speed, ja.models.voice) == ("fonts/jp.ttf", "nova", 1.2, "tts-1")
    assert (ja.captions.size, ja.captions.burn, ja.brand.cta) == (1.4, False, "今すぐ")
    assert {exp_v.beats_tag for exp_v in expansion(path).variants} == {None}  # none of them shapes the plan


def test_a_variants_font_is_checked_where_it_is_written(tmp_path: Path) -> None:
    path = spec_file(tmp_path, """\
        variants:
          named:
            ja: {language: ja, brand.font: fonts/missing.otf}
            slow: {voice.speed: 9}
        """)
    found = [(e.line, e.field, e.message) for e in errors_of(path)]
    assert [(line, field) for line, field, _ in found] == [(9, "variants.named.ja.brand.font"),
                                                           (10, "variants.named.slow.voice.speed")], found
    assert "missing.otf" in found[0][2] and "between 0.5 and 2.0" in found[1][2]


# ---- bad input: one line each, naming the file, the line and the field ----------------------------


@pytest.mark.parametrize("variants, line, field, words", [
    ("""\
     variants:
       matrix:
         aspect_ratio: ["16:9", "9:16"]
         colour: [red, blue]
     """, 10, "variants.matrix.colour", "unknown field 'colour'"),
    ("""\
     variants:
       matrix:
         vars.cty: [Denver, Austin]
     """, 9, "variants.matrix.vars.cty", "unknown variable 'cty' (did you mean 'vars.city'?)"),
    ("""\
     variants:
       matrix: {}
     """, 8, "variants.matrix", "empty matrix"),
    ("""\
     variants:
       matrix:
         aspect_ratio: []
     """, 9, "variants.matrix.aspect_ratio", "empty list"),
    ("""\
     variants:
       matrix:
         aspect_ratio: ["16:9", "9:16"]
       exclude:
         - {aspect_ratio: "1:1"}
     """, 11, "variants.exclude.0", "matches no combination"),
    ("""\
     variants:
       matrix:
         vars.city: [New York, new-york]
     """, 9, "variants.matrix.vars.city.1", "variant name 'new-york' is made twice"),
    ("""\
     variants:
       matrix:
         vars.city: [Denver, Austin]
       named:
         denver: {seed: 2}
     """, 11, "variants.named.denver", "variant name 'denver' is used twice"),
    ("""\
     variants:
       named:
         Holiday: {seed: 2}
     """, 9, "variants.named.Holiday", "must be lower-case"),
    ("""\
     variants:
       matrix:
         aspect_ratio: [16:10, "9:16"]
     """, 9, "variants.matrix.aspect_ratio.0", "16:10"),
    ("""\
     variants:
       matrix:
         duration: [8, 500]
     """, 9, "variants.matrix.duration.1", "variant '500': duration: must be between 5 and 180"),
    ("""\
     variants:
       named:
         big: {models.video: sora-9}
     """, 9, "variants.named.big.models.video", "unknown video model 'sora-9'"),
    ("""\
     variants:
       matrix: {aspect_ratio: ["16:9"]}
       exclude: [{aspect_ratio: "16:9"}]
     """, 9, "variants.exclude", "remove every combination"),
    ("""\
     variants: {}
     """, 7, "variants", "no variants"),
    ("""\
     variants:
       matrix: {beats: [1, 2]}
     """, 8, "variants.matrix.beats", "cannot vary between variants"),
    ("""\
     variants:
       named:
         paris: {vars: {city: Paris}}
     """, 9, "variants.named.paris.vars", "write `vars.city: ...`, not a nested mapping"),
    ("""\
     variants:
       matrix:
         brand: [{name: X}]
     """, 9, "variants.matrix.brand.0", "write `brand.name: ...`, not a nested mapping"),
])
def test_bad_variants_are_one_line_errors_with_file_line_and_field(tmp_path: Path, variants: str, line: int,
                                                                   field: str, words: str) -> None:
    path = spec_file(tmp_path, variants)
    errors = errors_of(path)
    assert errors, "expected an error"
    e = errors[0]
    assert (e.path, e.line, e.field) == ("specs/zip.yaml", line, field), e.one_line()
    assert words in e.message, e.one_line()
    assert e.one_line().startswith(f"specs/zip.yaml:{line}: {field}: ")
    assert "\n" not in e.one_line() and "Traceback" not in e.one_line()


def test_variant_names_never_collide_with_another_ad(tmp_path: Path) -> None:
    """'@' is not allowed in a spec's file name, so `zip@denver` cannot be another spec's ad."""
    spec_file(tmp_path, "variants:\n  matrix: {vars.city: [Denver]}\n")
    clash = tmp_path / "specs" / "zip@denver.yaml"
    clash.write_text(BASE, encoding="utf-8")
    _, errors = parse_spec_text(clash.read_bytes(), str(clash), spec_path=clash)
    assert errors and "ad name 'zip@denver'" in errors[0].message
    # and if such a file is there anyway, listing the ads says so instead of building either
    with pytest.raises(SpecError) as info:
        list_ads(tmp_path / "specs")
    assert info.value.path.endswith("zip@denver.yaml") and "collides with the variant zip@denver" in info.value.message
    clash.unlink()
    ads, groups = list_ads(tmp_path / "specs")
    assert [a for a, _ in ads] == ["zip@denver"] and groups == {"zip": ["zip@denver"]}
    assert select_ads(["zip"], tmp_path / "specs") == ads
    with pytest.raises(SpecError, match="no ad named nope"):
        select_ads(["nope"], tmp_path / "specs")


def test_a_broken_spec_is_listed_as_one_ad_whose_plan_reports_it(tmp_path: Path) -> None:
    spec_file(tmp_path, "variants:\n  matrix: {colour: [red]}\n")
    spec_file(tmp_path, "", name="ok")
    ads, groups = list_ads(tmp_path / "specs")
    assert [a for a, _ in ads] == ["ok", "zip"] and groups == {}


# ---- doit ----------------------------------------------------------------------------------------


def built(doit_output: str) -> list[str]:
    """The build tasks that ran (plan, storyboard, chunk, music, stitch, mix), not reports."""
    return [t for t in executed_tasks(doit_output)
            if t.split(":", 1)[0] in ("plan", "storyboard", "chunk", "music", "stitch", "mix")]


def matrix_spec(**overrides) -> dict:
    spec = small_spec(**overrides)
    spec["vars"] = {"city": "Denver"}
    spec["beats"][0]["image_prompt"] = "A bottle on a rock above {{ city }}"
    spec["variants"] = {"matrix": {"aspect_ratio": ["16:9", "9:16"], "vars.city": ["Denver", "Austin"]}}
    return spec


def test_doit_lists_each_variant_with_its_own_tasks(project: Project) -> None:
    project.write_spec("zip", matrix_spec())
    listed = project.doit("list", "--all").stdout.split()
    for v in ("zip@16x9-denver", "zip@16x9-austin", "zip@9x16-denver", "zip@9x16-austin"):
        assert v in listed and f"plan:{v}" in listed
    assert "zip" in listed  # builds them all (checked by the build below)
    assert not any(name.startswith("plan:zip") and "@" not in name for name in listed)  # the base is no ad


# ---- the 3 x 2 matrix against the fakes: exact requests ------------------------------------------------

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
OPENAI_KEY = "sk-FAKE-key-not-real-0000000"


def city_plan(body: dict) -> dict:
    """The planner's answer: the hook names the city (its image and its motion), the cta does not."""
    return {"music": {"prompt": "upbeat electronic bed", "bpm": 120}, "beats": [
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "The Zip bottle on a trail above {{ city }}",
         "motion_prompt": "drone shot over {{ city }} at dawn"},
        {"id": "cta", "type": "cta", "duration": 5, "image_prompt": "The Zip bottle and its logo",
         "motion_prompt": "slow push-in on the logo"},
    ]}


def test_a_3x2_matrix_pays_for_shared_work_once(project: Project) -> None:
    spec = small_spec()
    del spec["beats"], spec["music"]
    spec["vars"] = {"city": "Denver"}
    spec["variants"] = {"matrix": {"aspect_ratio": ["16:9", "9:16", "1:1"], "vars.city": ["Denver", "Austin"]}}
    project.write_spec("zip", spec)
    with FakeReplicate(latency=0.02) as replicate, FakeOpenAI(responder=city_plan) as openai:
        env = dict(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                   REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url)
        project.doit("-n", "4", "-P", "thread", "zip", **env)
        creates = Counter({k: v for k, v in replicate.creates_by_model.items() if v})
        # one beat file, one planner call for the six variants
        assert openai.count == 1
        assert sorted(p.name for p in project.specs.iterdir()) == ["zip.beats.yaml", "zip.yaml"]
        # images: the hook names the city -> 3 aspects x 2 cities; the cta -> 3 aspects
        # chunks: the same (a chunk is its first frame plus its motion prompt)
        # music: nothing in it varies -> once for the six variants
        assert creates == Counter({"black-forest-labs/flux-dev": 6 + 3, "minimax/hailuo-2.3-fast": 6 + 3,
                                   "meta/musicgen": 1})
        assert all(n == 1 for n in replicate.creates_by_input.values())
        finals = sorted(project.build.glob("zip@*/final.mp4"))
        assert [p.parent.name for p in finals] == sorted(f"zip@{a}-{c}" for a in ("16x9", "9x16", "1x1")
                                                          for c in ("denver", "austin"))
        sizes = {p.parent.name.split("@")[1].split("-")[0]: (media.probe(p).width, media.probe(p).height) for p in finals}
        assert sizes == {"16x9": (640, 360), "9x16": (360, 640), "1x1": (360, 360)}
        # the city reached the requests of the variants that name it
        prompts = [b["body"]["input"]["prompt"] for b in replicate.create_bodies if b["slug"] == "minimax/hailuo-2.3-fast"]
        assert sum("over Austin" in p for p in prompts) == 3 and sum("over Denver" in p for p in prompts) == 3
        # each variant's render tasks are listed once its plan exists
        listed = project.doit("list", "--all", **env).stdout.split()
        assert {"chunk:zip@1x1-austin/hook/0", "storyboard:zip@9x16-denver/cta", "mix:zip@16x9-austin"} <= set(listed)
        # again, all of them or one by name: nothing is asked
        before = len(replicate.requests)
        again = project.doit("zip", **env)
        assert built(again.stdout) == [] and len(replicate.requests) == before and openai.count == 1
        assert built(project.doit("zip@9x16-austin", **env).stdout) == []
        beats = yaml.safe_load(project.beats_file("zip").read_text())
        assert "{{ city }}" in beats["beats"][0]["image_prompt"]


def test_lock_rules_hold_per_beat_file(project: Project) -> None:
    """A matrix over duration: one beat file per duration (one planner call each); each keeps the
    lock's rules on its own: an edited one is never replanned over, the untouched one is."""
    spec = small_spec(prompt="A short ad for the Zip bottle")
    del spec["beats"], spec["music"]
    spec["variants"] = {"matrix": {"duration": [8, 15], "aspect_ratio": ["16:9", "9:16"]}}
    project.write_spec("zip", spec)
    planned = project.adspec("plan", "zip")
    assert planned.returncode == 0, planned.stderr
    assert "zip@15-9x16: " in planned.stdout and "zip@15.beats.yaml" in planned.stdout
    assert sorted(p.name for p in project.specs.iterdir()) == ["zip.beats.yaml", "zip.yaml", "zip@15.beats.yaml"]
    assert [e["kind"] for e in project.ledger()] == ["plan", "plan"]  # one per beat file, not per variant
    assert sum(b["duration"] for b in yaml.safe_load(project.beats_file("zip@15").read_text())["beats"]) == 15
    # a person edits the 15 s beat file; then the prompt (plan-shaping) changes
    doc = yaml.safe_load(project.beats_file("zip@15").read_text())
    doc["beats"][0]["image_prompt"] = "Sunlit " + doc["beats"][0]["image_prompt"]
    edited = yaml.safe_dump(doc, sort_keys=False)
    project.beats_file("zip@15").write_text(edited)
    assert project.adspec("validate").returncode == 0
    spec["prompt"] = "A short ad for the Zip bottle, now in red"
    project.write_spec("zip", spec)
    replanned = project.adspec("plan", "zip@8-16x9")
    assert replanned.returncode == 0 and len(project.ledger()) == 3  # untouched: replanned
    kept = project.adspec("plan", "zip@15-16x9")  # edited, and it still fits the spec: kept as it is
    assert kept.returncode == 0, kept.stderr
    assert len(project.ledger()) == 3  # no planner asked for it
    now = yaml.safe_load(project.beats_file("zip@15").read_text())
    assert now["beats"] == doc["beats"] and now["music"] == doc["music"]  # the edit stands
    assert now["planned_from"]["spec_sha256"] != doc["planned_from"]["spec_sha256"]  # the record follows the spec


def test_validate_checks_a_shared_beat_file_against_each_variant(project: Project) -> None:
    """A variant that shares the base's beat file can still make it wrong (a beat's video model
    without the variant's aspect ratio): validate says so at the beat's line, naming the variant
    (it said ok, and the variant's plan step failed)."""
    spec = small_spec(resolution="720p", variants={"named": {"square": {"aspect_ratio": "1:1"},
                                                             "tall": {"aspect_ratio": "9:16"}}})
    del spec["beats"], spec["music"]
    project.write_spec("zip", spec)
    beats = project.beats_file("zip")
    beats.write_text(textwrap.dedent("""\
        version: 1
        music: {prompt: upbeat electronic, bpm: 120}
        beats:
          - id: hook
            type: hook
            duration: 3
            image_prompt: A bottle on a rock
            motion_prompt: slow push in
            models: {video: veo-3.1-fast}
          - id: cta
            type: cta
            duration: 5
            image_prompt: The bottle and the logo
            motion_prompt: pan left
        """))
    out = project.adspec("validate")
    lines = [x for x in out.stderr.splitlines() if x.strip() and "warning" not in x]
    model_line = next(i for i, x in enumerate(beats.read_text().splitlines(), 1) if "veo-3.1-fast" in x)
    assert out.returncode == 1 and len(lines) == 1, out.stdout + out.stderr
    assert lines[0].startswith(f"specs/zip.beats.yaml:{model_line}: beats.0.models.video: zip@square: "), lines
    assert "1:1" in lines[0] and "zip@tall" not in lines[0]


def test_a_variant_of_a_spec_with_an_error_names_the_error_not_no_such_ad(project: Project) -> None:
    spec = small_spec(variants={"named": {"winter": {"title": "Winter"}}})
    path = project.write_spec("zip", spec)
    path.write_text(path.read_text().replace("duration: 8", "duration: 800"))
    for args in (("approve", "--list", "zip@winter"), ("status", "zip@winter"), ("build", "zip@winter")):
        out = project.adspec(*args)
        assert out.returncode == 1 and "no ad named" not in out.stderr, (args, out.stderr)
        assert "specs/zip.yaml:" in out.stderr and "duration" in out.stderr, (args, out.stderr)
    # doit said only `Invalid parameter: "zip@winter"`, naming no file
    for args in (("zip@winter",), ("storyboard:zip@winter/hook",)):
        out = project.doit(*args, check=False)
        assert out.returncode != 0 and "Invalid parameter" not in out.stdout + out.stderr, (args, out.stderr)
        line = "adspec: zip@winter: its spec has errors, so its variants are not known: specs/zip.yaml:"
        assert line in out.stderr and "duration" in out.stderr and "Traceback" not in out.stderr, out.stderr
