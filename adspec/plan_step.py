"""The plan step: keep the beat file (the lock) in step with its spec, then resolve the ad.

The lock's rules live in `adspec.beat_lock`; the planners behind one interface; the plan request goes
through the request cache like every paid call. This module wires them together and writes the
plan files the render tasks read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from . import __version__, own_media
from .actions import context, write_plan_files
from .ads import beats_path_of, resolve_ad
from .beat_lock import (
    Decision,
    as_planned,
    decide,
    keep_replaced,
    planned_from_for,
    recheck,
    record_for,
    render_beat_file,
    text_sha256,
    with_record,
    write_beat_file,
)
from .cache import Fetched
from .config import load_settings
from .cost import guarded
from .errors import MediaError, SpecError, raise_errors, shown_path
from .fsutil import write_json_atomic, write_text_atomic
from .hashing import sha256_bytes, sha256_file, sha256_file_memo, sha256_json
from .languages import text_in
from .library import LIBRARY_VERSION, load_library
from .loader import load_beat_file, load_spec, locate_in_file, parse_beat_file_text, path_exists, read_file
from .offline_planner import plan_offline
from .paths import AdPaths, ad_name, beat_file_path, receipt_path, replaced_beat_files_dir
from .placements import text_zones
from .plan_file import FPS, AdPlan, PlannedBeat, load_plan, output_size, plan_files_intact
from .plan_rules import fit_clips, plan_shaping_fields
from .progress import on_progress
from .providers.base import PlanRequest
from .receipts import write_receipt
from .recipes import OFFLINE, Recipe
from .registry import ModelEntry, Registry, load_registry, reference_capacity, reference_model
from .spec import (
    Beat,
    BeatFile,
    BeatPlan,
    MissingLanguage,
    PlannedFrom,
    Spec,
    asset_path,
    asset_role,
    default_music,
    pick_text,
    render_beat_prompts,
    render_on_screen,
    render_voiceover,
    spec_text,
)
from .tasknames import task_name
from .verify import plan_verifier

log = logging.getLogger(__name__)


@dataclass
class PlanStep:
    """What the plan step would do for a spec, decided without calling any planner."""

    spec: Spec
    decision: Decision
    beats_path: Path
    spec_sha: str | None = None
    shaping: dict[str, Any] | None = None
    clip_lengths: tuple[int, ...] = ()
    recipe: Recipe | None = None  # the planner request, when decision is PLAN
    seen_sha256: str | None = None  # the beat file's content hash when the lock decided (None: absent)
    force: bool = False
    record: PlannedFrom | None = None  # KEEP: the lock's record the beat file should carry now (None: it does)
    texts_language: str = "en"  # the language the spec's plain strings are in (own_language)


def decide_step(spec_path: Path, *, force: bool = False, ad: str | None = None) -> PlanStep:
    """The lock's decision for `spec_path` and, when it is PLAN, the planner's recipe (pure:
    reads the spec and beat file, writes nothing, calls nothing)."""
    # `ad` may name a variant (`<ad>@<variant>`): its spec and beat file (shared by the variants whose
    # plan-shaping fields are equal, see adspec.variants); the plan request names the base ad, so
    # variants with equal shaping fields ask the planner the same thing (paid once)
    resolved = resolve_ad(ad or ad_name(spec_path), spec_path)
    spec, beats_path = resolved.spec, resolved.beats_path
    if spec.beats is not None:  # inline beats: no planner at all
        return PlanStep(spec, Decision.INLINE, beats_path)
    registry = load_registry()
    shaping = plan_shaping_fields(spec, registry)
    spec_sha = sha256_json(shaping)
    text = read_file(beats_path).decode("utf-8") if path_exists(beats_path) else None
    decision = Decision.PLAN if force else decide(spec, spec_sha, text, spec_path=spec_path, beats_path=beats_path)
    step = PlanStep(spec, decision, beats_path, spec_sha, shaping, seen_sha256=text_sha256(text), force=force,
                    texts_language=own_language(spec, spec_path))
    if decision is Decision.KEEP and text is not None:  # kept by hand: its record follows the spec
        step.record = record_for(parse_beat_file_text(text, str(beats_path)), spec_sha)
    if decision is Decision.PLAN:
        video = registry.resolve(spec.models.video, "video")
        request = PlanRequest(ad=resolved.base, shaping=shaping, clip_lengths=video.clip_lengths,
                              planner_model=spec.models.planner)
        step.clip_lengths = tuple(video.clip_lengths)
        step.recipe = context().planner.plan_recipe(request)
    return step


def inline_beat_file(spec: Spec) -> BeatFile:
    """The beat file a spec with inline `beats:` stands for (Decision.INLINE: its beats are there)."""
    return BeatFile(music=spec.music or default_music(spec), beats=list(spec.beats or []))


def english_texts(plan: BeatPlan) -> BeatPlan:
    """The offline planner's lines and supers as what they are, English (`{en: ...}`), for a spec
    whose plain strings are in another language: taken as that language they were English words
    spoken by its voice and captioned under its tag. Its own lines are then missing, and the plan
    step and `adspec validate` say so, beat by beat (the offline planner cannot translate)."""
    beats = [b.model_copy(update={f: {"en": getattr(b, f)} for f in ("voiceover", "on_screen")
                                  if isinstance(getattr(b, f), str)}) for b in plan.beats]
    return plan.model_copy(update={"beats": beats})


def with_shows(plan: BeatPlan, spec: Spec) -> BeatPlan:
    """The planner's beats with `shows:` filled from the beat library (data: which beat types show
    the product, which show people) and the spec's assets by role; a beat that shows none of them
    (or a spec without such assets) is left as it was."""
    lib = load_library()
    roles = {name: asset_role(name, value) for name, value in spec.assets.items()}
    beats = []
    for beat in plan.beats:
        bt = lib.beats.get(beat.type)
        if beat.shows is None and bt is not None:
            shown = [n for n, r in roles.items()
                     if (r == "product" and bt.shows_product) or (r == "character" and bt.shows_people)]
            if shown:
                beat = beat.model_copy(update={"shows": shown})
        beats.append(beat)
    return plan.model_copy(update={"beats": beats})


def planned_beat_text(step: PlanStep, plan: BeatPlan) -> str:
    """The beat file the plan step writes for a planner's `plan`."""
    assert step.recipe is not None and step.spec_sha is not None
    plan = with_shows(plan, step.spec)
    planner = step.recipe.model if step.recipe.provider != OFFLINE else OFFLINE
    if planner == "offline" and step.texts_language.split("-")[0].lower() != "en":
        plan = english_texts(plan)
    planned_from = planned_from_for(plan, step.spec_sha, planner, LIBRARY_VERSION)
    return render_beat_file(plan, planned_from, clip_lengths=step.clip_lengths)


