"""`adspec validate [PATHS]` and `adspec schema`: the functions behind them (the CLI is thin).

Editor autocomplete: `adspec schema` prints both JSON Schemas; `write_schemas(schema)`
writes `spec.schema.json` and `beats.schema.json`, which the yaml-language-server comment at the
top of every spec (`# yaml-language-server: $schema=../schema/spec.schema.json`) and beat
file points at.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from .ads import beat_files, expansion
from .beat_lock import is_hand_edited
from .config import load_settings
from .errors import SpecError, SpecWarning
from .fsutil import write_if_changed
from .hashing import sha256_json
from .languages import text_in
from .library import TemplateProblem, load_library
from .loader import (
    beat_file_errors,
    beat_rule_warnings,
    load_beat_file,
    locate_in_file,
    parse_beat_file_text,
    path_exists,
    read_file,
    spec_errors,
)
from .paths import SPEC_SUFFIXES, ad_name, beat_file_path, is_beat_file, spec_of_beat_file
from .plan_file import composed_locally, output_size
from .plan_rules import fit_clips, plan_shaping_fields
from .registry import chunk_references, load_registry, models_table, spec_resolution_for
from .spec import Beat, BeatFile, Loc, Spec, language_gaps
from .spec_checks import resolve_variants

__all__ = ["validate_paths", "json_schema", "schema_texts", "write_schemas", "SCHEMA_FILES"]

SCHEMA_FILES = {"spec": "spec.schema.json", "beat_file": "beats.schema.json"}


def _shown(path: Path) -> Path:
    """Paths in messages: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return Path(rel) if not rel.startswith("..") else path


def _expand(paths: Iterable[Path], project_root: Path) -> list[Path]:
    out: list[Path] = []
    paths = list(paths)
    if not paths:
        paths = [project_root / "specs"]
    for p in paths:
        p = Path(p)
        if p.is_dir():
            # specs and beat files, .yaml or .yml; dotfiles are never ads
            out += sorted(q for q in p.iterdir() if q.name.endswith(SPEC_SUFFIXES) and not q.name.startswith("."))
        else:
            out.append(p)
    return out


def validate_paths(paths: list[Path], project_root: Path) -> list[SpecError]:
    """Every error in the given specs and beat files (default: everything in specs/), and a
    SpecWarning for every beat that breaks the beat library's rules (a 9 s feature, an end-card
    first): those build, but the ad may not read as intended.

    A beat file is validated with its spec (durations must sum to the spec's duration, prompts
    must render with its vars); naming a spec also validates its beat file when there is one."""
    project_root = Path(project_root)
    errors: list[SpecError] = []
    done: set[Path] = set()
    expanded = _expand(paths, project_root)
    ads: dict[tuple[Path, str], Path] = {}
    for path in expanded:  # `x.yaml` and `x.yml` side by side are one ad twice
        if not is_beat_file(path):
            first = ads.setdefault((path.parent, ad_name(path)), path)
            if first != path:
                errors.append(SpecError(_shown(path), None, None,
                                        f"{first.name} and {path.name} are both the ad '{ad_name(path)}'; keep one of them"))
    for path in expanded:
        spec_path = spec_of_beat_file(path) if is_beat_file(path) else path
        key = Path(os.path.abspath(spec_path))
        if key in done:
            continue
        done.add(key)
        beats_path = beat_file_path(spec_path)
        if not path_exists(spec_path) and is_beat_file(path):
            errors.append(SpecError(_shown(path), None, None, f"no spec {spec_path.name} beside this beat file"))
            continue
        spec, errs = spec_errors(_shown(spec_path))
        errors += errs
        if spec is not None and spec.beats is not None:
            errors += beat_rule_warnings(_shown(spec_path), spec.beats, inline=True)
        berrs: list[SpecError] = []
        if path_exists(beats_path) and (spec is None or spec.beats is None):
            # a beat file the next `doit` plans again is checked as a file, not against the spec it will follow
            bf, berrs = beat_file_errors(_shown(beats_path), None if spec and replanned(spec, beats_path) else spec)
            errors += berrs
            if bf is not None:
                errors += beat_rule_warnings(_shown(beats_path), bf.beats)
        if spec is not None and spec.variants is not None and spec.beats is None:
            # a variant's own beat file, against that variant's spec
            for variant_beats, variant_spec in beat_files(spec_path):
                if variant_beats != beats_path and path_exists(variant_beats):
                    against = None if replanned(variant_spec, variant_beats) else variant_spec
                    errors += beat_file_errors(_shown(variant_beats), against)[1]
            if path_exists(beats_path) and not errs:
                errors += shared_beat_file_errors(spec_path, beats_path, berrs)
        if spec is not None and not errs:
            errors += reference_warnings(spec_path, spec)
            errors += missing_language_errors(spec_path)
            errors += glyph_errors(spec_path)
    # each file's errors by line (the checks run one after another), the files in the order met
    order = {path: i for i, path in reversed(list(enumerate(e.path for e in errors)))}
    return sorted(errors, key=lambda e: (order[e.path], e.line or 0))


