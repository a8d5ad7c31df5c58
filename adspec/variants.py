"""Variants: one spec, many ads (aspect ratios per placement, cities, products, hooks...).

    variants:
      matrix: {aspect_ratio: ["16:9", "9:16", "1:1"], vars.city: [Denver, Austin]}
      exclude: [{aspect_ratio: "1:1", vars.city: Austin}]
      include: [{aspect_ratio: "4:5", vars.city: Denver}]
      named:
        holiday: {prompt: "A 15-second holiday ad for ...", duration: 15}

Semantics, as GitHub Actions' `strategy.matrix`:
- `matrix`: every combination of the listed values (the product, in the order written).
- `exclude`: removes every combination that matches all the fields an entry names (a partial
  entry removes several); applied before `include`. An entry matching nothing is an error.
- `include`: each entry is added to every combination whose *matrix* fields it does not
  contradict (its other fields are set on them); an entry that fits no combination becomes a
  combination of its own.
- `named`: variants with explicit overrides and a name of your choosing (`{}` = the base spec).

A key is a spec field written with dots: title, prompt, duration, aspect_ratio, resolution,
style, seed, native_audio, brand.name, brand.tagline, brand.colors, models.planner, models.image,
models.video, models.music, vars.<name>, assets.<name> (a var or asset the spec declares).

Names: a variant of `specs/trailrunner.yaml` is the ad `trailrunner@<variant>`, built into
`build/trailrunner@<variant>/`. A combination's name joins its values in matrix order, each made
a slug (`9:16` -> `9x16`, `New York` -> `new-york`): `trailrunner@9x16-denver`. `@` cannot occur in
a spec's file name, so a variant never collides with another ad; it is a plain character for the
shell, doit and every file system. A spec with variants builds only its variants; `doit trailrunner`
builds them all.

Beat files (the lock) are per plan: a variant whose plan-shaping fields (see
`lock.plan_shaping_fields`: prompt, duration, style, brand name/tagline, var and asset names, the
planner, the video model's clip lengths) equal the base spec's uses `specs/<ad>.beats.yaml`, so
variants over var values, aspect ratios, resolution, seed, title or colours share one beat file
and one planner call. A variant that changes a plan-shaping field gets `specs/<ad>@<tag>.beats.yaml`:
for a matrix or include variant the tag joins the values of its plan-shaping fields only (variants
`@30-9x16` and `@30-16x9` share `trailrunner@30.beats.yaml`); for a named variant it is its name.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # pragma: no cover
    from .spec import Spec

Loc = tuple[Union[str, int], ...]
Issue = tuple[Loc, str]

SEPARATOR = "@"
VARIANT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

Scalar = Union[bool, int, float, str]
Value = Union[bool, int, float, str, list[Scalar]]

SCALAR_FIELDS = ("title", "prompt", "duration", "aspect_ratio", "resolution", "style", "seed", "native_audio")
NESTED_FIELDS = {"brand": ("name", "tagline", "colors"), "models": ("planner", "image", "video", "music")}
DECLARED_FIELDS = ("vars", "assets")  # vars.<name>, assets.<name>: the name must be declared in the spec
ALLOWED_TEXT = ", ".join([*SCALAR_FIELDS, *(f"{k}.{f}" for k, fs in NESTED_FIELDS.items() for f in fs),
                          "vars.<name>", "assets.<name>"])


class Variants(BaseModel):
    """`variants:` of a spec (see adspec.variants)."""

    model_config = ConfigDict(extra="forbid")

    matrix: dict[str, list[Value]] | None = Field(
        None, description="field -> list of values; every combination is a variant (fields: " + ALLOWED_TEXT + ")")
    include: list[dict[str, Value]] = Field(
        default_factory=list, description="extra fields for matching combinations, or extra combinations")
    exclude: list[dict[str, Value]] = Field(
        default_factory=list, description="remove the combinations matching every field given")
    named: dict[str, dict[str, Value]] = Field(
        default_factory=dict, description="variant name -> overrides (field -> value)")


# ---- pure helpers -------------------------------------------------------------------------------


def value_slug(key: str, value: Any) -> str:
    """A value as part of a name: lower-case letters, digits and '-' (`9:16` -> `9x16`)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "-".join(value_slug(key, v) for v in value)
    else:
        text = str(value)
    if key == "aspect_ratio":
        text = text.replace(":", "x")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _norm(value: Any) -> Any:
    """For comparing values: 1 == 1.0, but True is not 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", float(value))
    if isinstance(value, list):
        return ("list", tuple(_norm(v) for v in value))
    return ("str", str(value))


def _same(a: Any, b: Any) -> bool:
    return _norm(a) == _norm(b)


def field_path(key: str, spec: "Spec") -> tuple[tuple[str, ...] | None, str | None]:
    """('vars.city' -> ('vars', 'city'), None), or (None, why the key is not a field a variant may set)."""
    parts = tuple(key.split("."))
    if len(parts) == 1 and parts[0] in SCALAR_FIELDS:
        return parts, None
    if len(parts) == 2 and parts[0] in NESTED_FIELDS and parts[1] in NESTED_FIELDS[parts[0]]:
        return parts, None
    if len(parts) == 2 and parts[0] in DECLARED_FIELDS:
        declared = sorted(getattr(spec, parts[0]))
        if parts[1] in declared:
            return parts, None
        what = "variable" if parts[0] == "vars" else "asset"
        close = difflib.get_close_matches(parts[1], declared, n=1)
        hint = f" (did you mean '{parts[0]}.{close[0]}'?)" if close else ""
        return None, (f"unknown {what} '{parts[1]}'{hint}; declare it under `{parts[0]}:` with a default value "
                      f"(declared: {', '.join(declared) or 'none'})")
    candidates = [*SCALAR_FIELDS, *(f"{k}.{f}" for k, fs in NESTED_FIELDS.items() for f in fs),
                  *(f"vars.{v}" for v in spec.vars), *(f"assets.{a}" for a in spec.assets)]
    close = difflib.get_close_matches(key, candidates, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    if parts[0] in ("beats", "music", "variants", "version"):
        return None, f"'{key}' cannot vary between variants; a variant may set: {ALLOWED_TEXT}"
    return None, f"unknown field '{key}'{hint}; a variant may set: {ALLOWED_TEXT}"


@dataclass(frozen=True)
class Variant:
    """One variant as written: its name, its overrides (in order) and where each is written."""

    name: str
    overrides: tuple[tuple[str, Any], ...]
    locs: tuple[tuple[str, Loc], ...]  # key -> location of its value in the spec file
    origin: Loc  # where the variant is defined
    kind: str  # "matrix" | "include" | "named"

    def loc_of(self, key: str) -> Loc:
        return dict(self.locs).get(key, self.origin)


def _name_of(values: list[tuple[str, Any]]) -> str:
    return "-".join(s for s in (value_slug(k, v) for k, v in values) if s)


def expand(spec: "Spec") -> tuple[list[Variant], list[Issue]]:
    """The variants a spec's `variants:` block describes, in order (matrix combinations, new
    include combinations, named), and every problem with the block itself, located."""
    block = spec.variants
    if block is None:
        return [], []
    base: Loc = ("variants",)
    issues: list[Issue] = []
    if block.matrix is None and not block.include and not block.named:
        return [], [(base, "no variants: give a `matrix`, `include` entries or `named` variants")]

    def check_keys(entry: dict[str, Any], at: Loc) -> bool:
        ok = True
        for key in entry:
            _, why = field_path(key, spec)
            if why:
                issues.append(((*at, key), why))
                ok = False
        return ok

    # matrix -> combinations: key -> (value, loc)
    matrix = block.matrix
    combos: list[dict[str, tuple[Any, Loc]]] = []
    matrix_keys: list[str] = []
    if matrix is not None:
        if not matrix:
            issues.append(((*base, "matrix"), "empty matrix: give each field a list of values, "
                                              "e.g. {aspect_ratio: [\"16:9\", \"9:16\"]}"))
        check_keys(matrix, (*base, "matrix"))
        for key, values in matrix.items():
            if not values:
                issues.append(((*base, "matrix", key), "empty list: give at least one value"))
            for i, v in enumerate(values):
                if any(_same(v, w) for w in values[:i]):
                    issues.append(((*base, "matrix", key, i), f"value {v!r} is listed twice"))
        matrix_keys = list(matrix)
        if matrix and all(matrix.values()):
            lists = [[(key, v, (*base, "matrix", key, i)) for i, v in enumerate(vals)] for key, vals in matrix.items()]
            combos = [{k: (v, loc) for k, v, loc in combo} for combo in itertools.product(*lists)]
    if block.exclude and matrix is None:
        issues.append(((*base, "exclude"), "`exclude` needs a `matrix` to remove combinations from"))

    # exclude (before include, as GitHub does)
    for i, entry in enumerate(block.exclude if matrix is not None else []):
        at: Loc = (*base, "exclude", i)
        if not entry:
            issues.append((at, "empty entry: name the matrix fields and values to exclude"))
            continue
        bad = [k for k in entry if k not in matrix_keys]
        for k in bad:
            issues.append(((*at, k), f"'{k}' is not a field of the matrix ({', '.join(matrix_keys) or 'none'})"))
        if bad:
            continue
        kept = [c for c in combos if not all(_same(c[k][0], v) for k, v in entry.items())]
        if len(kept) == len(combos):
            shown = ", ".join(f"{k}: {v!r}" for k, v in entry.items())
            issues.append((at, f"exclude {{{shown}}} matches no combination of the matrix"))
        combos = kept
    if matrix and all(matrix.values()) and not combos and not issues:
        issues.append(((*base, "exclude"), "the excludes remove every combination of the matrix"))

    # include
    added: list[dict[str, tuple[Any, Loc]]] = [dict() for _ in combos]
    new: list[tuple[int, dict[str, tuple[Any, Loc]]]] = []
    for i, entry in enumerate(block.include):
        at = (*base, "include", i)
        if not entry:
            issues.append((at, "empty entry: give the fields of the combination to add or extend"))
            continue
        if not check_keys(entry, at):
            continue
        fitted = False
        for c, extra in zip(combos, added):
            if all(_same(c[k][0], v) for k, v in entry.items() if k in c):
                for k, v in entry.items():
                    if k not in c:
                        extra[k] = (v, (*at, k))
                fitted = True
        if not fitted:
            new.append((i, {k: (v, (*at, k)) for k, v in entry.items()}))

    variants: list[Variant] = []
    for c, extra in zip(combos, added):
        values = [(k, c[k][0]) for k in matrix_keys]
        all_items = {**c, **extra}
        variants.append(Variant(
            name=_name_of(values),
            overrides=tuple((k, v) for k, (v, _) in all_items.items()),
            locs=tuple((k, loc) for k, (_, loc) in all_items.items()),
            origin=(*base, "matrix"),
            kind="matrix",
        ))
    for i, entry in new:
        ordered = [k for k in matrix_keys if k in entry] + [k for k in entry if k not in matrix_keys]
        variants.append(Variant(
            name=_name_of([(k, entry[k][0]) for k in ordered]),
            overrides=tuple((k, entry[k][0]) for k in ordered),
            locs=tuple((k, entry[k][1]) for k in ordered),
            origin=(*base, "include", i),
            kind="include",
        ))
    for name, overrides in block.named.items():
        at = (*base, "named", name)
        if not check_keys(overrides, at):
            continue
        variants.append(Variant(
            name=name,
            overrides=tuple(overrides.items()),
            locs=tuple((k, (*at, k)) for k in overrides),
            origin=at,
            kind="named",
        ))

    # names: valid, unique within the spec
    seen: dict[str, Variant] = {}
    for v in variants:
        if not VARIANT_NAME_RE.fullmatch(v.name):
            why = ("is empty" if not v.name else "is longer than 64 characters" if len(v.name) > 64
                   else "must be lower-case letters, digits, '-' or '_', starting with a letter or digit")
            hint = "; give it a name under `named:`" if v.kind != "named" else ""
            issues.append((v.origin, f"variant name '{v.name}' {why}{hint}"))
        elif v.name in seen:
            other = seen[v.name]
            if v.kind != "named" and other.kind != "named":
                theirs = dict(other.overrides)
                at = next((loc for (k, val), (_, loc) in zip(v.overrides, v.locs)
                           if k not in theirs or not _same(theirs[k], val)), v.origin)
                issues.append((at, f"variant name '{v.name}' is made twice (values that differ only in case or "
                                   f"punctuation make the same name); change one value"))
            else:
                issues.append((v.origin, f"variant name '{v.name}' is used twice (by a {other.kind} and a {v.kind} "
                                         f"variant); rename the named one"))
        else:
            seen[v.name] = v
    return variants, issues


# ---- variant specs ----------------------------------------------------------------------------


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = data
    for part in path[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[path[-1]] = value


def _copy_with(spec: "Spec", path: tuple[str, ...], value: Any) -> "Spec":
    """`spec` with one field replaced, unvalidated (for comparing plan-shaping fields)."""
    if len(path) == 1:
        return spec.model_copy(update={path[0]: value})
    head, field = path
    current = getattr(spec, head)
    if isinstance(current, dict):
        return spec.model_copy(update={head: {**current, field: value}})
    return spec.model_copy(update={head: current.model_copy(update={field: value})})


def _relocate(variant: Variant, field_loc: Loc) -> Loc:
    """The place in the spec file to blame for a problem with `field_loc` of a variant's spec."""
    for key, loc in variant.locs:
        path = tuple(key.split("."))
        n = min(len(path), len(field_loc))
        if n and tuple(field_loc[:n]) == path[:n]:
            return loc
    return variant.origin


