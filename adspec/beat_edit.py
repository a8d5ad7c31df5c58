"""Editing a beat's text fields in a beat file (or a spec's inline `beats:`) the way a person
would in an editor: only the edited values' characters change. Comments, key order, blank
lines, quoting and block styles everywhere else are kept byte for byte.

How: the YAML is composed into nodes (PyYAML keeps each scalar's exact span in the text), each
edited scalar's span is replaced by the new value written in the same style as the old one
(plain, quoted, folded `>` or literal `|`), and the result is parsed again to prove that exactly
those values changed; if a style cannot hold the new value it falls back to a double-quoted
scalar, which can hold any string. Used by `adspec serve` (the page's edits) and `adspec mcp`.

A round-trip YAML library (ruamel.yaml) would re-emit the whole document; splicing the spans
keeps every other byte of the file as the person left it.
"""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any, Mapping

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import SpecError

__all__ = ["content_sha256", "text_fields", "beat_texts", "set_beat_fields", "NoSuchBeat"]

_NOT_TEXT = ("id", "type", "approved", "image", "footage")  # approved: written by `adspec approve` only


def content_sha256(data: bytes | str) -> str:
    """The hash a page or agent sends back to prove it edits the file it read."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def text_fields() -> tuple[str, ...]:
    """A beat's editable text fields: every string field of the beat model but its id and type
    (prompts now; voiceover and on-screen text once the model has them)."""
    import typing

    from .spec import Beat

    def takes_text(ann: Any) -> bool:  # a str in Optional/Union/Annotated (the voiceover's `_text`), not in a list
        if typing.get_origin(ann) in (list, dict, tuple):
            return False
        return ann is str or any(takes_text(a) for a in typing.get_args(ann))

    return tuple(name for name, info in Beat.model_fields.items()
                 if name not in _NOT_TEXT and takes_text(info.annotation))


def _compose(text: str, shown: str) -> Any:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SpecError(shown, mark.line + 1 if mark else None, None, f"not valid YAML: {getattr(e, 'problem', e)}") from None


def _beats_node(root: Any, shown: str) -> SequenceNode:
    if isinstance(root, MappingNode):
        for k, v in root.value:
            if isinstance(k, ScalarNode) and k.value == "beats" and isinstance(v, SequenceNode):
                return v
    raise SpecError(shown, None, "beats", "no list of beats in this file")


class NoSuchBeat(SpecError):
    """The file has no beat of that id (the studio answers 404)."""


def _beat_node(root: Any, beat_id: str, shown: str) -> MappingNode:
    for item in _beats_node(root, shown).value:
        if isinstance(item, MappingNode):
            for k, v in item.value:
                if isinstance(k, ScalarNode) and k.value == "id" and isinstance(v, ScalarNode) and v.value == beat_id:
                    return item
    raise NoSuchBeat(shown, None, "beats", f"no beat with id '{beat_id}'")


def beat_texts(text: str, shown: str = "the beat file") -> list[dict[str, Any]]:
    """Each beat's id, type, duration and text fields as written (before templates render).
    SpecError (file, line) for a file that is not YAML or holds no list of beats."""
    from .loader import parse_mapping

    beats = parse_mapping(text.encode("utf-8"), shown, "beat file").get("beats")
    if beats is None:
        return []
    if not isinstance(beats, list):
        raise SpecError(shown, None, "beats", "no list of beats in this file")
    fields = text_fields()
    out = []
    for b in beats:
        if isinstance(b, dict):
            out.append({"id": b.get("id"), "type": b.get("type"), "duration": b.get("duration"),
                        "fields": {f: b[f] for f in fields if isinstance(b.get(f), str)}})
    return out


# ---- writing one scalar in a given style -------------------------------------------------------


def _plain(value: str) -> str | None:
    if not value or value != value.strip() or "\n" in value:
        return None
    try:
        return value if yaml.safe_load(f"k: {value}\n") == {"k": value} and "#" not in value else None
    except yaml.YAMLError:
        return None


def _double(value: str) -> str:
    """A YAML double-quoted scalar holding any string: line breaks, control and format characters
    escaped (YAML would fold a raw U+2028 or NEL), everything else as written."""
    out = ['"']
    for ch in value:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= o <= 0xDFFF or o in (0xFFFE, 0xFFFF):
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _single(value: str) -> str | None:
    return None if "\n" in value else "'" + value.replace("'", "''") + "'"


def _block(value: str, style: str, indent: int, width: int = 88) -> str | None:
    """`>`/`|` block scalar text, header to final newline, content indented by `indent`."""
    if not value.strip() or value != value.lstrip() or value.rstrip("\n") != value.rstrip():
        return None
    chomp = "" if value.endswith("\n") and not value.endswith("\n\n") else "-" if not value.endswith("\n") else None
    if chomp is None:
        return None
    body = value[:-1] if value.endswith("\n") else value
    pad = " " * indent
    if style == ">":
        if "\n" in body or "  " in body:
            return None
        lines = textwrap.wrap(body, width=max(20, width - indent), break_long_words=False, break_on_hyphens=False)
    else:
        lines = body.split("\n")
        if any(line != line.rstrip() or line.startswith(" ") for line in lines):
            return None
    return f"{style}{chomp}\n" + "".join((pad + line if line else "") + "\n" for line in lines)


def _render(value: str, node: ScalarNode, key_column: int, span: str) -> list[str]:
    """Candidate texts for `node`'s span holding `value`, best first (same style as before)."""
    trailing = span[len(span.rstrip("\n")):]  # a block scalar's span ends with its line break(s)
    out: list[str | None] = []
    if node.style in (">", "|"):
        out.append(_block(value, node.style, key_column + 2))
    elif node.style == "'":
        out.append(_single(value))
    elif node.style is None:
        out.append(_plain(value))
    out.append(_double(value))
    return [c if c.endswith("\n") or not trailing else c + trailing for c in out if c is not None]


