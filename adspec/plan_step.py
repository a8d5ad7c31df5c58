"""The plan step: keep the beat file (the lock) in step with its spec, then resolve the ad.

The lock's rules live in `adspec.beat_lock`; the planners behind one interface; the plan request goes
through the request cache like every paid call. This module wires them together and writes the
plan files the render tasks read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__, own_media
from .actions import context, write_plan_files
from .ads import beats_path_of, resolve_ad
from .beat_lock import (
    Decision,
    decide,
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
from .errors import SpecError
from .fsutil import write_text_atomic
from .hashing import sha256_bytes, sha256_file, sha256_file_memo, sha256_json
from .library import LIBRARY_VERSION, load_library
from .loader import load_beat_file, locate_in_file, parse_beat_file_text, path_exists, read_file
from .offline_planner import plan_offline
from .paths import AdPaths, ad_name, beat_file_path, receipt_path
from .plan_file import FPS, AdPlan, PlannedBeat, load_plan, output_size, plan_files_intact
from .plan_rules import fit_clips, plan_shaping_fields
from .progress import on_progress
from .providers.base import PlanRequest
from .receipts import write_receipt
from .recipes import Recipe
from .registry import ModelEntry, Registry, load_registry, reference_capacity, reference_model
from .spec import (
    Beat,
    BeatFile,
    BeatPlan,
    PlannedFrom,
    Spec,
    asset_path,
    asset_role,
    default_music,
    render_beat_prompts,
    render_voiceover,
)
from .tasknames import task_name
from .verify import plan_verifier


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
    step = PlanStep(spec, decision, beats_path, spec_sha, shaping, seen_sha256=text_sha256(text), force=force)
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
    planner = step.recipe.model if step.recipe.provider != "offline" else "offline"
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
        base, shown = ad_name(spec_path), ad or ad_name(spec_path)  # the request names the base ad
        fetched = ctx.cache.fetch(recipe, guarded(ctx.planner.run, f"{base} plan"), plan_verifier(f"{base} plan"),
                                  suffix=".json", label=f"{base} plan", on_progress=on_progress(shown, task_name("plan", shown)))
        plan = BeatPlan.model_validate_json(fetched.path.read_bytes())
        text = planned_beat_text(step, plan)
        # the planner took a while: a hand edit made meanwhile is kept (LockError), never overwritten
        assert step.spec_sha is not None
        current = read_file(step.beats_path).decode("utf-8") if path_exists(step.beats_path) else None
        if recheck(spec, step.spec_sha, step.seen_sha256, current, spec_path=spec_path, beats_path=step.beats_path,
                   force=step.force, planned_text=text):
            write_beat_file(step.beats_path, text)
        if fetched_out is not None:
            fetched_out.append((recipe, fetched))
    elif step.record is not None:
        refresh_record(step)
    return spec, load_beat_file(step.beats_path, spec)  # with the spec: its errors keep their lines


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


def dry_plan(ad: str, spec_path: Path) -> DryPlan:
    """The AdPlan `plan:<ad>` would produce now. When a live planner would have to be asked,
    the offline planner's plan stands in for it (same spec, same rules; the live planner may
    choose other beats), and `stand_in` says so."""
    step = decide_step(Path(spec_path), ad=ad)
    cached = stand_in = False
    if step.decision is Decision.INLINE:
        beat_file = inline_beat_file(step.spec)
    elif step.decision is Decision.KEEP:
        beat_file = load_beat_file(step.beats_path, step.spec)
    else:
        assert step.recipe is not None and step.shaping is not None
        cache = context().cache_for_reading()  # a dry plan writes nothing
        entry = cache.get(step.recipe.key)
        if entry is not None:
            plan = BeatPlan.model_validate_json(cache.blob_path(entry.sha256).read_bytes())
            cached = True
        else:
            plan = plan_offline(step.shaping, sorted(int(x) for x in step.clip_lengths))
            stand_in = step.recipe.provider != "offline"
        beat_file = parse_beat_file_text(planned_beat_text(step, plan), str(step.beats_path))
    return DryPlan(resolve(ad, step.spec, Path(spec_path), beat_file, step.beats_path), step, cached, stand_in)


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
                                                       registry, beat_image)
        native = native and (beat_video or video).native_audio  # native sound only when every beat has it
        line = render_voiceover(beat, spec, source)
        beats.append(PlannedBeat(beat.id, beat.type, start, beat.duration, image_prompt, motion_prompt, clips, line,
                                 approved=beat.approved, image_model=beat_image.name if beat_image else None,
                                 video_model=beat_video.name if beat_video else None, own=own,
                                 references=references, note=note))
        start += beat.duration
    if start != spec.duration:
        raise SpecError(source, None, "beats", f"durations sum to {start} s but the spec's duration is {spec.duration} s")
    product = spec.assets.get("product")
    reference = str((spec_path.parent / asset_path(product)).resolve()) if product else None
    voice = registry.resolve(spec.models.voice, "voice")
    rules = load_library().voice
    captions = spec.captions.model_dump(mode="json")
    if spec.captions.font:
        captions["font"] = str((spec_path.parent / spec.captions.font).resolve())
    return AdPlan(
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
        tagline=spec.brand.tagline,
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
    )


def beat_references(beat: Beat, index: int, spec: Spec, spec_path: Path, source: Path, model: ModelEntry,
                    registry: Registry, own_model: ModelEntry | None
                    ) -> tuple[tuple[dict[str, Any], ...] | None, ModelEntry | None, str | None]:
    """The reference images of what a beat shows, and the image model that takes them: when the
    beat's (or spec's) model takes fewer than it shows, the cheapest one of the registry that takes
    them all (the note says so). None: the beat has no `shows:` (the spec's product, as before)."""
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
    plan = resolve(ad, spec, spec_path, beat_file, beats_path)
    paths = AdPaths.of(context().settings.build_dir, ad)
    write_plan_files(paths, plan)
    if asked:  # the planner was asked in this step: its receipt sits beside plan.json
        write_receipt(paths.plan, asked[0][0], asked[0][1], task_name("plan", ad))
    elif spec.beats is not None:  # inline beats: no planner made this plan
        receipt_path(paths.plan).unlink(missing_ok=True)
    write_text_atomic(paths.plan_inputs, inputs_stamp(spec_path, beats_path))
    return plan


def plan_action(ad: str, spec_path: str) -> None:
    plan_ad(ad, Path(spec_path))


__all__ = ["ensure_beat_file", "dry_plan", "DryPlan", "PlanStep", "resolve", "plan_ad", "plan_action", "plan_is_current"]