def variant_spec(base: "Spec", variant: Variant, spec_path: str | Path | None = None) -> tuple["Spec | None", list[Issue]]:
    """The spec of one variant (the base with its overrides, no `variants`), or its problems
    located in the spec file."""
    from pydantic import ValidationError

    from .loader import _message, asset_issues
    from .spec import SKIP_CROSS_CHECKS, Spec, spec_issues

    data = base.model_dump(mode="json", exclude={"variants"})
    for key, value in variant.overrides:
        path, _ = field_path(key, base)
        assert path is not None
        _set(data, path, value)
    problems: list[tuple[Loc, str]] = []
    spec = None
    try:
        spec = Spec.model_validate(data, context={SKIP_CROSS_CHECKS: True})
    except ValidationError as e:
        for err in e.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, int) or not str(p).startswith(("function-", "[")))
            msg = _message(err, Spec, loc)
            if loc == ("aspect_ratio",) and isinstance(err.get("input"), int):
                msg += ' (write it quoted, e.g. "16:9": YAML reads 16:9 unquoted as a number)'
            problems.append((loc, msg))
    if spec is not None:
        problems += spec_issues(spec)
        if spec_path is not None and any(k.startswith("assets.") for k, _ in variant.overrides):
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
    spec: "Spec"
    beats_tag: str | None  # None: the base beat file

    @property
    def name(self) -> str:
        return self.variant.name


