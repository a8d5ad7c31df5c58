"""`adspec estimate`: what `doit` would run now and what it would pay, without paying anything.

Like `terraform plan`: per ad and phase, the stale targets (missing, or made from another recipe
than the one the build would ask now), which of them the request cache already holds (free), and
the total. Nothing is written and no paid service is called.

How the unknowns are handled:
- The plan is made in memory (`plan_step.dry_plan`): inline beats and a kept beat file are exact;
  when the planner would run, a cached answer is used if there is one (exact); the offline
  planner is exact offline; a live planner that would be asked is priced from its prompt's size
  and the beats are the offline planner's stand-in plan (flagged: `exact: false`). A language
  variant whose texts the LLM planner would translate adds that call (one per beat file and
  language, priced like the planner; free when cached).
- Storyboards and music: their recipes follow from the plan alone, so "cached or not" is exact.
- Chunk k's recipe needs its first frame (the storyboard, or chunk k-1's last frame). When that
  input is on disk and current, the key is exact; when it is stale but its producer is cached,
  the input is derived in a temporary folder exactly as the build would make it; when its
  producer must be paid for, the chunk is priced by its rule (its price does not depend on the
  frame) and counted as paid, keyed symbolically by its producer so identical beats still count once.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from . import media, plan_step, provenance
from .actions import (
    beat_image_recipe,
    beat_video_recipe,
    context,
    encoded_again,
    frame_problem,
    holds,
    place_chunk,
    settings_as,
)
from .approvals import APPROVED, state_of, storyboard_sha256
from .budget_refusal import note_idle_ads
from .build_files import compact_text
from .checks import checks_current, layout_current
from .config import as_live, load_settings
from .cost import raise_hint, recipe_price
from .errors import AdspecError, BudgetError, MediaError
from .media_requests import beat_chunk_references, music_request, video_request
from .money import fmt_usd, usd
from .paths import AdPaths
from .plan_file import text_inputs_text
from .plan_step import Decision
from .recipes import FileRef
from .registry import load_registry
from .remote import open_remote
from .report import report_is_current
from .tasknames import PHASES, task_name
from .voice import provider_for, voice_request


@dataclass
class Item:
    target: str
    phase: str
    action: str  # "pay": a paid request; "cache": served by the request cache; "resume": a prediction paid for in
    # an earlier run, resumed (nothing new to pay); "free": local or offline work
    usd: float = 0.0
    exact: bool = True
    model: str | None = None
    key: str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AdEstimate:
    ad: str
    items: list[Item] = field(default_factory=list)
    up_to_date: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    error_field: str | None = None  # the field of its (first) error, for an API that names it

    @property
    def total_usd(self) -> float:
        return usd(sum(i.usd for i in self.items if i.action == "pay"))

    @property
    def exact(self) -> bool:
        return self.error is None and all(i.exact for i in self.items)

    def to_json(self) -> dict[str, Any]:
        phases = {}
        for phase in PHASES:
            mine = [i for i in self.items if i.phase == phase]
            phases[phase] = {
                "usd": usd(sum(i.usd for i in mine if i.action == "pay")),
                "stale": len(mine),
                "cached": sum(1 for i in mine if i.action == "cache"),
                "to_pay": sum(1 for i in mine if i.action == "pay"),
                "targets": [i.target for i in mine],
            }
        return {"ad": self.ad, "total_usd": self.total_usd, "exact": self.exact, "error": self.error,
                "error_field": self.error_field,
                "notes": self.notes, "up_to_date": self.up_to_date, "phases": phases,
                "targets": [i.to_json() for i in self.items]}


@dataclass
class RunEstimate:
    ads: list[AdEstimate]
    budget_usd: float
    backend: dict[str, str]
    live: bool = False  # priced as the live providers would build (`adspec estimate --live`)

    @property
    def total_usd(self) -> float:
        return usd(sum(a.total_usd for a in self.ads))

    @property
    def exact(self) -> bool:
        return all(a.exact for a in self.ads)

    def to_json(self) -> dict[str, Any]:
        return {"total_usd": self.total_usd, "exact": self.exact, "budget_usd": self.budget_usd,
                # unknown (null) while an ad cannot be estimated: its errors say why
                "within_budget": None if any(a.error for a in self.ads) else self.total_usd <= self.budget_usd + 1e-9,
                "backend": self.backend, "live": self.live,
                "ads": [a.to_json() for a in self.ads]}


#: the most time an estimate spends asking the shared cache (ADSPEC_REMOTE_CACHE) in all: past it,
#: or once the store does not answer, the rest is estimated as if the store did not have it
REMOTE_SECONDS = 10.0


def _size_of(image: Path) -> tuple[int, int] | None:
    try:
        return media.image_size(image)
    except MediaError:
        return None  # damaged: the build makes it again


class _Estimator:
    def __init__(self, tmp: Path):
        self.ctx = context()
        self.cache = self.ctx.cache_for_reading()  # estimate writes nothing, not even a new cache
        self.build_dir = self.ctx.settings.build_dir
        self.tmp = tmp
        self.made: set[str] = set()  # keys this run would make (paid or free): asked once
        self._n = 0
        settings = self.ctx.settings
        self.remote = open_remote(settings.remote_cache, settings.remote_endpoint, quick=True)
        self._remote_until: float | None = None  # the deadline, from the first question
        self.remote_note: str | None = None  # why the shared cache was not (fully) consulted

    def _remote_usable(self) -> bool:
        if self.remote is None:
            return False
        now = time.monotonic()
        if self._remote_until is None:
            self._remote_until = now + REMOTE_SECONDS
        down = not self.remote._available()  # a download that timed out: down, whatever it was reported as
        if now > self._remote_until or self.remote.store_problems or down:  # one entry's bad data is no reason
            why = "; ".join(self.remote.store_problems[:1]) or (
                "it stopped answering" if down else f"no answer within {REMOTE_SECONDS:.0f} s in all")
            self.remote_note = (f"the shared cache was not consulted for every request ({why}): what it holds may "
                                "cost less than shown")
            self.remote = None
            return False
        return True

    def _in_remote(self, key: str) -> bool:
        """Whether the shared cache holds `key` (a request another runner paid for: free here)."""
        if not self._remote_usable():
            return False
        if self.remote is not None and self.remote.found_bad(key):  # its artifact there is corrupt: made again
            return False
        found = self.remote.has(key) if self.remote is not None else None
        if found is None:
            self._remote_usable()  # records why
            return False
        return found

    def _in_remote_only(self, key: str) -> bool:
        """`key` counted as cached for the shared cache's sake (not in the local cache, nor made above)."""
        return key not in self.made and not self.cache.peek(key)

    def _tmpfile(self, suffix: str) -> Path:
        self._n += 1
        return self.tmp / f"derived-{self._n}{suffix}"

    def _state(self, recipe: Any, target: Path, size: tuple[int, int] | None = None) -> str:
        """current, cache, pay or free; with `size`, an image target of another size is not current
        (a new resolution: the storyboard is made again from the cache, and its chunks are new requests)."""
        if target.exists() and holds(target, recipe.key, self.cache.peek) and (size is None or _size_of(target) == size):
            return "current"
        if recipe.key in self.made or self.cache.peek(recipe.key):
            return "cache"
        price = recipe_price(recipe).usd
        if price > 0 and self._in_remote(recipe.key):
            return "cache"
        return "pay" if price > 0 else "free"

    def _blob(self, key: str) -> Path | None:
        """The artifact of `key`: from the local cache, else a checked copy of the shared cache's
        (in the estimate's temporary folder: an estimate keeps nothing)."""
        entry = self.cache.get(key)
        if entry is not None:
            return self.cache.blob_path(entry.sha256)
        if not self._remote_usable() or self.remote is None:
            return None
        got = self.remote.get(key, self.tmp)
        if got is None:
            self._remote_usable()
            return None
        return got[1]

    def _item(self, est: AdEstimate, target: str, phase: str, state: str, recipe: Any, note: str = "",
              exact: bool = True) -> None:
        price = recipe_price(recipe)
        paying = state == "pay"
        usd = price.usd if paying else 0.0
        if paying:  # a pending request: resumed, looked up, or re-requested after a corrupt output
            from .cache import describe_pending, pays_nothing_new

            pending = self.cache.pending(recipe.key)
            note = "; ".join(x for x in (note, describe_pending(pending)) if x)
            if pays_nothing_new(pending):  # paid for already: the budget must not count it again
                usd, state = 0.0, "resume"
        est.items.append(Item(target, phase, state, usd, exact and (price.exact or not paying),
                              recipe.model, recipe.key, "; ".join(x for x in (price.rule if usd else "", note) if x)))
        self.made.add(recipe.key)

    def ad(self, ad: str, spec_path: Path) -> AdEstimate:
        est = AdEstimate(ad)
        try:
            dry = plan_step.dry_plan(ad, spec_path, fetch=self._blob)  # answers the shared cache holds count
        except AdspecError as e:
            est.error = e.one_line()
            each = getattr(e, "errors", None) or [e]  # every error of a file, or the one
            est.error_field = getattr(each[0], "field", None)
            return est
        plan, step = dry.plan, dry.step
        paths = AdPaths.of(self.build_dir, ad)
        if step.spec.native_audio and not plan.native_audio:
            est.notes.append(native_audio_note(plan))
        plan_current = plan_step.plan_is_current(ad, str(spec_path))
        if plan_current:
            est.up_to_date += 1
        elif step.decision is Decision.PLAN and step.recipe is not None:
            state = "cache" if dry.planner_cached or step.recipe.key in self.made else (
                "pay" if recipe_price(step.recipe).usd > 0 else "free")
            self._item(est, task_name("plan", ad), "plan", state, step.recipe,
                       "the planner writes the beat file" if state != "cache" else "the planner's answer is cached"
                       if dry.planner_cached else "the planner's answer made for an ad above (asked once)")
        else:
            est.items.append(Item(task_name("plan", ad), "plan", "free", note="resolve the plan files (no planner call)"))
        if dry.translation is not None and not plan_current:
            self._translation(est, ad, dry.translation, exact=not dry.stand_in)
        if dry.stand_in:
            est.notes.append("the live planner would write the beat file: the beats and chunks below are the offline "
                             "planner's plan standing in for it; the real ones are known once planned (`adspec plan`)")
        exact_beats = not dry.stand_in
        stale_chunks = False
        waiting: list[str] = []
        for beat in plan.beats:
            stale_chunks |= self._beat(est, ad, plan, beat, paths, exact_beats, waiting)
            if beat.note:  # e.g. a reference-capable image model chosen for what the beat shows
                est.notes.append(f"{beat.id}: {beat.note}")
            est.notes += [f"{beat.id}: {line}" for line in video_reference_notes(plan, beat)]
        if waiting:  # `approval: required`: only approved work is priced
            est.notes.append(f"approval: required: the video of {', '.join(waiting)} waits for approval (not priced); "
                             f"the voices, music, stitch and mix wait for every beat (`adspec approve --list {ad}`)")
            if est.items or not report_is_current(ad):  # a page showing what is built now is not made again
                est.items.append(Item(task_name("report", ad), "report", "free", note="review page (storyboards to approve)"))
            else:
                est.up_to_date += 1
            if self.remote_note:
                est.notes.append(self.remote_note)
            return est
        music_stale = self._voices(est, ad, plan, paths, exact_beats, dry.guessed_texts)
        if not plan.native_audio:
            recipe = self.ctx.media.music_recipe(music_request(ad, plan.music_inputs()))
            state = self._state(recipe, paths.music)
            if state == "current":
                est.up_to_date += 1
            else:
                music_stale = True
                self._item(est, task_name("music", ad), "music", state, recipe)
        self._local(est, ad, plan, paths, stale_chunks, music_stale, plan_current)
        if self.remote_note:
            est.notes.append(self.remote_note)
        return est

    def _translation(self, est: AdEstimate, ad: str, recipe: Any, exact: bool) -> None:
        """The LLM planner's one call translating the texts the ad's language lacks (per beat file
        and language: variants that share both share it), at the planner model's price."""
        language = recipe.params.get("check", {}).get("target", "?")
        state = "cache" if recipe.key in self.made or self.cache.peek(recipe.key) or self._in_remote(recipe.key) else (
            "pay" if recipe_price(recipe).usd > 0 else "free")
        self._item(est, task_name("plan", ad), "plan", state, recipe, f"translation into {language}", exact=exact)

    def _voices(self, est: AdEstimate, ad: str, plan: Any, paths: AdPaths, exact: bool = True,
                guessed: frozenset[str] = frozenset()) -> bool:
        """The spoken lines (exact when the beats are: a line's recipe follows from the plan alone,
        but the offline planner's lines standing in for the live planner's are not the real ones);
        True when the mix must run again for them (a line or how lines are placed changed). A
        line whose translation is not asked yet (`guessed`) is paid for: its words are not known,
        and its source text standing in must not pass for the source's own line (cached)."""
        stale = False
        for beat in plan.voiced:
            inputs = plan.voice_inputs(beat)
            recipe = provider_for(inputs.model).voice_recipe(voice_request(ad, inputs))
            target = paths.voice(beat.id)
            if f"beats.{beat.id}.voiceover" in guessed:  # its real recipe is not known: no key, not "made"
                stale = True
                price = recipe_price(recipe)
                est.items.append(Item(task_name("voice", ad, beat.id), "voice", "pay" if price.usd > 0 else "free",
                                      price.usd, price.usd <= 0, recipe.model, None,
                                      "a line not translated yet (priced on its source text)"))
                continue
            state = self._state(recipe, target)
            try:
                same_fit = paths.voice_inputs(beat.id).read_text(encoding="utf-8") == compact_text(inputs)
            except OSError:
                same_fit = False
            if state == "current" and same_fit:
                est.up_to_date += 1
                continue
            stale = True
            if state == "current":  # paid for as it is: only the local fit changes
                est.items.append(Item(task_name("voice", ad, beat.id), "voice", "free", note="refit the line to its beat (local)"))
            else:
                self._item(est, task_name("voice", ad, beat.id), "voice", state, recipe, exact=exact)
        try:
            stale |= paths.speech.read_text(encoding="utf-8") != compact_text(plan.speech())
        except OSError:
            stale = True
        return stale

    def _beat(self, est: AdEstimate, ad: str, plan: Any, beat: Any, paths: AdPaths, exact: bool,
              waiting: list[str] | None = None) -> bool:
        inputs = plan.beat_inputs(beat)
        sb = beat_image_recipe(self.ctx, ad, inputs)
        target = paths.storyboard(beat.id)
        state = self._state(sb, target, (plan.width, plan.height))
        first: Path | None = None
        symbol = f"storyboard-of:{sb.key}:{plan.width}x{plan.height}"
        if state == "current":
            est.up_to_date += 1
            first = target
        else:
            blob = self._blob(sb.key) if state == "cache" else None
            if blob is None and state == "cache" and self._in_remote_only(sb.key):
                state = self._state(sb, target, (plan.width, plan.height))  # the shared copy is unusable: asked again
            self._item(est, task_name("storyboard", ad, beat.id), "storyboard", state, sb, exact=exact)
            if blob is not None:
                first = media.normalise_image(blob, self._tmpfile(".png"), plan.width, plan.height)
        if plan.approval_required and waiting is not None:
            shown = storyboard_sha256(target) if state == "current" else None
            own_footage = bool(inputs.footage)  # nothing paid for it: never waits
            if not own_footage and state_of(beat.approved, shown) != APPROVED:  # as the build decides: its video waits
                waiting.append(beat.id)
                return False
        stale = False
        for k in range(beat.chunk_count):
            chunk = paths.chunk(beat.id, k)
            if inputs.footage:  # your own footage: local, needs no first frame (nor a prompt)
                recipe = beat_video_recipe(self.ctx, ad, inputs, k, paths)
                state = self._state(recipe, chunk)
                note = "your own footage"
            elif first is not None:
                req = video_request(ad, inputs, k, paths)
                recipe = self.ctx.media_for(inputs).video_recipe(dataclasses.replace(req, first_frame=first))
                state = self._state(recipe, chunk)
                note = ""
            else:
                dummy = Path(__file__)  # any file: its hash is replaced by the symbol of its producer
                req = video_request(ad, inputs, k, paths)
                recipe = self.ctx.media_for(inputs).video_recipe(dataclasses.replace(req, first_frame=dummy))
                symbolic = any(v.path == dummy for v in recipe.files.values())
                recipe = dataclasses.replace(recipe, files={
                    name: (FileRef(sha256=symbol, path=v.path) if v.path == dummy else v)
                    for name, v in recipe.files.items()})
                if symbolic:
                    state = "cache" if recipe.key in self.made else ("pay" if recipe_price(recipe).usd > 0 else "free")
                    note = ("its first frame is made earlier in this build" if k or not inputs.own_image
                            else "its first frame is your own still, placed earlier in this build")
                else:  # sent without its start image (reference-to-video): the key is exact already
                    state = self._state(recipe, chunk)
                    note = ""
            if state == "current" and k + 1 < beat.chunk_count and frame_problem(paths.last_frame(beat.id, k)) \
                    and self.cache.peek(recipe.key):
                state = "cache"  # its damaged last frame: the build makes the chunk again, from the cache
            if state == "current" and encoded_again(chunk, k + 1 < beat.chunk_count, self.cache.peek):
                state, note = "cache", "encoded again under ADSPEC_VIDEO_KBPS (local)"
            if state == "current":
                est.up_to_date += 1
            else:
                stale = True
                self._item(est, task_name("chunk", ad, beat.id, k), "chunks", state, recipe, note, exact=exact)
            if k + 1 >= beat.chunk_count:
                break
            symbol = f"last-frame-of:{recipe.key}"
            last = paths.last_frame(beat.id, k)
            if state == "current":
                first = last if last.exists() else media.last_frame(chunk, self._tmpfile(".png"))
            elif state == "cache" and first is not None:
                blob = self._blob(recipe.key)
                if blob is not None:
                    placed = self._tmpfile(".mp4")
                    place_chunk(blob, placed, inputs, k)  # the chunk as the build places it
                    first = media.last_frame(placed, self._tmpfile(".png"))
                else:
                    first = None
            else:
                first = None
        return stale

    def _local(self, est: AdEstimate, ad: str, plan: Any, paths: AdPaths, stale_chunks: bool, music_stale: bool,
               plan_current: bool) -> None:
        try:
            timeline_same = paths.timeline.read_text(encoding="utf-8") == compact_text(plan.timeline())
        except OSError:
            timeline_same = False
        stitch = stale_chunks or not timeline_same or not paths.video.exists()
        if stitch:
            est.items.append(Item(task_name("stitch", ad), "stitch", "free", note="local"))
        else:
            est.up_to_date += 1
        try:  # the words on screen (free: an edit of them re-runs the mix and what follows it)
            text_same = paths.text_inputs.read_text(encoding="utf-8") == text_inputs_text(plan)
        except OSError:
            text_same = False
        mix = stitch or music_stale or not text_same or not paths.final.exists() or not layout_current(paths.text_layout) \
            or provenance.carries_manifest(paths.final) != provenance.enabled()  # ADSPEC_C2PA turned on or off
        if mix:
            est.items.append(Item(task_name("mix", ad), "mix", "free", note="local"))
        else:
            est.up_to_date += 1
        for placement in plan.placements:
            if mix or not paths.export(placement).exists():
                est.items.append(Item(task_name("export", ad, placement), "export", "free", note="local"))
            else:
                est.up_to_date += 1
        if mix or not checks_current(paths.checks, list(plan.placements)):
            est.items.append(Item(task_name("check", ad), "check", "free", note="local"))
        else:
            est.up_to_date += 1
        if stitch or music_stale or not paths.timeline_otio.exists():  # its cut, its chunks, lines or music
            est.items.append(Item(task_name("timeline", ad), "timeline", "free", note="local"))
        else:
            est.up_to_date += 1
        page = paths.review_page
        if mix or not page.exists():
            est.items.append(Item(task_name("report", ad), "report", "free", note="review page"))
        else:
            est.up_to_date += 1


