"""Issue 15, point 3: every error of a file in one run, a spec that is only a prompt, the
beat library's rules as warnings, and one way of counting beats in messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from adspec.loader import load_spec, parse_spec_text, readable_title
from conftest import Project, small_spec

BOTH_STAGES = """\
prompt: "An ad for {{ nope }} with springy foam"
duration: 3
brand: {colors: [red]}
assets: {product: ../../outside.png, logo: missing.png}
"""


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_validate_reports_schema_and_later_errors_in_one_run(project: Project) -> None:
    (project.specs / "both.yaml").write_text(BOTH_STAGES, encoding="utf-8")
    proc = project.adspec("validate")
    assert proc.returncode == 1
    out = proc.stderr
    # the schema's errors ...
    assert re.search(r"both\.yaml:2: duration: must be between 5 and 180", out), out
    assert re.search(r"both\.yaml:3: brand\.colors\.0: must be a colour", out), out
    # ... and the checks that used to wait for them to be fixed
    assert re.search(r"both\.yaml:1: prompt: unknown variable 'nope'", out), out
    assert re.search(r"both\.yaml:4: assets\.product: '\.\./\.\./outside\.png' leads outside the project", out), out
    assert re.search(r"both\.yaml:4: assets\.logo: file 'missing\.png' not found", out), out
    assert "Traceback" not in out


def test_doit_shows_the_first_errors_and_how_many_more(project: Project) -> None:
    many = BOTH_STAGES.replace("brand: {colors: [red]}", "brand: {colors: [red, blue]}\nseed: -1")
    (project.specs / "many.yaml").write_text(many, encoding="utf-8")
    proc = project.doit("--dir", str(project.root), check=False)  # doit in the project, as a user's own dodo.py runs it
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    shown = [line for line in out.splitlines() if re.search(r"many\.yaml:\d+: ", line)]
    assert len(shown) == 5, out  # the first few, one per line
    # each names its task, and the file as it would be typed here (doit runs in the project)
    assert all(line.startswith("FAILED plan:many: specs/many.yaml:") for line in shown), shown
    assert "FAILED plan:many: specs/many.yaml: ... and 2 more errors; run `adspec validate specs/many.yaml`" in out, out
    assert re.search(r"and (\d+) more errors?; run `adspec validate .*many\.yaml`", out), out
    assert "adspec: many: nothing built; 1 FAILED; spent $0.00" in out, out  # not "nothing to build"
    more = int(re.search(r"and (\d+) more error", out).group(1))  # type: ignore[union-attr]
    assert more == 2, out  # 7 errors in all: prompt, duration, 2 colours, seed, 2 assets
    assert "Traceback" not in out


def test_a_prompt_only_spec_validates_and_builds(project: Project) -> None:
    (project.specs / "trail-runner.yaml").write_text("prompt: A 6-second ad for the Zip water bottle\n", encoding="utf-8")
    proc = project.adspec("validate")
    assert proc.returncode == 0, proc.stderr
    spec = load_spec(project.specs / "trail-runner.yaml")
    assert spec.title == "Trail Runner"
    assert spec.duration == 6  # from the prompt
    project.doit("-n", "1")
    final = project.build / "trail-runner" / "final.mp4"
    from adspec.media import probe

    info = probe(final)
    assert abs(info.duration - 6.0) < 0.1 and (info.width, info.height) == (1280, 720)


def test_readable_title() -> None:
    assert readable_title("specs/trail-runner.yaml") == "Trail Runner"
    assert readable_title("specs/brew_box2.yaml") == "Brew Box2"


def test_top_level_aspect_ratio_number_says_to_quote_it() -> None:
    _, errors = parse_spec_text("prompt: p\naspect_ratio: 969\n", "specs/x.yaml")
    [err] = errors
    assert err.field == "aspect_ratio" and 'write it quoted, e.g. "16:9"' in err.message


BEATS_UNKNOWN_VAR = """\
music: {prompt: upbeat, bpm: 120}
beats:
  - {id: hook, type: hook, duration: 3, image_prompt: "A bottle", motion_prompt: "push in"}
  - {id: cta, type: cta, duration: 5, image_prompt: "The {{ bogus }} bottle", motion_prompt: "pan left"}
