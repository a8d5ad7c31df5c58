"""`adspec approve AD[/BEAT...]` and `adspec approve --list AD`, and the approval state the build
graph gates a beat's video on (see adspec.approvals for what approved, pending and stale mean).

A storyboard counts only when it is current: built from exactly the recipe its beat asks now. The
build asks that of the plan it has just made; `adspec approve` and `--list` ask it of the plan as
the spec and beat file say now (made in memory: an image prompt edited since the last build makes
its storyboard out of date before any `doit`, so an old picture is never approved for a new beat).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .actions import beat_image_recipe, context, is_current
from .ads import choose_ads, resolve_ad
from .approvals import APPROVED, own_footage, set_approved, state_of, storyboard_sha256
from .config import Settings, as_live, load_settings
from .errors import SpecError
from .fsutil import write_text_atomic
from .loader import locate_in_file, read_file
from .paths import AdPaths
from .plan_file import AdPlan, PlannedBeat, load_plan
from .plan_step import Decision, dry_plan
from .receipts import intact, receipt_key

__all__ = ["beat_state", "states", "approve", "listing"]


def current_storyboard_sha(ad: str, beat_id: str, paths: AdPaths) -> str | None:
    """The sha256 of the beat's storyboard when it is built from the beat as planned now."""
    storyboard = paths.storyboard(beat_id)
    if not is_current(str(storyboard), "storyboard", ad, beat_id):
        return None
    return storyboard_sha256(storyboard)


def beat_state(ad: str, beat: PlannedBeat, paths: AdPaths) -> str:
    if own_footage(beat):
        return APPROVED  # your own footage: nothing is paid for this beat, nothing to approve
    if beat.approved is None:
        return state_of(None, None)
    return state_of(beat.approved, current_storyboard_sha(ad, beat.id, paths))


def states(ad: str, plan: AdPlan, build_dir: Path) -> dict[str, str]:
    """Each beat's approval state (beat id -> approved / pending / stale)."""
    paths = AdPaths.of(build_dir, ad)
    return {b.id: beat_state(ad, b, paths) for b in plan.beats}


def _ad_and_beats(target: str) -> tuple[str, list[str]]:
    ad, _, rest = target.partition("/")
    return ad, [b for b in rest.split("/") if b]


def _planned(ad: str, spec_path: Path) -> tuple[AdPlan, AdPaths, dict[str, str | None]]:
    """The ad's plan as its files say now (nothing written, no planner asked) and, per beat, the
    sha256 of its storyboard when the one built is made from that beat as it is now (else None)."""
    paths = AdPaths.of(load_settings().build_dir, ad)
    dry, planned = dry_plan(ad, spec_path), load_plan(paths) is not None
    if not planned or dry.step.decision is Decision.PLAN:  # no beat file yet, or one to write again
        why = "is not planned yet" if not planned else \
            "will be planned again (its spec changed since its beat file was planned)"
        raise SpecError(spec_path, None, None, f"{ad} {why}: run `doit storyboard:{ad}` and look at the "
                                               "storyboards first")
    # this shell's providers, and the live ones: a still the model made is the one to approve
    # even from a shell without keys (whose own build would draw the offline animatic's instead)
    settings = load_settings()
    contexts = [context(settings)] + ([context(as_live(settings))] if as_live(settings) != settings else [])
    shas: dict[str, str | None] = {}
    for beat in dry.plan.beats:
        storyboard = paths.storyboard(beat.id)
        try:
            key = receipt_key(storyboard) if storyboard.is_file() else None
            # made from this beat, and the very bytes made (not a picture copied over it since)
            current = key is not None and any(
                key == beat_image_recipe(ctx, ad, dry.plan.beat_inputs(beat)).key for ctx in contexts
            ) and intact(storyboard)
        except (OSError, ValueError, KeyError):
            current = False
        shas[beat.id] = storyboard_sha256(storyboard) if current else None
    return dry.plan, paths, shas


def ads_named(target: str, specs_dir: Path) -> list[str]:
    """`target` as one target per ad: a spec of variants names each of them (`zip/hook` ->
    `zip@a/hook`, `zip@b/hook`); any other name is itself."""
    ad, _, rest = target.partition("/")
    try:
        ads = [name for name, _ in choose_ads(specs_dir, (ad,))[0]]
    except SpecError:
        return [target]
    return [f"{name}/{rest}" if rest else name for name in ads] if len(ads) > 1 else [target]


def _sharing(ad: str, spec_path: Path, file: Path) -> list[str]:
    """The other ads whose beats are written in `file` (variants that share a beat file)."""
    out = []
    for name, path in choose_ads(load_settings().specs_dir, (ad.partition("@")[0],))[0]:
        if name != ad and path == spec_path:
            resolved = resolve_ad(name, path)
            if (spec_path if resolved.spec.beats is not None else resolved.beats_path) == file \
                    and resolved.spec.approval == "required":
                out.append(name)
    return out


