"""The side of the build that touches the world: what each doit task does when it runs.

Every generation goes through the request cache (`RequestCache.fetch`), so running a task never
means paying: doit decides whether a task runs, the cache decides whether it pays. Every file is
written atomically, and every generated artifact gets a receipt beside it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from . import images, media, own_media
from .build_files import RECORD_VERSIONS, BeatInputs, MusicInputs, Timeline, read_model
from .cache import Fetched, RequestCache, open_cache
from .cache_view import CacheView
from .config import VIDEO_KBPS_DEFAULT, Settings, load_settings, video_kbps_setting
from .cost import guarded
from .errors import MediaError
from .fsutil import atomic_path, temp_dir, write_if_changed, write_json_atomic
from .languages import iso639_2
from .media_overlay import burn_overlays
from .media_requests import beat_chunk_references, image_request, music_request, shown_seconds, video_request
from .paths import AdPaths
from .plan_file import FPS, AdPlan, plan_files
from .progress import on_progress
from .providers.base import MediaProvider, PlanProvider
from .providers.offline import OfflineMedia
from .providers.select import media_provider, plan_provider
from .receipts import intact, read_receipt, receipt_key, write_receipt
from .recipes import LOCAL_PROVIDERS, Recipe
from .tasknames import task_name
from .verify import audio_verifier, image_verifier, video_verifier

log = logging.getLogger("adspec.build")


@dataclass(frozen=True)
class Context:
    settings: Settings
    media: MediaProvider
    planner: PlanProvider

    @cached_property
    def cache(self) -> RequestCache:
        """Opened (created if need be) on first use: `adspec estimate` never opens it."""
        return open_cache(self.settings.cache_dir, self.settings.remote_cache, self.settings.remote_endpoint,
                          self.settings.claim_stale_s)

    def media_for(self, beat: BeatInputs) -> MediaProvider:
        """The provider of a beat's storyboard and chunks: the local one for a beat whose picture
        the text layer covers (an end card composed from the brand kit pays nothing)."""
        if beat.local:
            from .providers.offline import OfflineMedia

            return OfflineMedia()
        return self.media

    def cache_for_reading(self) -> "RequestCache | CacheView":
        """The cache as a reader that writes nothing sees it: the open cache when this process
        opened it already (a doit run), else a read-only view (estimate: no folder, no database)."""
        if "cache" in self.__dict__:
            return self.cache
        return CacheView(self.settings.cache_dir)


_ctx_lock = threading.Lock()


@lru_cache(maxsize=1)
def _context_for(settings: Settings) -> Context:
    return Context(settings, media_provider(settings), plan_provider(settings))



#: settings that stand in for the environment's in this thread (`adspec estimate --live`)
_settings_override: ContextVar[Settings | None] = ContextVar("adspec_settings_override", default=None)


def current_settings() -> Settings:
    """The settings providers are chosen by: the environment's, or a stand-in (see `settings_as`)."""
    return _settings_override.get() or load_settings()


@contextmanager
def settings_as(settings: Settings) -> Iterator[None]:
    """Choose providers by `settings` inside the block (e.g. as a live build would, to price it)."""
    token = _settings_override.set(settings)
    try:
        yield
    finally:
        _settings_override.reset(token)


def context(settings: Settings | None = None) -> Context:
    with _ctx_lock:
        return _context_for(settings or current_settings())


def paid_fetch(ctx: Context, recipe: Recipe, run: Any, verify: Any, *, suffix: str, label: str, ad: str,
               task: str) -> Fetched:
    """`ctx.cache.fetch` with the run's budget in front of the provider (reserve the price before
    a paid call, settle after) and the provider's waits reported to status.json and the reporter."""
    return ctx.cache.fetch(recipe, guarded(run, label), verify, suffix=suffix, label=label,
                           on_progress=on_progress(ad, task))


# ---- recipes of the paid steps (pure given the files on disk) -------------------------------------


def beat_image_recipe(ctx: Context, ad: str, beat: BeatInputs) -> Recipe:
    """A beat's storyboard recipe: the image model's (the local renderer's for an end card the text
    layer composes), or the local one of your own still or footage."""
    return own_media.still_recipe(beat) if own_media.is_own(beat) else ctx.media_for(beat).image_recipe(image_request(ad, beat))


def beat_video_recipe(ctx: Context, ad: str, beat: BeatInputs, index: int, paths: AdPaths) -> Recipe:
    """A beat's chunk recipe: the video model's, or the local one of your own footage."""
    if beat.footage:
        return own_media.footage_recipe(beat, FPS)
    return ctx.media_for(beat).video_recipe(video_request(ad, beat, index, paths))


