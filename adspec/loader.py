"""Reading specs and beat files: YAML -> pydantic models, every error a one-line SpecError that
names the file, the line and the field (`specs/x.yaml:7: duration: must be between 5 and 180`).

YAML is composed into nodes first (SafeLoader), so each value's line is known; aliases are
refused (no alias bombs), nesting and size are bounded, and nothing but SpecError escapes for
any input bytes.
"""

from __future__ import annotations

import copy
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import SpecError, SpecWarning, raise_errors
from .fsutil import NotARegularFile, read_regular
from .library.prompt_reader import prompt_settings
from .paths import ad_name
from .plan_rules import located_plan_problems
from .spec import (
    AD_NAME_RE,
    SKIP_CROSS_CHECKS,
    VAR_NAME_RE,
    Beat,
    BeatFile,
    Issue,
    Loc,
    Spec,
    beat_file_issues,
    beat_list_issues,
    beat_model_issues,
    composes_end_card,
    listed_twice,
    on_screen_issues,
    placement_misfits,
    prompt_issues,
    prompt_presence_issues,
    spec_issues,
    voiceover_issues,
)
from .spec_checks import (
    ASPECT_HINT,
    asset_issues,
    field_bounds,
    field_message,
    meant_field,
    own_media_issues,
    variant_block_issues,
    variant_issues,
)

__all__ = [
    "load_spec", "load_beat_file", "check_ad_name", "parse_spec_text", "parse_beat_file_text",
    "beat_file_errors_text", "spec_errors", "beat_file_errors", "beat_rule_warnings", "readable_title", "MAX_BYTES", "read_file", "path_exists",
]

M = TypeVar("M", bound=BaseModel)
MAX_BYTES = 1 << 20  # 1 MiB: a spec is a few hundred bytes
MAX_DEPTH = 32
MAX_NODES = 50_000


# ---- names and files ----------------------------------------------------------------------------


def check_ad_name(path: str | Path) -> str:
    """The ad's name, or SpecError when it cannot be a folder name (`^[a-z0-9][a-z0-9_-]{0,63}$`)."""
    name = ad_name(path)
    if not AD_NAME_RE.fullmatch(name):
        shown = name if len(name) <= 64 else f"{name[:40]}…' ({len(name)} characters"
        raise SpecError(path, None, None,
                        f"ad name '{shown}' (the file's name) must be 1-64 lower-case letters, digits, '-' or '_', "
                        f"starting with a letter or digit: it becomes the folder build/<name>/")
    return name


# ---- YAML with lines ----------------------------------------------------------------------------