def _approved_beats(ad: str) -> set[str]:
    try:
        return {b for b, state, _ in listing(ad) if state == APPROVED}
    except SpecError:
        return set()


def approve(targets: list[str]) -> list[str]:
    """Write the current storyboard's sha256 into each named beat (every beat of an ad named
    alone). Returns one line per beat. SpecError (nothing written for that ad) when a beat is
    unknown or its storyboard is not built from the beat as it is. Says so when the ad needs no
    approval, and when the file's `approved:` of a beat another ad sharing it had is replaced."""
    settings = load_settings()
    lines: list[str] = []
    for target in targets:
        ad, beat_ids = _ad_and_beats(target)
        spec_path = _spec_of(ad, settings.specs_dir)
        resolved = resolve_ad(ad, spec_path)
        if resolved.spec.approval != "required":
            lines.append(f"note: {ad} does not require approval (no `approval: required`): its videos are made "
                         "without it")
        plan, paths, shas = _planned(ad, spec_path)
        known = [b.id for b in plan.beats]
        for b in beat_ids:
            if b not in known:
                raise SpecError(spec_path, None, None, f"{ad} has no beat '{b}' (its beats: {', '.join(known)})")
        file = spec_path if resolved.spec.beats is not None else resolved.beats_path
        others = _sharing(ad, spec_path, file)
        had = {other: _approved_beats(other) for other in others}
        text = before = read_file(file).decode("utf-8")
        approved = {b.id: b.approved for b in plan.beats}
        footage = {b.id for b in plan.beats if own_footage(b)}
        for beat_id in beat_ids or known:
            if beat_id in footage:  # nothing is paid for it: an approval would be a hash nobody reads
                lines.append(f"{ad}/{beat_id}: your own footage: nothing to approve (nothing is paid for it)")
                continue
            sha = shas[beat_id]
            if sha is None:
                at = known.index(beat_id)  # the plan's beats are the file's, in its order
                raise SpecError(file, locate_in_file(file, ("beats", at)), f"beats.{at}",
                                f"the storyboard of {ad}/{beat_id} is not built from this beat as it is now: run "
                                f"`doit storyboard:{ad}/{beat_id}`{_offline_note(settings)}, look at it, then "
                                "approve it")
            if approved[beat_id] == sha:
                lines.append(f"{ad}/{beat_id}: already approved ({sha[:12]})")
                continue
            text = set_approved(text, beat_id, sha, str(file))
            lines.append(f"{ad}/{beat_id}: approved {sha[:12]} in {file}")
        if text != before:
            write_text_atomic(file, text)
            for other in others:  # one `approved:` per beat: a sibling drawing another picture loses its own
                lost = sorted(had[other] - _approved_beats(other))
                if lost:
                    lines.append(f"note: {other}: the approval of {', '.join(lost)} is replaced (its storyboard is "
                                 f"not {ad}'s, and {file.name} holds one `approved:` per beat)")
    return lines


def _offline_note(settings: Settings) -> str:
    """Said beside "run doit storyboard:..." in a shell whose build would not ask the image model."""
    if not settings.offline_forced and settings.has_replicate_token:
        return ""
    return " with the keys your build uses (without them it draws the offline animatic's still, not the model's)"


def listing(target: str) -> list[tuple[str, str, str | None]]:
    """(beat id, state, approved hash) of every beat of the ad `target` names."""
    settings = load_settings()
    ad, beat_ids = _ad_and_beats(target)
    spec_path = _spec_of(ad, settings.specs_dir)
    plan, paths, shas = _planned(ad, spec_path)
    written = approved_in_file(ad, spec_path)  # the file as it is now (plan.json follows at the next run)
    out = []
    for b in plan.beats:
        if beat_ids and b.id not in beat_ids:
            continue
        approved = written.get(b.id)
        if own_footage(b):
            state = APPROVED  # your own footage: nothing paid, nothing to approve (as the build decides)
        else:
            state = state_of(None, None) if approved is None else state_of(approved, shas[b.id])
        out.append((b.id, state, approved))
    return out


def approved_in_file(ad: str, spec_path: Path) -> dict[str, str]:
    """Beat id -> `approved:` as the beat file (or the spec's inline beats) says now."""
    resolved = resolve_ad(ad, spec_path)
    file = spec_path if resolved.spec.beats is not None else resolved.beats_path
    try:
        data = yaml.safe_load(read_file(file).decode("utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    beats = data.get("beats") if isinstance(data, dict) else None
    return {str(b["id"]): str(b["approved"]) for b in beats or [] if isinstance(b, dict) and b.get("approved") and b.get("id")}


def _spec_of(ad: str, specs_dir: Path) -> Path:
    """The spec file of the ad named (SpecError for a name that is no ad)."""
    ads = choose_ads(specs_dir, (ad,))[0]
    for name, spec_path in ads:
        if name == ad:
            return spec_path
    raise SpecError(specs_dir, None, None, f"'{ad}' names several ads ({', '.join(n for n, _ in ads)}): approve one of them")


def is_approved(state: str) -> bool:
    return state == APPROVED
