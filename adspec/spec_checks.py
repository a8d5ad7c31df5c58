"""What a spec must be beyond its model: readable messages for pydantic's field errors, assets
that exist inside the project, and variants that each make a valid spec (with their beat-file tags).

The loader maps the (location, message) issues found here to lines of the file; the ads module
uses `resolve_variants` to turn a spec file into the ads it builds.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import annotated_types
from pydantic import BaseModel, ValidationError

from .fsutil import file_kind
from .images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, asset_problem
from .paths import VARIANT_SEPARATOR as SEPARATOR
from .paths import ad_name
from .plan_rules import plan_shaping_fields
from .registry import load_registry
from .spec import COLOR_RE, SKIP_CROSS_CHECKS, SLUG_RE, WORDS_RE, Issue, Loc, Spec, asset_path, spec_issues
from .text_fit import font_problem
from .variants import (
    VARIANT_NAME_RE,
    Variant,
    expand,
    field_path,
    name_of_values,
)

#: said wherever an aspect ratio came out of YAML as a number (YAML 1.1 reads 16:9 as base 60)
ASPECT_HINT = ' (write it quoted, e.g. "16:9": YAML reads 16:9 unquoted as a number)'


# ---- pydantic errors -> readable messages --------------------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        out = []
        for a in typing.get_args(annotation):
            out += _unwrap(a)
        return out
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for t in _unwrap(annotation):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _walk_type(model: type[BaseModel], loc: Loc) -> tuple[Any, Any]:
    """(the annotation at `loc`, its FieldInfo when loc ends on a model field), or (None, None)."""
    current: Any = model
    info = None
    for part in loc:
        cls = _model_in(current)
        if cls is not None and isinstance(part, str):
            info = _field_named(cls, part)
            if info is None:
                return None, None
            current = info.annotation
        else:  # a list item or a dict value
            info = None
            nxt = None
            for t in _unwrap(current):
                if typing.get_origin(t) in (list, dict):
                    nxt = typing.get_args(t)[-1]
            if nxt is None:
                return None, None
            current = nxt
    return current, info


def field_bounds(model: type[BaseModel], loc: Loc) -> tuple[Any, Any]:
    _, info = _walk_type(model, loc)
    lo = hi = None
    for m in getattr(info, "metadata", None) or []:
        if isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    return lo, hi


def _allowed_fields(model: type[BaseModel], parent: Loc) -> list[str]:
    annotation, _ = _walk_type(model, parent)
    cls = _model_in(annotation) if annotation is not None else None
    return [info.alias or name for name, info in cls.model_fields.items()] if cls is not None else []


def _field_named(cls: type[BaseModel], written: str) -> Any:
    """The field a file writes as `written`: its alias (`from`) where it has one, else its name."""
    for name, info in cls.model_fields.items():
        if (info.alias or name) == written:
            return info
    return None


def _got(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value) if not isinstance(value, bool) else str(value).lower()
        if len(text) > 40:
            text = text[:37] + "..."
        return f" (got {text})"
    if isinstance(value, list):
        return " (got a list)"
    if isinstance(value, dict):
        return " (got a mapping)"
    return f" (got {type(value).__name__})"


_PATTERN_TEXT = {
    SLUG_RE.pattern: "must be a slug: lower-case letters, digits and '-', e.g. 'product-reveal'",
    COLOR_RE.pattern: 'must be a colour written "#RRGGBB", e.g. "#FF5A1F"',
    r"^[0-9a-f]{64}$": "must be a sha256 (64 lower-case hex digits)",
    WORDS_RE: "must hold words, not only spaces",
}


def meant_field(model: type[BaseModel], loc: Loc) -> str | None:
    """The allowed field an unknown one at `loc` is a misspelling of (`promt` -> `prompt`), or None."""
    close = difflib.get_close_matches(str(loc[-1]), _allowed_fields(model, loc[:-1]), n=1)
    return close[0] if close else None


def field_message(err: Mapping[str, Any], model: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, loc[:-1])
        close = meant_field(model, loc)
        hint = f" (did you mean '{close}'?)" if close else ""
        return f"unknown field{hint}; allowed: {', '.join(allowed)}" if allowed else "unknown field"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        lo, hi = field_bounds(model, loc)
        if lo is not None and hi is not None:
            return f"must be between {lo} and {hi}{_got(value)}"
        if "ge" in ctx:
            return f"must be at least {ctx['ge']}{_got(value)}"
        if "le" in ctx:
            return f"must be at most {ctx['le']}{_got(value)}"
        return f"{err['msg'][0].lower()}{err['msg'][1:]}{_got(value)}".replace("input should be", "must be")
    if loc[:1] == ("variants",) and len(loc) >= 3 and isinstance(value, dict) and value:
        # `d: {vars: {city: Paris}}`: a variant names each field it sets by its dotted path
        example = f"{next(x for x in reversed(loc) if isinstance(x, str))}.{next(iter(value))}"
        return f"a variant sets each field by its dotted name: write `{example}: ...`, not a nested mapping"
    if loc[:1] == ("vars",) and len(loc) == 2 and kind.endswith(("_type", "_parsing")):
        return f"a variable's value must be text, a number or true/false{_got(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number{_got(value)}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"must be a (finite) number{_got(value)}"
    if kind == "string_type":
        return f"must be text{_got(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{_got(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"must be a mapping (key: value){_got(value)}"
    if kind in ("list_type", "tuple_type", "iterable_type"):
        return f"must be a list{_got(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}{_got(value)}"
    if kind == "string_pattern_mismatch":
        return _PATTERN_TEXT.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}") + _got(value)
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    msg = str(err.get("msg") or kind)
    return msg[:1].lower() + msg[1:]


# ---- assets ----------------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


FONT_SUFFIXES = (".ttf", ".otf")


def asset_issues(spec: Spec, spec_path: str | Path) -> list[Issue]:
    """Every asset (and the captions' font, the brand's logo and font) must be an existing image (font) file inside the
    project folder (the folder holding specs/): no absolute paths, no `..` or symlink leading out of it."""
    spec_dir = Path(os.path.abspath(spec_path)).parent
    root = spec_dir.parent
    real_root = root.resolve()
    issues: list[Issue] = []
    files: list[tuple[Loc, str, tuple[str, ...], str]] = [
        (("assets", name), asset_path(rel), IMAGE_SUFFIXES, "an image") for name, rel in spec.assets.items()]
    if spec.captions.font:
        files.append((("captions", "font"), spec.captions.font, FONT_SUFFIXES, "a font"))
    if spec.brand.logo:  # the brand kit's files: drawn by code, checked like any asset
        files.append((("brand", "logo"), spec.brand.logo, IMAGE_SUFFIXES, "an image"))
    if spec.brand.font:
        files.append((("brand", "font"), spec.brand.font, FONT_SUFFIXES, "a font"))
    for loc, rel, suffixes, kind in files:
        target = spec_dir / rel
        lexical = Path(os.path.normpath(target))
        if Path(rel).is_absolute() or not _inside(lexical, root):
            issues.append((loc, f"'{rel}' leads outside the project folder; asset paths are relative to the spec's "
                                f"folder and stay inside the project"))
            continue
        try:
            real = target.resolve()
        except (OSError, RuntimeError):
            issues.append((loc, f"'{rel}' cannot be resolved (symlink loop?)"))
            continue
        if not _inside(real, real_root):
            issues.append((loc, f"'{rel}' is a symlink that leads outside the project folder"))
        elif not real.exists():
            issues.append((loc, f"file '{rel}' not found (looked for {os.path.relpath(lexical, root)} in the project)"))
        elif not real.is_file():
            issues.append((loc, f"'{rel}' is {file_kind(real.stat().st_mode)}, not a file"))
        elif real.suffix.lower() not in suffixes:
            issues.append((loc, f"'{rel}' must be {kind} ({', '.join(suffixes)})"))
        elif suffixes is IMAGE_SUFFIXES:
            problem = asset_problem(real)  # from its header: nothing huge is decoded
            if problem is not None:
                issues.append((loc, f"'{rel}' {problem}"))
        elif (problem := font_problem(real)) is not None:
            issues.append((loc, f"'{rel}' {problem}"))
    return issues


def own_media_issues(beats: list[Any], spec_dir: str | Path, base: Loc = ("beats",)) -> list[Issue]:
    """A beat's own `image:` / `footage:` must be a file of the right kind inside the project
    (readable as an image; a video's length is checked when the ad is planned, with ffprobe)."""
    spec_dir = Path(os.path.abspath(spec_dir))
    root = spec_dir.parent
    issues: list[Issue] = []
    for i, beat in enumerate(beats):
        for field, suffixes, kind in (("image", IMAGE_SUFFIXES, "an image"), ("footage", VIDEO_SUFFIXES, "a video")):
            rel = getattr(beat, field, None)
            if rel is None:
                continue
            loc = (*base, i, field)
            target = Path(os.path.normpath(spec_dir / rel))
            if not _inside(target, root) or not _inside(target.resolve(), root.resolve()):
                issues.append((loc, f"'{rel}' leads outside the project folder"))
            elif target.exists() and not target.is_file():
                issues.append((loc, f"'{rel}' is {file_kind(target.stat().st_mode)}, not a file"))
            elif not target.is_file():
                issues.append((loc, f"file '{rel}' not found (looked for {os.path.relpath(target, root)} in the project)"))
            elif target.suffix.lower() not in suffixes:
                issues.append((loc, f"'{rel}' must be {kind} ({', '.join(suffixes)})"))
            elif field == "image":
                problem = asset_problem(target)
                if problem is not None:
                    issues.append((loc, f"'{rel}' {problem}"))
    return issues


# ---- variant specs ----------------------------------------------------------------------------


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = data
    for part in path[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[path[-1]] = value


def _copy_with(spec: Spec, path: tuple[str, ...], value: Any) -> Spec:
    """`spec` with one field replaced, unvalidated (for comparing plan-shaping fields)."""
    if len(path) == 1:
        return spec.model_copy(update={path[0]: value})
    head, field = path
    current = getattr(spec, head)
    if isinstance(current, dict):
        return spec.model_copy(update={head: {**current, field: value}})
    return spec.model_copy(update={head: current.model_copy(update={field: value})})


def _path_of(key: str, spec: Spec) -> tuple[str, ...]:
    """The field path of a key already checked by `expand`."""
    path, why = field_path(key, spec)
    assert path is not None, why
    return path


def _relocate(variant: Variant, field_loc: Loc) -> Loc:
    """The place in the spec file to blame for a problem with `field_loc` of a variant's spec."""
    for key, loc in variant.locs:
        path = tuple(key.split("."))
        n = min(len(path), len(field_loc))
        if n and tuple(field_loc[:n]) == path[:n]:
            return loc
    return variant.origin


#: the fields a variant may set that name a file beside the spec (checked as the spec's own are)
_FILE_FIELDS = ("assets.", "brand.logo", "brand.font", "captions.font")


def variant_spec(base: Spec, variant: Variant, spec_path: str | Path | None = None) -> tuple[Spec | None, list[Issue]]:
    """The spec of one variant (the base with its overrides, no `variants`), or its problems
    located in the spec file."""
    data = base.model_dump(mode="json", exclude={"variants"})
    for key, value in variant.overrides:
        path, _ = field_path(key, base)
        assert path is not None
        if path[0] == "assets" and isinstance(value, str) and isinstance(data["assets"].get(path[1]), dict):
            value = {**data["assets"][path[1]], "path": value}  # another photo of the same role
        _set(data, path, value)
    problems: list[tuple[Loc, str]] = []
    spec = None
    try:
        spec = Spec.model_validate(data, context={SKIP_CROSS_CHECKS: True})
    except ValidationError as e:
        for err in e.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, int) or not str(p).startswith(("function-", "[")))
            msg = field_message(err, Spec, loc)
            if loc == ("aspect_ratio",) and isinstance(err.get("input"), int):
                msg += ASPECT_HINT
            problems.append((loc, msg))
    if spec is not None:
        problems += spec_issues(spec)
        if spec_path is not None and any(k.startswith(_FILE_FIELDS) for k, _ in variant.overrides):
            problems += asset_issues(spec, spec_path)
    issues: list[Issue] = []
    for loc, msg in problems:
        field = ".".join(str(p) for p in loc)
        issues.append((_relocate(variant, loc), f"variant '{variant.name}': {field + ': ' if field else ''}{msg}"))
    return (spec if not issues else None), issues