def resolve_variants(spec: "Spec", base_ad: str, spec_path: str | Path | None = None) -> tuple[list[ResolvedVariant], list[Issue]]:
    """Every variant of `spec` with its own spec and beat file tag, or the problems found."""
    variants, issues = expand(spec)
    if issues:
        return [], issues
    resolved: list[tuple[Variant, "Spec"]] = []
    seen_messages: set[tuple[Loc, str]] = set()
    for v in variants:
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
    from .lock import plan_shaping_fields
    from .registry import load_registry

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
                                if plan_shaping_fields(_copy_with(spec, field_path(k, spec)[0], val), registry) != base_shaping]
                tag = _name_of(shaping_keys)
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


def variant_issues(spec: "Spec", spec_path: str | Path | None = None) -> list[Issue]:
    """The loader's hook: every problem of a spec's `variants:` block, located."""
    if spec.variants is None:
        return []
    from .loader import ad_name

    base_ad = ad_name(spec_path) if spec_path is not None else "ad"
    return resolve_variants(spec, base_ad, spec_path)[1]


# ---- specs on disk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expansion:
    """A spec file and its variants (none for a spec without `variants:`)."""

    base_ad: str
    spec_path: Path
    spec: "Spec"
    variants: tuple[ResolvedVariant, ...]

    def beats_path(self, tag: str | None) -> Path:
        if tag is None:
            return self.spec_path.with_name(f"{self.base_ad}.beats.yaml")
        return self.spec_path.with_name(f"{self.base_ad}{SEPARATOR}{tag}.beats.yaml")

    @property
    def ads(self) -> list[str]:
        return [v.ad for v in self.variants] if self.variants else [self.base_ad]


