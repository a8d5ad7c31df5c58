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
  report:<ad>                    the review page index.html + storyboard.png contact sheet (local)
  <ad>                           everything above
and for the run: `budget` (every plan waits on it: stops a live run whose estimate is over
ADSPEC_BUDGET_USD before anything is paid) and `report` (build/index.html, all ads).

The render tasks exist only once the plan does: they are created after `plan:<ad>` runs
(doit's delayed task creation), so each carries its exact recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

from doit import create_after
from doit.exceptions import TaskFailed

from . import actions, estimate, plan_step, report, voice
from .errors import error_line
from .paths import AdPaths, build_index
from .plan_file import AdPlan, load_plan
from .tasknames import RESERVED, task_name

TaskDict = dict[str, Any]

# doit commands and our task kinds: an ad of one of these names gets no alias task.
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


def plan_task(ad: str, spec_path: Path, build_dir: Path) -> TaskDict:
    paths = AdPaths.of(build_dir, ad)
    return {
        "name": ad,
        "doc": f"plan {ad}: spec -> beat file -> build/{ad}/plan.json",
        "actions": [(Reported(plan_step.plan_action), [ad, str(spec_path)])],
        "file_dep": [str(spec_path)],
        "targets": [str(paths.plan)],
        "uptodate": [(plan_step.plan_is_current, [ad, str(spec_path)])],
        "task_dep": ["budget"],
        "verbosity": 1,
    }


def render_task_names(ad: str, plan: AdPlan | None) -> list[str]:
    """Names of the tasks the delayed creator makes, so `doit list` and `doit <name>` know them."""
    names = [task_name("stitch", ad), task_name("mix", ad), task_name("music", ad), task_name("report", ad)]
    if plan is not None:
        for beat in plan.beats:
            names.append(task_name("storyboard", ad, beat.id))
            names += [task_name("chunk", ad, beat.id, k) for k in range(beat.chunk_count)]
        names += [task_name("voice", ad, beat.id) for beat in plan.voiced]
    return names


def render_tasks(ad: str, plan: AdPlan, build_dir: Path) -> Iterator[TaskDict]:
    """Every target after the plan, with exact file dependencies."""
    paths = AdPaths.of(build_dir, ad)
    plan_dep = task_name("plan", ad)
    chunk_files: list[str] = []
    for beat in plan.beats:
        beat_json = str(paths.beat_inputs(beat.id))
        storyboard = str(paths.storyboard(beat.id))
        ref = [plan.reference] if plan.reference else []
        yield {
            "basename": task_name("storyboard", ad, beat.id),
            "doc": f"storyboard image of {ad}/{beat.id} ({plan.image_model})",
            "actions": [(Reported(actions.make_storyboard), [ad, beat.id])],
            "file_dep": [beat_json, *ref],
            "targets": [storyboard],
            "task_dep": [plan_dep],
            "uptodate": [(actions.is_current, [storyboard, "storyboard", ad, beat.id])],
            "clean": True,
        }
        for k in range(beat.chunk_count):
            chunk = str(paths.chunk(beat.id, k))
            first = str(paths.first_frame(beat.id, k))
            first_task = task_name("storyboard", ad, beat.id) if k == 0 else task_name("chunk", ad, beat.id, k - 1)
            targets = [chunk]
            if k + 1 < beat.chunk_count:
                targets.append(str(paths.last_frame(beat.id, k)))
            yield {
                "basename": task_name("chunk", ad, beat.id, k),
                "doc": f"video chunk {k + 1} of {beat.chunk_count} of {ad}/{beat.id} ({plan.video_model}, {beat.clips[k]} s)",
                "actions": [(Reported(actions.make_chunk), [ad, beat.id, k])],
                "file_dep": [beat_json, first],
                "targets": targets,
                "task_dep": [plan_dep, first_task],
                "uptodate": [(actions.is_current, [chunk, "chunk", ad, beat.id, k])],
                "clean": True,
            }
            chunk_files.append(chunk)
    voice_files: list[str] = []
    for beat in plan.voiced:
        wav = str(paths.voice(beat.id))
        yield {
            "basename": task_name("voice", ad, beat.id),
            "doc": f"spoken line of {ad}/{beat.id} ({plan.voice_model}, {plan.voice_name})",
            "actions": [(Reported(voice.make_voice), [ad, beat.id])],
            "file_dep": [str(paths.voice_inputs(beat.id))],
            "targets": [wav],
            "task_dep": [plan_dep],
            "uptodate": [(voice.is_current, [wav, ad, beat.id])],
            "clean": True,
        }
        voice_files.append(wav)
    chunk_tasks = [task_name("chunk", ad, b.id, k) for b in plan.beats for k in range(b.chunk_count)]
    yield {
        "basename": task_name("stitch", ad),
        "doc": f"stitch {ad}: chunks in beat order, each beat trimmed to its duration",
        "actions": [(Reported(actions.make_stitch), [ad])],
        "file_dep": [str(paths.timeline), *chunk_files],
        "targets": [str(paths.video), str(paths.stitch_report)],
        "task_dep": [plan_dep, *chunk_tasks],
        "clean": True,
    }
    music = str(paths.music)
    if not plan.native_audio:
        yield {
            "basename": task_name("music", ad),
            "doc": f"music of {ad} ({plan.music_model}, {plan.duration} s at {plan.bpm} bpm)",
            "actions": [(Reported(actions.make_music), [ad])],
            "file_dep": [str(paths.music_inputs)],
            "targets": [music],
            "task_dep": [plan_dep],
            "uptodate": [(actions.is_current, [music, "music", ad])],
            "clean": True,
        }
    else:  # the model's own audio replaces music: keep the name so `doit music:<ad>` still works
        yield {"basename": task_name("music", ad), "doc": f"no music for {ad}: {plan.video_model} has native audio",
               "actions": None, "task_dep": [plan_dep]}
    font = (plan.captions or {}).get("font")  # a spec's own caption font: a change re-renders the mix
    yield {
        "basename": task_name("mix", ad),
        "doc": f"final mix of {ad} -> build/{ad}/final.mp4",
        "actions": [(Reported(actions.make_mix), [ad])],
        "file_dep": [str(paths.video), str(paths.timeline), str(paths.speech), *voice_files]
                    + ([] if plan.native_audio else [music])
                    + ([font] if voice_files and font else []),
        "targets": [str(paths.final)] + ([str(paths.captions_srt), str(paths.captions_vtt)] if voice_files else []),
        "task_dep": [task_name("stitch", ad), task_name("music", ad), *[task_name("voice", ad, b.id) for b in plan.voiced]],
        "clean": True,
    }
    yield report_task(ad, plan, build_dir)


def report_task(ad: str, plan: AdPlan, build_dir: Path) -> TaskDict:
    paths = AdPaths.of(build_dir, ad)
    return {
        "basename": task_name("report", ad),
        "doc": f"review page of {ad} -> build/{ad}/index.html, storyboard.png",
        "actions": [(Reported(report.make_report), [ad])],
        "file_dep": [str(paths.final), str(paths.plan), *[str(paths.storyboard(b.id)) for b in plan.beats]],
        "targets": [str(paths.review_page), str(paths.contact_sheet)],
        "task_dep": [task_name("mix", ad)],
        "uptodate": [(report.report_is_current, [ad])],
        "clean": True,
    }


def run_tasks(ads: list[tuple[str, Path]], build_dir: Path, asked: list[tuple[str, Path]] | None = None
              ) -> Iterator[TaskDict]:
    """`budget` (the estimate against ADSPEC_BUDGET_USD before any paid call; up to date when it
    fits, so a run within budget executes nothing for it) and `report` (build/index.html)."""
    yield {
        "basename": "budget",
        "doc": "stop before paying anything when the run's estimate is over ADSPEC_BUDGET_USD",
        "actions": [(Reported(estimate.budget_action), [asked or ads])],
        "uptodate": [(estimate.within_budget, [asked or ads])],
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


def render_creator(ad: str, build_dir: Path, *, delayed: bool = True) -> Callable[[], Iterator[TaskDict]]:
    """The task creator of one ad's render tasks, reading the plan file.

    When running (`delayed`), it runs after `plan:<ad>` (doit's delayed task creation) and names
    the tasks it will create so `doit mix:<ad>` can be asked for before they exist. For doit's
    other commands (list, clean, info, forget) it reads the plan already on disk at load time:
    doit never runs delayed creators that name their tasks outside `doit run`."""
    paths = AdPaths.of(build_dir, ad)

    def creator() -> Iterator[TaskDict]:
        plan = load_plan(paths)
        if plan is None:  # before the first plan: nothing to show yet
            return
        yield from render_tasks(ad, plan, build_dir)

    creator.__doc__ = f"render {ad}"
    if delayed:
        creator = create_after(executed=task_name("plan", ad), creates=render_task_names(ad, load_plan(paths)))(creator)
    return creator


def ad_alias_task(ad: str) -> TaskDict | None:
    if ad in RESERVED:
        return None
    return {"basename": ad, "doc": f"build {ad} -> final.mp4", "actions": None,
            "task_dep": [task_name("mix", ad), task_name("report", ad)]}


def group_alias_task(base: str, ads: list[str]) -> TaskDict | None:
    """`doit <base>` for a spec with variants: every variant of it (that this shard builds)."""
    if base in RESERVED or not ads:
        return None
    return {"basename": base, "doc": f"build every variant of {base} ({len(ads)})", "actions": None,
            "task_dep": [task_name("mix", ad) for ad in ads]}


def task_creators(ads: list[tuple[str, Path]], build_dir: Path, *, running: bool = True,
                  groups: dict[str, list[str]] | None = None, asked: list[tuple[str, Path]] | None = None
                  ) -> dict[str, Callable[..., Any]]:
    """The `task_*` functions dodo.py exposes: one for all plans, one render creator per ad
    (delayed when `running`), one for the per-ad aliases (`doit <ad>`), and with `groups`
    (spec name -> its variants, see adspec.variants) one alias per spec with variants."""

    def task_plan() -> Iterator[TaskDict]:
        """plan each ad: spec -> beat file (the lock) -> build/<ad>/plan.json"""
        for ad, spec_path in ads:
            yield plan_task(ad, spec_path, build_dir)

    def task_ads() -> Iterator[TaskDict]:
        for ad, _ in ads:
            alias = ad_alias_task(ad)
            if alias is not None:
                yield alias
        for base, members in (groups or {}).items():
            group = group_alias_task(base, members)
            if group is not None:
                yield group

    creators: dict[str, Callable[..., Any]] = {"task_plan": task_plan}
    for i, (ad, _) in enumerate(ads):
        creators[f"task_render_{i:04d}"] = render_creator(ad, build_dir, delayed=running)
    creators["task_zz_ads"] = task_ads

    def task_zz_run() -> Iterator[TaskDict]:
        yield from run_tasks(ads, build_dir, asked)

    creators["task_zz_run"] = task_zz_run
    return creators
