"""The lock's rules: when a spec's beat file is (re)planned, and how it is written.

The beat file records `planned_from.spec_sha256`, the hash of the spec fields that shape the plan,
and `planned_from.content_sha256`, the hash of the music and beats as planned. Comparing them with
the spec and the file's current content gives the five cases of `decide`.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Sequence

import yaml

from .errors import LockError
from .fsutil import write_text_atomic
from .hashing import sha256_bytes, sha256_json
from .library import LIBRARY_VERSION
from .loader import parse_beat_file_text
from .plan_rules import fit_clips, plan_shaping_fields
from .spec import Beat, BeatFile, BeatPlan, Music, PlannedFrom, Spec

__all__ = [
    "Decision", "spec_sha256", "content_sha256", "decide", "is_hand_edited", "recheck", "text_sha256",
    "planned_from_for", "render_beat_file", "write_beat_file", "SCHEMA_COMMENT_BEATS",
]

SCHEMA_COMMENT_BEATS = "# yaml-language-server: $schema=../schema/beats.schema.json"


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
    return sha256_json({"music": music.model_dump(mode="json", exclude_none=True),
                        "beats": [b.model_dump(mode="json", exclude_none=True) for b in beats]})


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
    since planning -> PLAN; changed and edited by hand (or hand-written) -> LockError.
    A beat file that does not parse raises its SpecError."""
    if spec.beats is not None:
        return Decision.INLINE
    if force or beat_file_text is None:
        return Decision.PLAN
    shown_beats = str(beats_path) if beats_path is not None else "the beat file"
    beat_file = parse_beat_file_text(beat_file_text, shown_beats)
    pf = beat_file.planned_from
    if pf is not None and pf.spec_sha256 == spec_sha:
        return Decision.KEEP
    if not is_hand_edited(beat_file):
        return Decision.PLAN
    shown_spec = str(spec_path) if spec_path is not None else "the spec"
    name = Path(spec_path).stem if spec_path is not None else "NAME"
    how = "was written by hand" if pf is None else "was edited by hand since it was planned"
    raise LockError(
        f"{shown_spec} changed in fields that shape the plan, but {shown_beats} {how}; "
        f"not replanning over your edits: run `adspec plan --force {name}` to replan (discarding them), "
        f"or undo the spec change"
    )


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
# `planned_from` is the lock: the spec is replanned only while this file is as planned; once you
# edit it, a change to the spec's plan-shaping fields stops with a message instead
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
        item = _dump([fields])
        parts.append("".join("  " + line if line.strip() else line for line in item.splitlines(keepends=True)))
    return "".join(parts)


def write_beat_file(path: str | Path, text: str) -> None:
    """Write atomically (temp file beside it, then rename): never a half-written lock."""

    write_text_atomic(path, text)