def glyph_errors(spec_path: Path) -> list[SpecError]:
    """Words on screen the bundled font cannot draw where the user gives no font of theirs: the
    brand's texts on the end card and the burned captions of the spoken lines, each ad in its own
    language (a Japanese tagline kept for a later variant is no error of the English one). At
    their lines, naming the variants; the plan step says the same of its ad, and checks a font of
    the user's when it draws."""
    from .spec import render_voiceover, spec_text
    from .text_fit import bundled_font, missing_glyphs

    try:
        exp = expansion(spec_path)
    except SpecError:
        return []
    own = exp.spec.language
    ads = [(v.ad, v.spec, exp.beats_path(v.beats_tag)) for v in exp.variants] or \
        [(exp.base_ad, exp.spec, exp.beats_path(None))]
    found: dict[tuple[Path, Loc, str], list[str]] = {}
    for ad, spec, beats_path in ads:
        if spec.brand.font is not None:
            continue  # theirs: checked as the plan step draws with it
        texts: list[tuple[Path, Loc, str, str]] = []  # (file, place, how it is named, the text drawn)
        for field in ("name", "tagline", "cta", "url"):
            value = getattr(spec.brand, field)
            try:
                text = text_in(value, spec.language, own) if value is not None else None
                if text:
                    drawn = spec_text(text, spec)
                    texts.append((spec_path, ("brand", field), repr(drawn), drawn))
            except (KeyError, TemplateProblem):
                continue  # another check's error (a missing language, a template)
        if spec.captions.burn and spec.captions.font is None:
            beats, source = (list(spec.beats), spec_path) if spec.beats is not None else ([], beats_path)
            if spec.beats is None and path_exists(beats_path) and not replanned(spec, beats_path):
                try:
                    beats = list(load_beat_file(beats_path).beats)
                except SpecError:
                    pass
            for i, beat in enumerate(beats):
                try:
                    line = render_voiceover(beat, spec, source, own)
                except SpecError:
                    continue
                if line:
                    texts.append((source, ("beats", i, "voiceover"), f"beat '{beat.id}': the caption {line!r}", line))
        for path, loc, what, drawn in texts:
            missing = missing_glyphs(bundled_font(), drawn)
            if missing:
                font = "brand.font" if loc[0] == "brand" else "brand.font (or captions.font)"
                other = "" if loc[0] == "brand" else ", or captions: {burn: false}"
                message = (f"{what}: the bundled font has no glyph for {''.join(missing[:8])!r}; give {font} a font "
                           f"that covers the script{other}")
                found.setdefault((path, loc, message), []).append(ad)
    return [SpecError(_shown(path), locate_in_file(path, loc), ".".join(map(str, loc)),
                      f"{', '.join(names)}: {message}" if exp.variants else message)
            for (path, loc, message), names in found.items()]


def replanned(spec: Spec, beats_path: Path) -> bool:
    """Whether the next `doit` plans this beat file again (as planned, untouched, and the spec's
    plan-shaping fields changed since: the lock's PLAN): how it fits the spec as it is now is then
    not its to answer (a new duration made validate say the beats no longer summed to it)."""
    try:
        bf = parse_beat_file_text(read_file(beats_path).decode("utf-8"), str(beats_path))
    except (SpecError, OSError, UnicodeDecodeError):
        return False
    pf = bf.planned_from
    return pf is not None and not is_hand_edited(bf) and \
        pf.spec_sha256 != sha256_json(plan_shaping_fields(spec, load_registry()))