"""


def test_beat_file_errors_under_doit_keep_their_lines(project: Project) -> None:
    (project.specs / "zip.yaml").write_text("prompt: An 8-second ad for the Zip bottle\nresolution: 360p\n", encoding="utf-8")
    assert project.adspec("plan", "zip").returncode == 0
    path = project.beats_file("zip")
    text = path.read_text(encoding="utf-8")
    assert "Striking opening shot" in text
    path.write_text(text.replace("Striking opening shot", "Striking {{ bogus }} shot"), encoding="utf-8")
    line = next(i for i, x in enumerate(path.read_text().splitlines(), 1) if "bogus" in x)
    proc = project.doit(check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(rf"zip\.beats\.yaml:{line - 1}: beats\.0\.image_prompt: .*unknown variable 'bogus'", out), out

    # a file failing its schema: doit says its errors against the spec too, as validate does (the total was left out)
    text = path.read_text(encoding="utf-8").replace("{{ bogus }}", "opening").replace("motion_prompt:", "motion_promt:", 1)
    path.write_text(text.replace("duration: 2\n", "duration: 3\n", 1), encoding="utf-8")
    out = project.doit(check=False).stdout
    said = project.adspec("validate").stderr
    assert "beats last 9 s in total but the spec's duration is 8 s" in said, said
    assert sorted(re.findall(r"zip\.beats\.yaml:\d+: .*", out)) == sorted(re.findall(r"zip\.beats\.yaml:\d+: .*", said)), (out, said)


def test_library_rules_are_warnings_with_the_rule(project: Project) -> None:
    (project.specs / "zip.yaml").write_text("prompt: A 20-second ad for the Zip bottle\n", encoding="utf-8")
    beats = {"music": {"prompt": "upbeat", "bpm": 120}, "beats": [
        {"id": "end", "type": "end-card", "duration": 3, "image_prompt": "logo", "motion_prompt": "static"},
        {"id": "feat", "type": "feature", "duration": 9, "image_prompt": "detail", "motion_prompt": "push in"},
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "bottle", "motion_prompt": "push in"},
        {"id": "cta", "type": "cta", "duration": 5, "image_prompt": "bottle", "motion_prompt": "pan left"},
    ]}
    project.beats_file("zip").write_text(yaml.safe_dump(beats, sort_keys=False), encoding="utf-8")
    proc = project.adspec("validate")
    assert proc.returncode == 0, proc.stderr  # warnings: it still builds
    out = proc.stderr
    assert re.search(r"zip\.beats\.yaml:\d+: beats\.1: warning: .*9 s is outside the feature range of 3-8 s", out), out
    assert re.search(r"zip\.beats\.yaml:\d+: beats\.0: warning: .*end-card must be the last beat", out), out
    assert "warning" in proc.stdout  # "ok: specs (N warnings)"


def test_beats_are_counted_from_zero_everywhere(tmp_path: Path) -> None:
    from adspec.loader import beat_file_errors_text

    text = BEATS_UNKNOWN_VAR.replace("id: cta", "id: hook").replace("{{ bogus }} ", "")
    _, errors = beat_file_errors_text(text, "x.beats.yaml")
    [err] = errors
    assert err.field == "beats.1.id" and "already used by beats.0" in err.message


def test_later_checks_do_not_guess_about_a_field_that_failed() -> None:
    """The later checks run on what parsed, but never against a default standing in for a field
    that failed: no 'unknown variable' for a var whose value is wrong, no 'music only with inline
    beats' when the beats are there but wrong."""
    _, errors = parse_spec_text("prompt: in {{ city }} and {{ nope }}\nvars: {city: [1, 2]}\n", "specs/x.yaml")
    assert [(e.field, e.line) for e in errors] == [("prompt", 1), ("vars.city", 2)], errors
    assert "'nope'" in errors[0].message
    text = ("prompt: p\nmusic: {prompt: x, bpm: 100}\nbeats:\n"
            "  - {id: hook, type: hook, duration: 5, image_prompt: '', motion_prompt: b}\n")
    _, errors = parse_spec_text(text, "specs/x.yaml")
    assert [e.field for e in errors] == ["beats.0.image_prompt"], errors
    _, errors = parse_spec_text(text.replace("duration: 5", "duration: 4"), "specs/x.yaml")
    # the beats as written are checked too (an ad has no 4 s length to take from them: the default 30 s stands)
    assert [e.field for e in errors] == ["beats", "beats.0.image_prompt"], errors