_memo: dict[str, tuple[str, Expansion]] = {}
_memo_lock = threading.Lock()


def expansion(spec_path: str | Path) -> Expansion:
    """Load a spec and its variants (memoised on the file's bytes). Raises SpecError."""
    from .errors import SpecError
    from .fsutil import read_regular
    from .loader import ad_name, load_spec

    spec_path = Path(spec_path)
    try:
        digest = hashlib.sha256(read_regular(spec_path)).hexdigest()
    except OSError:
        digest = ""
    key = str(spec_path.absolute())
    with _memo_lock:
        hit = _memo.get(key)
    if hit is not None and hit[0] == digest and digest:
        return hit[1]
    spec = load_spec(spec_path)  # validates the variants too (file:line errors)
    base_ad = ad_name(spec_path)
    resolved, issues = resolve_variants(spec, base_ad, spec_path)
    if issues:  # pragma: no cover - load_spec reports these first
        raise SpecError(spec_path, None, ".".join(map(str, issues[0][0])), issues[0][1])
    exp = Expansion(base_ad, spec_path, spec, tuple(resolved))
    with _memo_lock:
        _memo[key] = (digest, exp)
    return exp


def base_of(ad: str) -> str:
    return ad.split(SEPARATOR, 1)[0]


def ad_source(ad: str, spec_path: str | Path) -> tuple["Spec", Path]:
    """The spec an ad is built from and its beat file: the spec itself for a plain ad, the
    variant's spec for `<base>@<variant>`. Raises SpecError."""
    from .errors import SpecError
    from .loader import load_spec
    from .lock import beat_file_path

    spec_path = Path(spec_path)
    if SEPARATOR not in ad:
        spec = load_spec(spec_path)
        if spec.variants is not None:
            names = ", ".join(v.ad for v in expansion(spec_path).variants)
            raise SpecError(spec_path, None, "variants",
                            f"'{ad}' has variants and is built as them: {names} (`doit {ad}` builds them all)")
        return spec, beat_file_path(spec_path)
    exp = expansion(spec_path)
    for v in exp.variants:
        if v.ad == ad:
            return v.spec, exp.beats_path(v.beats_tag)
    names = ", ".join(v.ad for v in exp.variants) or "none"
    raise SpecError(spec_path, None, "variants", f"no variant '{ad}' (variants: {names})")


