"""Approvals kept in git: a beat's `approved:` field holds the sha256 of the storyboard image a
person looked at and accepted (`adspec approve AD/BEAT`).

With `approval: required` in the spec, `doit` pays for storyboards but not for the video of a
beat whose storyboard is not the approved one. A beat is

- approved: its storyboard is built from the beat as it is now and its sha256 is `approved:`;
- stale: it has an `approved:` hash, but the storyboard is another one now (an edit changed it,
  or it is not rebuilt yet): its video waits again;
- pending: it has no `approved:` yet.

`approved:` is never an input of a paid request nor of the plan: the lock's content hash leaves
it out (approving is not a hand edit) and a beat's inputs (beat.json) do not carry it.

This module is pure text and hashing: writing `approved:` into a beat file (or a spec's inline
`beats:`) keeping every other byte, and the state of a beat from a storyboard file's hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import SpecError
from .hashing import sha256_file

__all__ = ["APPROVED", "PENDING", "STALE", "state_of", "own_footage", "storyboard_sha256", "set_approved",
           "waiting_line"]

APPROVED, PENDING, STALE = "approved", "pending", "stale"


def storyboard_sha256(path: Path) -> str | None:
    """The sha256 of a storyboard file, None when it does not exist (or cannot be read)."""
    try:
        return sha256_file(Path(path))
    except OSError:
        return None


def state_of(approved: str | None, storyboard_sha: str | None) -> str:
    """approved / stale / pending for a beat's `approved:` and its current storyboard's sha256
    (None: no current storyboard)."""
    if approved is None:
        return PENDING
    return APPROVED if storyboard_sha is not None and storyboard_sha == approved else STALE


def own_footage(beat: Any) -> bool:
    """A beat of the person's own footage pays for nothing: it is approved as it is (the build,
    the listing and the review page all say so)."""
    own = getattr(beat, "own", None)
    return bool(own and own.get("footage"))


def waiting_line(ad: str, beat_id: str, state: str, *, approved_again: bool = False) -> str:
    """What a run says once per beat whose video waits for approval. `approved_again`: the
    storyboard was missing (or out of date) when the run started, and the one this run made is the
    approved picture (after `doit clean`, say): the next run makes the video, nothing to approve."""
    if approved_again:
        return (f"{ad}/{beat_id}: video waits one run: its storyboard was made in this run and is the approved "
                f"picture; run doit again to make the video")
    why = "its storyboard changed since it was approved" if state == STALE else "its storyboard is not approved yet"
    return (f"{ad}/{beat_id}: video waits for approval ({why}); look at build/{ad}/beats/{beat_id}/storyboard.png, "
            f"then `adspec approve {ad}/{beat_id}`")


def say_waiting(ad: str, beat_id: str, state: str, approved: str | None = None, storyboard: str | None = None,
                out: Callable[[str], Any] | None = None) -> None:
    """The action of a waiting beat's first chunk task (after its storyboard task): one line on
    stderr (not a failure). Whether to wait is decided when the run starts; what is said is what is
    true now that the storyboard is made."""
    import sys

    again = state == STALE and approved is not None and storyboard is not None \
        and storyboard_sha256(Path(storyboard)) == approved
    (out or (lambda s: print(s, file=sys.stderr, flush=True)))(waiting_line(ad, beat_id, state, approved_again=again))


# ---- writing `approved:` into the file ------------------------------------------------------------


def _beat_node(root: Any, beat_id: str, shown: str) -> MappingNode:
    if isinstance(root, MappingNode):
        for k, v in root.value:
            if isinstance(k, ScalarNode) and k.value == "beats" and isinstance(v, SequenceNode):
                for item in v.value:
                    if not isinstance(item, MappingNode):
                        continue
                    for ik, iv in item.value:
                        if isinstance(ik, ScalarNode) and ik.value == "id" and isinstance(iv, ScalarNode) \
                                and iv.value == beat_id:
                            return item
    raise SpecError(shown, None, "beats", f"no beat with id '{beat_id}'")


def _last_line(node: yaml.Node) -> int:
    """The last line (0-based) holding `node`'s own text."""
    if isinstance(node, MappingNode):
        return max([_last_line(v) for kv in node.value for v in kv] or [node.start_mark.line])
    if isinstance(node, SequenceNode):
        return max([_last_line(v) for v in node.value] or [node.start_mark.line])
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def set_approved(text: str, beat_id: str, sha: str, shown: str = "the beat file") -> str:
    """`text` with beat `beat_id`'s `approved:` set to `sha` (replaced in place, or added as the
    beat's last field), every other byte kept. SpecError when the beat is not there or the file
    is written in a way that cannot be edited line by line (a flow-style beat)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SpecError(shown, mark.line + 1 if mark else None, None, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    beat = _beat_node(root, beat_id, shown)
    written = f'"{sha}"' if sha.isdigit() else sha  # all digits would read as a number
    found = [(k, v) for k, v in beat.value if isinstance(k, ScalarNode) and k.value == "approved"]
    if found:
        node = found[0][1]
        new = text[:node.start_mark.index] + written + text[node.end_mark.index:]
    else:
        if beat.flow_style or not beat.value:
            raise SpecError(shown, beat.start_mark.line + 1, f"beats.{beat_id}",
                            "written in flow style ({...}): add `approved:` by hand")
        nl = "\r\n" if "\r\n" in text else "\n"  # the file's own line ends (a CRLF file got LF lines)
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += nl
        indent = beat.value[0][0].start_mark.column
        at = _last_line(beat) + 1
        new = "".join(lines[:at] + [" " * indent + f"approved: {written}{nl}"] + lines[at:])
    before = yaml.safe_load(text)
    for b in before["beats"]:
        if isinstance(b, dict) and b.get("id") == beat_id:
            b["approved"] = sha
    try:
        ok = yaml.safe_load(new) == before
    except yaml.YAMLError:
        ok = False
    if not ok:
        raise SpecError(shown, beat.start_mark.line + 1, f"beats.{beat_id}", "cannot add `approved:` to this beat line by line")
    return new