def native_audio_note(plan: Any) -> str:
    """Why an ad that asks for `native_audio: true` gets music: a beat's video model has no sound
    of its own (every beat's must)."""
    registry = load_registry()
    used = {plan.video_model, *(plan.video_model_of(b) for b in plan.beats)}  # the spec's own counts too
    silent = sorted(m for m in used if not registry.resolve(m, "video").native_audio)
    return (f"native_audio: true, but {', '.join(silent)} make{'s' if len(silent) == 1 else ''} no sound: the ad "
            "gets music (the models' own sound needs every beat's video model to have it)")


def video_reference_notes(plan: Any, beat: Any) -> list[str]:
    """What the estimate says about a beat's references and its video model: why chunks that
    would carry them carry none (a condition of the model fails), or that the first chunk starts
    from them rather than from the storyboard. Nothing for a beat without `shows:`, or a model
    that takes no reference images (its video is asked as before)."""
    chosen = beat_chunk_references(plan.beat_inputs(beat))
    return [line for line in (chosen.why_not, chosen.note) if line]


def estimate(ads: Sequence[tuple[str, Path]], live: bool = False) -> RunEstimate:
    """The estimate of building `ads` now (in order: an earlier ad's requests are free for later ones).

    `live`: as the live providers would build them (models.yaml's prices), whatever keys are set:
    the live recipes are made and priced, no key is needed and no request is sent."""
    settings = as_live(load_settings()) if live else load_settings()
    tmp = Path(tempfile.mkdtemp(prefix="adspec-estimate-"))
    try:
        with settings_as(settings):
            est = _Estimator(tmp)
            results = [est.ad(ad, Path(p)) for ad, p in ads]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    backend = {"media": "replicate" if settings.live_media else "offline",
               "planner": "openai" if settings.live_planner else "offline"}
    return RunEstimate(results, settings.budget_usd, backend, live)