def _runner(ctx: Context, recipe: Recipe, beat: BeatInputs) -> Callable[..., Any]:
    return own_media.run_local if recipe.provider == own_media.LOCAL else ctx.media_for(beat).run


def storyboard_recipe(ctx: Context, ad: str, beat_id: str) -> Recipe:
    paths = AdPaths.of(ctx.settings.build_dir, ad)
    beat = read_model(BeatInputs, paths.beat_inputs(beat_id))
    return beat_image_recipe(ctx, ad, beat)


def chunk_recipe(ctx: Context, ad: str, beat_id: str, index: int) -> Recipe:
    paths = AdPaths.of(ctx.settings.build_dir, ad)
    beat = read_model(BeatInputs, paths.beat_inputs(beat_id))
    return beat_video_recipe(ctx, ad, beat, index, paths)


def music_recipe(ctx: Context, ad: str) -> Recipe:
    paths = AdPaths.of(ctx.settings.build_dir, ad)
    return ctx.media.music_recipe(music_request(ad, read_model(MusicInputs, paths.music_inputs)))


def is_current(artifact: str, kind: str, ad: str, *args: Any) -> bool:
    """doit `uptodate`: the artifact was made from exactly the recipe this task would ask now."""
    path = Path(artifact)
    if not path.exists():
        return False
    ctx = context()
    recipes: dict[str, Callable[..., Recipe]] = {"storyboard": storyboard_recipe, "chunk": chunk_recipe, "music": music_recipe}
    recipe_of = recipes[kind]
    try:  # a damaged artifact is made again from the cache (free), never sent on to a paid model
        key = recipe_of(ctx, ad, *args).key
        if not holds(path, key, lambda k: ctx.cache.peek(k)):  # the cache is opened only for a changed target
            return False
        if kind == "chunk":
            paths = AdPaths.of(ctx.settings.build_dir, ad)
            beat_id, index = args
            continued = index + 1 < len(read_model(BeatInputs, paths.beat_inputs(beat_id)).clips)
            if continued and frame_problem(paths.last_frame(beat_id, index)) and ctx.cache.peek(key):
                return False
        return True
    except (OSError, ValueError, KeyError):
        return False


def holds(target: Path, key: str, cached: Callable[[str], bool]) -> bool:
    """The target stands for the recipe `key`: its receipt names the key and it is what the receipt
    says was made. One changed since (a hand edit, a truncated copy) is made again when the cache
    holds its request (free); when it does not, it is kept as it is and said (making it again would
    be a paid request: delete it for that), and a broken picture is never sent on (`make_chunk`)."""
    if receipt_key(target) != key:
        return False
    if intact(target):
        return True
    if cached(key):
        return False
    log.warning("%s changed since it was made and its request is no longer in the cache: kept as it is "
                "(delete it to make it again: a paid request)", target)
    return True


def frame_problem(png: Path) -> str | None:
    """What is wrong with a frame a chunk is asked from (a storyboard, a chunk's last frame), or
    None when it is a whole image or not there yet: a damaged one would be a new request, paid
    for, of a broken picture."""
    return images.asset_problem(png) if png.exists() else None


# ---- the steps ----------------------------------------------------------------------------------


def make_storyboard(ad: str, beat_id: str) -> None:
    ctx = context()
    paths = AdPaths.of(ctx.settings.build_dir, ad)
    beat = read_model(BeatInputs, paths.beat_inputs(beat_id))
    recipe = beat_image_recipe(ctx, ad, beat)
    what = f"{ad}/{beat_id} storyboard ({beat.image_model if recipe.provider != own_media.LOCAL else 'your own'})"
    task = task_name("storyboard", ad, beat_id)
    fetched = paid_fetch(ctx, recipe, _runner(ctx, recipe, beat), image_verifier(what), suffix=".img", label=what, ad=ad, task=task)
    target = paths.storyboard(beat_id)
    media.normalise_image(fetched.path, target, beat.width, beat.height)
    write_receipt(target, recipe, fetched, task)