def test_an_asset_map_names_the_field_that_is_wrong() -> None:
    """An asset written as a map reported `assets.leo: is required` for a misspelt key: now the
    missing field and the unknown one, each on its line (pydantic's union tag sat between them)."""
    text = ("prompt: p\nassets:\n  leo: {file: leo.png, role: character}\n  mia:\n    path: mia.png\n"
            "  max: {path: max.png, role: charcter}\n")
    _, errors = parse_spec_text(text, "specs/x.yaml")
    assert [e.one_line() for e in errors] == [
        "specs/x.yaml:3: assets.leo.path: is required",
        "specs/x.yaml:3: assets.leo.file: unknown field; allowed: path, role",
        "specs/x.yaml:4: assets.mia.role: is required",
        "specs/x.yaml:6: assets.max.role: must be one of 'product', 'character', 'logo' or 'style' (got 'charcter')"]


def test_a_misspelt_field_is_one_error_not_two() -> None:
    """`promt:` said `prompt: is required` (on the mapping's first line) and `promt: unknown field
    (did you mean 'prompt'?)`: one mistake, two lines. The second says it; a missing field that no
    unknown one is close to is still said."""
    text = "title: T\npromt: p\nduration: 5\nbeats:\n  - {id: a, type: cta, duration: 5, image_prompt: x, motion_promt: y}\n"
    _, errors = parse_spec_text(text, "specs/x.yaml")
    assert [e.one_line().partition("; allowed")[0] for e in errors] == [
        "specs/x.yaml:2: promt: unknown field (did you mean 'prompt'?)",
        "specs/x.yaml:5: beats.0.motion_promt: unknown field (did you mean 'motion_prompt'?)"], errors
    _, errors = parse_spec_text(text.replace("promt: p", "words: p", 1), "specs/x.yaml")
    assert [e.one_line().partition("; allowed")[0] for e in errors][:2] == [
        "specs/x.yaml:1: prompt: is required", "specs/x.yaml:2: words: unknown field"], errors


@pytest.mark.parametrize("tag, says", [
    ("en-us", "'en-us': write 'en-US' (BCP 47's conventional case"),
    ("zh-hans", "write 'zh-Hans'"),
    ("EN", "write 'en'"),
    ("en_US", "write 'en-US'"),
    ("de-DE-1996", "adspec takes language[-Script][-REGION] (e.g. de-DE)"),
    ("english", "'english' is not a BCP 47 language tag"),
])
def test_a_language_tag_adspec_does_not_take_says_how_to_write_it(tag: str, says: str) -> None:
    """Tags are compared as written (text maps, variant names): one in another case is refused
    with its conventional spelling (it said only "is not a BCP 47 language tag")."""
    _, errors = parse_spec_text(f"prompt: p\nlanguage: {tag}\n", "specs/x.yaml")
    [e] = errors
    assert e.one_line().startswith("specs/x.yaml:2: language: ") and says in e.one_line(), e.one_line()


def test_the_soft_caption_track_names_more_languages() -> None:
    from adspec.languages import iso639_2

    assert [iso639_2(t) for t in ("zu", "de-AT", "vi", "sw", "xx")] == ["zul", "deu", "vie", "swa", "und"]


def test_shows_twice_or_more_than_any_model_takes_is_an_error_of_validate() -> None:
    """Both reached the plan step (a 5-image `shows:` failed there; a repeated name was sent, and
    priced, twice)."""
    text = ("prompt: p\nduration: 8\nassets: {product: a.png, b: b.png, c: c.png, d: d.png, e: e.png}\nbeats:\n"
            "  - {id: hook, type: hook, duration: 3, image_prompt: x, motion_prompt: y, shows: [product, product]}\n"
            "  - {id: cta, type: cta, duration: 5, image_prompt: x, motion_prompt: y, shows: [product, b, c, d, e]}\n")
    _, errors = parse_spec_text(text, "specs/x.yaml")
    lines = [e.one_line() for e in errors]
    assert lines[0] == "specs/x.yaml:5: beats.0.shows.1: beat 'hook' shows 'product' twice", lines
    assert lines[1].startswith("specs/x.yaml:6: beats.1.shows: beat 'cta' shows 5 assets: no image model in the "
                               "registry takes more than "), lines
    assert len(lines) == 2