def set_beat_fields(text: str, beat_id: str, changes: Mapping[str, str], shown: str = "the beat file") -> str:
    """`text` with beat `beat_id`'s fields set to `changes` (field -> new string), nothing else
    touched. Raises SpecError for an unknown beat or field, or a field the beat does not have."""
    allowed = text_fields()
    for field in changes:
        if field not in allowed:
            raise SpecError(shown, None, field, f"not an editable text field (editable: {', '.join(allowed)})")
        if not isinstance(changes[field], str):
            raise SpecError(shown, None, field, "must be a string")
    beat = _beat_node(_compose(text, shown), beat_id, shown)  # SpecError for a file that is not YAML
    before = yaml.safe_load(text)
    spans: list[tuple[int, int, str, ScalarNode, int]] = []
    for field, value in changes.items():
        found = [(k, v) for k, v in beat.value if isinstance(k, ScalarNode) and k.value == field]
        if not found:
            raise SpecError(shown, beat.start_mark.line + 1, field, f"beat '{beat_id}' has no {field} to edit")
        key, node = found[0]
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            raise SpecError(shown, node.start_mark.line + 1, field, "is not a text value")
        spans.append((node.start_mark.index, node.end_mark.index, value, node, key.start_mark.column))

    def splice(choice: dict[int, str]) -> str:
        out, pos = [], 0
        for start, end, _, _, _ in sorted(spans, key=lambda s: s[0]):
            out += [text[pos:start], choice[start]]
            pos = end
        return "".join(out) + text[pos:]

    expected = before
    for b in expected["beats"]:
        if isinstance(b, dict) and b.get("id") == beat_id:
            b.update(changes)
            break
    options = {s[0]: _render(s[2], s[3], s[4], text[s[0]:s[1]]) for s in spans}
    for attempt in range(2):  # the same styles first, then double quotes for every edited value
        choice = {start: (opts[0] if attempt == 0 else opts[-1]) for start, opts in options.items()}
        new = splice(choice)
        try:
            if yaml.safe_load(new) == expected:
                return new
        except yaml.YAMLError:
            pass
    raise SpecError(shown, beat.start_mark.line + 1, None, f"cannot write the new text of beat '{beat_id}'")  # pragma: no cover
