"""The task-name grammar after i14's aggregates: `storyboard:<ad>` and `chunk:<ad>` stand for
all of an ad's beats and are no task of their own (progress and `adspec build` must not count
them), yet a command line naming one asks for that ad (the budget covers it)."""

from __future__ import annotations

from pathlib import Path

from adspec.dodo_support import asked_ads
from adspec.tasknames import TaskName, ad_of_task, aggregate_ad, split_task


def test_aggregates_are_no_task_of_an_ad() -> None:
    assert split_task("chunk:zip") is None
    assert split_task("storyboard:zip") is None
    assert split_task("chunk:zip/hook/1") == TaskName("chunk", "zip", "hook/1")
    assert split_task("mix:zip") == TaskName("mix", "zip", "")
    assert ad_of_task("chunk:zip", ["zip"]) is None  # `adspec build` counts the beats' own tasks only
    assert aggregate_ad("chunk:zip") == "zip"
    assert aggregate_ad("chunk:zip/hook") is None and aggregate_ad("mix:zip") is None


def test_a_command_naming_an_aggregate_asks_for_its_ad() -> None:
    ads = [("zip", Path("zip.yaml")), ("tea", Path("tea.yaml"))]
    assert asked_ads(["chunk:tea"], ads) == [ads[1]]
    assert asked_ads(["info", "storyboard:zip"], ads) == [ads[0]]
    assert asked_ads([], ads) == ads
