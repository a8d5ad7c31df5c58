"""Planners: a spec's plan-shaping fields -> a BeatPlan (music + beats).

The offline planner is deterministic and free: it picks beats from the library's arc for the
spec's style, gives them whole-second durations that sum exactly to the spec's duration (inside
each beat type's range, wasting the least video-model clip time), and fills their prompts from
the library's templates. References to spec `vars` stay `{{ name }}` placeholders, so the plan
depends on var names, never on their values. The LLM planner (adspec.providers) sits behind the
same PlanProvider interface and is checked with the same rules (adspec.plan_rules).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from .library import LIBRARY_VERSION, Library, Style, library_digest, load_library, render_template
from .library.prompt_reader import prompt_features, prompt_occasion
from .plan_rules import clip_waste, plan_shaping_fields, plan_waste
from .prompt_text import _PLACEHOLDER, product_from_prompt
from .providers.base import Job, PlanRequest, RunResult
from .recipes import OFFLINE, Recipe
from .registry import Registry, load_registry
from .spec import Beat, BeatPlan, Spec, music_for, word_count

#: bump when the offline planner's output for the same inputs changes
PLANNER_CODE_VERSION = "5"  # 2: spoken lines; 3: lines fit the time the beat leaves; 4: reads the prompt's key phrases;
# 5: no words asked of the models (the tagline is drawn by code, not painted or planned); supers
#: beat types that show one of the prompt's features (in turn: the first such beat the first feature, ...)
FEATURE_BEATS = ("product-reveal", "feature", "demo", "benefit", "transformation", "comparison")
#: of those, the types whose spoken line names their feature
FEATURE_LINES = ("feature", "demo", "benefit")
SECONDS_PER_BEAT = 5  # about one beat per 5 s
SPOKEN_CHARS_PER_SECOND = 15  # a voiceover's pace in characters: the planner's lines keep under it
MAX_BEATS = 60
#: var names the offline planner uses as the place an ad is set in (first present wins)
SETTING_VARS = ("city", "location", "place", "town", "neighborhood", "neighbourhood", "region", "country", "venue", "setting")
#: shot variations for repeated beats (feature-2, feature-3, ...)
VARIATIONS = ("from a new low angle", "in an overhead view", "as a tight macro detail", "in a wide establishing view",
              "from over the shoulder", "in silhouette against the light")

__all__ = [
    "choose_beats", "choose_durations", "plan_offline", "spoken_line", "plan_spec_offline", "OfflinePlanner", "PLANNER_CODE_VERSION",
]


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
    """The offline plan from the plan-shaping fields alone (see adspec.plan_rules.plan_shaping_fields)."""
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
        "tagline": "",  # drawn by the text layer, never planned into a prompt or a line
        "style": style_text,
        "look": style.look,
        "camera": style.camera,
        "setting": setting_phrase(shaping.get("vars") or ()),
    }
    # the prompt's key phrases: an occasion in every picture, each feature in a beat that shows it
    prompt = str(shaping.get("prompt") or "")
    occasion = prompt_occasion(prompt)
    features = prompt_features(prompt, ctx["product"])
    counts: dict[str, int] = {}
    out: list[Beat] = []
    shown = 0
    for kind, seconds in zip(types, durations):
        n = counts[kind] = counts.get(kind, 0) + 1
        bt = lib.beats[kind]
        image = tidy(render_template(bt.image_prompt, {**ctx, "n": n}))
        motion = tidy(render_template(bt.motion_prompt, {**ctx, "n": n}))
        if n > 1:
            image = f"{image}, {VARIATIONS[(n - 2) % len(VARIATIONS)]}"
        lead: list[str] = []
        words: str | None = None  # the super: the product's name on its reveal, a feature's on its beat
        limit = lib.on_screen.limit(kind)
        if kind in lib.on_screen.planned and kind == "product-reveal" and "{" not in ctx["product"]:
            words = ctx["product"][:1].upper() + ctx["product"][1:]
        if features and kind == "product-reveal":  # the reveal names them all, the feature beats one each
            image = f"{image}, with {', '.join(features)}"
            lead = [f"{ctx['product']}: {', '.join(features[:n])}." for n in range(len(features), 0, -1)]
        elif features and kind in FEATURE_BEATS:
            feature = features[shown % len(features)]
            shown += 1
            image = f"{image}, featuring {feature}"
            if kind in lib.on_screen.planned and "{" not in feature:
                words = f"{feature[:1].upper()}{feature[1:]}"
            if kind in FEATURE_LINES:  # the feature, then the type's own line if both fit
                said = f"{feature[:1].upper()}{feature[1:]}."
                lead = [f"{said} {tidy(render_template(t, {**ctx, 'n': 1}))}" for t in bt.lines_for(style.name)] + [said]
        if occasion is not None:
            image = f"{image}, {occasion[1]}"
        line = spoken_line(bt, style.name, seconds, ctx, lib, lead) if shaping.get("voiceover", True) else None
        if words is not None and len(words) > limit:
            words = None  # a super the beat type cannot hold is left to the person
        out.append(Beat(id=kind if n == 1 else f"{kind}-{n}", type=kind, duration=seconds,
                        image_prompt=image, motion_prompt=motion, voiceover=line, on_screen=words))
    return BeatPlan(music=music_for(style_text, brand.get("name"), lib), beats=out)


def tidy(text: str) -> str:
    """Rendered template text on one line, without the gaps an empty field leaves
    (`with the brand logo , clear space` -> `with the brand logo, clear space`)."""
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    return text.strip(" ,;:")


def spoken_line(bt: Any, style: str, seconds: int, ctx: dict[str, Any], library: Library,
                lead: Sequence[str] = ()) -> str | None:
    """The beat type's longest line, in the style's tone, that is sure to be spoken inside the
    beat: within the word budget of the time the beat leaves for it (after the lead-in and
    before the tail) and SPOKEN_CHARS_PER_SECOND characters a second (long words take longer).
    Placeholders a line keeps, e.g. {{ city }}, count as one word. `lead`: lines (plain text) to
    try first, e.g. the feature the beat shows. None if the type is silent."""
    room = library.voice.room(seconds)
    budget = min(library.voice.budget(seconds), int(room * library.voice.words_per_second))
    lines = [tidy(text) for text in lead] + [tidy(render_template(t, {**ctx, "n": 1})) for t in bt.lines_for(style)]
    for line in lines:
        plain = _PLACEHOLDER.sub(" x ", line)
        if word_count(plain) <= budget and len(plain) <= room * SPOKEN_CHARS_PER_SECOND:
            return line
    return None


def plan_spec_offline(spec: Spec, registry: Registry | None = None) -> BeatPlan:
    """Convenience: the offline plan of a spec (what `adspec plan` writes without an API key)."""
    registry = registry or load_registry()
    shaping = plan_shaping_fields(spec, registry)
    return plan_offline(shaping, shaping["clip_lengths"])


class OfflinePlanner:
    """PlanProvider: deterministic plans from the beat library, no network, no cost."""

    name = OFFLINE

    def plan_recipe(self, req: PlanRequest) -> Recipe:
        return Recipe(
            provider=OFFLINE,
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