# ---- text --------------------------------------------------------------------------------------


def render_text(run: RunEstimate) -> str:
    live = " as the live providers would build it, with models.yaml's prices" if run.live else ""
    lines = [f"adspec estimate{live} (media: {run.backend['media']}, planner: {run.backend['planner']}; "
             f"budget {fmt_usd(run.budget_usd)} per run, ADSPEC_BUDGET_USD)", ""]
    # one column width for every ad's targets: the lists read as one table
    width = max((len(i.target) for a in run.ads for i in a.items), default=0)
    for a in run.ads:
        if a.error:
            errors = a.error.splitlines()  # every error of the ad's files, one line each, under its name
            lines.append(f"{a.ad}: cannot estimate: {errors[0]}" if len(errors) == 1 else f"{a.ad}: cannot estimate:")
            lines += [f"  {e}" for e in errors if len(errors) > 1]
            lines.append("")
            continue
        pay = [i for i in a.items if i.action == "pay"]
        cached = [i for i in a.items if i.action == "cache"]
        resumed = [i for i in a.items if i.action == "resume"]
        if not a.items:
            lines.append(f"{a.ad}: up to date ({a.up_to_date} targets), nothing to pay")
            lines.append("")
            continue
        approx = "" if a.exact else "about "
        lines.append(f"{a.ad}: {len(a.items)} to make: {len(pay)} to pay ({approx}{fmt_usd(a.total_usd)}), "
                     f"{len(cached)} from the cache, " + (f"{len(resumed)} resumed (paid before), " if resumed else "")
                     + f"{len(a.items) - len(pay) - len(cached) - len(resumed)} free; {a.up_to_date} up to date")
        for note in a.notes:
            lines.append(f"  note: {note}")
        for i in a.items:
            price = fmt_usd(i.usd) + ("~" if not i.exact else "") if i.action == "pay" else ""
            label = {"pay": "pay", "cache": "cache", "resume": "resume", "free": "free"}[i.action]
            detail = ", ".join(x for x in ((i.model or "") if i.action != "free" else "", i.note) if x)
            lines.append(f"  {label:<6} {i.target:<{width}}  {price:>9}  {detail}".rstrip())
        lines.append("")
    total = run.total_usd
    approx = "" if run.exact else "about "
    verdict = "within" if total <= run.budget_usd + 1e-9 else "OVER"
    unknown = [a.ad for a in run.ads if a.error]
    besides = f"; not counting {', '.join(unknown)}, which cannot be estimated" if unknown else ""
    lines.append(f"Total to pay: {approx}{fmt_usd(total)} ({verdict} the budget of {fmt_usd(run.budget_usd)} per run"
                 f"{besides})")
    return "\n".join(lines) + "\n"


