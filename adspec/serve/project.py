"""The project as the server and the MCP tools see it: the ads under specs/, each ad's beats as
written (a beat file, or the spec's inline `beats:`), and edits to them made like a hand edit.

An edit names the content hash of the file it was made against: when the file changed on disk
since (an editor, the planner, another page), it is refused and nothing is written. The new text
is checked as `adspec validate` would before it replaces the file (atomically), so a bad edit is
one line naming the field and the file stays as it was. The edited beat file is then a hand edit
under the lock's rules: never replanned over (a spec change that would replan stops the build
with the lock's message instead).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..beat_edit import NoSuchBeat, beat_texts, content_sha256, set_beat_fields, text_fields
from ..config import Settings
from ..errors import AdspecError, SpecError


class NotFound(AdspecError):
    """No such ad, beat or file."""


class StaleEdit(AdspecError):
    """The file changed on disk since the edit's base was read."""


def edit_failure(e: AdspecError, fields: dict[str, str]) -> tuple[int, str | None]:
    """The HTTP status of a beat edit's failure and the request's field it names, so the REST API
    and the MCP tool say the same: the stale `sha256`, the unknown `beat_id`, or the edited field
    (`beats.0.image_prompt` -> `fields.image_prompt`)."""
    if isinstance(e, StaleEdit):
        return 409, "sha256"
    if isinstance(e, NotFound):
        return 404, "beat_id"
    field = getattr(e, "field", None)
    last = (field or "").rsplit(".", 1)[-1]
    return 422, f"fields.{last}" if last in fields else field


def shown(path: Path, settings: Settings) -> str:
    """A path as people see it: relative to the project folder (the folder holding specs/)."""
    try:
        return os.path.relpath(path, settings.specs_dir.parent)
    except ValueError:  # pragma: no cover - other drive
        return str(path)


def list_ads(settings: Settings) -> list[tuple[str, Path]]:
    from ..ads import list_ads as _list

    return _list(settings.specs_dir)[0]


def spec_of(settings: Settings, ad: str) -> Path:
    from ..ads import list_ads as _list

    ads, groups = _list(settings.specs_dir)
    for name, path in ads:
        if name == ad:
            return path
    if ad in groups:  # the studio and MCP build one ad at a time: say which ads the spec is
        raise NotFound(f"'{ad}' has variants and is built as them: {', '.join(groups[ad])} (name one)")
    raise NotFound(f"no ad named '{ad}' under {shown(settings.specs_dir, settings)}")


def spec_title(spec_path: Path) -> tuple[str | None, str | None]:
    """(the spec's title, None) or (None, its first error and how many more) for an ad not yet
    planned: the studio lists it by name and says why it cannot be built."""
    from ..loader import spec_errors

    spec, errors = spec_errors(spec_path)
    if spec is not None:
        return spec.title, None
    more = len(errors) - 1
    return None, errors[0].one_line() + (f" (and {more} more: adspec validate)" if more else "") if errors else None


@dataclass(frozen=True)
class BeatSource:
    path: Path  # the file the beats are written in
    inline: bool  # true: the spec's own `beats:` (no planner); false: the beat file


def beat_source(ad: str, spec_path: Path) -> BeatSource:
    from ..ads import ad_source

    spec, beats_path = ad_source(ad, spec_path)  # SpecError when the spec does not load
    if spec.beats is not None:
        return BeatSource(Path(spec_path), True)
    return BeatSource(Path(beats_path), False)


def read_beats(settings: Settings, ad: str) -> dict[str, Any]:
    """The ad's beats as written, with the file and its content hash (the base of an edit)."""
    spec_path = spec_of(settings, ad)
    src = beat_source(ad, spec_path)
    try:
        data = src.path.read_bytes()
    except FileNotFoundError:
        return {"ad": ad, "file": shown(src.path, settings), "inline": src.inline, "sha256": None, "beats": [],
                "editable": list(text_fields()), "note": "not planned yet: the beat file is written by the first build"}
    text = data.decode("utf-8", errors="replace")
    return {"ad": ad, "file": shown(src.path, settings), "inline": src.inline, "sha256": content_sha256(data),
            "beats": beat_texts(text, shown(src.path, settings)), "editable": list(text_fields())}


_edit_lock = threading.Lock()

_SPOKEN_OR_SHOWN = ("voiceover", "on_screen")


def _refuse_other_languages_words(ad: str, spec_path: Path, beat_id: str, changes: Mapping[str, str], name: str) -> None:
    """A language variant's lines are translations of the file's own text: edited from its page,
    a plain string would change the source ad's line too (a German line in the English ad). Such
    an edit is refused with how to write it; prompts, which every language shares, are not."""
    from ..ads import ad_source
    from ..plan_step import own_language

    words = [f for f in changes if f in _SPOKEN_OR_SHOWN]
    if not words:
        return
    spec, _ = ad_source(ad, spec_path)
    own = own_language(spec, spec_path)
    if spec.language != own:
        field = words[0]
        raise SpecError(name, None, f"beats.{beat_id}.{field}",
                        f"{ad} is in {spec.language}, and {name}'s plain {field} is the {own} text it is translated "
                        f"from: edited here it would change the {own} ad's line too; write the {spec.language} line "
                        f"in the file as a map ({field}: {{{own}: ..., {spec.language}: ...}})")


def edit_beat(settings: Settings, ad: str, beat_id: str, changes: Mapping[str, str], base_sha256: str | None) -> dict[str, Any]:
    """Set beat `beat_id`'s text fields of `ad` to `changes`, if its file is still the one with
    hash `base_sha256`. Returns the file and its new hash. Raises StaleEdit, NotFound, SpecError."""
    from ..ads import ad_source
    from ..fsutil import write_bytes_atomic
    from ..loader import beat_file_errors_text, parse_spec_text

    spec_path = spec_of(settings, ad)
    src = beat_source(ad, spec_path)
    name = shown(src.path, settings)
    _refuse_other_languages_words(ad, spec_path, beat_id, changes, name)
    with _edit_lock:
        try:
            data = src.path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{name} does not exist yet (the first build writes it)") from None
        current = content_sha256(data)
        if base_sha256 != current:
            raise StaleEdit(f"{name} changed on disk since it was read (its content hash is now {current[:12]}); "
                            f"nothing was written: reload to see the file as it is, then edit again")
        text = data.decode("utf-8")
        try:
            new = set_beat_fields(text, beat_id, changes, name)
        except NoSuchBeat as e:
            raise NotFound(e.message) from None
        if new == text:
            return {"file": name, "sha256": current, "changed": False}
        if src.inline:
            _, errors = parse_spec_text(new, name, spec_path=spec_path)
        else:
            spec, _ = ad_source(ad, spec_path)
            _, errors = beat_file_errors_text(new, name, spec)
        if errors:
            raise errors[0]
        raw = new.encode("utf-8")
        write_bytes_atomic(src.path, raw)
    return {"file": name, "sha256": content_sha256(raw), "changed": True}


__all__ = ["NotFound", "StaleEdit", "BeatSource", "list_ads", "spec_of", "beat_source", "read_beats", "edit_beat",
           "shown", "SpecError"]