# YAML 1.2's core schema, as the YAML language server and check-jsonschema read these files: `16:9`
# is a string (not YAML 1.1's base-60 number 969), `yes`/`no`/`on`/`off`/`NO` are strings (a
# country code stays one), only true/false are booleans, `010` is ten, and there are no timestamps.
_CORE_1_2 = {
    "tag:yaml.org,2002:bool": (re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    "tag:yaml.org,2002:int": (re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")),
    "tag:yaml.org,2002:float": (re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        list("-+.0123456789")),
    "tag:yaml.org,2002:null": (re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
}


def _core_resolvers() -> dict[Any, list[tuple[str, Any]]]:
    kept = {first: [(tag, rx) for tag, rx in rules if tag not in _CORE_1_2 and tag != "tag:yaml.org,2002:timestamp"]
            for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for tag, (rx, firsts) in _CORE_1_2.items():
        for first in firsts:
            kept.setdefault(first, []).append((tag, rx))
    return kept


def _construct_int_1_2(loader: yaml.SafeLoader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


class _Loader(yaml.SafeLoader):
    yaml_implicit_resolvers = _core_resolvers()

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
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


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int_1_2)


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


def _walk(loader: _Loader, node: Node, path: Loc, lines: dict[Loc, int], shown: str,
          duplicates: list[SpecError]) -> None:
    """Record the line of every value (mapping entries: their key's line), and each duplicate key
    (an error; YAML keeps the last value, which is then checked like any other, so the file's
    other errors are reported in the same run)."""
    if isinstance(node, MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _key_of(loader, key_node)
            if key is None:
                continue
            here = path + (key,)
            if key in first:
                duplicates.append(SpecError(shown, _line(key_node), _dotted(here),
                                            f"duplicate key (first given at line {first[key]})"))
            else:
                first[key] = _line(key_node)
            lines[here] = _line(key_node)
            _walk(loader, value_node, here, lines, shown, duplicates)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = _line(item)
            _walk(loader, item, path + (i,), lines, shown, duplicates)


#: what most often causes the parser's terse problems, said beside them
_YAML_HINTS = {
    "mapping values are not allowed here": "a key indented differently from the keys beside it, or a value "
                                           "with ': ' in it that needs quotes?",
    "expected <block end>": "a line indented differently from the lines beside it?",
    "found character '\\t' that cannot start any token": "YAML indents with spaces, not tabs",
}


def _yaml_error(e: yaml.YAMLError, text: str, shown: str) -> SpecError:
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        parts = [p for p in (e.context, e.problem) if p]
        msg = "; ".join(parts) or "invalid YAML"
        hint = next((h for problem, h in _YAML_HINTS.items() if problem in msg), None)
        return SpecError(shown, mark.line + 1 if mark else None, None,
                         f"invalid YAML: {msg}" + (f" ({hint})" if hint else ""))
    if isinstance(e, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(0, e.position)) + 1 if isinstance(e.position, int) else None
        return SpecError(shown, line, None, f"invalid YAML: unacceptable character #x{e.character:04x}"
                         if isinstance(e.character, int) else "invalid YAML: unacceptable character")
    return SpecError(shown, None, None, f"invalid YAML: {' '.join(str(e).split())[:200]}")


def _parse_yaml(data: bytes, shown: str, what: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """bytes -> (top-level mapping, lines by location). SpecError for anything else, and for a
    duplicate key (`_parse_yaml_all` reports those with the file's other errors).

    A file is read several times while an ad is checked and planned (the spec, its beat file, the
    rules' warnings), and this composer is pure Python (it records every node's line): the same
    bytes are parsed once per process (files up to _CACHED_BYTES: what a long-running studio
    keeps stays small), and each caller gets its own copy."""
    value, lines, duplicates = _parse_yaml_all(data, shown, what)
    if duplicates:
        raise duplicates[0]
    return value, lines


def parse_mapping(data: bytes, shown: str, what: str) -> dict[str, Any]:
    """A YAML file's top-level mapping; a SpecError at its line for anything else (bad YAML, a
    list, a single value), as the spec and beat file loaders say it."""
    return _parse_yaml(data, shown, what)[0]


def _parse_yaml_all(data: bytes, shown: str, what: str) -> tuple[dict[str, Any], dict[Loc, int], list[SpecError]]:
    """`_parse_yaml`, with the duplicate keys returned instead of raised (each a fresh error: a
    cached one, raised again and again, would carry every earlier raise's traceback)."""
    if len(data) > _CACHED_BYTES:
        return _parse_yaml_once(data, shown, what)
    value, lines, duplicates = _parsed_yaml(data, shown, what)
    return copy.deepcopy(value), dict(lines), [SpecError(d.path, d.line, d.field, d.message) for d in duplicates]


_CACHED_BYTES = 32 * 1024  # a spec or beat file is a few kB


@lru_cache(maxsize=64)
def _parsed_yaml(data: bytes, shown: str, what: str) -> tuple[dict[str, Any], dict[Loc, int], list[SpecError]]:
    return _parse_yaml_once(data, shown, what)


def _parse_yaml_once(data: bytes, shown: str, what: str) -> tuple[dict[str, Any], dict[Loc, int], list[SpecError]]:
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
        duplicates: list[SpecError] = []
        _walk(loader, node, (), lines, shown, duplicates)
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
    return value, lines, duplicates


# ---- pydantic errors -> lines and readable messages ----------------------------------------------


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _trim_loc(loc: Loc, lines: dict[Loc, int], kind: str) -> Loc:
    """Drop pydantic's own tags from a loc (union members, [key], function-after[...]): the parts
    with no place in the file. A tag may sit between two fields (`assets.leo.<asset>.file`): the
    field after it is kept (`assets.leo.file`), and a missing field keeps its name."""
    out: Loc = ()
    for j, part in enumerate(loc):
        if (*out, part) in lines:
            out = (*out, part)
        elif kind == "missing" and j == len(loc) - 1:
            return (*out, part)
    return out


def _locate(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for i in range(len(loc), -1, -1):
        if tuple(loc[:i]) in lines:
            return lines[tuple(loc[:i])]
    return None


def _misspelt(e: ValidationError, model: type[BaseModel], lines: dict[Loc, int]) -> set[Loc]:
    """The fields an unknown field was meant as (`promt` -> ("prompt",)): a misspelt field is one
    mistake, its "unknown field (did you mean 'prompt'?)" says it; the "prompt: is required" it
    leaves behind (pydantic's, or a check's) would be a second line for it."""
    return {(*loc[:-1], meant) for err in e.errors(include_url=False)
            if err["type"] == "extra_forbidden" and (loc := _trim_loc(tuple(err["loc"]), lines, err["type"]))
            and (meant := meant_field(model, loc)) is not None}


def _not_misspelt(issues: list[Issue], misspelt: set[Loc]) -> list[Issue]:
    return [(loc, msg) for loc, msg in issues if not (msg.startswith("is required") and tuple(loc) in misspelt)]


def _validation_errors(e: ValidationError, model: type[BaseModel], lines: dict[Loc, int], shown: str) -> list[SpecError]:
    out: list[SpecError] = []
    seen: set[Loc] = set()
    errors = [(err, _trim_loc(tuple(err["loc"]), lines, err["type"])) for err in e.errors(include_url=False)]
    misspelt = _misspelt(e, model, lines)
    for err, loc in errors:
        if loc in seen or (err["type"] == "missing" and loc in misspelt):
            continue  # a union reports once per member (keep the first); a misspelling once, as unknown
        seen.add(loc)
        message = field_message(err, model, loc)
        if loc == ("aspect_ratio",) and isinstance(err.get("input"), int):
            message += ASPECT_HINT
        out.append(SpecError(shown, _locate(loc, lines), _dotted(loc) or None, message))
    out.sort(key=lambda s: (s.line or 0))
    return out


def locate_in_file(path: str | Path, loc: Loc) -> int | None:
    """The line of `loc` (e.g. ("beats", 2, "footage")) in a YAML file, None if unknown."""
    try:
        _, lines = _parse_yaml(read_file(Path(path)), str(path), "file")
    except (SpecError, OSError):
        return None
    return _locate(loc, lines)


def _issues_to_errors(issues: list[Issue], lines: dict[Loc, int], shown: str) -> list[SpecError]:
    return [SpecError(shown, _locate(loc, lines), _dotted(loc) or None, msg) for loc, msg in issues]


# ---- every error at once: the later checks on whatever parsed --------------------------------

#: stand-ins for a required field that is missing or invalid, so the other checks can run
_STAND_INS = {"prompt": "x"}


def readable_title(path: str | Path) -> str:
    """The default title: the file's name made readable (`trail-runner.yaml` -> "Trail Runner")."""
    words = re.split(r"[-_\s]+", ad_name(path))
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or "Untitled"


def _duration_allowed(seconds: int) -> bool:
    """Within the spec's `duration` bounds (its field's ge/le, as the error messages read them)."""
    lo, hi = field_bounds(Spec, ("duration",))
    return (lo is None or seconds >= lo) and (hi is None or seconds <= hi)


def _fill_defaults(value: dict[str, Any], path: str | Path) -> None:
    """A spec needs only `prompt:`: the title defaults to the file's name, and duration, aspect
    ratio and style come from the prompt's words when the spec does not set them."""
    if "title" not in value:
        value["title"] = readable_title(path)
    beats = value.get("beats")
    if "duration" not in value and isinstance(beats, list) and beats and all(
            isinstance(b, dict) and type(b.get("duration")) is int for b in beats):
        total = sum(b["duration"] for b in beats)  # inline beats say how long the ad is ...
        if _duration_allowed(total):  # ... when an ad may last that long (else the beats' own errors say why)
            value["duration"] = total
    prompt = value.get("prompt")
    if isinstance(prompt, str):
        for key, found in prompt_settings(prompt).items():
            if key == "duration" and "beats" in value:
                continue  # ... not the prompt's words
            value.setdefault(key, found)


#: a check about the key's fields is not made when a field of the value failed: it would be
#: made against the default standing in for what was written (e.g. `music:` is only allowed with
#: inline `beats:`, which failed: saying so would be wrong)
_DEPENDS = {
    "beats": ("music",), "duration": ("beats", "placements"), "aspect_ratio": ("models", "placements"),
    "models": ("models", "voice"),
    "vars": ("title", "prompt", "style", "brand", "beats"), "voiceover": ("beats",),
}


#: sections whose fields are checked one by one: a wrong value drops only itself
_SECTIONS = ("captions", "brand", "voice")


def _partial(model: type[M], value: dict[str, Any], e: ValidationError) -> tuple[M | None, set[str]]:
    """`model` from `value` without the fields that failed (entries of assets one by one, a
    var's value and a required field get a stand-in), and the fields whose checks would now be
    made against a stand-in (see _DEPENDS); None when even that does not validate."""
    unsure: set[str] = set()
    for fine in (True, False):  # first without only the fields that failed, then without their sections
        data = dict(value)
        for err in e.errors(include_url=False):
            loc = tuple(err["loc"])
            if not loc:
                return None, unsure
            head = str(loc[0])
            unsure.update(_DEPENDS.get(head, ()))
            if head == "assets" and len(loc) > 1 and isinstance(data.get(head), dict):
                data[head] = {k: v for k, v in data[head].items() if k != loc[1]}
            elif head == "vars" and len(loc) > 1 and isinstance(data.get(head), dict):
                unsure.difference_update(_DEPENDS["vars"])  # the name stays known: its value is a stand-in
                data[head] = {k: ("x" if k == loc[1] else v) for k, v in data[head].items() if VAR_NAME_RE.fullmatch(str(k))}
            elif head in _STAND_INS:
                data[head] = _STAND_INS[head]
            elif fine and head in _SECTIONS and len(loc) > 1 and isinstance(data.get(head), dict):
                # `captions: {size: 3, font: x.ttf}`: the font is still checked (a file that is missing)
                data[head] = {k: v for k, v in data[head].items() if k != loc[1]}
            else:
                data.pop(head, None)
        try:
            return model.model_validate(data, context={SKIP_CROSS_CHECKS: True}, by_name=False), unsure
        except Exception:
            continue
    return None, unsure


def _partial_beat_issues(value: dict[str, Any], spec: Spec | None, what: str = "the beats") -> list[Issue]:
    """The checks a beat file fails besides its schema errors: duplicate ids and the total from
    the ids and durations as written, and each beat that did validate against its spec
    (prompts, lines, supers, its models) at its own index."""
    raw_beats = value.get("beats")
    if not isinstance(raw_beats, list) or not raw_beats:
        return []
    pairs = [(raw.get("id"), raw.get("duration")) if isinstance(raw, dict) else (None, None) for raw in raw_beats]
    issues: list[Issue] = beat_list_issues(pairs, spec.duration if spec else None, ("beats",), what)
    issues += prompt_presence_issues(raw_beats, ("beats",), composes_end_card(spec))
    if spec is None:
        return issues
    for i, raw in enumerate(raw_beats):
        try:
            beat = Beat.model_validate(raw, by_name=False)
        except Exception:
            continue
        for check in (prompt_issues, voiceover_issues, on_screen_issues, beat_model_issues):
            issues += [(("beats", i, *loc[2:]), msg) for loc, msg in check([beat], spec, ("beats",))]
    return issues


def _merge(first: list[SpecError], second: list[SpecError]) -> list[SpecError]:
    """Both lists, each message once, by line."""
    out: list[SpecError] = []
    seen: set[str] = set()
    for err in first + second:
        if str(err) not in seen:
            seen.add(str(err))
            out.append(err)
    out.sort(key=lambda s: s.line or 0)
    return out


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
        value, lines, duplicates = _parse_yaml_all(raw, shown, "spec")
    except SpecError as e:
        return None, errors + [e]
    _fill_defaults(value, spec_path if spec_path is not None else shown)
    schema_errors: list[SpecError] = []
    unsure: set[str] = set()
    failed: set[str] = set()
    misspelt: set[Loc] = set()
    spec: Spec | None
    try:
        spec = Spec.model_validate(value, context={SKIP_CROSS_CHECKS: True}, by_name=False)
    except ValidationError as e:
        # every error at once: the checks that need a valid spec still run on what did parse
        schema_errors = _validation_errors(e, Spec, lines, shown)
        misspelt = _misspelt(e, Spec, lines)
        spec, unsure = _partial(Spec, value, e)
        failed = {str(err["loc"][0]) for err in e.errors(include_url=False) if err["loc"]}
    except Exception as e:  # a validator tripped on something unforeseen: still one clean line
        return None, errors + [SpecError(shown, None, None, f"cannot validate: {type(e).__name__}: {e}")]
    schema_errors = _merge(duplicates, schema_errors)
    if spec is None:
        return None, errors + schema_errors
    try:
        issues = spec_issues(spec)
        if spec_path is not None:
            issues += asset_issues(spec, spec_path)
            issues += own_media_issues(spec.beats or [], Path(spec_path).parent)
        if spec.variants is not None:  # each variant's own spec once the base is sound; the block itself always
            issues += variant_issues(spec, spec_path) if not issues and not schema_errors else variant_block_issues(spec)
        # a list with a bad entry was left out of the partial spec: what else is wrong in it, as written
        if "beats" in failed and isinstance(value.get("beats"), list):
            issues += _partial_beat_issues(value, spec, "inline beats")
        if "placements" in failed and isinstance(value.get("placements"), list):
            issues += listed_twice(value["placements"], ("placements",))
            issues += placement_misfits(value["placements"] if spec.variants is None else [], spec)
    except Exception as e:
        issues = [((), f"cannot validate: {type(e).__name__}: {e}")]
    if schema_errors:
        issues = [(loc, msg) for loc, msg in _not_misspelt(issues, misspelt) if not (loc and str(loc[0]) in unsure)]
    errors += _merge(schema_errors, _issues_to_errors(issues, lines, shown))
    return (spec if not errors else None), errors


def parse_beat_file_text(data: bytes | str, shown: str, spec: Spec | None = None) -> BeatFile:
    """A beat file's bytes -> BeatFile (with `spec`: also its total duration and prompts).
    Raises the first SpecError."""
    bf, errors = beat_file_errors_text(data, shown, spec)
    raise_errors(errors)
    assert bf is not None
    return bf


def beat_file_errors_text(data: bytes | str, shown: str, spec: Spec | None = None) -> tuple[BeatFile | None, list[SpecError]]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        value, lines, duplicates = _parse_yaml_all(raw, shown, "beat file")
    except SpecError as e:
        return None, [e]
    try:
        bf = BeatFile.model_validate(value, context={SKIP_CROSS_CHECKS: True}, by_name=False)
    except ValidationError as e:
        schema_errors = _validation_errors(e, BeatFile, lines, shown)
        issues = _not_misspelt(_partial_beat_issues(value, spec), _misspelt(e, BeatFile, lines))
        return None, _merge(duplicates + schema_errors, _issues_to_errors(issues, lines, shown))
    except Exception as e:
        return None, [SpecError(shown, None, None, f"cannot validate: {type(e).__name__}: {e}")]
    try:
        issues = beat_file_issues(bf, spec)
    except Exception as e:
        issues = [((), f"cannot validate: {type(e).__name__}: {e}")]
    errors = _merge(duplicates, _issues_to_errors(issues, lines, shown))
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
    bf, errors = beat_file_errors_text(data, shown, spec)
    if bf is not None:  # its own stills and footage, beside the spec (the beat file's folder)
        _, lines = _parse_yaml(data, shown, "beat file")
        errors = _issues_to_errors(own_media_issues(bf.beats, path.parent), lines, shown)
        if errors:
            bf = None
    return bf, errors


def beat_rule_warnings(path: str | Path, beats: list[Beat], inline: bool = False) -> list[SpecError]:
    """The beat library's rules (adspec.plan_rules) that `beats` break, as warnings located in
    the file (`path`: the beat file, or the spec for its inline beats)."""
    path = Path(path)
    try:
        _, lines = _parse_yaml(_read(path, str(path)), str(path), "spec" if inline else "beat file")
    except SpecError:
        lines = {}
    out: list[SpecError] = []
    for loc, msg in located_plan_problems(beats, None, voice=False):
        if len(loc) == 2 and isinstance(loc[1], int):  # the field names the beat: its id is enough
            msg = msg.removeprefix(f"beats.{loc[1]} '{beats[loc[1]].id}': ")
            msg = f"'{beats[loc[1]].id}': {msg}"
        out.append(SpecWarning(str(path), _locate(loc, lines), _dotted(loc) or None, f"{msg} (a rule of the beat library)"))
    return out


def load_spec(path: str | Path) -> Spec:
    """specs/<ad>.yaml -> Spec. Raises SpecError (file:line: field: message) and nothing else."""
    spec, errors = spec_errors(path)
    raise_errors(errors)
    assert spec is not None
    return spec


def load_beat_file(path: str | Path, spec: Spec | None = None) -> BeatFile:
    """specs/<ad>.beats.yaml -> BeatFile. With `spec`, also checks that the beats last the spec's
    duration and that every prompt renders with its values. Raises SpecError only."""
    bf, errors = beat_file_errors(path, spec)
    raise_errors(errors)
    assert bf is not None
    return bf