def test_a_placement_listed_twice_is_an_error_of_validate() -> None:
    """It passed validate, then made two tasks of one name: doit refused every ad of the project
    with `Task names must be unique`, no file, no line."""
    _, errors = parse_spec_text("prompt: p\naspect_ratio: '9:16'\nduration: 20\nplacements: [tiktok, youtube-shorts, tiktok]\n",
                                "specs/x.yaml")
    assert [e.one_line() for e in errors] == ["specs/x.yaml:4: placements.2: 'tiktok' is listed twice"]
    text = ("prompt: p\naspect_ratio: '9:16'\nduration: 20\nplacements: [tiktok]\nvariants:\n  named:\n"
            "    sq: {placements: [instagram-reels, instagram-reels]}\n")
    _, errors = parse_spec_text(text, "specs/x.yaml")
    assert [e.one_line() for e in errors] == [
        "specs/x.yaml:7: variants.named.sq.placements: variant 'sq': placements.1: 'instagram-reels' is listed twice"]


def test_a_text_missing_in_a_variants_language_fails_its_plan_at_the_beats_line(project: Project) -> None:
    """Under doit as under validate: the line and `beats.<n>.<field>` (the plan step said
    `specs/zip.yaml: beats.hook.voiceover:`, no line, the id where the index goes)."""
    from conftest import small_spec

    spec = small_spec(variants={"matrix": {"language": ["en", "de"]}})
    spec["beats"][0]["voiceover"] = "Meet Zip."
    path = project.write_spec("zip", spec)
    line = next(i for i, x in enumerate(path.read_text().splitlines(), 1) if "voiceover" in x)
    run = project.doit("plan", check=False)
    failed = [x for x in run.stdout.splitlines() if x.startswith("FAILED plan:zip@de")]
    # the line, and the brand's tagline (English only too) at its own, before it: each error of the file
    assert run.returncode != 0 and len(failed) == 2, run.stdout + run.stderr
    # (doit runs in the folder of the dodo.py it is given: here the repo's, so the path is absolute)
    assert f"specs/zip.yaml:{line}: beats.0.voiceover: beat 'hook': no 'de' text" in failed[1], failed
    assert "brand.tagline: no 'de' text" in failed[0], failed
    shown = project.adspec("validate")
    assert f"specs/zip.yaml:{line}: beats.0.voiceover: zip@de: " in shown.stderr, shown.stderr


def test_what_the_bundled_font_cannot_draw_is_an_error_of_validate_for_the_ads_in_that_language(project: Project) -> None:
    """The end card's tagline and the burned captions, in each ad's own language: validate says
    so at their lines, naming the variant (the plan step was first to, with no line), and a text
    kept for a later language is no error of the ads in another (the English variant loads)."""
    spec = small_spec(brand={"name": "Zip", "tagline": {"en": "Drink more", "ja": "もっと飲もう"}},
                      variants={"named": {"en": {}, "jp": {"language": "ja"}}})
    spec["beats"][0]["voiceover"] = {"en": "Breathe in.", "ja": "深呼吸して。"}
    path = project.write_spec("zip", spec)
    text = path.read_text().splitlines()
    tagline = next(i for i, x in enumerate(text, 1) if "tagline" in x)
    line = next(i for i, x in enumerate(text, 1) if "voiceover" in x)
    out = project.adspec("validate")
    assert out.returncode == 1 and out.stderr.splitlines() == [
        f"specs/zip.yaml:{tagline}: brand.tagline: zip@jp: 'もっと飲もう': the bundled font has no glyph for 'もっと飲う'; "
        "give brand.font a font that covers the script",
        f"specs/zip.yaml:{line}: beats.0.voiceover: zip@jp: beat 'hook': the caption '深呼吸して。': the bundled font has "
        "no glyph for '深呼吸して。'; give brand.font (or captions.font) a font that covers the script, or captions: "
        "{burn: false}"], out.stderr
    assert project.doit("zip@en").returncode == 0  # the English ad builds


