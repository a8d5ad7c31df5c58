"""Reading specs and beat files: YAML -> pydantic models, every error a one-line SpecError that
names the file, the line and the field (`specs/x.yaml:7: duration: must be between 5 and 180`).

YAML is composed into nodes first (SafeLoader), so each value's line is known; aliases are
refused (no alias bombs), nesting and size are bounded, and nothing but SpecError escapes for
any input bytes.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Union

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import SpecError
from .fsutil import NotARegularFile, file_kind, read_regular
from .images import asset_problem
from .spec import (
    AD_NAME_RE,
    COLOR_RE,
    SKIP_CROSS_CHECKS,
    SLUG_RE,
    BeatFile,
    Issue,
    Loc,
    Spec,
    beat_file_issues,
    spec_issues,
)

__all__ = [
    "load_spec", "load_beat_file", "ad_name", "check_ad_name", "find_specs", "parse_spec_text",
    "parse_beat_file_text", "spec_errors", "beat_file_errors", "asset_issues", "project_root_of",
    "MAX_BYTES", "read_file", "path_exists",
]

MAX_BYTES = 1 << 20  # 1 MiB: a spec is a few hundred bytes
MAX_DEPTH = 32
MAX_NODES = 50_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
BEATS_SUFFIX = ".beats.yaml"


# ---- names and files ----------------------------------------------------------------------------


def ad_name(path: str | Path) -> str:
    """The ad's name: the spec file's stem (`specs/trailrunner.yaml` and its beat file
    `specs/trailrunner.beats.yaml` both -> "trailrunner"). See `check_ad_name` for the rule."""
    name = Path(path).name
    if name.endswith(BEATS_SUFFIX):
        return name[: -len(BEATS_SUFFIX)]
    return Path(name).stem


def check_ad_name(path: str | Path) -> str:
    """The ad's name, or SpecError when it cannot be a folder name (`^[a-z0-9][a-z0-9_-]{0,63}$`)."""
    name = ad_name(path)
    if not AD_NAME_RE.fullmatch(name):
        shown = name if len(name) <= 64 else f"{name[:40]}…' ({len(name)} characters"
        raise SpecError(path, None, None,
                        f"ad name '{shown}' (the file's name) must be 1-64 lower-case letters, digits, '-' or '_', "
                        f"starting with a letter or digit: it becomes the folder build/<name>/")
    return name


def find_specs(specs_dir: str | Path) -> list[Path]:
    """Every spec in `specs_dir`: `*.yaml` except `*.beats.yaml` and dotfiles (temp files,
    editors' swap files: never ads), sorted by name."""
    d = Path(specs_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*.yaml")
                  if not p.name.startswith(".") and not p.name.endswith(BEATS_SUFFIX) and p.is_file())


def project_root_of(spec_path: str | Path) -> Path:
    """The project folder: the one holding `specs/` (the spec's folder's parent)."""
    return Path(os.path.abspath(spec_path)).parent.parent


