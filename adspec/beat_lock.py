"""The lock's rules: when a spec's beat file is (re)planned, and how it is written.

The beat file records `planned_from.spec_sha256`, the hash of the spec fields that shape the plan,
and `planned_from.content_sha256`, the hash of the music and beats as planned. Comparing them with
the spec and the file's current content gives the cases of `decide`: a beat file written or edited by hand
stands while it fits its spec, and is never planned over.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from .errors import LockError, SpecError, raise_errors
from .fsutil import write_text_atomic
from .hashing import sha256_bytes, sha256_json
from .library import LIBRARY_VERSION
from .loader import beat_file_errors_text, parse_beat_file_text
from .plan_rules import fit_clips, plan_shaping_fields
from .spec import Beat, BeatFile, BeatPlan, Music, PlannedFrom, Spec

__all__ = [
    "Decision", "spec_sha256", "content_sha256", "decide", "is_hand_edited", "recheck", "text_sha256",
    "planned_from_for", "render_beat_file", "write_beat_file", "SCHEMA_COMMENT_BEATS", "record_for", "with_record",
    "HAND_WRITTEN", "keep_replaced", "as_planned",
]

SCHEMA_COMMENT_BEATS = "# yaml-language-server: $schema=../schema/beats.schema.json"
HAND_WRITTEN = "hand"  # `planned_from.planner` of a beat file no planner wrote


class Decision(enum.Enum):
    PLAN = "plan"  # no beat file, or the spec changed and the beat file is as planned
    KEEP = "keep"  # the beat file stands (spec unchanged; edits are the user's)
    INLINE = "inline"  # the spec carries its own beats: no planner, the beat file is ignored


def spec_sha256(spec: Spec, registry: Any) -> str:
    return sha256_json(plan_shaping_fields(spec, registry))


def content_sha256(music: Music, beats: Sequence[Beat]) -> str:
    """Hash of the planned content (music + beats, in order): differs once a person edits it."""
    # unset optional fields (a beat without `voiceover`) are left out: files planned before such a
    # field existed keep their hash, so they are not mistaken for hand edits
    # `approved` records a person's look at the storyboard: never an edit of the plan
    return sha256_json({"music": music.model_dump(mode="json", exclude_none=True),
                        "beats": [b.model_dump(mode="json", exclude_none=True, exclude={"approved"}) for b in beats]})


def planned_from_for(plan: BeatPlan, spec_sha: str, planner: str, library: str | None = None) -> PlannedFrom:
    if library is None:
        library = LIBRARY_VERSION
    return PlannedFrom(spec_sha256=spec_sha, planner=planner, library=library,
                       content_sha256=content_sha256(plan.music, plan.beats))


def is_hand_edited(beat_file: BeatFile) -> bool:
    """True when the beat file's content differs from what the planner wrote (or no planner wrote it)."""
    pf = beat_file.planned_from
    if pf is None or pf.content_sha256 is None:
        return True
    return content_sha256(beat_file.music, beat_file.beats) != pf.content_sha256


def decide(
    spec: Spec,
    spec_sha: str,
    beat_file_text: str | None,
    *,
    spec_path: str | Path | None = None,
    beats_path: str | Path | None = None,
    force: bool = False,
) -> Decision:
    """What to do with the beat file of `spec` (see the module doc):

    inline `beats:` -> INLINE; `force` -> PLAN; no beat file -> PLAN; spec's shaping hash
    unchanged -> KEEP (never replan: edits are the user's); changed and the beat file untouched
    since planning -> PLAN; hand-written (no record) or edited by hand since planning -> KEEP
    while it fits the spec (durations, prompts, lines), else its SpecError (hand-written) or
    LockError (edited). A beat file that does not parse raises its SpecError."""
    if spec.beats is not None:
        return Decision.INLINE
    if force or beat_file_text is None:
        return Decision.PLAN
    shown_beats = str(beats_path) if beats_path is not None else "the beat file"
    beat_file, errors = beat_file_errors_text(beat_file_text, shown_beats)
    if beat_file is None:  # every error of the file, those against its spec too (as `adspec validate` says them)
        raise_errors(beat_file_errors_text(beat_file_text, shown_beats, spec)[1] or errors)
    assert beat_file is not None
    pf = beat_file.planned_from
    if pf is not None and pf.spec_sha256 == spec_sha:
        return Decision.KEEP
    if pf is not None and not is_hand_edited(beat_file):
        return Decision.PLAN
    # written or edited by hand: it stands while it fits the spec (never replanned over)
    _, misfits = beat_file_errors_text(beat_file_text, shown_beats, spec)
    if not misfits:
        return Decision.KEEP
    if pf is None:  # a hand-written file that does not fit its spec: its own error, with its line
        raise misfits[0]
    shown_spec = str(spec_path) if spec_path is not None else "the spec"
    name = Path(spec_path).stem if spec_path is not None else "NAME"
    raise LockError(
        f"{shown_spec} changed in fields that shape the plan, and {shown_beats} (edited by hand since it was "
        f"planned) no longer fits it ({misfits[0].one_line()}); not replanning over your edits: fix the beat "
        f"file, or run `adspec plan --force {name}` to replan (discarding them), or undo the spec change"
    )


