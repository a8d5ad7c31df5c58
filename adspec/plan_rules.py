"""The plan's rules: clip fitting and what a plan must keep (durations, positions, the beat
library's constraints). One copy, called by both planners, the lock and the validator.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from .languages import all_texts
from .library import Library, load_library
from .spec import Beat, BeatPlan, Issue, Spec, prompt_presence_issues, word_count

__all__ = ["plan_shaping_fields", "fit_clips", "clip_waste", "plan_waste", "validate_plan", "plan_problems", "located_plan_problems"]


# ---- what shapes a plan --------------------------------------------------------------------------


def plan_shaping_fields(spec: Spec, registry: Any) -> dict[str, Any]:
    """The spec fields that shape the plan, as JSON values.

    In: prompt, duration, style, brand name, asset names, var names, the planner model, and the
    video model's clip lengths (not its name). Out: title, aspect ratio, resolution, seed, the
    brand kit drawn by code (tagline, colours, logo, font, CTA, URL: words on screen never shape
    a paid request), image/music models, var values, native audio, inline music/beats.
    """
    video = registry.resolve(spec.models.video, "video")
    shaping: dict[str, Any] = {
        "prompt": spec.prompt,
        "duration": spec.duration,
        "style": spec.style,
        "brand": {"name": spec.brand.name},
        "assets": sorted(spec.assets),
        "vars": sorted(spec.vars),
        "planner": spec.models.planner,
        "clip_lengths": sorted(int(x) for x in video.clip_lengths),
    }
    if not spec.voiceover:  # only when off: plans made before voiceover existed keep their hash
        shaping["voiceover"] = False
    return shaping


# ---- clips ----------------------------------------------------------------------------------


def fit_clips(duration: int, clip_lengths: Iterable[int]) -> list[int]:
    """The fewest clips of the allowed lengths that cover `duration`, and among those the least
    waste; longest first, so only the last clip is trimmed. [] for duration <= 0."""
    lengths = sorted({int(x) for x in clip_lengths}, reverse=True)
    if not lengths or lengths[-1] <= 0:
        raise ValueError("clip lengths must be positive integers")
    if duration <= 0:
        return []
    count = math.ceil(duration / lengths[0])
    # best[s] = clips (descending) reaching sum s with k clips; prefer the lexicographically
    # largest tuple so the choice is deterministic
    best: dict[int, tuple[int, ...]] = {0: ()}
    for _ in range(count):
        nxt: dict[int, tuple[int, ...]] = {}
        for total, clips in best.items():
            for length in lengths:
                if clips and length > clips[-1]:
                    continue  # keep tuples descending: each multiset once
                s = total + length
                cand = clips + (length,)
                if s not in nxt or cand > nxt[s]:
                    nxt[s] = cand
        best = nxt
    total = min(s for s in best if s >= duration)
    return list(best[total])


def clip_waste(duration: int, clip_lengths: Iterable[int]) -> int:
    """Seconds of generated video trimmed away when a beat of `duration` is cut from clips."""
    lengths = tuple(clip_lengths)
    if not lengths:
        return 0
    return sum(fit_clips(duration, lengths)) - duration


def plan_waste(plan: BeatPlan, clip_lengths: Sequence[int]) -> dict[str, int]:
    """Trimmed seconds per beat id (0 for a perfect fit)."""
    return {b.id: clip_waste(b.duration, clip_lengths) for b in plan.beats}


# ---- what a plan must keep ------------------------------------------------------------------


def validate_plan(plan: BeatPlan, spec: Spec, library: Library | None = None) -> list[str]:
    """Every way `plan` breaks the library's rules for `spec` (see `plan_problems`)."""
    return plan_problems(plan, spec.duration, library)