def shared_beat_file_errors(spec_path: Path, beats_path: Path, base: list[SpecError]) -> list[SpecError]:
    """What only a variant makes wrong in the beat file it shares with the base ad (e.g. a beat's
    video model that lacks the variant's aspect ratio): each such error once, naming the variants
    it holds for. Without this, validate said ok and the variant's plan step failed."""
    known = {(e.line, e.field, e.message) for e in base}
    found: dict[tuple[int | None, str | None, str], list[str]] = {}
    exp = expansion(spec_path)
    for v in exp.variants:
        if exp.beats_path(v.beats_tag) != beats_path or replanned(v.spec, beats_path):
            continue
        for e in beat_file_errors(_shown(beats_path), v.spec)[1]:
            if (e.line, e.field, e.message) not in known:
                found.setdefault((e.line, e.field, e.message), []).append(v.ad)
    return [SpecError(_shown(beats_path), line, field, f"{', '.join(ads)}: {message}")
            for (line, field, message), ads in found.items()]


def reference_warnings(spec_path: Path, spec: Spec) -> list[SpecError]:
    """A warning, at its `shows:`, for each beat whose video model takes reference images but
    is sent none of what the beat shows with some of its chunks, because a condition of the
    model's `references:` rule fails (e.g. veo-3.1 at 9:16): the same line the estimate says.
    For the ad, or each of its variants (named when they differ)."""
    ads = [(None, spec)] if spec.variants is None else \
        [(v.ad, v.spec) for v in resolve_variants(spec, ad_name(spec_path), spec_path)[0]]
    found: dict[tuple[Path, int, tuple[str, ...], str], list[str]] = {}
    ids: dict[tuple[Path, int], str] = {}
    for ad, ad_spec in ads:
        if ad_spec.beats is not None:
            source, beats = spec_path, ad_spec.beats
        else:
            tag = next((v.beats_tag for v in resolve_variants(spec, ad_name(spec_path), spec_path)[0] if v.ad == ad), None)
            source = beat_file_path(spec_path, tag)
            parsed = beat_file_errors(source, ad_spec)[0] if path_exists(source) and not replanned(ad_spec, source) \
                else None
            if parsed is None:
                continue
            beats = parsed.beats
        for i, beat in enumerate(beats):
            why = _why_no_references(beat, ad_spec)
            for field, said in ([(("shows",), why)] if why else []) + _unused_models(beat):
                found.setdefault((source, i, field, said), []).append(ad or "")
                ids[(source, i)] = beat.id
    out: list[SpecError] = []
    for (source, i, field, why), names in found.items():
        loc: tuple[str | int, ...] = ("beats", i, *field)
        whose = f" ({', '.join(names)})" if any(names) and len(names) < len(ads) else ""
        out.append(SpecWarning(str(_shown(source)), locate_in_file(source, loc), ".".join(map(str, loc)),
                               f"'{ids[(source, i)]}'{whose}: {why}"))
    return out


def _unused_models(beat: Beat) -> list[tuple[tuple[str, ...], str]]:
    """A beat's own `models:` that nothing is asked of: its footage is used as it is, its own
    still is its picture (said, since a user who set them expects them to be used)."""
    if beat.models is None:
        return []
    out: list[tuple[tuple[str, ...], str]] = []
    if beat.footage is not None and (beat.models.image or beat.models.video):
        out.append((("models",), "`models:` is not used: the beat is your own footage, used as it is "
                                 "(no image or video model is asked)"))
    elif beat.image is not None and beat.models.image:
        out.append((("models", "image"), "`models.image` is not used: the beat's picture is your own still "
                                         "(only its video model is asked)"))
    return out


def _why_no_references(beat: Beat, spec: Spec) -> str | None:
    """Why chunks of `beat` that its video model would send its references with carry none."""
    kit = {k: getattr(spec.brand, k) for k in ("name", "tagline", "cta", "url", "logo")}
    if not beat.shows or beat.footage is not None or composed_locally(beat.type, kit):
        return None  # nothing shown, or no video model is asked for the beat
    name = beat.models.video if beat.models is not None and beat.models.video else spec.models.video
    try:
        entry = load_registry().resolve(name, "video")
        clips = fit_clips(beat.duration, entry.clip_lengths)
    except (KeyError, ValueError):
        return None  # an unknown model is an error of its own
    width, height = output_size(spec.aspect_ratio, spec.resolution)
    return chunk_references(entry, tuple(beat.shows), spec.aspect_ratio, clips, spec_resolution_for(width, height),
                            own_still=beat.image is not None).why_not