def make_chunk(ad: str, beat_id: str, index: int) -> None:
    ctx = context()
    paths = AdPaths.of(ctx.settings.build_dir, ad)
    beat = read_model(BeatInputs, paths.beat_inputs(beat_id))
    recipe = beat_video_recipe(ctx, ad, beat, index, paths)
    # a model's clip must last the length it was asked for; the offline render is drawn only as
    # long as the ad shows it
    seconds = recipe.params.get("shown", beat.clips[index]) if recipe.provider == OfflineMedia.name else beat.clips[index]
    what = f"{ad}/{beat_id} chunk {index} ({beat.video_model if recipe.provider != own_media.LOCAL else 'your own footage'})"
    task = task_name("chunk", ad, beat_id, index)
    first = paths.first_frame(beat_id, index)
    problem = frame_problem(first) if recipe.provider != own_media.LOCAL else None
    if problem:  # never asked of a model
        raise MediaError(f"{first} {problem}: the chunk would be asked from it; delete it "
                         f"and run doit again (made again from the cache, or paid for again where it is not there)")
    refused = beat_chunk_references(beat).why_not if index == 0 and beat.references else None
    if refused:  # as validate and the estimate say it: what the beat shows is not sent, and why
        log.warning("%s/%s: %s", ad, beat_id, refused)
    fetched = paid_fetch(ctx, recipe, _runner(ctx, recipe, beat), video_verifier(what, seconds), suffix=".mp4", label=what,
                         ad=ad, task=task)
    target = paths.chunk(beat_id, index)
    place_chunk(fetched.path, target, beat, index)
    if index + 1 < len(beat.clips):
        media.last_frame(target, paths.last_frame(beat_id, index))
    write_receipt(target, recipe, fetched, task, encoded=video_kbps_setting())


def encoded_again(chunk: Path, continued: bool | Callable[[], bool], cached: Callable[[str], bool]) -> bool:
    """Whether a chunk is conformed again because it was made under another ADSPEC_VIDEO_KBPS than
    the one in force now: from the cache, free. Not when the setting does not apply to it (a clip
    whose last frame starts the beat's next chunk is encoded at the table's figure whatever it
    says), nor when the cache no longer holds its request: a local setting never pays for a clip
    again (it is kept as it is). No receipt: `is_current` makes it again anyway. (`continued` may be
    a function: the doit check reads the beat only for a chunk whose setting changed.)"""
    receipt = read_receipt(chunk)
    if receipt is None or (receipt.encoded or VIDEO_KBPS_DEFAULT) == video_kbps_setting() \
            or (continued() if callable(continued) else continued):
        return False
    return receipt.recipe.get("provider") in LOCAL_PROVIDERS or cached(receipt.key)


def encoded_under_setting(artifact: str, ad: str, beat_id: str, index: int) -> bool:
    """doit `uptodate` of a chunk: it was made ready under the ADSPEC_VIDEO_KBPS in force now (or
    need not be: `encoded_again`)."""
    ctx = context()

    def continued() -> bool:
        return index + 1 < len(read_model(BeatInputs, AdPaths.of(ctx.settings.build_dir, ad).beat_inputs(beat_id)).clips)

    return not encoded_again(Path(artifact), continued, ctx.cache.peek)


def place_chunk(src: Path, target: Path, beat: BeatInputs, index: int) -> None:
    """The chunk target from the provider's clip (also used by `adspec estimate` to derive a
    continuation's first frame exactly as the build would)."""
    # made stitch-ready here (copied if it already is): a live clip is re-encoded once, to the
    # part the beat uses, while other chunks are still being generated, not by every stitch
    media.conform_clip(src, target, width=beat.width, height=beat.height, fps=FPS, seconds=shown_seconds(beat, index),
                       keep_audio=bool(beat.native_audio), continued=index + 1 < len(beat.clips))


def make_music(ad: str) -> None:
    ctx = context()
    paths = AdPaths.of(ctx.settings.build_dir, ad)
    inputs = read_model(MusicInputs, paths.music_inputs)
    recipe = ctx.media.music_recipe(music_request(ad, inputs))
    what = f"{ad} music ({inputs.model})"
    fetched = paid_fetch(ctx, recipe, ctx.media.run, audio_verifier(what, inputs.seconds), suffix=".wav",
                         label=what, ad=ad, task=task_name("music", ad))
    with atomic_path(paths.music) as tmp:
        shutil.copyfile(fetched.path, tmp)
    write_receipt(paths.music, recipe, fetched, task_name("music", ad))


def make_stitch(ad: str) -> None:
    """The chunks in beat order, each beat trimmed to its duration: matching clips are copied."""
    settings = load_settings()
    paths = AdPaths.of(settings.build_dir, ad)
    timeline = read_model(Timeline, paths.timeline)
    items = [media.ConcatItem(paths.chunk(beat, index), float(use)) for beat, index, use in timeline.shown_clips()]
    report = media.concat(
        items,
        paths.video,
        width=timeline.width,
        height=timeline.height,
        fps=timeline.fps,
        keep_audio=timeline.native_audio,
    )
    write_json_atomic(paths.stitch_report, {**report.to_json(), "version": RECORD_VERSIONS["stitch.json"]})


