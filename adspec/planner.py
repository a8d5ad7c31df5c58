"""Planners: a spec's plan-shaping fields -> a BeatPlan (music + beats).

The offline planner is deterministic and free: it picks beats from the library's arc for the
spec's style, gives them whole-second durations that sum exactly to the spec's duration (inside
each beat type's range, wasting the least video-model clip time), and fills their prompts from
the library's templates. References to spec `vars` stay `{{ name }}` placeholders, so the plan
depends on var names, never on their values. The LLM planner (adspec.providers) sits behind the
same PlanProvider interface and is checked with the same `validate_plan`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from .library import LIBRARY_VERSION, Library, Style, library_digest, load_library, render_template
from .providers.base import Job, PlanRequest, RunResult
from .recipes import Recipe
from .spec import Beat, BeatPlan, Music, Spec, default_music, render_beat_prompts

#: bump when the offline planner's output for the same inputs changes
PLANNER_CODE_VERSION = "3"  # 2: spoken lines; 3: lines fit the time the beat leaves
SECONDS_PER_BEAT = 5  # about one beat per 5 s
SPOKEN_CHARS_PER_SECOND = 15  # a voiceover's pace in characters: the planner's lines keep under it
MAX_BEATS = 60
#: var names the offline planner uses as the place an ad is set in (first present wins)
SETTING_VARS = ("city", "location", "place", "town", "neighborhood", "neighbourhood", "region", "country", "venue", "setting")
#: shot variations for repeated beats (feature-2, feature-3, ...)
VARIATIONS = ("from a new low angle", "in an overhead view", "as a tight macro detail", "in a wide establishing view",
              "from over the shoulder", "in silhouette against the light")

__all__ = [
    "fit_clips", "clip_waste", "choose_beats", "choose_durations", "plan_offline", "plan_spec_offline",
    "OfflinePlanner", "validate_plan", "plan_waste", "product_from_prompt", "music_for", "default_music",
    "render_beat_prompts", "PLANNER_CODE_VERSION",
]


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


# ---- text from the spec ---------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_STOP = r"(?:in|with|that|which|who|where|showing|featuring|ending|using|at|on|to|from|by|and|as|so|while|set|targeting|aimed)"
_AFTER_AD = re.compile(
    r"\b(?:ad|ads|advert|advertisement|commercial|spot|video|promo|campaign|teaser)\s+"
    r"(?:for|about|of|introducing|launching|showcasing|promoting)\s+(?:the\s+|an?\s+|our\s+|new\s+)*"
    r"(.+?)(?=\s*[,.;:!?()\n\"“”]|\s+[-–—]\s|\s+" + _STOP + r"\b|$)",
    re.I,
)
_AFTER_VERB = re.compile(
    r"\b(?i:for|introducing|launching|meet|presenting|showcasing|promoting)\s+(?i:the\s+|an?\s+|our\s+|new\s+)*"
    r"([A-Z0-9\x00][\w'’\x00-]*(?:\s+[A-Z0-9\x00][\w'’\x00-]*){0,5})"
)


def product_from_prompt(prompt: str, brand: str | None = None) -> str:
    """The product's name from the spec's prompt ("... ad for the TrailRunner X running shoe,
    ..." -> "TrailRunner X running shoe"), else the brand's product, else "the product".
    {{ placeholders }} in the prompt are kept whole."""
    saved: list[str] = []

    def protect(m: re.Match[str]) -> str:
        saved.append(m.group(0))
        return f"\x00{len(saved) - 1}\x00"

    text = _PLACEHOLDER.sub(protect, prompt or "")
    name = ""
    m = _AFTER_AD.search(text)
    if m:
        name = m.group(1)
    else:
        m = _AFTER_VERB.search(text)
        if m:
            name = m.group(1)
    words = name.split()
    if len(words) > 8 or not words:
        name = ""
    else:
        name = " ".join(words)
    name = re.sub(r"\x00(\d+)\x00", lambda m: saved[int(m.group(1))], name).strip(" -–—'\"")
    if name:
        return name
    if brand:
        return f"the {brand} product" if not _PLACEHOLDER.search(brand) else brand
    return "the product"


def _plain(text: str) -> str:
    """Text without placeholders, collapsed to one line (for the music prompt, never rendered)."""
    return " ".join(_PLACEHOLDER.sub(" ", text or "").split())


def music_for(style_text: str, brand: str | None = None, library: Library | None = None) -> Music:
    """The music bed for a style: the library style's music and tempo, plus the spec's words."""
    lib = library or load_library()
    style = lib.style_for(style_text)
    words = _plain(style_text)[:80]
    mood = f", {words} mood" if words and words.lower() != style.name else f", {style.name} mood"
    return Music(prompt=f"{style.music}{mood}, instrumental, no vocals, {style.bpm} bpm", bpm=style.bpm)


def setting_phrase(var_names: Iterable[str]) -> str:
    names = set(var_names)
    for name in SETTING_VARS:
        if name in names:
            return f"in {{{{ {name} }}}}"
    return ""


# ---- choosing beats and durations -----------------------------------------------------------


def choose_beats(duration: int, style: Style, library: Library) -> list[str]:
    """Beat types in playing order for an ad of `duration` seconds in `style`.

    Keeps the arc's rank-1 beats (hook, product-reveal, cta), adds ranks 2, 3, ... while the count
    stays near one beat per 5 s and the minimum durations fit; when even the longest durations
    cannot fill the ad, repeats the repeatable middle beats."""
    beats = library.beats
    target = max(2, round(duration / SECONDS_PER_BEAT))
    chosen: list[str] | None = None
    for rank in sorted({r for _, r in style.arc}):
        cand = [t for t, r in style.arc if r <= rank]
        if chosen is not None and len(cand) > target:
            break
        if sum(beats[t].min for t in cand) > duration:
            break
        chosen = cand
    if chosen is None:  # even hook + product-reveal + cta is too long: the hook shows the product
        chosen = [t for t, r in style.arc if r == 1 and t != "product-reveal"]
    repeatable = [t for t in chosen if beats[t].repeatable] or [t for t, _ in style.arc if beats[t].repeatable]
    i = 0
    while sum(beats[t].max for t in chosen) < duration and len(chosen) < MAX_BEATS:
        kind = repeatable[i % len(repeatable)]
        i += 1
        if kind in chosen:
            at = max(j for j, t in enumerate(chosen) if t == kind) + 1
        else:
            at = next(j for j, t in enumerate(chosen) if beats[t].position in ("closing", "last"))
        chosen.insert(at, kind)
    return chosen


def choose_durations(types: Sequence[str], duration: int, clip_lengths: Sequence[int], library: Library) -> list[int]:
    """Whole seconds per beat, summing exactly to `duration`, each inside its type's range;
    least trimmed clip time first, then closest to each type's ideal. ValueError if impossible."""
    beats = [library.beats[t] for t in types]
    lengths = tuple(clip_lengths)
    # best[s] = (waste, deviation, durations) over the beats so far, reaching s seconds
    best: dict[int, tuple[int, int, tuple[int, ...]]] = {0: (0, 0, ())}
    for bt in beats:
        nxt: dict[int, tuple[int, int, tuple[int, ...]]] = {}
        for total, (waste, dev, durs) in best.items():
            for d in range(bt.min, bt.max + 1):
                s = total + d
                if s > duration:
                    break
                cand = (waste + clip_waste(d, lengths), dev + abs(d - bt.ideal), durs + (d,))
                if s not in nxt or cand < nxt[s]:
                    nxt[s] = cand
        best = nxt
    if duration not in best:
        raise ValueError(f"no durations of {', '.join(types)} sum to {duration} s")
    return list(best[duration][2])


def plan_offline(shaping: dict[str, Any], clip_lengths: Sequence[int], library: Library | None = None) -> BeatPlan:
    """The offline plan from the plan-shaping fields alone (see adspec.lock.plan_shaping_fields)."""
    lib = library or load_library()
    duration = int(shaping["duration"])
    style_text = str(shaping.get("style") or "")
    brand = shaping.get("brand") or {}
    style = lib.style_for(style_text)
    types = choose_beats(duration, style, lib)
    durations = choose_durations(types, duration, clip_lengths, lib)
    ctx = {
        "product": product_from_prompt(str(shaping.get("prompt") or ""), brand.get("name")),
        "brand": brand.get("name") or "",
        "tagline": brand.get("tagline") or "",
        "style": style_text,
        "look": style.look,
        "camera": style.camera,
        "setting": setting_phrase(shaping.get("vars") or ()),
    }
    counts: dict[str, int] = {}
    out: list[Beat] = []
    for kind, seconds in zip(types, durations):
        n = counts[kind] = counts.get(kind, 0) + 1
        bt = lib.beats[kind]
        image = " ".join(render_template(bt.image_prompt, {**ctx, "n": n}).split())
        motion = " ".join(render_template(bt.motion_prompt, {**ctx, "n": n}).split())
        if n > 1:
            image = f"{image}, {VARIATIONS[(n - 2) % len(VARIATIONS)]}"
        line = spoken_line(bt, style.name, seconds, ctx, lib) if shaping.get("voiceover", True) else None
        out.append(Beat(id=kind if n == 1 else f"{kind}-{n}", type=kind, duration=seconds,
                        image_prompt=image, motion_prompt=motion, voiceover=line))
    return BeatPlan(music=music_for(style_text, brand.get("name"), lib), beats=out)


def spoken_line(bt: Any, style: str, seconds: int, ctx: dict[str, Any], library: Library) -> str | None:
    """The beat type's longest line, in the style's tone, that is sure to be spoken inside the
    beat: within the word budget of the time the beat leaves for it (after the lead-in and
    before the tail) and SPOKEN_CHARS_PER_SECOND characters a second (long words take longer).
    Placeholders a line keeps, e.g. {{ city }}, count as one word. None if the type is silent."""
    from .spec import word_count

    room = library.voice.room(seconds)
    budget = min(library.voice.budget(seconds), int(room * library.voice.words_per_second))
    for template in bt.lines_for(style):
        line = " ".join(render_template(template, {**ctx, "n": 1}).split())
        plain = _PLACEHOLDER.sub(" x ", line)
        if word_count(plain) <= budget and len(plain) <= room * SPOKEN_CHARS_PER_SECOND:
            return line
    return None


def plan_spec_offline(spec: Spec, registry=None) -> BeatPlan:
    """Convenience: the offline plan of a spec (what `adspec plan` writes without an API key)."""
    from .lock import plan_shaping_fields
    from .registry import load_registry

    registry = registry or load_registry()
    shaping = plan_shaping_fields(spec, registry)
    return plan_offline(shaping, shaping["clip_lengths"])


class OfflinePlanner:
    """PlanProvider: deterministic plans from the beat library, no network, no cost."""

    name = "offline"

    def plan_recipe(self, req: PlanRequest) -> Recipe:
        return Recipe(
            provider="offline",
            kind="plan",
            model="offline-planner",
            version=f"offline/planner/{LIBRARY_VERSION}/{PLANNER_CODE_VERSION}/{library_digest()[:16]}",
            params={"shaping": req.shaping, "clip_lengths": sorted(int(x) for x in req.clip_lengths)},
        )

    def run(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        clip_lengths = recipe.params["clip_lengths"]
        plan = plan_offline(recipe.params["shaping"], clip_lengths)
        Path(out).write_text(plan.model_dump_json(), encoding="utf-8")
        waste = plan_waste(plan, clip_lengths) if clip_lengths else {}
        return RunResult(meta={"waste_seconds": sum(waste.values()), "waste_by_beat": waste})


# ---- the plan's rules -----------------------------------------------------------------------


def validate_plan(plan: BeatPlan, spec: Spec, library: Library | None = None) -> list[str]:
    """Every way `plan` breaks the library's rules for `spec`, as readable one-line messages
    (empty when it is fine). The LLM planner feeds these back when it re-asks."""
    lib = library or load_library()
    problems: list[str] = []
    beats = plan.beats
    total = sum(b.duration for b in beats)
    if total != spec.duration:
        problems.append(f"the beats last {total} s but the ad must last exactly {spec.duration} s")
    seen: set[str] = set()
    for b in beats:
        if b.id in seen:
            problems.append(f"beat id '{b.id}' is used more than once; ids must be unique")
        seen.add(b.id)
    last = len(beats) - 1
    start = 0
    product_at: int | None = None
    for i, b in enumerate(beats):
        bt = lib.beats.get(b.type)
        label = f"beat {i + 1} '{b.id}'"
        if bt is None:
            problems.append(f"{label}: unknown beat type '{b.type}'; known: {', '.join(lib.types)}")
            start += b.duration
            continue
        if not bt.min <= b.duration <= bt.max:
            problems.append(f"{label}: {b.duration} s is outside the {b.type} range of {bt.min}-{bt.max} s")
        if bt.position == "first" and i != 0:
            problems.append(f"{label}: a {b.type} must be the first beat")
        elif bt.position == "last" and i != last:
            problems.append(f"{label}: a {b.type} must be the last beat")
        elif bt.position == "closing" and not (i == last or (i == last - 1 and beats[last].type == "end-card")):
            problems.append(f"{label}: a {b.type} must be the last beat or come just before the end-card")
        elif bt.position == "middle" and (i == 0 or i == last):
            problems.append(f"{label}: a {b.type} cannot open or close the ad")
        if bt.shows_product and product_at is None:
            product_at = start
        start += b.duration
    counts: dict[str, int] = {}
    for b in beats:
        counts[b.type] = counts.get(b.type, 0) + 1
    for kind, count in counts.items():
        bt = lib.beats.get(kind)
        if bt is not None and count > 1 and not bt.repeatable:
            problems.append(f"beat type '{kind}' appears {count} times but may appear only once")
    if beats and beats[0].type != "hook":
        problems.append(f"the first beat must be a hook, not '{beats[0].type}'")
    if beats and beats[-1].type not in ("cta", "end-card"):
        problems.append(f"the last beat must be a cta or an end-card, not '{beats[-1].type}'")
    if product_at is None:
        problems.append("no beat shows the product")
    elif product_at > 3:
        problems.append(f"the product first appears at {product_at} s; it must be visible within the first 3 s")
    return problems