# ---- YAML with lines ----------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, "aliases (*name) are not supported in adspec files; write the value out",
                                event.start_mark)
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            if self._nodes > MAX_NODES:
                raise ComposerError(None, None, f"more than {MAX_NODES} values", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _key_of(loader: _Loader, node: Node) -> Any:
    if isinstance(node, ScalarNode):
        try:
            key = loader.construct_object(node, deep=True)
            hash(key)
            return key
        except Exception:
            return node.value
    return None


def _walk(loader: _Loader, node: Node, path: Loc, lines: dict[Loc, int], shown: str) -> None:
    """Record the line of every value (mapping entries: their key's line), refuse duplicate keys."""
    if isinstance(node, MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _key_of(loader, key_node)
            if key is None:
                continue
            here = path + (key,)
            if key in first:
                raise SpecError(shown, _line(key_node), _dotted(here),
                                f"duplicate key (first given at line {first[key]})")
            first[key] = _line(key_node)
            lines[here] = _line(key_node)
            _walk(loader, value_node, here, lines, shown)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = _line(item)
            _walk(loader, item, path + (i,), lines, shown)


def _yaml_error(e: yaml.YAMLError, text: str, shown: str) -> SpecError:
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        parts = [p for p in (e.context, e.problem) if p]
        msg = "; ".join(parts) or "invalid YAML"
        return SpecError(shown, mark.line + 1 if mark else None, None, f"invalid YAML: {msg}")
    if isinstance(e, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(0, e.position)) + 1 if isinstance(e.position, int) else None
        return SpecError(shown, line, None, f"invalid YAML: unacceptable character #x{e.character:04x}"
                         if isinstance(e.character, int) else "invalid YAML: unacceptable character")
    return SpecError(shown, None, None, f"invalid YAML: {' '.join(str(e).split())[:200]}")


def _parse_yaml(data: bytes, shown: str, what: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """bytes -> (top-level mapping, lines by location). SpecError for anything else."""
    if len(data) > MAX_BYTES:
        raise SpecError(shown, None, None, f"file is larger than {MAX_BYTES // 1024} KiB; is this really a {what}?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise SpecError(shown, line, None, "not UTF-8 text") from None
    if "\x00" in text:
        raise SpecError(shown, text.count("\n", 0, text.index("\x00")) + 1, None, "binary data (NUL byte), not YAML")
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise SpecError(shown, 1, None, f"the file is empty; a {what} is a mapping of fields (key: value)")
        if not isinstance(node, MappingNode):
            kind = "a list" if isinstance(node, SequenceNode) else f"the single value {node.value!r}"[:60]
            raise SpecError(shown, _line(node), None, f"a {what} must be a mapping of fields (key: value), not {kind}")
        lines: dict[Loc, int] = {(): _line(node)}
        _walk(loader, node, (), lines, shown)
        value = loader.construct_document(node)
    except SpecError:
        raise
    except yaml.YAMLError as e:
        raise _yaml_error(e, text, shown) from None
    except RecursionError:
        raise SpecError(shown, None, None, "invalid YAML: nested too deeply") from None
    except Exception as e:  # e.g. an int with 100 000 digits: never a traceback
        raise SpecError(shown, None, None, f"invalid YAML: {type(e).__name__}: {' '.join(str(e).split())[:160]}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(value, dict):
        raise SpecError(shown, lines[()], None, f"a {what} must be a mapping of fields (key: value)")
    return value, lines


# ---- pydantic errors -> lines and readable messages ----------------------------------------------


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


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
            info = cls.model_fields.get(part)
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


def _bounds(model: type[BaseModel], loc: Loc) -> tuple[Any, Any]:
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
    return list(cls.model_fields) if cls is not None else []


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
}


def _message(err: dict[str, Any], model: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown field{hint}; allowed: {', '.join(allowed)}" if allowed else "unknown field"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        lo, hi = _bounds(model, loc)
        if lo is not None and hi is not None:
            return f"must be between {lo} and {hi}{_got(value)}"
        if "ge" in ctx:
            return f"must be at least {ctx['ge']}{_got(value)}"
        if "le" in ctx:
            return f"must be at most {ctx['le']}{_got(value)}"
        return f"{err['msg'][0].lower()}{err['msg'][1:]}{_got(value)}".replace("input should be", "must be")
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
        return _PATTERN_TEXT.get(ctx.get("pattern"), f"must match {ctx.get('pattern')}") + _got(value)
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


def _trim_loc(loc: Loc, lines: dict[Loc, int], kind: str) -> Loc:
    """Drop pydantic's own tags from a loc (union members, [key], function-after[...])."""
    best: Loc = ()
    for i in range(len(loc), 0, -1):
        if tuple(loc[:i]) in lines:
            best = tuple(loc[:i])
            break
    if kind == "missing" and len(loc) == len(best) + 1:
        return tuple(loc)
    return best


def _locate(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for i in range(len(loc), -1, -1):
        if tuple(loc[:i]) in lines:
            return lines[tuple(loc[:i])]
    return None


def _validation_errors(e: ValidationError, model: type[BaseModel], lines: dict[Loc, int], shown: str) -> list[SpecError]:
    out: list[SpecError] = []
    seen: set[Loc] = set()
    for err in e.errors(include_url=False):
        loc = _trim_loc(tuple(err["loc"]), lines, err["type"])
        if loc in seen:
            continue  # a union reports once per member: keep the first
        seen.add(loc)
        out.append(SpecError(shown, _locate(loc, lines), _dotted(loc) or None, _message(err, model, loc)))
    out.sort(key=lambda s: (s.line or 0))
    return out


def _issues_to_errors(issues: list[Issue], lines: dict[Loc, int], shown: str) -> list[SpecError]:
    return [SpecError(shown, _locate(loc, lines), _dotted(loc) or None, msg) for loc, msg in issues]


# ---- assets ----------------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


FONT_SUFFIXES = (".ttf", ".otf")


def asset_issues(spec: Spec, spec_path: str | Path) -> list[Issue]:
    """Every asset must be an existing image file inside the project folder (the folder holding
    specs/): no absolute paths, no `..` or symlink leading out of it."""
    spec_dir = Path(os.path.abspath(spec_path)).parent
    root = spec_dir.parent
    real_root = root.resolve()
    issues: list[Issue] = []
    files: list[tuple[Loc, str, tuple[str, ...], str]] = [
        (("assets", name), rel, IMAGE_SUFFIXES, "an image") for name, rel in spec.assets.items()]
    if spec.captions.font:
        files.append((("captions", "font"), spec.captions.font, FONT_SUFFIXES, "a font"))
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
    return issues


# ---- public: specs and beat files ------------------------------------------------------------


def read_file(path: str | Path, shown: str | None = None) -> bytes:
    """A spec's or beat file's bytes; SpecError (never a hang, never a traceback) when it is
    missing, too big, a folder, a named pipe or unreadable."""
    shown = str(path) if shown is None else shown
    try:
        data = read_regular(path, MAX_BYTES)
    except NotARegularFile as e:
        raise SpecError(shown, None, None, f"{e.strerror}: a spec or beat file must be a plain file") from None
    except FileNotFoundError:
        raise SpecError(shown, None, None, "file not found") from None
    except IsADirectoryError:
        raise SpecError(shown, None, None, "is a folder, not a file") from None
    except OSError as e:
        raise SpecError(shown, None, None, f"cannot read: {e.strerror or type(e).__name__}") from None
    if len(data) > MAX_BYTES:
        raise SpecError(shown, None, None, f"file is larger than {MAX_BYTES // 1024} KiB")
    return data


def path_exists(path: str | Path) -> bool:
    """Whether `path` exists; False (not an OSError) for a name the filesystem refuses, such as
    one longer than 255 bytes."""
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _read(path: Path, shown: str) -> bytes:
    return read_file(path, shown)


def parse_spec_text(data: bytes | str, shown: str, spec_path: str | Path | None = None) -> tuple[Spec | None, list[SpecError]]:
    """Validate a spec's bytes: (the Spec or None, every error found, first by line).

    With `spec_path`, also checks the ad name and the assets on disk."""
    errors: list[SpecError] = []
    if spec_path is not None:
        try:
            check_ad_name(spec_path)
        except SpecError as e:
            errors.append(SpecError(shown, e.line, e.field, e.message))
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        value, lines = _parse_yaml(raw, shown, "spec")
    except SpecError as e:
        return None, errors + [e]
    try:
        spec = Spec.model_validate(value, context={SKIP_CROSS_CHECKS: True})
    except ValidationError as e:
        return None, errors + _validation_errors(e, Spec, lines, shown)
    except Exception as e:  # a validator tripped on something unforeseen: still one clean line
        return None, errors + [SpecError(shown, None, None, f"cannot validate: {type(e).__name__}: {e}")]
    try:
        issues = spec_issues(spec)
        if spec_path is not None:
            issues += asset_issues(spec, spec_path)
        if not issues and spec.variants is not None:
            from .variants import variant_issues  # late: variants reads specs through this module

            issues += variant_issues(spec, spec_path)
    except Exception as e:
        issues = [((), f"cannot validate: {type(e).__name__}: {e}")]
    errors += _issues_to_errors(issues, lines, shown)
    return (spec if not errors else None), errors


def parse_beat_file_text(data: bytes | str, shown: str, spec: Spec | None = None) -> BeatFile:
    """A beat file's bytes -> BeatFile (with `spec`: also its total duration and prompts).
    Raises the first SpecError."""
    bf, errors = beat_file_errors_text(data, shown, spec)
    if errors:
        raise errors[0]
    assert bf is not None
    return bf


def beat_file_errors_text(data: bytes | str, shown: str, spec: Spec | None = None) -> tuple[BeatFile | None, list[SpecError]]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        value, lines = _parse_yaml(raw, shown, "beat file")
    except SpecError as e:
        return None, [e]
    try:
        bf = BeatFile.model_validate(value, context={SKIP_CROSS_CHECKS: True})
    except ValidationError as e:
        return None, _validation_errors(e, BeatFile, lines, shown)
    except Exception as e:
        return None, [SpecError(shown, None, None, f"cannot validate: {type(e).__name__}: {e}")]
    try:
        issues = beat_file_issues(bf, spec)
    except Exception as e:
        issues = [((), f"cannot validate: {type(e).__name__}: {e}")]
    errors = _issues_to_errors(issues, lines, shown)
    return (bf if not errors else None), errors


def spec_errors(path: str | Path) -> tuple[Spec | None, list[SpecError]]:
    path = Path(path)
    shown = str(path)
    try:
        data = _read(path, shown)
    except SpecError as e:
        return None, [e]
    return parse_spec_text(data, shown, spec_path=path)


def beat_file_errors(path: str | Path, spec: Spec | None = None) -> tuple[BeatFile | None, list[SpecError]]:
    path = Path(path)
    shown = str(path)
    try:
        data = _read(path, shown)
    except SpecError as e:
        return None, [e]
    return beat_file_errors_text(data, shown, spec)


def load_spec(path: str | Path) -> Spec:
    """specs/<ad>.yaml -> Spec. Raises SpecError (file:line: field: message) and nothing else."""
    spec, errors = spec_errors(path)
    if errors:
        raise errors[0]
    assert spec is not None
    return spec


def load_beat_file(path: str | Path, spec: Spec | None = None) -> BeatFile:
    """specs/<ad>.beats.yaml -> BeatFile. With `spec`, also checks that the beats last the spec's
    duration and that every prompt renders with its values. Raises SpecError only."""
    bf, errors = beat_file_errors(path, spec)
    if errors:
        raise errors[0]
    assert bf is not None
    return bf