@dataclass(frozen=True)
class ResolvedVariant:
    variant: Variant
    ad: str  # "<base>@<variant>"
    spec: Spec
    beats_tag: str | None  # None: the base beat file

    @property
    def name(self) -> str:
        return self.variant.name


def resolve_variants(spec: Spec, base_ad: str, spec_path: str | Path | None = None) -> tuple[list[ResolvedVariant], list[Issue]]:
    """Every variant of `spec` with its own spec and beat file tag, or the problems found."""
    # the block's own problems (an unknown var or asset, a bad combination) and, beside them, those
    # of each variant it could still make: every error of the file in one run
    variants, issues = expand(spec)
    resolved: list[tuple[Variant, Spec]] = []
    seen_messages: set[tuple[Loc, str]] = set()
    for v in variants:
        if any(field_path(key, spec)[0] is None for key, _ in v.overrides):
            continue  # a field the spec does not declare: said above, by `expand`
        vspec, problems = variant_spec(spec, v, spec_path)
        for loc, msg in problems:
            generic = msg.split(": ", 1)[1] if ": " in msg else msg
            if (loc, generic) not in seen_messages:  # the same bad value in many combinations: once
                seen_messages.add((loc, generic))
                issues.append((loc, msg))
        if vspec is not None:
            resolved.append((v, vspec))
    if issues:
        return [], issues
    registry = load_registry()
    base_shaping = plan_shaping_fields(spec, registry)
    out: list[ResolvedVariant] = []
    tags: dict[str, tuple[dict[str, Any], Variant]] = {}
    for v, vspec in resolved:
        shaping = plan_shaping_fields(vspec, registry)
        tag = None
        if shaping != base_shaping and vspec.beats is None:
            if v.kind == "named":
                tag = v.name
            else:
                shaping_keys = [(k, val) for k, val in v.overrides
                                if plan_shaping_fields(_copy_with(spec, _path_of(k, spec), val), registry) != base_shaping]
                tag = name_of_values(shaping_keys)
                if not VARIANT_NAME_RE.fullmatch(tag):
                    tag = v.name
            if tag in tags and tags[tag][0] != shaping:
                other = tags[tag][1]
                issues.append((v.origin, f"variants '{other.name}' and '{v.name}' would share the beat file "
                                         f"{base_ad}{SEPARATOR}{tag}.beats.yaml but plan differently; rename the "
                                         f"named variant"))
                continue
            tags.setdefault(tag, (shaping, v))
        out.append(ResolvedVariant(v, f"{base_ad}{SEPARATOR}{v.name}", vspec, tag))
    return (out if not issues else []), issues


def variant_block_issues(spec: Spec) -> list[Issue]:
    """The problems of the `variants:` block itself (its keys, names, combinations): found even
    while the base spec has errors, when each variant's own spec cannot be checked yet."""
    return expand(spec)[1]


def variant_issues(spec: Spec, spec_path: str | Path | None = None) -> list[Issue]:
    """The loader's hook: every problem of a spec's `variants:` block, located."""
    if spec.variants is None:
        return []
    base_ad = ad_name(spec_path) if spec_path is not None else "ad"
    return resolve_variants(spec, base_ad, spec_path)[1]