def record_for(beat_file: BeatFile, spec_sha: str) -> PlannedFrom | None:
    """The lock's record a kept beat file should carry for the spec hashed `spec_sha` (None: it
    carries it already). A hand-written file gets one without `content_sha256`, so it counts as
    hand-written for ever; an edited one keeps the hash of what was planned (still an edit)."""
    pf = beat_file.planned_from
    if pf is not None and pf.spec_sha256 == spec_sha:
        return None
    if pf is None:
        return PlannedFrom(spec_sha256=spec_sha, planner=HAND_WRITTEN, library=LIBRARY_VERSION)
    return pf.model_copy(update={"spec_sha256": spec_sha})


def text_sha256(text: str | None) -> str | None:
    """The beat file's content hash as the lock saw it (None: there was no beat file)."""
    return None if text is None else sha256_bytes(text.encode("utf-8"))


def recheck(
    spec: Spec,
    spec_sha: str,
    seen_sha256: str | None,
    current_text: str | None,
    *,
    spec_path: str | Path | None = None,
    beats_path: str | Path | None = None,
    force: bool = False,
    planned_text: str | None = None,
) -> bool:
    """Just before a planned beat file is written: True to write it, False to keep the one there.

    The lock decided before the planner was asked; a person may have edited the beat file while
    it answered (seconds to minutes). Unchanged since the decision -> write. Changed -> the lock
    decides again on what is there now: a hand edit (or a hand-written file) stops with the
    lock's LockError and is kept; a file planned for this very spec (another run wrote it) is
    kept; a file still as planned from an older spec is replanned. After `--force` any change
    stops: the edit is newer than the command."""
    if text_sha256(current_text) == seen_sha256:
        return True
    if planned_text is not None and current_text == planned_text:
        return False  # another run wrote this very plan meanwhile
    shown_beats = str(beats_path) if beats_path is not None else "the beat file"
    name = Path(spec_path).stem if spec_path is not None else "NAME"
    kept = ("it changed while the planner was being asked: your file is kept and the new plan is not written "
            f"over it (the planner's answer is cached: `adspec plan --force {name}` writes it without paying again)")
    if force:
        raise LockError(f"{shown_beats}: {kept}")
    try:
        decision = decide(spec, spec_sha, current_text, spec_path=spec_path, beats_path=beats_path)
    except LockError as e:
        raise LockError(f"{e}; {kept}") from None
    return decision is Decision.PLAN


# ---- writing the beat file --------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = ">" if len(value) > 72 and "\n" not in value and value == value.strip() and "  " not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88, default_flow_style=False)


HEADER = """\
# The beat file: the plan of this ad, written by the planner and from now on yours to edit.
# Change a beat's prompts or duration, reorder, add or remove beats, then run `doit`: only the
# beats you touched are regenerated. Keep the durations summing to the spec's duration.
# Prompts and `voiceover` lines may use {{ name }} for the spec's vars and {{ brand }},
# {{ tagline }}, {{ product }}, {{ style }}, {{ title }}; they are filled in at build time.
# A `voiceover` line is spoken during its beat: keep it to about 2.5 words per second.
# `on_screen` is a super drawn over the beat by code (never by a model), in the brand's font.
# `planned_from` is the lock: the spec is replanned only while this file is as planned; once you
# edit it, your file is kept: it builds while it fits the spec, and a change to the spec's
# plan-shaping fields it no longer fits stops with a message instead
# (`adspec plan --force NAME` replans anyway).
"""


