"""The task-name grammar, built and parsed here only: `kind:ad`, `storyboard:ad/beat`,
`chunk:ad/beat/k`, `voice:ad/beat`, `export:ad/placement`; the alias `ad` builds one ad, `budget` and `report` are the run's own tasks.

An ad name never holds ':' or '/', and a beat id never holds '/', so the parts split back cleanly.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

#: every kind of per-ad task, in build order
KINDS = ("plan", "storyboard", "chunk", "voice", "music", "stitch", "mix", "export", "check", "timeline", "report")
#: the kinds whose task may call a paid provider
PAID_KINDS = frozenset({"plan", "storyboard", "chunk", "voice", "music"})
#: kind -> the phase it is counted in (costs, estimates, progress): chunks are one phase
PHASE_OF = {"plan": "plan", "storyboard": "storyboard", "chunk": "chunks", "voice": "voice", "music": "music", "stitch": "stitch",
            "mix": "mix", "export": "export", "check": "check", "timeline": "timeline", "report": "report"}
#: every phase, in build order; the paid ones first
PHASES = tuple(PHASE_OF.values())
PAID_PHASES = tuple(PHASE_OF[k] for k in KINDS if k in PAID_KINDS)
#: kinds with an aggregate task `<kind>:<ad>` (all of an ad's storyboards, chunks, voices or exports; no work of its own)
AGGREGATE_KINDS = ("storyboard", "chunk", "voice", "export")
#: a stand-in task's doit `meta` key: the beats whose video waits for approval. The reporter counts
#: such a task as waiting, never as built, and an ad whose mix stands in ends "waiting"
WAITS_FOR_APPROVAL = "waits_for_approval"
#: doit's own commands and the run's tasks: an ad of one of these names gets no alias task
RESERVED = frozenset({*KINDS, "budget", "list", "clean", "info", "forget", "ignore", "help", "run", "auto", "dumpdb",
                      "strace", "reset-dep", "tabcompletion"})


class TaskName(NamedTuple):
    kind: str
    ad: str
    sub: str  # "" | "<beat>" | "<beat>/<k>"


def task_name(kind: str, ad: str, beat: str | None = None, index: int | None = None) -> str:
    """`task_name("chunk", "zip", "hook", 1)` -> 'chunk:zip/hook/1'."""
    name = f"{kind}:{ad}"
    if beat is not None:
        name += f"/{beat}"
        if index is not None:
            name += f"/{index}"
    return name


def split_task(name: str) -> TaskName | None:
    """'chunk:zip/hook/1' -> TaskName('chunk', 'zip', 'hook/1'); None for tasks of no ad and for
    the aggregates `storyboard:<ad>`, `chunk:<ad>`, `voice:<ad>`, `export:<ad>` (they do no work of their own)."""
    if ":" not in name:
        return None
    kind, rest = name.split(":", 1)
    if kind not in KINDS or not rest:
        return None
    ad, _, sub = rest.partition("/")
    if kind in AGGREGATE_KINDS and not sub:
        return None
    return TaskName(kind, ad, sub)


def aggregate_ad(name: str) -> str | None:
    """'chunk:zip' -> 'zip' (the ad an aggregate task stands for); None for any other name."""
    kind, sep, ad = name.partition(":")
    return ad if sep and kind in AGGREGATE_KINDS and ad and "/" not in ad else None


def ad_of_task(name: str, ads: Iterable[str]) -> str | None:
    """The ad a task (or the alias `<ad>`) belongs to, if it is one of `ads`."""
    ads = set(ads)
    parts = split_task(name)
    candidate = parts.ad if parts is not None else name
    return candidate if candidate in ads else None


def alias_target(ad: str) -> str:
    """What to ask doit for to build `ad`: its alias, or `mix:<ad>` when its name is reserved."""
    return ad if ad not in RESERVED else task_name("mix", ad)