def make_mix(ad: str) -> None:
    """final.mp4: the video, the music (or native sound) ducked under the spoken lines, the lines
    at their beats; with lines also the captions (files, a soft track, burned in unless off)."""
    from .speech_mix import speech_parts, text_layout

    settings = load_settings()
    paths = AdPaths.of(settings.build_dir, ad)
    timeline = read_model(Timeline, paths.timeline)
    music = None if timeline.native_audio else paths.music
    with speech_parts(paths) as parts, text_overlays(paths) as (texts, layout), \
            temp_dir(paths.final.parent, "drawn") as drawn:
        overlays = [*texts, *parts.overlays]  # captions over supers
        # only the seconds under words are encoded again; the rest of the picture is copied. The
        # words are drawn while the sound is mixed (each ffmpeg holds a core: limits.cpu_slot);
        # what the last mix drew and its sound are reused where their inputs are the same
        with ThreadPoolExecutor(max_workers=1) as pool:
            picture = pool.submit(contextvars.copy_context().run, burn_overlays, paths.video, overlays,
                                  Path(drawn) / "video.mp4", anchors=clip_starts(timeline),
                                  keep=paths.mix_parts) if overlays else None
            media.mix(paths.video, music, paths.final, seconds=float(timeline.duration),
                      native_audio=timeline.native_audio, voices=parts.voices, duck=parts.duck,
                      subtitles=parts.subtitles, subtitle_language=iso639_2(str(layout.get("language") or "en")),
                      picture=picture, keep=paths.mix_parts)
        # where words were drawn: the text layer's record, the burned captions beside it, and the
        # same boxes in the delivery checks' form (safe zones)
        layout["texts"] += caption_layout(parts.overlays, parts.cues, parts.drawn)
        layout.update(text_layout(parts, timeline.width, timeline.height))
        layout["boxes"] += [
            {"kind": t["role"], "text": t.get("text"), "x": t["box"][0], "y": t["box"][1],
             "w": t["box"][2] - t["box"][0], "h": t["box"][3] - t["box"][1], "start": t["start"], "end": t["end"]}
            for t in layout["texts"] if t.get("role") != "caption"]
        layout["version"] = RECORD_VERSIONS["text_layout.json"]
        write_json_atomic(paths.text_layout, layout)
    from . import provenance

    if provenance.enabled():  # the C2PA manifest from the receipts (local: nothing paid, no recipe changes)
        provenance.sign_file(paths.final, paths, ad, settings.build_dir)


def clip_starts(timeline: Timeline) -> list[float]:
    """Where each clip begins in the stitched video, in seconds."""
    starts, at = [], 0
    for _beat, _index, use in timeline.shown_clips():
        starts.append(float(at))
        at += use
    return starts


@contextmanager
def text_overlays(paths: AdPaths) -> Iterator[tuple[list[media.Overlay], dict[str, Any]]]:
    """The text layer's pictures (supers, the cta's call to action, the end card) drawn in a
    scratch folder for as long as the context lives, and their layout record."""

    from .render.text_layer import draw
    from .text_fit import TextFitError

    if not paths.text_inputs.exists():
        yield [], {"texts": []}
        return
    text = json.loads(paths.text_inputs.read_text(encoding="utf-8"))
    with temp_dir(paths.root, "text") as tmp:
        try:
            drawn, layout = draw(text, Path(tmp))
        except TextFitError as e:
            raise MediaError(f"{paths.text_inputs}: {e}") from None
        yield [media.Overlay(d.png, d.x, d.y, d.start, d.end, d.fade) for d in drawn], layout


def caption_layout(overlays: list[media.Overlay], cues: list[Any],
                   drawn: list[tuple[list[str], int]]) -> list[dict[str, Any]]:
    """Burned captions' boxes (one per cue: its beat, words, lines as wrapped and size in px), in
    the layout record beside the texts."""
    from PIL import Image

    out = []
    for o, cue, (lines, size) in zip(overlays, cues, drawn):
        with Image.open(o.png) as im:
            w, h = im.size
        out.append({"beat": cue.beat, "role": "caption", "text": cue.text, "lines": lines, "size": size,
                    "box": [o.x, o.y, o.x + w, o.y + h], "start": round(o.start, 3), "end": round(o.end, 3)})
    return out


def write_plan_files(paths: AdPaths, plan: AdPlan) -> None:
    """Split the resolved plan into the files the render tasks depend on (adspec.build_files);
    each is rewritten only when its content changes, so editing one beat touches one beat.json."""
    for path, text in plan_files(paths, plan):
        write_if_changed(path, text)
