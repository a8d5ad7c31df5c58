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
from .config import load_settings
from .errors import SpecError
from .fsutil import write_if_changed
from .library import load_library
from .loader import beat_file_errors, beat_rule_warnings, load_beat_file, locate_in_file, path_exists, spec_errors
from .paths import SPEC_SUFFIXES, ad_name, beat_file_path, is_beat_file, spec_of_beat_file
from .registry import load_registry, models_table
from .spec import Beat, BeatFile, Loc, Spec, language_gaps

__all__ = ["validate_paths", "json_schema", "write_schemas", "SCHEMA_FILES"]

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
        if path_exists(beats_path) and (spec is None or spec.beats is None):
            bf, berrs = beat_file_errors(_shown(beats_path), spec)
            errors += berrs
            if bf is not None:
                errors += beat_rule_warnings(_shown(beats_path), bf.beats)
        if spec is not None and spec.variants is not None and spec.beats is None:
            # a variant's own beat file, against that variant's spec
            for variant_beats, variant_spec in beat_files(spec_path):
                if variant_beats != beats_path and path_exists(variant_beats):
                    errors += beat_file_errors(_shown(variant_beats), variant_spec)[1]
        if spec is not None and not errs:
            errors += missing_language_errors(spec_path)
    return errors


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
        elif path_exists(beats_path):
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


def write_schemas(out_dir: str | Path) -> list[Path]:
    """Write spec.schema.json and beats.schema.json into `out_dir` (e.g. schema/, where the modelines point)."""
    out_dir = Path(out_dir)
    written = []
    for key, schema in json_schema().items():
        target = out_dir / SCHEMA_FILES[key]
        write_if_changed(target, json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        written.append(target)
    return written