def located_plan_problems(beats: Sequence[Beat], duration: int | None, library: Library | None = None,
                          voice: bool = True) -> list[Issue]:
    """Every way `beats` break the library's rules for an ad of `duration` seconds (None: any
    length), each with where it is (("beats", i) for one beat, () for the whole plan). `voice`:
    also the lines' word budgets (the validator checks those on the rendered lines itself)."""
    lib = library or load_library()
    problems: list[Issue] = []
    total = sum(b.duration for b in beats)
    if duration is not None and total != duration:
        problems.append(((), f"the beats last {total} s but the ad must last exactly {duration} s "
                        f"(their durations must add up to {duration} s)"))
    seen: set[str] = set()
    for b in beats:
        if b.id in seen:
            problems.append(((), f"beat id '{b.id}' is used more than once; ids must be unique"))
        seen.add(b.id)
    last = len(beats) - 1
    start = 0
    product_at: int | None = None
    for i, b in enumerate(beats):
        bt = lib.beats.get(b.type)
        label = f"beats.{i} '{b.id}'"
        a = "an" if b.type[:1] in "aeiou" else "a"
        if bt is None:
            problems.append((("beats", i), f"{label}: unknown beat type '{b.type}'; known: {', '.join(lib.types)}"))
            start += b.duration
            continue
        if not bt.min <= b.duration <= bt.max:
            problems.append((("beats", i), f"{label}: {b.duration} s is outside the {b.type} range of {bt.min}-{bt.max} s"))
        if bt.position == "first" and i != 0:
            problems.append((("beats", i), f"{label}: {a} {b.type} must be the first beat"))
        elif bt.position == "last" and i != last:
            problems.append((("beats", i), f"{label}: {a} {b.type} must be the last beat"))
        elif bt.position == "closing" and not (i == last or (i == last - 1 and beats[last].type == "end-card")):
            problems.append((("beats", i), f"{label}: {a} {b.type} must be the last beat or come just before the end-card"))
        elif bt.position == "middle" and (i == 0 or i == last):
            problems.append((("beats", i), f"{label}: {a} {b.type} cannot open or close the ad"))
        if bt.shows_product and product_at is None:
            product_at = start
        start += b.duration
    counts: dict[str, int] = {}
    for b in beats:
        counts[b.type] = counts.get(b.type, 0) + 1
    for kind, count in counts.items():
        bt = lib.beats.get(kind)
        if bt is not None and count > 1 and not bt.repeatable:
            problems.append(((), f"beat type '{kind}' appears {count} times but may appear only once"))
    if beats and beats[0].type != "hook":
        problems.append((("beats", 0), f"the first beat must be a hook, not '{beats[0].type}'"))
    if beats and beats[-1].type not in ("cta", "end-card"):
        problems.append((("beats", len(beats) - 1), f"the last beat must be a cta or an end-card, not '{beats[-1].type}'"))
    rules = lib.voice
    for i, b in enumerate(beats):
        for line in all_texts(b.voiceover) if voice else []:
            words, budget = word_count(line), rules.budget(b.duration)
            if words > budget:
                problems.append((("beats", i), f"beats.{i} '{b.id}': the voiceover has {words} words; a {b.duration} s beat holds {budget}"))
        limit = lib.on_screen.limit(b.type)
        for shown in all_texts(b.on_screen):
            if len(shown) > limit:
                problems.append((("beats", i), f"beats.{i} '{b.id}': on_screen has {len(shown)} characters; "
                                               f"a {b.type} beat holds {limit}"))
    if product_at is None:
        problems.append(((), "no beat shows the product"))
    elif product_at > 3:
        problems.append(((), f"the product first appears at {product_at} s; it must be visible within the first 3 s"))
    return problems


def plan_problems(plan: BeatPlan, duration: int | None, library: Library | None = None) -> list[str]:
    """Every way `plan` breaks the library's rules for an ad of `duration` seconds (None: any
    length), as readable one-line messages (empty when it is fine). The LLM planner feeds these
    back when it re-asks; the offline planner's plans keep them by construction. A planner writes
    both prompts of every beat (its beats have no media of a person's)."""
    missing = [f"beats.{loc[1]} '{plan.beats[int(loc[1])].id}': {loc[2]} {message}"
               for loc, message in prompt_presence_issues(plan.beats, ("beats",), end_card_composed=False)]
    return [message for _, message in located_plan_problems(plan.beats, duration, library)] + missing