def ensure_beat_file(spec_path: Path, *, force: bool = False,
                     fetched_out: list[tuple[Recipe, Fetched]] | None = None, ad: str | None = None) -> tuple[Spec, BeatFile]:
    """The spec and its beat file, planning it when the lock's rules say so (or when forced).
    When the planner is asked, (recipe, fetched) is appended to `fetched_out`.

    Never overwrites a hand-edited beat file silently: `beat_lock.decide` raises LockError instead."""
    step = decide_step(spec_path, force=force, ad=ad)
    spec = step.spec
    if step.decision is Decision.INLINE:
        return spec, inline_beat_file(spec)
    if step.decision is Decision.PLAN:
        ctx = context()
        recipe = step.recipe
        assert recipe is not None
        base, shown = ad_name(spec_path), ad or ad_name(spec_path)
        # the request is the base ad's (its variants share it); its errors also name the ad asking
        label = f"{base} plan" if shown == base else f"{base} plan (for {shown})"
        fetched = ctx.cache.fetch(recipe, guarded(ctx.planner.run, label), plan_verifier(label),
                                  suffix=".json", label=label, on_progress=on_progress(shown, task_name("plan", shown)))
        plan = BeatPlan.model_validate_json(fetched.path.read_bytes())
        text = planned_beat_text(step, plan)
        # the planner took a while: a hand edit made meanwhile is kept (LockError), never overwritten
        assert step.spec_sha is not None
        current = read_file(step.beats_path).decode("utf-8") if path_exists(step.beats_path) else None
        if recheck(spec, step.spec_sha, step.seen_sha256, current, spec_path=spec_path, beats_path=step.beats_path,
                   force=step.force, planned_text=text):
            why = "--force" if step.force else "the spec changed in fields that shape the plan"
            if current is not None and current != text and not as_planned(current):
                # a person's comments or edits are in it: nothing of it is lost, a copy is kept and said
                kept = keep_replaced(step.beats_path, current, replaced_beat_files_dir(ctx.settings.build_dir))
                log.warning("%s: %s planned again (%s); the file it replaces is kept as %s", shown,
                            shown_path(str(step.beats_path)), why, shown_path(str(kept)))
            elif current is not None and current != text:
                log.info("%s: %s planned again (%s)", shown, shown_path(str(step.beats_path)), why)
            write_beat_file(step.beats_path, carried_approvals(current, text, str(step.beats_path)))
        if fetched_out is not None:
            fetched_out.append((recipe, fetched))
    elif step.record is not None:
        refresh_record(step)
    return spec, load_beat_file(step.beats_path, spec)  # with the spec: its errors keep their lines


