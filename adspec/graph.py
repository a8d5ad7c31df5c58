"""The build graph: an ad's plan and its targets as doit task dicts. Pure: reading the plan
files is the only I/O, so the graph can be checked without running doit.

Per ad `<ad>`:
  plan:<ad>                      spec -> beat file (the lock) -> build/<ad>/plan.json + beat files
  storyboard:<ad>/<beat>         beat.json (+ reference image) -> storyboard.png        (paid)
  chunk:<ad>/<beat>/<k>          beat.json + first frame -> chunk-k.mp4 (+ last frame)    (paid)
  voice:<ad>/<beat>              voice.json -> voice.wav (the beat's spoken line, fitted)  (paid)
  music:<ad>                     music.json -> music.wav                                  (paid)
  stitch:<ad>                    chunks in beat order -> video.mp4                        (local)
  mix:<ad>                       video.mp4 + music.wav + voices -> final.mp4, captions    (local)
  export:<ad>/<placement>        final.mp4 -> export/<placement>.mp4 (loudness, bitrate)     (local)
  check:<ad>                     final + exports against the placements -> checks.json     (local)
  timeline:<ad>                  the cut -> timeline.otio (OpenTimelineIO), for editors      (local)
  report:<ad>                    the review page index.html + storyboard.png contact sheet (local)
  <ad>                           everything above
and for the run: `budget` (every plan waits on it: stops a live run whose estimate is over
ADSPEC_BUDGET_USD before anything is paid) and `report` (build/index.html, all ads).

The render tasks exist only once the plan does: they are created after `plan:<ad>` runs
(doit's delayed task creation), so each carries its exact recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from doit import create_after
from doit.exceptions import TaskFailed
from doit.task import Task, dict_to_task
from doit.tools import config_changed

from . import actions, approvals, approve, cleaning, delivery, estimate, plan_step, provenance, report, voice
from .build_files import compact_text
from .checks import checks_current, layout_current
from .config import VIDEO_KBPS_DEFAULT, load_settings, video_kbps_setting
from .errors import AdspecError, error_line
from .media_requests import beat_chunk_references
from .paths import AdPaths, beat_file_path, build_index
from .placements import placements_file
from .plan_file import AdPlan, load_plan
from .tasknames import AGGREGATE_KINDS, RESERVED, WAITS_FOR_APPROVAL, task_name

TaskDict = dict[str, Any]

# Each kind of task (tasknames.KINDS) is a doit group (`doit chunk`, `doit clean chunk`, `doit chunk:<TAB>`).
# Kinds with one task per beat, clip or placement: `storyboard:<ad>`, `chunk:<ad>`, `voice:<ad>` and
# `export:<ad>` stand for all of an ad's.
PER_BEAT_KINDS = AGGREGATE_KINDS


class Check:
    """A doit `uptodate` check that says in words what it checks, so `doit info <task>` prints
    "the plan is out of date: …" instead of `<function … at 0x…>`."""

    def __init__(self, words: str, func: Callable[..., bool], *args: Any):
        self.words, self.func, self.args = words, func, args

    def __call__(self) -> bool:
        return bool(self.func(*self.args))

    def __repr__(self) -> str:
        return self.words

    __str__ = __repr__


class SignedReceipts:
    """A doit `uptodate` of the mix: the final's C2PA manifest names the receipts of now. A storyboard
    or clip asked by another recipe may come out the same bytes (offline, another prompt of the
    same camera move; another model), so nothing the mix reads changed, and the final kept a
    manifest naming the old request (`adspec verify` failed it). Asked when the mix's turn comes
    (after the beats' tasks ran); what it signed is saved with doit's values when it runs."""

    def __init__(self, build_dir: Path, ad: str):
        self.paths = AdPaths.of(build_dir, ad)

    def __call__(self, task: Task, values: dict[str, Any]) -> bool:
        now = provenance.records_digest(self.paths)  # the mix writes no receipt: what it signs, if it runs
        task.value_savers.append(lambda: {"signed_receipts": now})
        last = values.get("signed_receipts")
        # before one was saved (a build of an earlier adspec): taken as current, not every ad mixed again
        return last is None or not provenance.enabled() or last == now

    def __repr__(self) -> str:
        return "the final's C2PA manifest names other receipts than the ad's artifacts have now"

    __str__ = __repr__


class SavedSetting:
    """A doit `uptodate`: a setting is what it was when the task last ran. Saved under its own name
    in doit's values, so several sit on one task (doit's `config_changed` saves every one under the
    same key: two on one task undid each other, and it ran every time). Nothing saved yet (a build
    of an earlier adspec) reads as `default`."""

    def __init__(self, name: str, value: str, default: str):
        self.name, self.value, self.default = name, value, default

    def __call__(self, task: Task, values: dict[str, Any]) -> bool:
        task.value_savers.append(lambda: {f"setting:{self.name}": self.value})
        return values.get(f"setting:{self.name}", self.default) == self.value

    def __repr__(self) -> str:
        return f"{self.name} is not what it was when the task last ran ({self.value} now)"

    __str__ = __repr__


class Membership(str):
    """The group a task belongs to, for doit's `subtask_of`: its kind, and its ad too.

    doit compares `subtask_of` with a group's name to find the group's members (list --all,
    clean, ignore, forget). An ad's task belongs to two groups: its kind (`doit list --all chunk`
    and so bash completion after `doit chunk:`, `doit clean chunk`) and its ad (`doit ignore
    <ad>`, `doit clean <ad>`). It reads as its kind everywhere else."""

    ad: str

    def __new__(cls, kind: str, ad: str) -> "Membership":
        made = super().__new__(cls, kind)
        made.ad = ad
        return made

    def __eq__(self, other: object) -> bool:
        # and a beat's task is a member of `storyboard:<ad>` / `chunk:<ad>` (`doit ignore chunk:<ad>`)
        return str.__eq__(self, other) or (isinstance(other, str) and (
            other == self.ad or (str(self) in PER_BEAT_KINDS and other == f"{str(self)}:{self.ad}")))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __reduce__(self) -> tuple[Any, ...]:  # -P process pickles tasks
        return (Membership, (str(self), self.ad))


def member(task: TaskDict, kind: str, ad: str) -> Task:
    """An ad's task as a doit subtask of its kind's group and of its ad (see `Membership`)."""
    fields = dict(task)
    fields["name"] = fields.pop("basename")
    made = dict_to_task(fields)
    made.subtask_of = Membership(kind, ad)
    return made


class Reported:
    """A task action whose error becomes doit's TaskFailed with the one line of
    adspec.errors.error_line, not a traceback (bugs still show theirs)."""

    def __init__(self, func: Callable[..., Any]):
        self.func = func
        self.__name__ = getattr(func, "__name__", "action")

    def __call__(self, *args: Any) -> Any:
        try:
            return self.func(*args)
        except Exception as e:
            line = error_line(e)
            if line is None:  # a bug: doit shows its traceback
                raise
            return TaskFailed(line)

    def __repr__(self) -> str:
        return f"adspec.{self.__name__}"


def plan_task(ad: str, spec_path: Path, build_dir: Path) -> Task:
    paths = AdPaths.of(build_dir, ad)
    return member({
        "basename": task_name("plan", ad),
        "doc": f"plan {ad}: spec -> beat file -> build/{ad}/plan.json",
        "actions": [(Reported(plan_step.plan_action), [ad, str(spec_path)])],
        "file_dep": [str(spec_path)],
        "targets": [str(paths.plan)],
        "uptodate": [Check(f"the plan is out of date: {spec_path.name} or its beat file changed since "
                           f"build/{paths.root.name}/plan.json was written", plan_step.plan_is_current, ad, str(spec_path))],
        "task_dep": ["budget"],
        # `doit auto` (the doit-auto1 plug-in) also rebuilds when a beat file is edited
        "watch": [str(p) for p in beat_files_of(spec_path) if _is_file(p)],
        "verbosity": 1,
    }, "plan", ad)


def beat_files_of(spec_path: Path) -> list[Path]:
    """The beat files a spec's ads are planned from: `<stem>.beats.yaml` and its variants'
    `<stem>@<tag>.beats.yaml`."""
    own = beat_file_path(spec_path)
    pattern = beat_file_path(spec_path, "*").name  # `<stem>@*.beats.yaml`
    return [own, *sorted(spec_path.parent.glob(pattern))]


def render_task_names(ad: str, plan: AdPlan | None) -> list[str]:
    """Names of the tasks the delayed creator makes, so `doit list` and `doit <name>` know them."""
    names = [task_name("stitch", ad), task_name("mix", ad), task_name("music", ad), task_name("check", ad),
             task_name("timeline", ad), task_name("report", ad), *[task_name(k, ad) for k in PER_BEAT_KINDS]]
    if plan is not None:
        names += [task_name("export", ad, p) for p in plan.placements]
        for beat in plan.beats:
            names.append(task_name("storyboard", ad, beat.id))
            names += [task_name("chunk", ad, beat.id, k) for k in range(beat.chunk_count)]
        names += [task_name("voice", ad, beat.id) for beat in plan.voiced]
    return names


def render_tasks(ad: str, plan: AdPlan, build_dir: Path, *, spec_path: Path | None = None) -> Iterator[Task]:
    """Every target after the plan, with exact file dependencies, each a member of its kind's
    group. With `spec_path` (doit's commands other than run, where the plan does not run first),
    a beat's storyboard and chunks are also stale when the spec or beat file would plan that
    beat differently from its beat.json, so `doit info` tells the truth before the plan runs."""
    paths = AdPaths.of(build_dir, ad)
    plan_dep = task_name("plan", ad)
    chunk_files: list[str] = []
    storyboard_tasks: list[str] = []
    chunk_tasks: list[str] = []
    # `approval: required`: a beat whose storyboard is not the approved one gets stand-ins for its
    # chunks (the first says once that it waits), and the ad's music, stitch and mix wait too
    waiting = {} if not plan.approval_required else {
        b: s for b, s in approve.states(ad, plan, build_dir).items() if s != approvals.APPROVED}
    for beat in plan.beats:
        beat_json = str(paths.beat_inputs(beat.id))
        storyboard = str(paths.storyboard(beat.id))
        # the reference images it sends: a changed photo re-runs exactly the beats that show it
        ref = [r["path"] for r in beat.references] if beat.references is not None else \
            ([plan.reference] if plan.reference else [])
        replanned = [] if spec_path is None else [
            Check(f"beat {beat.id} is planned differently now: its entry in the beat file (or the spec) changed "
                  f"since {beat_json} was written", beat_is_planned, ad, str(spec_path), beat.id)]
        made_from = "was made from another recipe than it would be asked with now (or is missing)"
        yield member({
            "basename": task_name("storyboard", ad, beat.id),
            "doc": f"storyboard image of {ad}/{beat.id} ({plan.image_model_of(beat)})",
            "actions": [(Reported(actions.make_storyboard), [ad, beat.id])],
            "file_dep": [beat_json, *ref],
            "targets": [storyboard],
            "task_dep": [plan_dep],
            "uptodate": [*replanned, Check(f"{storyboard} {made_from}", actions.is_current, storyboard, "storyboard",
                                           ad, beat.id)],
            "clean": True,
        }, "storyboard", ad)
        storyboard_tasks.append(task_name("storyboard", ad, beat.id))
        if beat.id in waiting:
            for k in range(beat.chunk_count):
                yield member({
                    "basename": task_name("chunk", ad, beat.id, k),
                    "doc": f"video chunk {k + 1} of {ad}/{beat.id}: waits for approval ({waiting[beat.id]})",
                    "actions": [(approvals.say_waiting, [ad, beat.id, waiting[beat.id], beat.approved, storyboard])]
                               if k == 0 else None,
                    "task_dep": [plan_dep, task_name("storyboard", ad, beat.id)],
                    "verbosity": 2,
                    "meta": {WAITS_FOR_APPROVAL: sorted(waiting)},
                    # an earlier, approved cut's files are still the ad's: `doit clean` removes them
                    "clean": cleans([paths.chunk(beat.id, k)] + ([paths.last_frame(beat.id, k)]
                                                                if k + 1 < beat.chunk_count else [])),
                }, "chunk", ad)
                chunk_tasks.append(task_name("chunk", ad, beat.id, k))
            continue
        # the chunks sent the images of what the beat shows depend on them too (models.yaml `references:`)
        with_refs = beat_chunk_references(plan.beat_inputs(beat)).chunks if beat.references else ()
        for k in range(beat.chunk_count):
            chunk = str(paths.chunk(beat.id, k))
            first = str(paths.first_frame(beat.id, k))
            first_task = task_name("storyboard", ad, beat.id) if k == 0 else task_name("chunk", ad, beat.id, k - 1)
            targets = [chunk]
            if k + 1 < beat.chunk_count:
                targets.append(str(paths.last_frame(beat.id, k)))
            yield member({
                "basename": task_name("chunk", ad, beat.id, k),
                "doc": f"video chunk {k + 1} of {beat.chunk_count} of {ad}/{beat.id} ({plan.video_model_of(beat)}, {beat.clips[k]} s)",
                "actions": [(Reported(actions.make_chunk), [ad, beat.id, k])],
                "file_dep": [beat_json, first, *(ref if k in with_refs else [])],
                "targets": targets,
                "task_dep": [plan_dep, first_task],
                "uptodate": [*replanned, Check(f"{chunk} {made_from}", actions.is_current, chunk, "chunk", ad, beat.id, k),
                             Check(f"{chunk} was encoded under another ADSPEC_VIDEO_KBPS", actions.encoded_under_setting,
                                   chunk, ad, beat.id, k)],
                "clean": True,
            }, "chunk", ad)
            chunk_files.append(chunk)
            chunk_tasks.append(task_name("chunk", ad, beat.id, k))
    yield member({"basename": task_name("storyboard", ad), "doc": f"every storyboard image of {ad}", "actions": None,
                  "task_dep": storyboard_tasks}, "storyboard", ad)
    yield member({"basename": task_name("chunk", ad), "doc": f"every video chunk of {ad}", "actions": None,
                  "task_dep": chunk_tasks}, "chunk", ad)
    if waiting:
        yield from waiting_tasks(ad, plan, build_dir, waiting)
        return
    voice_files: list[str] = []
    voice_tasks: list[str] = []
    for beat in plan.voiced:
        wav = str(paths.voice(beat.id))
        yield member({
            "basename": task_name("voice", ad, beat.id),
            "doc": f"spoken line of {ad}/{beat.id} ({plan.voice_model}, {plan.voice_name})",
            "actions": [(Reported(voice.make_voice), [ad, beat.id])],
            "file_dep": [str(paths.voice_inputs(beat.id))],
            "targets": [wav],
            "task_dep": [plan_dep],
            "uptodate": [Check(f"{wav} was made from another line, voice or speed than it would be asked with now "
                               "(or is missing)", voice.is_current, wav, ad, beat.id)],
            "clean": True,
        }, "voice", ad)
        voice_files.append(wav)
        voice_tasks.append(task_name("voice", ad, beat.id))
    yield every_voice(ad, voice_tasks)
    yield member({
        "basename": task_name("stitch", ad),
        "doc": f"stitch {ad}: chunks in beat order, each beat trimmed to its duration",
        "actions": [(Reported(actions.make_stitch), [ad])],
        "file_dep": [str(paths.timeline), *chunk_files],
        "targets": [str(paths.video), str(paths.stitch_report)],
        "task_dep": [plan_dep, *chunk_tasks],
        "uptodate": [encoded_as_set()],
        "clean": True,
    }, "stitch", ad)
    music = str(paths.music)
    if not plan.native_audio:
        yield member({
            "basename": task_name("music", ad),
            "doc": f"music of {ad} ({plan.music_model}, {plan.duration} s at {plan.bpm} bpm)",
            "actions": [(Reported(actions.make_music), [ad])],
            "file_dep": [str(paths.music_inputs)],
            "targets": [music],
            "task_dep": [plan_dep],
            "uptodate": [Check(f"{music} was made from another recipe than it would be asked with now (or is missing)",
                               actions.is_current, music, "music", ad)],
            "clean": True,
        }, "music", ad)
    else:  # the model's own audio replaces music: keep the name so `doit music:<ad>` still works
        yield member({"basename": task_name("music", ad), "doc": f"no music for {ad}: {plan.video_model} has native audio",
                      "actions": None, "task_dep": [plan_dep]}, "music", ad)
    font = (plan.captions or {}).get("font")  # a spec's own caption font: a change re-renders the mix
    made = mix_targets(paths, bool(voice_files))
    yield member({
        "basename": task_name("mix", ad),
        "doc": f"final mix of {ad} -> build/{ad}/final.mp4",
        "actions": [(Reported(actions.make_mix), [ad])],
        "file_dep": [str(paths.video), str(paths.timeline), str(paths.speech), str(paths.text_inputs), *voice_files]
                    + ([] if plan.native_audio else [music])
                    + ([font] if voice_files and font else [])
                    + [f for f in ((plan.brand_kit or {}).get(k) for k in ("logo", "font")) if f],  # the kit's files
        "targets": made,
        "uptodate": [Check(f"build/{ad}/text_layout.json was written by another version", layout_current,
                           str(paths.text_layout)), signed_as_set(), encoded_as_set(),
                     SignedReceipts(build_dir, ad)],
        # cleaning the final says so in status.json (not "done" with no final)
        "clean": [(cleaning.remove_files, [made]), (cleaning.remove_folder, [str(paths.mix_parts)]),
                  (cleaning.mark_cleaned, [str(build_dir), ad])],
        "task_dep": [task_name("stitch", ad), task_name("music", ad), *[task_name("voice", ad, b.id) for b in plan.voiced]],
    }, "mix", ad)
    yield from delivery_tasks(ad, plan, build_dir)
    yield member({
        "basename": task_name("timeline", ad),
        "doc": f"the cut of {ad} for editors -> build/{ad}/timeline.otio (OpenTimelineIO)",
        "actions": [(Reported(delivery.make_timeline), [ad])],
        # the stitched video: it changes with the chunks, whose own lengths the timeline gives
        "file_dep": [str(paths.timeline), str(paths.speech), str(paths.video), *voice_files]
                    + ([] if plan.native_audio else [music]),
        "targets": [str(paths.timeline_otio)],
        "task_dep": [task_name("stitch", ad), task_name("music", ad), *[task_name("voice", ad, b.id) for b in plan.voiced]],
        "clean": True,
    }, "timeline", ad)
    yield report_task(ad, plan, build_dir)


def mix_targets(paths: AdPaths, voiced: bool) -> list[str]:
    """What `mix:<ad>` makes: the final, its words' layout, and the captions when a line is spoken."""
    captions = [str(paths.captions_srt), str(paths.captions_vtt)] if voiced else []
    return [str(paths.final), str(paths.text_layout), *captions]


def cleans(files: Sequence[Path | str]) -> list[Any]:
    """doit `clean` actions removing `files`: for a task that does not declare them as targets."""
    return [(cleaning.remove_files, [[str(f) for f in files]])]


def every_voice(ad: str, voices: list[str]) -> Task:
    """`voice:<ad>`: every spoken line of the ad (none when no beat speaks)."""
    return member({"basename": task_name("voice", ad), "doc": f"every spoken line of {ad}", "actions": None,
                   "task_dep": voices}, "voice", ad)


def signed_as_set() -> Any:
    """The C2PA setting as the config of the tasks that sign (mix, exports): ADSPEC_C2PA=off or
    another certificate re-makes their files, locally, instead of leaving them signed as before."""
    return config_changed({"c2pa": provenance.signing_setting()})


def encoded_as_set() -> SavedSetting:
    """ADSPEC_VIDEO_KBPS as the config of the tasks that encode the ad's video from its chunks (the
    stitch, the mix): another setting re-encodes their files, locally, instead of leaving those of
    the setting before (the final depended on which setting had built which part). The chunks
    follow it by their receipts (`actions.encoded_under_setting`)."""
    return SavedSetting("ADSPEC_VIDEO_KBPS", video_kbps_setting(), VIDEO_KBPS_DEFAULT)


def every_export(ad: str, exports: list[str]) -> Task:
    """`export:<ad>`: the ad's file for each of its placements (none without placements)."""
    return member({"basename": task_name("export", ad), "doc": f"every placement's file of {ad}", "actions": None,
                   "task_dep": exports}, "export", ad)


def waiting_tasks(ad: str, plan: AdPlan, build_dir: Path, waiting: dict[str, str]) -> Iterator[Task]:
    """While some beat of an ad with `approval: required` waits for approval: its voices,
    music, stitch and mix wait too (stand-ins that do nothing), and the review page shows the
    storyboards with their approval state."""
    plan_dep = task_name("plan", ad)
    paths = AdPaths.of(build_dir, ad)
    why = f"waits for approval of {', '.join(waiting)}"
    # the reporter's cue: these do nothing (not "built"), and the ad's run ends "waiting", not "done";
    # each cleans what its working self makes (an earlier, approved cut's files: `doit clean <ad>`)
    meta = {WAITS_FOR_APPROVAL: sorted(waiting)}
    for beat in plan.voiced:
        yield member({"basename": task_name("voice", ad, beat.id), "doc": f"spoken line of {ad}/{beat.id}: {why}",
                      "actions": None, "task_dep": [plan_dep], "meta": meta,
                      "clean": cleans([paths.voice(beat.id)])}, "voice", ad)
    yield every_voice(ad, [task_name("voice", ad, beat.id) for beat in plan.voiced])
    made = {"stitch": cleans([paths.video, paths.stitch_report]),
            "music": cleans([] if plan.native_audio else [paths.music]),
            "mix": [*cleans(mix_targets(paths, bool(plan.voiced))), (cleaning.remove_folder, [str(paths.mix_parts)]),
                    (cleaning.mark_cleaned, [str(build_dir), ad])]}
    for kind in ("stitch", "music", "mix"):
        yield member({"basename": task_name(kind, ad), "doc": f"{kind} of {ad}: {why}", "actions": None,
                      "task_dep": [plan_dep, task_name("storyboard", ad), task_name("chunk", ad)], "meta": meta,
                      "clean": made[kind]}, kind, ad)
    for placement in plan.placements:
        yield member({"basename": task_name("export", ad, placement), "doc": f"{ad} for {placement}: {why}",
                      "actions": None, "task_dep": [task_name("mix", ad)], "meta": meta,
                      "clean": cleans([paths.export(placement)])}, "export", ad)
    yield every_export(ad, [task_name("export", ad, placement) for placement in plan.placements])
    yield member({"basename": task_name("check", ad), "doc": f"delivery checks of {ad}: {why}", "actions": None,
                  "task_dep": [task_name("mix", ad)], "meta": meta, "clean": cleans([paths.checks])}, "check", ad)
    yield member({"basename": task_name("timeline", ad), "doc": f"the cut of {ad} for editors: {why}",
                  "actions": None, "task_dep": [task_name("stitch", ad)], "meta": meta,
                  "clean": cleans([paths.timeline_otio])}, "timeline", ad)
    yield report_task(ad, plan, build_dir, waiting=why)


def delivery_tasks(ad: str, plan: AdPlan, build_dir: Path) -> Iterator[Task]:
    """After the mix, all local: one export per placement, then the checks of the final and the
    exports (`check:<ad>` fails the ad with one line per violation)."""
    paths = AdPaths.of(build_dir, ad)
    rules = placements_file()
    exports, export_tasks = [], []
    for placement in plan.placements:
        out = str(paths.export(placement))
        yield member({
            "basename": task_name("export", ad, placement),
            "doc": f"{ad} for {placement} -> build/{ad}/export/{placement}.mp4 (its loudness and format)",
            "actions": [(Reported(delivery.make_export), [ad, placement])],
            "file_dep": [str(paths.final), rules],
            "targets": [out],
            "task_dep": [task_name("mix", ad)],
            "uptodate": [signed_as_set()],
            "clean": True,
        }, "export", ad)
        exports.append(out)
        export_tasks.append(task_name("export", ad, placement))
    yield every_export(ad, export_tasks)
    placements = list(plan.placements)
    yield member({
        "basename": task_name("check", ad),
        "doc": f"delivery checks of {ad} ({', '.join(placements) or 'the rules of every ad'}) -> build/{ad}/checks.json",
        "actions": [(Reported(delivery.check_action), [ad, placements])],
        "file_dep": [str(paths.final), str(paths.text_layout), rules, *exports],
        "targets": [str(paths.checks)],
        "task_dep": [task_name("mix", ad), *export_tasks],
        "uptodate": [Check(f"the placements of {ad} changed since its checks ran", checks_current,
                           str(paths.checks), placements)],
        "clean": True,
    }, "check", ad)


def unplanned_tasks(ad: str, build_dir: Path) -> Iterator[Task]:
    """Before an ad's first plan, for doit's commands other than run: its tasks of fixed names,
    with the targets they will make, so `doit clean`, `doit ignore <ad>`, `doit info mix:<ad>`
    and the `<ad>` alias work on a fresh checkout (the beats' tasks appear once it is planned)."""
    paths = AdPaths.of(build_dir, ad)
    later = f"(not planned yet: `doit plan:{ad}` plans it)"
    plan_dep = [task_name("plan", ad)]
    yield member({"basename": task_name("storyboard", ad), "doc": f"every storyboard image of {ad} {later}", "actions": None,
                  "task_dep": plan_dep}, "storyboard", ad)
    yield member({"basename": task_name("chunk", ad), "doc": f"every video chunk of {ad} {later}", "actions": None,
                  "task_dep": plan_dep}, "chunk", ad)
    yield member({"basename": task_name("voice", ad), "doc": f"every spoken line of {ad} {later}", "actions": None,
                  "task_dep": plan_dep}, "voice", ad)
    yield member({"basename": task_name("export", ad), "doc": f"every placement's file of {ad} {later}",
                  "actions": None, "task_dep": plan_dep}, "export", ad)
    yield member({"basename": task_name("stitch", ad), "doc": f"stitch {ad} {later}", "actions": None, "task_dep": plan_dep,
                  "targets": [str(paths.video), str(paths.stitch_report)], "clean": True}, "stitch", ad)
    yield member({"basename": task_name("music", ad), "doc": f"music of {ad} {later}", "actions": None, "task_dep": plan_dep,
                  "targets": [str(paths.music)], "clean": True}, "music", ad)
    yield member({"basename": task_name("mix", ad), "doc": f"final mix of {ad} {later}", "actions": None,
                  "task_dep": [task_name("stitch", ad), task_name("music", ad)], "targets": [str(paths.final)],
                  "clean": [(cleaning.remove_files, [[str(paths.final)]]), (cleaning.remove_folder, [str(paths.mix_parts)]),
                            (cleaning.mark_cleaned, [str(build_dir), ad])]}, "mix", ad)
    yield member({"basename": task_name("check", ad), "doc": f"delivery checks of {ad} {later}", "actions": None,
                  "task_dep": [task_name("mix", ad)], "targets": [str(paths.checks)], "clean": True}, "check", ad)
    yield member({"basename": task_name("timeline", ad), "doc": f"the cut of {ad} for editors {later}", "actions": None,
                  "task_dep": [task_name("stitch", ad)], "targets": [str(paths.timeline_otio)], "clean": True},
                 "timeline", ad)
    yield member({"basename": task_name("report", ad), "doc": f"review page of {ad} {later}", "actions": None,
                  "task_dep": [task_name("mix", ad)], "targets": [str(paths.review_page), str(paths.contact_sheet)],
                  "clean": True}, "report", ad)



def beat_is_planned(ad: str, spec_path: str, beat_id: str) -> bool:
    """Whether beat `beat_id`'s beat.json is what the plan step would write now (computed in
    memory, no planner called): false after an edit of that beat in the beat file."""
    if plan_step.plan_is_current(ad, spec_path):
        return True
    try:
        plan = _dry_plans(ad, spec_path)
    except (AdspecError, OSError, ValueError):
        return False
    paths = AdPaths.of(_build_dir(), ad)
    for beat in plan.beats:
        if beat.id == beat_id:
            try:
                return paths.beat_inputs(beat_id).read_text(encoding="utf-8") == compact_text(plan.beat_inputs(beat))
            except OSError:
                return False
    return False


_dry: dict[tuple[str, str], AdPlan] = {}


def _dry_plans(ad: str, spec_path: str) -> AdPlan:
    """The plan `plan:<ad>` would make now, once per ad and process (doit info asks per task)."""
    if (ad, spec_path) not in _dry:
        _dry[(ad, spec_path)] = plan_step.dry_plan(ad, Path(spec_path)).plan
    return _dry[(ad, spec_path)]


def _is_file(path: Path) -> bool:
    """Whether `path` exists as a file; a name the filesystem refuses (too long) is not one: its
    ad fails in its plan step with one line, not in doit's task loading with a traceback."""
    try:
        return path.is_file()
    except OSError:
        return False


def _build_dir() -> Path:
    return load_settings().build_dir


def report_task(ad: str, plan: AdPlan, build_dir: Path, waiting: str | None = None) -> Task:
    """The review page; while beats wait for approval (`waiting` says which) it shows the
    storyboards and their approval state, with no final to depend on."""
    paths = AdPaths.of(build_dir, ad)
    final = [] if waiting else [str(paths.final)]
    return member({
        "basename": task_name("report", ad),
        "doc": (f"review page of {ad} (storyboards and their approval; {waiting})" if waiting
                else f"review page of {ad} -> build/{ad}/index.html, storyboard.png"),
        "actions": [(Reported(report.make_report), [ad])],
        "file_dep": [*final, str(paths.plan), *[str(paths.storyboard(b.id)) for b in plan.beats]],
        "targets": [str(paths.review_page), str(paths.contact_sheet)],
        "task_dep": [task_name("mix", ad)],
        "uptodate": [Check(f"the review page of {ad} does not show what is built now (or is missing)",
                           report.report_is_current, ad)],
        "clean": True,
    }, "report", ad)


def run_tasks(ads: list[tuple[str, Path]], build_dir: Path, asked: list[tuple[str, Path]] | None = None
              ) -> Iterator[TaskDict]:
    """`budget` (the estimate against ADSPEC_BUDGET_USD before any paid call; up to date when it
    fits, so a run within budget executes nothing for it) and `report` (build/index.html)."""
    yield {
        "basename": "budget",
        "doc": "stop before paying anything when the run's estimate is over ADSPEC_BUDGET_USD",
        "actions": [(Reported(estimate.budget_action), [asked or ads])],
        "uptodate": [Check("the run's estimate is over ADSPEC_BUDGET_USD (see `adspec estimate`)",
                           estimate.within_budget, asked or ads)],
        "verbosity": 1,
    }
    names = [ad for ad, _ in ads]
    yield {
        "basename": "report",
        "doc": "review page of all ads -> build/index.html",
        "actions": [(Reported(report.make_index), [names])],
        "file_dep": [str(AdPaths.of(build_dir, ad).review_page) for ad in names],
        "targets": [str(build_index(build_dir))],
        "task_dep": [task_name("report", ad) for ad in names],
        "clean": True,
    }


def render_creator(ad: str, build_dir: Path, *, delayed: bool = True,
                   spec_path: Path | None = None) -> Callable[[], Iterator[Task]]:
    """The task creator of one ad's render tasks, reading the plan file.

    When running (`delayed`), it runs after `plan:<ad>` (doit's delayed task creation) and names
    the tasks it will create so `doit mix:<ad>` can be asked for before they exist. For doit's
    other commands (list, clean, info, ignore, forget) it reads the plan already on disk at load
    time (doit never runs delayed creators that name their tasks outside `doit run`); an ad not
    planned yet gets its tasks of fixed names, so those commands work on a fresh checkout."""
    paths = AdPaths.of(build_dir, ad)

    def creator() -> Iterator[Task]:
        plan = load_plan(paths)
        if plan is not None:
            yield from render_tasks(ad, plan, build_dir, spec_path=None if delayed else spec_path)
        elif not delayed:
            yield from unplanned_tasks(ad, build_dir)

    creator.__doc__ = f"render {ad}"
    if delayed:
        upcoming = upcoming_plan(ad, spec_path, paths)
        creator = create_after(executed=task_name("plan", ad), creates=render_task_names(ad, upcoming))(creator)
    return creator


def upcoming_plan(ad: str, spec_path: Path | None, paths: AdPaths) -> AdPlan | None:
    """The plan whose tasks a run will create, known before the plan runs: plan.json while it
    is current (or absent), else the plan the plan step would make now from the spec and the beat file as
    they are (in memory, no planner called). Naming the tasks of a stale plan.json would leave
    doit a stand-in for each beat since removed from the beat file, and asking for one of those
    runs the creator again ("Two different tasks can't have a common target")."""
    on_disk = load_plan(paths)
    if on_disk is None or spec_path is None or plan_step.plan_is_current(ad, str(spec_path)):
        return on_disk  # before the first plan: only the tasks of fixed names, as always
    try:
        dry = plan_step.dry_plan(ad, Path(spec_path))
    except (AdspecError, OSError, ValueError):
        return None  # the plan step will say what is wrong; only the fixed names until then
    return None if dry.stand_in else dry.plan  # a live planner's beats are not known before it answers


def kind_groups(ads: list[str], build_dir: Path, *, running: bool) -> Iterator[Task]:
    """One doit group per kind of task (`doit mix` mixes every ad; `doit clean chunk`). Its
    members are the ads' tasks of that kind; while running only those certain to exist (an
    ad's plan may change its beats), for the other commands every one the plans on disk name."""
    docs = {"storyboard": "every storyboard image", "chunk": "every video chunk", "voice": "every spoken line",
            "music": "every music bed", "stitch": "every stitched video", "mix": "every final mix",
            "export": "every placement's file", "check": "every ad's delivery checks",
            "timeline": "every editor timeline (timeline.otio)"}
    for kind, doc in docs.items():
        members: list[str] = []
        for ad in ads:
            members.append(task_name(kind, ad))
            if kind in PER_BEAT_KINDS and not running:
                members += [n for n in render_task_names(ad, load_plan(AdPaths.of(build_dir, ad)))
                            if n.startswith(f"{kind}:{ad}/")]
        yield Task(kind, None, task_dep=members, has_subtask=True, doc=doc)


def ad_alias_task(ad: str, build_dir: Path, *, running: bool = True) -> Task | None:
    """`doit <ad>` builds the ad. Its task_dep names every task of the ad, which are its
    members too (see `Membership`), so `doit clean <ad>`, `doit ignore <ad>` and `doit forget
    <ad>` act on all of them; while running, the beats' tasks come through `storyboard:<ad>`
    and `chunk:<ad>` (the plan may still change them)."""
    if ad in RESERVED:
        return None
    names = render_task_names(ad, None if running else load_plan(AdPaths.of(build_dir, ad)))
    return Task(ad, None, task_dep=[task_name("plan", ad), *names], has_subtask=True, doc=f"build {ad} -> final.mp4")


def ad_targets(build_dir: str, ad: str) -> list[str]:
    """Every file the tasks of `ad` make, from the plan on disk (or the fixed names before one)."""
    paths = AdPaths.of(Path(build_dir), ad)
    plan = load_plan(paths)
    tasks = render_tasks(ad, plan, Path(build_dir)) if plan is not None else unplanned_tasks(ad, Path(build_dir))
    return [t for task in tasks for t in task.targets]


def clean_ad(build_dir: str, ad: str, dryrun: bool = False) -> None:
    """doit clean action of a spec's variants alias: that ad's files, then its status says so."""
    cleaning.remove_files(ad_targets(build_dir, ad), dryrun)
    if not dryrun:
        cleaning.mark_cleaned(build_dir, ad)


def group_alias_task(base: str, ads: list[str], build_dir: Path) -> TaskDict | None:
    """`doit <base>` for a spec with variants: every variant of it (that this shard builds);
    `doit clean <base>` cleans them all."""
    if base in RESERVED or not ads:
        return None
    return {"basename": base, "doc": f"build every variant of {base} ({len(ads)})", "actions": None,
            "task_dep": [task_name(kind, ad) for ad in ads for kind in ("mix", "check", "timeline", "report")],
            "clean": [(clean_ad, [str(build_dir), ad]) for ad in ads]}


def default_run(ads: list[tuple[str, Path]]) -> list[str]:
    """The tasks a bare `doit` runs, in order: every ad through its alias (an ad whose name is
    reserved through its mix and review page), then `report`. Going through `<ad>` makes
    `doit ignore <ad>` skip all of that ad's work: doit ignores what an ignored task needs."""
    names: list[str] = []
    for ad, _ in ads:
        names += [ad] if ad not in RESERVED else [task_name(k, ad) for k in ("mix", "check", "timeline", "report")]
    return [*names, "report"]


def task_creators(ads: list[tuple[str, Path]], build_dir: Path, *, running: bool = True,
                  groups: dict[str, list[str]] | None = None, asked: list[tuple[str, Path]] | None = None
                  ) -> dict[str, Callable[..., Any]]:
    """The `task_*` functions dodo.py exposes: one for all plans, one render creator per ad
    (delayed when `running`), one for the per-ad aliases (`doit <ad>`), and with `groups`
    (spec name -> its variants, see adspec.variants) one alias per spec with variants."""

    def task_plan() -> Iterator[Task]:
        yield Task("plan", None, task_dep=[task_name("plan", ad) for ad, _ in ads], has_subtask=True,
                   doc="plan each ad: spec -> beat file (the lock) -> build/<ad>/plan.json")
        for ad, spec_path in ads:
            yield plan_task(ad, spec_path, build_dir)

    def task_ads() -> Iterator[TaskDict | Task]:
        yield from kind_groups([ad for ad, _ in ads], build_dir, running=running)
        for ad, _ in ads:
            alias = ad_alias_task(ad, build_dir, running=running)
            if alias is not None:
                yield alias
        for base, members in (groups or {}).items():
            group = group_alias_task(base, members, build_dir)
            if group is not None:
                yield group

    creators: dict[str, Callable[..., Any]] = {"task_plan": task_plan}
    for i, (ad, spec_path) in enumerate(ads):
        creators[f"task_render_{i:04d}"] = render_creator(ad, build_dir, delayed=running, spec_path=spec_path)
    creators["task_zz_ads"] = task_ads

    def task_zz_run() -> Iterator[TaskDict]:
        yield from run_tasks(ads, build_dir, asked)

    creators["task_zz_run"] = task_zz_run
    return creators
