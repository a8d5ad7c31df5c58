"""A run refused over ADSPEC_BUDGET_USD, as doit reports it: every task waits on the `budget`
task, so each fails as not run, even those of an ad that had nothing to do. The budget check
(adspec.estimate, in doit's main process) names those ads here; the reporters leave them as
they were instead of marking them failed."""

from __future__ import annotations

from typing import Iterable

from .tasknames import ad_of_task, aggregate_ad

BUDGET_TASK = "budget"
_idle_ads: frozenset[str] = frozenset()


def note_idle_ads(ads: Iterable[str]) -> None:
    """The ads of the refused run's estimate that had nothing to build (called by the check)."""
    global _idle_ads
    _idle_ads = frozenset(ads)


class NotRun:
    """Which UnmetDependency failures of this run are an idle ad's tasks waiting on the refused
    budget (directly, or through another of them): not failures of that ad."""

    def __init__(self) -> None:
        self._tasks: set[str] = set()

    def idle(self, task: str, waited_on: str) -> bool:
        ad = ad_of_task(task, _idle_ads) or aggregate_ad(task)  # a task of the ad, its alias, an aggregate
        if ad is None or ad not in _idle_ads:
            return False
        if all(name == BUDGET_TASK or name in self._tasks for name in waited_on.split()):
            self._tasks.add(task)
            return True
        return False