def carried_approvals(before: str | None, text: str, shown: str) -> str:
    """The new plan's text with the `approved:` of each beat the file it replaces had under the
    same id (a replan dropped them all): an approval is of a picture, by its sha256, so a beat
    whose storyboard comes out the same stays approved and one that changed reads stale."""
    from .approvals import set_approved

    try:
        old = yaml.safe_load(before) if before else None
    except yaml.YAMLError:
        return text
    beats = old.get("beats") if isinstance(old, dict) else None
    approved = {str(b["id"]): str(b["approved"]) for b in beats or []
                if isinstance(b, dict) and b.get("id") is not None and b.get("approved")}
    ids = {b.id for b in parse_beat_file_text(text, shown).beats} if approved else set()
    for beat_id, sha in approved.items():
        if beat_id in ids:
            try:
                text = set_approved(text, beat_id, sha, shown)
            except SpecError:  # a beat written so it cannot be edited line by line: approve it again
                continue
    return text


def refresh_record(step: PlanStep) -> None:
    """Write the lock's record into a beat file kept by hand, changing no other line (comments,
    order and quoting are the user's). Only when the file is still what the lock decided on: an
    edit made meanwhile wins, and the next run records it."""
    assert step.record is not None
    current = read_file(step.beats_path).decode("utf-8") if path_exists(step.beats_path) else None
    if current is None or text_sha256(current) != step.seen_sha256:
        return
    updated = with_record(current, step.record)
    if updated is not None and updated != current:
        write_beat_file(step.beats_path, updated)


@dataclass
class DryPlan:
    """The plan a build would use now, made in memory (nothing written, no planner called)."""

    plan: AdPlan
    step: PlanStep
    planner_cached: bool = False  # the planner's answer is in the request cache
    stand_in: bool = False  # the live planner would run: beats are the offline planner's, as a stand-in
    translation: Recipe | None = None  # the LLM planner's call translating the texts the ad's language lacks
    # the texts (`beats.<id>.voiceover`, ...) whose translation is not asked yet: their source text stands in
    guessed_texts: frozenset[str] = frozenset()