# ---- the budget check before a run ------------------------------------------------------------------

_last: dict[str, Any] = {}


def within_budget(ads: Sequence[tuple[str, Path]]) -> bool:
    """doit `uptodate` of the `budget` task (`ads`: the ones this doit command asks for): true
    (nothing to do) when the run's estimate fits
    ADSPEC_BUDGET_USD; offline runs cost nothing and always fit."""
    settings = load_settings()
    note_idle_ads(())
    if not (settings.live_media or settings.live_planner):
        return True
    try:
        run = estimate(ads)
    except AdspecError as e:  # e.g. a bad ADSPEC_REMOTE_CACHE: the action stops the run in one line (not a traceback)
        _last["error"] = e
        return False
    _last["run"] = run
    fits = run.total_usd <= settings.budget_usd + 1e-9
    # refused: an ad with nothing to build is not failed by it (the reporters leave it as it was)
    note_idle_ads(() if fits else (a.ad for a in run.ads if not a.items and a.error is None))
    return fits


def budget_action(ads: Sequence[tuple[str, Path]]) -> None:
    """Runs only when the estimate is over the cap (or could not be made): stop the run before
    its first paid call."""
    if "error" in _last:
        raise _last.pop("error")
    run = _last.get("run") or estimate(ads)
    message = over_budget_message(run)
    if message is not None:
        raise BudgetError(message)


def over_budget_message(run: RunEstimate) -> str | None:
    """The one line a run over ADSPEC_BUDGET_USD stops with (None when it fits). Also what
    `adspec serve` and `adspec mcp` say when they refuse to start a build."""
    total = run.total_usd
    if total <= run.budget_usd + 1e-9:
        return None
    paid = sum(1 for a in run.ads for i in a.items if i.action == "pay")
    return (
        f"this run would pay {'about ' if not run.exact else ''}{fmt_usd(total)} for {paid} "
        f"request{'s' if paid != 1 else ''}, "
        f"over the cap of {fmt_usd(run.budget_usd)} per run (ADSPEC_BUDGET_USD); nothing was paid. "
        f"See `adspec estimate`; {raise_hint(total)}"
    )