def missing_language_errors(spec_path: Path) -> list[SpecError]:
    """One error per text an ad (or variant) lacks in its language, where no LLM planner will
    translate it (the offline planner cannot): the variants that lack the same text share the line.
    Beat files the planner has not written yet are not known, so not checked."""
    try:
        exp = expansion(spec_path)
    except SpecError:
        return []
    own = exp.spec.language
    translates = load_settings().live_planner
    ads = [(v.ad, v.spec, exp.beats_path(v.beats_tag)) for v in exp.variants] or \
        [(exp.base_ad, exp.spec, exp.beats_path(None))]
    found: dict[tuple[Path, Loc, str], tuple[str, list[str]]] = {}
    for ad, spec, beats_path in ads:
        if translates and spec.models.planner != "offline":
            continue
        beats: list[Beat] = []
        source = spec_path
        if spec.beats is not None:
            beats = list(spec.beats)
        elif path_exists(beats_path) and not replanned(spec, beats_path):
            try:
                beats, source = list(load_beat_file(beats_path).beats), beats_path
            except SpecError:  # reported on its own
                pass
        in_beats, in_brand = language_gaps(spec, beats, own)
        for path, issues in ((source, in_beats), (spec_path, in_brand)):
            for loc, message in issues:
                found.setdefault((path, loc, spec.language), (message, []))[1].append(ad)
    return [SpecError(_shown(path), locate_in_file(path, loc), ".".join(map(str, loc)),
                      f"{', '.join(ads_of)}: {message}; write it, or plan with an LLM planner, which translates")
            for (path, loc, _), (message, ads_of) in found.items()]


def json_schema() -> dict[str, Any]:
    """Both JSON Schemas: {"spec": ..., "beat_file": ...} (draft 2020-12, from pydantic), with
    each model's clip lengths and price and each beat type's purpose and seconds as the
    descriptions of their names, so an editor's hover and completion explain them."""
    out = {}
    for key, model, title in (("spec", Spec, "adspec spec"), ("beat_file", BeatFile, "adspec beat file")):
        schema = model.model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}
        _describe_names(schema)
        out[key] = schema
    return out


def _model_words(kind: str) -> dict[str, str]:
    reg = load_registry()
    words: dict[str, str] = {}
    for row in models_table():
        if row["kind"] != kind:
            continue
        clips = f"clips of {row['clip_lengths']} s; " if row["clip_lengths"] else ""
        audio = "native audio; " if row["native_audio"] else ""
        price = row["price"] + ("" if row["verified"] else " (third-party price)")
        words[row["name"]] = f"{row['ref']}: {clips}{audio}{price}"
    for alias, name in reg.aliases.items():
        if name in words:
            words[alias] = f"alias of {name}: {words[name]}"
    return words


def _beat_words() -> dict[str, str]:
    where = {"first": "first", "last": "last", "closing": "closing", "middle": "middle"}
    return {b.name: f"{b.purpose} ({b.min}-{b.max} s, {where.get(b.position, b.position)}"
                    f"{', repeatable' if b.repeatable else ''})" for b in load_library().beats.values()}


def _describe_names(schema: dict[str, Any]) -> None:
    """`enumDescriptions` (read by the YAML language server and VS Code) for model and beat type names."""
    defs = schema.get("$defs", {})
    named = [(defs.get(models, {}).get("properties", {}).get(kind), _model_words(kind))
             for models in ("Models", "BeatModels") for kind in ("image", "video", "music", "voice")]
    named.append((defs.get("Beat", {}).get("properties", {}).get("type"), _beat_words()))
    for prop, words in named:
        if prop and prop.get("enum"):
            prop["enumDescriptions"] = [words.get(name, name) for name in prop["enum"]]


def schema_texts() -> dict[str, str]:
    """The two schema files' names and texts, as `write_schemas` writes them."""
    return {SCHEMA_FILES[key]: json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for key, schema in json_schema().items()}


def write_schemas(out_dir: str | Path) -> list[Path]:
    """Write spec.schema.json and beats.schema.json into `out_dir` (e.g. schema/, where the modelines point)."""
    out_dir = Path(out_dir)
    written = []
    for name, text in schema_texts().items():
        write_if_changed(out_dir / name, text)
        written.append(out_dir / name)
    return written
