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

A key is a spec field written with dots: see `SCALAR_FIELDS` and `NESTED_FIELDS` below (the
brand kit, the models, the voice and the captions' style among them), vars.<name> and
assets.<name> (a var or asset the spec declares). A language variant thus sets its own voice and,
for a script the bundled font lacks, its own `brand.font`.

Names: a variant of `specs/trailrunner.yaml` is the ad `trailrunner@<variant>`, built into
`build/trailrunner@<variant>/`. A combination's name joins its values in matrix order, each made
a slug (`9:16` -> `9x16`, `New York` -> `new-york`): `trailrunner@9x16-denver`. `@` cannot occur in
a spec's file name, so a variant never collides with another ad; it is a plain character for the
shell, doit and every file system. A spec with variants builds only its variants; `doit trailrunner`
builds them all.

Beat files (the lock) are per plan: a variant whose plan-shaping fields (see
`plan_rules.plan_shaping_fields`: prompt, duration, style, brand name, var and asset names, the
planner, the video model's clip lengths) equal the base spec's uses `specs/<ad>.beats.yaml`, so
variants over var values, aspect ratios, resolution, seed, title or colours share one beat file
and one planner call. A variant that changes a plan-shaping field gets `specs/<ad>@<tag>.beats.yaml`:
for a matrix or include variant the tag joins the values of its plan-shaping fields only (variants
`@30-9x16` and `@30-16x9` share `trailrunner@30.beats.yaml`); for a named variant it is its name.
"""

from __future__ import annotations

import difflib
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # pragma: no cover
    from .spec import Spec

Loc = tuple[Union[str, int], ...]
Issue = tuple[Loc, str]

VARIANT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

Scalar = Union[bool, int, float, str]
Value = Union[bool, int, float, str, list[Scalar]]

SCALAR_FIELDS = ("title", "prompt", "duration", "aspect_ratio", "resolution", "style", "seed", "native_audio",
                 "placements", "language", "approval")
NESTED_FIELDS = {"brand": ("name", "tagline", "colors", "logo", "font", "cta", "url"),
                 "models": ("planner", "image", "video", "music", "voice"),
                 "voice": ("name", "speed"),
                 "captions": ("burn", "font", "color", "box", "size")}
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


def name_of_values(values: list[tuple[str, Any]]) -> str:
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
        all_items = {**c, **extra}
        variants.append(Variant(
            name=name_of_values([(k, c[k][0]) for k in matrix_keys]),
            overrides=tuple((k, v) for k, (v, _) in all_items.items()),
            locs=tuple((k, loc) for k, (_, loc) in all_items.items()),
            origin=(*base, "matrix"),
            kind="matrix",
        ))
    for i, located in new:
        ordered = [k for k in matrix_keys if k in located] + [k for k in located if k not in matrix_keys]
        variants.append(Variant(
            name=name_of_values([(k, located[k][0]) for k in ordered]),
            overrides=tuple((k, located[k][0]) for k in ordered),
            locs=tuple((k, located[k][1]) for k in ordered),
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
    for var in variants:
        if not VARIANT_NAME_RE.fullmatch(var.name):
            why = ("is empty" if not var.name else "is longer than 64 characters" if len(var.name) > 64
                   else "must be lower-case letters, digits, '-' or '_', starting with a letter or digit")
            hint = "; give it a name under `named:`" if var.kind != "named" else ""
            issues.append((var.origin, f"variant name '{var.name}' {why}{hint}"))
        elif var.name in seen:
            other = seen[var.name]
            if var.kind != "named" and other.kind != "named":
                theirs = dict(other.overrides)
                at = next((loc for (k, val), (_, loc) in zip(var.overrides, var.locs)
                           if k not in theirs or not _same(theirs[k], val)), var.origin)
                issues.append((at, f"variant name '{var.name}' is made twice (values that differ only in case or "
                                   f"punctuation make the same name); change one value"))
            else:
                issues.append((var.origin, f"variant name '{var.name}' is used twice (by a {other.kind} and a "
                                           f"{var.kind} variant); rename the named one"))
        else:
            seen[var.name] = var
    return variants, issues