def dry_plan(ad: str, spec_path: Path, fetch: Callable[[str], Path | None] | None = None) -> DryPlan:
    """The AdPlan `plan:<ad>` would produce now. When a live planner would have to be asked,
    the offline planner's plan stands in for it (same spec, same rules; the live planner may
    choose other beats), and `stand_in` says so. `fetch` (key -> a verified copy of its artifact,
    or None) finds answers the local cache lacks (the estimate's shared cache)."""
    step = decide_step(Path(spec_path), ad=ad)
    cached = stand_in = False
    if step.decision is Decision.INLINE:
        beat_file = inline_beat_file(step.spec)
    elif step.decision is Decision.KEEP:
        beat_file = load_beat_file(step.beats_path, step.spec)
    else:
        assert step.recipe is not None and step.shaping is not None
        found = _answer(step.recipe.key, fetch)
        if found is not None:
            plan = BeatPlan.model_validate_json(found.read_bytes())
            cached = True
        else:
            plan = plan_offline(step.shaping, sorted(int(x) for x in step.clip_lengths))
            stand_in = step.recipe.provider != OFFLINE
        beat_file = parse_beat_file_text(planned_beat_text(step, plan), str(step.beats_path))
    before = beat_file
    spec, beat_file, translation = translated(ad, step.spec, Path(spec_path), beat_file, dry=True, fetch=fetch)
    guessed: frozenset[str] = frozenset()
    if translation is not None and _answer(translation.key, fetch) is None:
        guessed = frozenset(missing_texts(step.spec, before, own_language(step.spec, Path(spec_path)))[0])
    return DryPlan(resolve(ad, spec, Path(spec_path), beat_file, step.beats_path), step, cached, stand_in,
                   translation, guessed)


def _answer(key: str, fetch: Callable[[str], Path | None] | None) -> Path | None:
    """The cached artifact of `key`: the local cache's (read only: a dry plan writes nothing), else
    what `fetch` finds."""
    cache = context().cache_for_reading()
    entry = cache.get(key)
    if entry is not None:
        return cache.blob_path(entry.sha256)
    return fetch(key) if fetch is not None else None


# ---- languages: what the LLM planner translates ---------------------------------------------------

#: text fields a language variant needs: (where, limit) for beats; the brand's words
_BEAT_TEXTS = ("voiceover", "on_screen")
_BRAND_TEXTS = {"tagline": "200 characters", "cta": "40 characters"}


def _source_text(value: Any, own: str) -> str:
    try:
        return text_in(value, own, own) or ""
    except KeyError:
        return next(iter(value.values()))


def missing_texts(spec: Spec, beat_file: BeatFile, own: str) -> tuple[dict[str, str], dict[str, str]]:
    """(key -> source text, key -> limit) of every text without the ad's language."""
    lib = load_library()
    texts: dict[str, str] = {}
    limits: dict[str, str] = {}

    def need(value: Any) -> bool:
        try:
            text_in(value, spec.language, own)
            return False
        except KeyError:
            return True

    for beat in beat_file.beats:
        for field in _BEAT_TEXTS:
            value = getattr(beat, field)
            if value is None or (field == "voiceover" and not spec.voiceover) or not need(value):
                continue
            key = f"beats.{beat.id}.{field}"
            texts[key] = _source_text(value, own)
            limits[key] = (f"{lib.voice.budget(beat.duration)} words" if field == "voiceover"
                           else f"{lib.on_screen.limit(beat.type)} characters")
    for field, limit in _BRAND_TEXTS.items():
        value = getattr(spec.brand, field)
        if value is not None and need(value):
            texts[f"brand.{field}"], limits[f"brand.{field}"] = _source_text(value, own), limit
    return texts, limits


def translated(ad: str, spec: Spec, spec_path: Path, beat_file: BeatFile, *, dry: bool = False,
               fetched_out: list[tuple[Recipe, Fetched, dict[str, Any]]] | None = None,
               fetch: Callable[[str], Path | None] | None = None) -> tuple[Spec, BeatFile, Recipe | None]:
    """The spec and beat file with every text the ad's language lacks translated by the LLM
    planner: one cached request per beat file and language (nothing written to the beat file;
    the request cache keeps the answer), and that request's recipe (None: nothing to translate,
    or the offline planner, which cannot translate: the texts stay missing and `resolve` names
    each one). `dry`: only what the cache already holds (no request; an estimate prices the recipe).
    `fetched_out` gets the request, what the cache or the planner gave, and the texts."""
    own = own_language(spec, spec_path)
    texts, limits = missing_texts(spec, beat_file, own)
    ctx = context()
    make = getattr(ctx.planner, "translate_recipe", None)
    if not texts or make is None or spec.models.planner == "offline":
        return spec, beat_file, None
    recipe: Recipe = make(texts, own, spec.language, limits, spec.models.planner)
    if dry:
        found = _answer(recipe.key, fetch)
        # not asked yet: the source texts stand in (an estimate prices the request, not its words)
        got = json.loads(found.read_bytes()) if found is not None else dict(texts)
    else:
        label = f"{ad} translation ({spec.language})"
        fetched = ctx.cache.fetch(recipe, guarded(ctx.planner.run, label), translation_verifier(label, set(texts)),
                                  suffix=".json", label=label, on_progress=on_progress(ad, task_name("plan", ad)))
        got = json.loads(fetched.path.read_bytes())
        if fetched_out is not None:
            fetched_out.append((recipe, fetched, got))

    def merged(value: Any, key: str) -> Any:
        if key not in got:
            return value
        base = {own: value} if isinstance(value, str) else dict(value)
        return {**base, spec.language: got[key]}

    beats = [b.model_copy(update={f: merged(getattr(b, f), f"beats.{b.id}.{f}") for f in _BEAT_TEXTS
                                  if f"beats.{b.id}.{f}" in got}) for b in beat_file.beats]
    brand = spec.brand.model_copy(update={f: merged(getattr(spec.brand, f), f"brand.{f}") for f in _BRAND_TEXTS
                                          if f"brand.{f}" in got})
    return spec.model_copy(update={"brand": brand}), beat_file.model_copy(update={"beats": beats}), recipe