def test_a_duplicate_key_no_longer_hides_the_files_other_errors() -> None:
    """A duplicate key stopped the parse: the file's other errors needed a run each."""
    text = "prompt: p\nduration: 15\nduration: 20\nseed: 'x'\nbrand: {name: A, name: B}\nbogus: 1\n"
    _, errors = parse_spec_text(text, "specs/x.yaml")
    lines = [e.one_line() for e in errors]
    assert lines[:3] == ["specs/x.yaml:3: duration: duplicate key (first given at line 2)",
                         "specs/x.yaml:4: seed: must be a whole number (got 'x')",
                         "specs/x.yaml:5: brand.name: duplicate key (first given at line 5)"], lines
    assert lines[3].startswith("specs/x.yaml:6: bogus: unknown field") and len(lines) == 4, lines


def test_a_beat_that_fails_its_schema_no_longer_hides_the_other_beats_errors() -> None:
    """One bad beat (an unknown type) hid the duplicate id, the total and a too-long super of the
    others: they needed a run each."""
    from adspec.loader import beat_file_errors_text

    spec, errors = parse_spec_text("prompt: p\nduration: 15\n", "specs/x.yaml")
    assert spec is not None and not errors
    text = ("music: {prompt: x, bpm: 100}\nbeats:\n"
            "  - {id: hook, type: hook, duration: 3, image_prompt: a, motion_prompt: b}\n"
            "  - {id: hook, type: feature, duration: 5, image_prompt: a, motion_prompt: b,\n"
            "     on_screen: 'A super far longer than any feature beat could ever hold on screen at once'}\n"
            "  - {id: cta, type: ctaa, duration: 9, image_prompt: a, motion_prompt: b}\n")
    _, errors = beat_file_errors_text(text, "specs/x.beats.yaml", spec)
    lines = [e.one_line() for e in errors]
    assert "specs/x.beats.yaml:2: beats: the beats last 17 s in total but the spec's duration is 15 s" in lines, lines
    assert "specs/x.beats.yaml:4: beats.1.id: duplicate beat id 'hook' (already used by beats.0)" in lines, lines
    assert any(ln.startswith("specs/x.beats.yaml:5: beats.1.on_screen: ") and "a feature beat holds at most" in ln
               for ln in lines), lines
    assert any(ln.startswith("specs/x.beats.yaml:6: beats.2.type: unknown beat type 'ctaa'") for ln in lines), lines
    assert len(lines) == 4, lines


def test_the_variants_blocks_own_errors_show_beside_the_bases() -> None:
    """Variant errors were checked only once the base spec had none."""
    text = "prompt: p\nseed: 'x'\nvars: {city: Paris}\nvariants:\n  matrix:\n    vars.cty: [Rome]\n"
    _, errors = parse_spec_text(text, "specs/x.yaml")
    lines = [e.one_line() for e in errors]
    assert lines[0] == "specs/x.yaml:2: seed: must be a whole number (got 'x')", lines
    assert lines[1].startswith("specs/x.yaml:6: variants.matrix.vars.cty: unknown variable 'cty'"), lines