def beats_path_of(ad: str, spec_path: str | Path) -> Path:
    return ad_source(ad, spec_path)[1]


def beat_files(spec_path: str | Path) -> list[tuple[Path, "Spec"]]:
    """Each distinct beat file the variants of a spec use, with a spec to check it against."""
    exp = expansion(spec_path)
    out: dict[Path, "Spec"] = {}
    for v in exp.variants:
        out.setdefault(exp.beats_path(v.beats_tag), v.spec)
    return list(out.items())


def list_ads(specs_dir: str | Path) -> tuple[list[tuple[str, Path]], dict[str, list[str]]]:
    """Every ad under `specs_dir` with its spec file, variants expanded, sorted by spec; and the
    groups (base name -> its variants) of specs with variants.

    A spec that does not load is listed as its plain name: its plan task reports the error, and
    the other ads still build."""
    from .errors import SpecError
    from .loader import ad_name, find_specs

    ads: list[tuple[str, Path]] = []
    groups: dict[str, list[str]] = {}
    for path in find_specs(specs_dir):
        base = ad_name(path)
        try:
            exp = expansion(path)
        except SpecError:
            ads.append((base, path))
            continue
        if exp.variants:
            groups[base] = [v.ad for v in exp.variants]
            ads += [(v.ad, path) for v in exp.variants]
        else:
            ads.append((base, path))
    seen: dict[str, Path] = {}
    for ad, path in ads:  # only a spec file whose (invalid) name holds '@' can collide with a variant
        if ad in seen:
            first, second = sorted([seen[ad], path], key=lambda p: SEPARATOR in p.stem)
            raise SpecError(second, None, None, f"ad name '{ad}' collides with the variant {ad} of {first}; "
                                                f"rename the file (a spec's name may not contain '{SEPARATOR}')")
        seen[ad] = path
    return ads, groups


def select_ads(names: list[str] | tuple[str, ...], specs_dir: str | Path) -> list[tuple[str, Path]]:
    """The ads named (an ad, a variant, or a spec with variants: all of them); all when none."""
    from .errors import SpecError

    ads, groups = list_ads(specs_dir)
    if not names:
        return ads
    by_name = dict(ads)
    out: list[tuple[str, Path]] = []
    missing = []
    for n in names:
        if n in groups:
            out += [(v, by_name[v]) for v in groups[n]]
        elif n in by_name:
            out.append((n, by_name[n]))
        else:
            missing.append(n)
    if missing:
        known = sorted(set(by_name) | set(groups))
        close = difflib.get_close_matches(missing[0], known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SpecError(specs_dir, None, None, f"no ad named {', '.join(missing)}{hint} (known: {', '.join(known) or 'none'})")
    seen: set[str] = set()
    return [(a, p) for a, p in out if not (a in seen or seen.add(a))]