def render_beat_file(plan: BeatPlan, planned_from: PlannedFrom, *, clip_lengths: Sequence[int] | None = None) -> str:
    """The beat file's YAML text: stable key order (version, planned_from, music, beats with id,
    type, duration, image_prompt, motion_prompt), long prompts folded. With `clip_lengths`, each
    beat gets a comment saying how it is cut from the video model's clips."""
    parts = [HEADER + SCHEMA_COMMENT_BEATS + "\n", "version: 1\n"]
    pf = {"spec_sha256": planned_from.spec_sha256, "planner": planned_from.planner, "library": planned_from.library}
    if planned_from.content_sha256 is not None:
        pf["content_sha256"] = planned_from.content_sha256
    parts.append(_dump({"planned_from": pf}))
    parts.append(_dump({"music": {"prompt": plan.music.prompt, "bpm": plan.music.bpm}}))
    parts.append("beats:\n")
    for i, beat in enumerate(plan.beats):
        if i:
            parts.append("\n")
        if clip_lengths:
            clips = fit_clips(beat.duration, clip_lengths)
            waste = sum(clips) - beat.duration
            cut = " + ".join(f"{c} s" for c in clips)
            note = f", {waste} s trimmed" if waste else ""
            parts.append(f"  # {beat.duration} s from {len(clips)} clip{'s' if len(clips) > 1 else ''} ({cut}){note}\n")
        fields: dict[str, Any] = {
            "id": beat.id, "type": beat.type, "duration": beat.duration,
            "image_prompt": beat.image_prompt, "motion_prompt": beat.motion_prompt,
        }
        if beat.voiceover is not None:
            fields["voiceover"] = beat.voiceover
        if beat.on_screen is not None:
            fields["on_screen"] = beat.on_screen
        if beat.shows is not None:
            fields["shows"] = list(beat.shows)
        item = _dump([fields])
        parts.append("".join("  " + line if line.strip() else line for line in item.splitlines(keepends=True)))
    return "".join(parts)


def write_beat_file(path: str | Path, text: str) -> None:
    """Write atomically (temp file beside it, then rename): never a half-written lock."""

    write_text_atomic(path, text)


_CLIP_NOTE = re.compile(r"^  # \d+ s from \d+ clips? \(.*\)(?:, \d+ s trimmed)?\n", re.M)


def as_planned(text: str) -> bool:
    """Whether a beat file is exactly what the planner wrote (no edit, no comment of a person's,
    nothing reformatted): a replan over it loses nothing (the answer is also in the cache)."""
    try:
        bf = parse_beat_file_text(text, "beat file")
    except SpecError:
        return False
    if bf.planned_from is None or is_hand_edited(bf):
        return False
    again = render_beat_file(BeatPlan(music=bf.music, beats=bf.beats), bf.planned_from)
    return _CLIP_NOTE.sub("", text) == again


def keep_replaced(path: str | Path, old_text: str, folder: str | Path) -> Path:
    """A copy of the beat file a new plan replaces, in `folder` (build/.adspec/replaced/), named
    by the file and the time: the lock only sees the beats and music, so comments added to a
    planned file, or edits `plan --force` discards, would otherwise be gone without a trace."""
    import time

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = Path(path).name.removesuffix(".yaml").removesuffix(".yml")
    target = Path(folder) / f"{name}.{stamp}.yaml"
    n = 1
    while target.exists():
        n += 1
        target = Path(folder) / f"{name}.{stamp}-{n}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, old_text)
    return target



def _record_lines(record: PlannedFrom) -> list[str]:
    pf = {"spec_sha256": record.spec_sha256, "planner": record.planner, "library": record.library}
    if record.content_sha256 is not None:
        pf["content_sha256"] = record.content_sha256
    return _dump({"planned_from": pf}).splitlines(keepends=True)


def _last_line(node: yaml.Node) -> int:
    """The last line (0-based) holding `node`'s own text (comments after it are not its)."""
    if isinstance(node, yaml.MappingNode):
        return max([_last_line(v) for kv in node.value for v in kv] or [node.start_mark.line])
    if isinstance(node, yaml.SequenceNode):
        return max([_last_line(v) for v in node.value] or [node.start_mark.line])
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def with_record(text: str, record: PlannedFrom) -> str | None:
    """The beat file `text` with its `planned_from` record replaced by `record` (or inserted after
    `version:`, else before the first field), every other line kept as written: comments, order,
    quoting. None when that cannot be done line by line (a flow-style file, say)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not root.value:
        return None
    lines = text.splitlines(keepends=True)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"  # a file saved with CRLF stays CRLF
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += eol
    new = [line[:-1] + eol if eol != "\n" and line.endswith("\n") else line for line in _record_lines(record)]
    keys = {k.value: (k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    if any(k.start_mark.column != 0 for k, _ in root.value):
        return None
    if "planned_from" in keys:
        key, value = keys["planned_from"]
        start, end = key.start_mark.line, _last_line(value)
        out = lines[:start] + new + lines[end + 1:]
    elif "version" in keys:
        at = _last_line(keys["version"][1]) + 1
        out = lines[:at] + new + lines[at:]
    else:
        at = root.value[0][0].start_mark.line
        out = lines[:at] + new + lines[at:]
    result = "".join(out)
    try:  # the same beat file, with the new record: else nothing is written
        before, after = parse_beat_file_text(text, "beat file"), parse_beat_file_text(result, "beat file")
    except Exception:
        return None
    if after.planned_from != record or after.model_dump(exclude={"planned_from"}) != before.model_dump(exclude={"planned_from"}):
        return None
    return result