def test_inline_beats_and_placements_with_a_bad_entry_still_show_the_rest() -> None:
    """A spec's inline beat failing its schema (a missing prompt, an unknown type) hid the duplicate
    id, the total and another beat's too-long line; an unknown placement hid one listed twice."""
    text = ("prompt: p\nduration: 10\naspect_ratio: '9:16'\nplacements: [tiktk, tiktok, tiktok]\nbeats:\n"
            "  - {id: a, type: hok, duration: 3, image_prompt: x}\n"
            "  - {id: a, type: cta, duration: 4, image_prompt: y, motion_prompt: z,\n"
            "     voiceover: 'one two three four five six seven eight nine ten eleven twelve'}\n")
    _, errors = parse_spec_text(text, "specs/x.yaml")
    lines = [e.one_line() for e in errors]
    assert any(ln.startswith("specs/x.yaml:4: placements.0: unknown placement 'tiktk'") for ln in lines), lines
    assert "specs/x.yaml:4: placements.2: 'tiktok' is listed twice" in lines, lines
    assert "specs/x.yaml:5: beats: inline beats last 7 s in total but the spec's duration is 10 s" in lines, lines
    assert any(ln.startswith("specs/x.yaml:6: beats.0.type: unknown beat type 'hok'") for ln in lines), lines
    assert any(ln.startswith("specs/x.yaml:6: beats.0.motion_prompt: is required") for ln in lines), lines
    assert "specs/x.yaml:7: beats.1.id: duplicate beat id 'a' (already used by beats.0)" in lines, lines
    assert any(ln.startswith("specs/x.yaml:8: beats.1.voiceover: 12 words for a 4 s beat") for ln in lines), lines
    assert len(lines) == 7, lines


def test_a_model_of_the_wrong_kind_and_a_folder_for_a_file_are_named_as_such(tmp_path: Path) -> None:
    """`models: {video: flux-dev}` said "unknown video model 'flux-dev'" (it is a known image model),
    and a beat's `image:` naming a folder said the file was not found."""
    (tmp_path / "specs" / "sub").mkdir(parents=True)
    spec = tmp_path / "specs" / "m.yaml"
    spec.write_text("prompt: p\nduration: 10\nmodels: {video: flux-dev, image: hailuo-02}\nbeats:\n"
                    "  - {id: a, type: hook, duration: 4, image: sub, image_prompt: x, motion_prompt: y}\n"
                    "  - {id: b, type: cta, duration: 6, image_prompt: x, motion_prompt: y}\n", encoding="utf-8")
    _, errors = parse_spec_text(spec.read_bytes(), "specs/m.yaml", spec_path=spec)
    lines = [e.one_line() for e in errors]
    assert any(ln.startswith("specs/m.yaml:3: models.video: 'flux-dev' is an image model, not video; video models: ")
               for ln in lines), lines
    assert any(ln.startswith("specs/m.yaml:3: models.image: 'hailuo-02' is a video model, not image; ") for ln in lines), lines
    assert "specs/m.yaml:5: beats.0.image: 'sub' is a folder, not a file" in lines, lines


def test_adspec_version() -> None:
    import subprocess
    import sys

    import adspec

    out = subprocess.run([sys.executable, "-m", "adspec.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"adspec {adspec.__version__}"


def test_a_spec_error_once_fixed_rebuilds_nothing_it_did_not_touch(project: Project) -> None:
    """doit forgot the state of every task behind a failed plan step (none of them ran): after the
    fix, every storyboard, chunk, stitch and mix ran again."""
    from conftest import executed_tasks

    spec = small_spec()
    project.write_spec("zip", spec)
    project.doit()
    project.write_spec("zip", {**spec, "seed": -1})
    failed = project.doit(check=False)
    assert failed.returncode != 0 and "seed: must be between 0" in failed.stdout
    project.write_spec("zip", spec)
    ran = executed_tasks(project.doit().stdout)
    assert [t for t in ran if ":" in t] == ["plan:zip"], ran


def test_a_bad_placement_entry_does_not_hide_the_others_misfits() -> None:
    """An unknown placement failed the list, and the ones the ad cannot meet (its length) were said
    only once it was fixed."""
    text = "prompt: p\nduration: 10\nplacements: [youtube-bumper, tiktk, ctv-15, youtube-instream, youtube-instream]\n"
    _, errors = parse_spec_text(text, "specs/x.yaml")
    lines = sorted(e.one_line().partition(" (known")[0] for e in errors)
    assert lines == ["specs/x.yaml:3: placements.0: youtube-bumper takes up to 6 s and this ad lasts 10 s",
                     "specs/x.yaml:3: placements.1: unknown placement 'tiktk' (did you mean 'tiktok'?)",
                     "specs/x.yaml:3: placements.2: ctv-15 takes exactly 15 s and this ad lasts 10 s",
                     "specs/x.yaml:3: placements.4: 'youtube-instream' is listed twice"], lines