def translation_verifier(what: str, keys: set[str]) -> Any:
    def verify(path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ok = isinstance(data, dict) and keys <= set(data) and all(isinstance(v, str) and v for v in data.values())
        except ValueError:
            ok = False
        if not ok:
            raise MediaError(f"{what}: the translator's output is not the translation asked for")

    return verify


def resolve(ad: str, spec: Spec, spec_path: Path, beat_file: BeatFile, beats_path: Path | None = None) -> AdPlan:
    """Spec + beat file -> the AdPlan: prompts rendered with the spec's values, chunking fixed."""
    registry = load_registry()
    video = registry.resolve(spec.models.video, "video")
    image = registry.resolve(spec.models.image, "image")
    music = registry.resolve(spec.models.music, "music")
    width, height = output_size(spec.aspect_ratio, spec.resolution)
    source = (beats_path or beat_file_path(spec_path)) if spec.beats is None else spec_path
    beats = []
    start = 0
    own_lang = own_language(spec, spec_path)
    missing: list[SpecError] = []  # every beat that lacks the ad's language, one line each
    native = spec.native_audio and video.native_audio
    for index, beat in enumerate(beat_file.beats):
        image_prompt, motion_prompt = render_beat_prompts(beat, spec, source)
        own_models = beat.models
        beat_video = registry.resolve(own_models.video, "video") if own_models is not None and own_models.video else None
        beat_image = registry.resolve(own_models.image, "image") if own_models is not None and own_models.image else None
        # a beat with its own video model is cut by that model's clip lengths; own footage is one clip
        clips = tuple(fit_clips(beat.duration, (beat_video or video).clip_lengths)) if beat.footage is None \
            else (beat.duration,)
        own = own_media_of(beat, index, spec_path, source)
        references, beat_image, note = beat_references(beat, index, spec, spec_path, source, beat_image or image,
                                                       registry, beat_image, asks_image=own is None)
        native = native and (beat_video or video).native_audio  # native sound only when every beat has it
        line = words = None
        try:
            line = render_voiceover(beat, spec, source, own_lang)
        except MissingLanguage as e:
            missing.append(_at_beat(e, source, beat, index, "voiceover"))
        try:
            words = render_on_screen(beat, spec, source, own_lang)
        except MissingLanguage as e:
            missing.append(_at_beat(e, source, beat, index, "on_screen"))
        beats.append(PlannedBeat(beat.id, beat.type, start, beat.duration, image_prompt, motion_prompt, clips, line,
                                 words, approved=beat.approved, image_model=beat_image.name if beat_image else None,
                                 video_model=beat_video.name if beat_video else None, own=own,
                                 references=references, note=note))
        start += beat.duration
    # every text the language lacks, each file's by line (a spec's inline beats come after its brand)
    raise_errors(sorted(missing + brand_language_gaps(spec, spec_path), key=lambda e: (str(e.path), e.line or 0)))
    if start != spec.duration:
        raise SpecError(source, None, "beats", f"durations sum to {start} s but the spec's duration is {spec.duration} s")
    product = spec.assets.get("product")
    reference = str((spec_path.parent / asset_path(product)).resolve()) if product else None
    voice = registry.resolve(spec.models.voice, "voice")
    rules = load_library().voice
    captions = spec.captions.model_dump(mode="json")
    kit = brand_kit(spec, spec_path)
    if spec.captions.font:
        captions["font"] = str((spec_path.parent / spec.captions.font).resolve())
    elif kit.get("font"):  # captions in the brand's font unless they have their own
        captions["font"] = kit["font"]
    plan = AdPlan(
        ad=ad,
        title=spec.title,
        duration=spec.duration,
        aspect_ratio=spec.aspect_ratio,
        resolution=spec.resolution,
        width=width,
        height=height,
        fps=FPS,
        seed=spec.seed,
        style=spec.style,
        palette=tuple(spec.brand.colors),
        brand_name=spec.brand.name,
        tagline=kit["tagline"],  # in the ad's language
        reference=reference,
        image_model=image.name,
        video_model=video.name,
        music_model=music.name,
        native_audio=native,  # the models' own audio, when every beat's has it
        music_prompt=beat_file.music.prompt,
        bpm=beat_file.music.bpm,
        beats=tuple(beats),
        voice_model=voice.name,
        voice_name=spec.voice.name or voice.default_voice or voice.voices[0],
        voice_speed=float(spec.voice.speed),
        voice_lead_in=rules.lead_in,
        voice_tail=rules.tail,
        voice_max_speedup=rules.max_speedup,
        captions=captions,
        approval_required=spec.approval == "required",
        placements=tuple(spec.placements),
        safe_zones=text_zones(spec.placements, spec.aspect_ratio) or None,
        brand_kit=kit,
        language=spec.language,
    )
    check_text_layer(plan, spec_path, source)
    return plan


def brand_language_gaps(spec: Spec, spec_path: Path) -> list[SpecError]:
    """The brand's words (tagline, call to action) the ad's language lacks, each at its line in
    the spec: said with the beats' (they came one at a time, without a line, after them)."""
    own = own_language(spec, spec_path)
    out = []
    for field in ("tagline", "cta"):
        try:
            pick_text(getattr(spec.brand, field), spec, own, spec_path, f"brand.{field}")
        except MissingLanguage as e:
            out.append(SpecError(spec_path, locate_in_file(spec_path, ("brand", field)), e.field, e.message))
    return out


def _at_beat(e: SpecError, source: Path, beat: Beat, index: int, field: str) -> SpecError:
    """A beat's text error at its line, as validate reports it (`beats.<n>.<field>`, the beat named)."""
    loc = ("beats", index, field)
    return SpecError(e.path, locate_in_file(source, loc), f"beats.{index}.{field}", f"beat '{beat.id}': {e.message}")


def own_language(spec: Spec, spec_path: Path) -> str:
    """The language plain strings are in: the one written at the spec's top level (a variant's
    `language` is the ad's, not its texts')."""
    if spec_path.is_file():
        try:
            return load_spec(spec_path).language
        except SpecError:
            pass
    return spec.language


def brand_kit(spec: Spec, spec_path: Path) -> dict[str, Any]:
    """The brand kit the text layer draws, in the ad's language, with the spec's files as
    absolute paths."""
    b = spec.brand
    here = spec_path.parent
    own = own_language(spec, spec_path)

    def text(value: Any, field: str) -> str | None:
        if field in ("tagline", "cta"):  # words; a name and an address are the same in every language
            value = pick_text(value, spec, own, spec_path, f"brand.{field}")
        return " ".join(spec_text(value, spec).split()) if value else None

    kit = {
        "name": text(b.name, "name"), "tagline": text(b.tagline, "tagline"), "cta": text(b.cta, "cta"),
        "url": text(b.url, "url"),
        "logo": str((here / b.logo).resolve()) if b.logo else None,
        "font": str((here / b.font).resolve()) if b.font else None,
    }
    for field in ("logo", "font"):
        path = kit[field]
        if path and not Path(path).is_file():
            raise SpecError(spec_path, None, f"brand.{field}", f"{getattr(b, field)}: no such file")
    return kit


def check_text_layer(plan: AdPlan, spec_path: Path, source: Path) -> None:
    """Every word on screen stands in the safe zone at a readable size, in the kit's font: else
    one SpecError naming the beat and the text (before anything is paid for)."""
    from .render.text_layer import layout
    from .text_fit import TextFitError, bundled_font, missing_glyphs

    try:
        layout(plan.text_inputs())
    except TextFitError as e:
        field = e.field or "brand"
        raise SpecError(source if field.startswith("beats.") else spec_path, None, field, str(e)) from None
    captions = plan.captions or {}
    if captions.get("burn", True):  # burned captions: every spoken character in the captions' font
        font = Path(captions.get("font") or bundled_font())
        for beat in plan.voiced:
            missing = missing_glyphs(font, beat.voiceover or "")
            if missing:
                at = [b.id for b in plan.beats].index(beat.id)
                raise SpecError(source, locate_in_file(source, ("beats", at, "voiceover")), f"beats.{at}.voiceover",
                                f"beat '{beat.id}', language {plan.language}: the font {font.name} has no glyph for "
                                f"{''.join(missing[:8])!r} in the caption {beat.voiceover!r}; give brand.font (or "
                                "captions.font) a font that covers the script, or captions: {burn: false}")


def beat_references(beat: Beat, index: int, spec: Spec, spec_path: Path, source: Path, model: ModelEntry,
                    registry: Registry, own_model: ModelEntry | None, *, asks_image: bool = True
                    ) -> tuple[tuple[dict[str, Any], ...] | None, ModelEntry | None, str | None]:
    """The reference images of what a beat shows, and the image model that takes them: when the
    beat's (or spec's) model takes fewer than it shows, the cheapest one of the registry that takes
    them all (the note says so). None: the beat has no `shows:` (the spec's product, as before).
    A beat with its own still or footage asks no image (`asks_image` False): its references go
    with its video only; no note is made and no lack of a model is an error (the model that would
    take them stays in its beat.json, as before, so that file keeps its bytes)."""
    if beat.shows is None:
        return None, own_model, None
    refs = []
    for name in beat.shows:
        value = spec.assets.get(name)
        if value is None:
            loc: tuple[str | int, ...] = ("beats", index, "shows")
            raise SpecError(source, locate_in_file(source, loc), ".".join(map(str, loc)),
                            f"'{name}' is not one of the spec's assets ({', '.join(spec.assets) or 'none'})")
        refs.append({"name": name, "role": asset_role(name, value),
                     "path": str((spec_path.parent / asset_path(value)).resolve())})
    if refs and reference_capacity(model) < len(refs):  # `model`: the beat's own, else the spec's
        chosen = reference_model(registry, len(refs), model.provider)
        if not asks_image:  # no note, no error: the model is kept in beat.json only so that the
            # beat.json of builds made before stays byte for byte (its chunks' tasks do not re-run)
            return tuple(refs), chosen or own_model, None
        if chosen is None:
            loc = ("beats", index, "shows")
            raise SpecError(source, locate_in_file(source, loc), ".".join(map(str, loc)),
                            f"no image model in the registry takes {len(refs)} reference images")
        takes = reference_capacity(model)
        note = (f"{chosen.name} chosen for its {len(refs)} reference image{'s' if len(refs) > 1 else ''} "
                f"({', '.join(beat.shows)}): {model.name} takes {takes or 'none'}")
        return tuple(refs), chosen, note
    return tuple(refs), own_model, None


def own_media_of(beat: Beat, index: int, spec_path: Path, source: Path) -> dict[str, Any] | None:
    """A beat's own still or footage as its inputs carry them (absolute path, sha256, start), or
    None. Bad media (missing, not an image/video, unreadable, too short) is one located SpecError."""
    if beat.image is None and beat.footage is None:
        return None
    field, rel = ("image", beat.image) if beat.image is not None else ("footage", beat.footage)
    assert rel is not None
    path = (spec_path.parent / rel).resolve()
    start = float(beat.from_ or 0.0)
    problem = own_media.media_problem(path, "image" if field == "image" else "footage", start, float(beat.duration))
    if problem is not None:
        loc: tuple[str | int, ...] = ("beats", index, field)
        raise SpecError(source, locate_in_file(source, loc), ".".join(map(str, loc)), f"'{rel}' {problem}")
    sha = sha256_file(path)
    if field == "image":
        return {"own_image": str(path), "own_image_sha256": sha}
    return {"footage": str(path), "footage_sha256": sha, "footage_from": start}


@lru_cache(maxsize=1)
def _registry_digest() -> str:
    return sha256_bytes(resources.files("adspec.providers").joinpath("models.yaml").read_bytes())


def inputs_stamp(spec_path: Path, beats_path: Path | None = None) -> str:
    """What the plan files are made from: the spec's and beat file's bytes, the library, the
    registry and adspec's version."""
    spec_path = Path(spec_path)
    beats = beats_path or beat_file_path(spec_path)
    parts = [
        __version__,
        LIBRARY_VERSION,
        sha256_bytes(read_file(spec_path)),
        sha256_bytes(read_file(beats)) if path_exists(beats) else "-",
        _registry_digest(),
    ]
    return sha256_json(parts)


def plan_is_current(ad: str, spec_path: str) -> bool:
    """doit `uptodate` of plan:<ad>: the plan files were made from these exact inputs."""
    paths = AdPaths.of(load_settings().build_dir, ad)
    try:
        beats = beats_path_of(ad, spec_path)
        if not (paths.plan_inputs.read_text() == inputs_stamp(Path(spec_path), beats) and plan_files_intact(paths)):
            return False
    except (OSError, SpecError):
        return False
    return own_media_unchanged(paths)


def own_media_unchanged(paths: AdPaths) -> bool:
    """Whether every beat's own still or footage still has the bytes the plan recorded (a
    replaced file re-plans: that beat's inputs change, so exactly that beat is rebuilt)."""
    plan = load_plan(paths)
    if plan is None:
        return False
    for beat in plan.beats:
        for field in ("own_image", "footage"):
            if beat.own and beat.own.get(field):
                try:
                    if sha256_file_memo(beat.own[field]) != beat.own[f"{field}_sha256"]:
                        return False
                except OSError:
                    return False
    return True


def plan_ad(ad: str, spec_path: Path, *, force: bool = False) -> AdPlan:
    asked: list[tuple[Recipe, Fetched]] = []
    spec, beat_file = ensure_beat_file(spec_path, force=force, fetched_out=asked, ad=ad)
    beats_path = beats_path_of(ad, spec_path)
    translation: list[tuple[Recipe, Fetched, dict[str, Any]]] = []
    spec, beat_file, _ = translated(ad, spec, spec_path, beat_file, fetched_out=translation)
    plan = resolve(ad, spec, spec_path, beat_file, beats_path)
    paths = AdPaths.of(context().settings.build_dir, ad)
    write_plan_files(paths, plan)
    if asked:  # the planner was asked in this step: its receipt sits beside plan.json
        write_receipt(paths.plan, asked[0][0], asked[0][1], task_name("plan", ad))
    elif spec.beats is not None:  # inline beats: no planner made this plan
        receipt_path(paths.plan).unlink(missing_ok=True)
    # the translation (a paid call of its own): its texts, and its receipt for the cost and the run
    if translation:
        recipe, fetched, got = translation[0]
        write_json_atomic(paths.translation, {"language": spec.language, "texts": got})
        write_receipt(paths.translation, recipe, fetched, task_name("plan", ad))
    else:
        for stale in (paths.translation, receipt_path(paths.translation)):
            stale.unlink(missing_ok=True)
    write_text_atomic(paths.plan_inputs, inputs_stamp(spec_path, beats_path))
    return plan


def plan_action(ad: str, spec_path: str) -> None:
    plan_ad(ad, Path(spec_path))


__all__ = ["ensure_beat_file", "dry_plan", "DryPlan", "PlanStep", "resolve", "plan_ad", "plan_action", "plan_is_current"]
