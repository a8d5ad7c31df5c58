"""CI use: `adspec build` finishes the other ads when one fails, exits non-zero, and prints a
machine-readable summary; ADSPEC_SHARD splits the ads (variants expanded) so that each is in
exactly one shard; the example GitHub Actions workflow says what it should."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest
import yaml

from adspec import media
from adspec.shard import ShardError, parse_shard, shard_of, shards_of, take
from conftest import REPO, Project, small_spec


def variant_spec() -> dict:
    spec = small_spec(title="Multi")
    spec["vars"] = {"city": "Denver"}
    spec["beats"][0]["image_prompt"] = "A bottle above {{ city }}"
    spec["variants"] = {"matrix": {"aspect_ratio": ["16:9", "9:16"]}}
    return spec


def summary_of(proc) -> dict:
    return json.loads(proc.stdout)  # stdout holds the JSON and nothing else


def test_build_finishes_the_others_reports_each_ad_and_splits_into_shards(project: Project) -> None:
    project.write_spec("good", small_spec())
    project.write_spec("multi", variant_spec())
    broken = project.specs / "broken.yaml"
    broken.write_text("title: Broken\nprompt: An ad for the Zip bottle\nduration: 500\n", encoding="utf-8")
    everything = ["broken", "good", "multi@16x9", "multi@9x16"]

    # two shards: every ad in exactly one; the shard with the broken ad fails, the other does not
    one = project.adspec("build", "--json", "-n", "2", ADSPEC_SHARD="1/2")
    two = project.adspec("build", "--json", ADSPEC_SHARD="2/2")
    s1, s2 = summary_of(one), summary_of(two)
    ads1, ads2 = [a["ad"] for a in s1["ads"]], [a["ad"] for a in s2["ads"]]
    assert sorted(ads1 + ads2) == everything and not set(ads1) & set(ads2)
    assert (s1["shard"], s2["shard"]) == ("1/2", "2/2")
    assert ads1 == ["broken", "good"] and ads2 == ["multi@16x9", "multi@9x16"]  # contiguous blocks of the sorted names
    assert one.returncode == 1 and s1["ok"] is False and s1["exit_code"] == 1
    assert two.returncode == 0 and s2["ok"] is True, two.stderr
    # the broken ad: failed, with the one-line error naming file, line and field; the others built
    by_ad = {a["ad"]: a for a in s1["ads"] + s2["ads"]}
    bad = by_ad["broken"]
    assert bad["status"] == "failed" and bad["final"] is None and bad["failed_task"] == "plan:broken"
    assert "broken.yaml:3: duration: must be between 5 and 180" in bad["error"]
    for ad in ("good", "multi@16x9", "multi@9x16"):
        row = by_ad[ad]
        assert row["status"] == "ok" and row["error"] is None, row
        final = project.root / row["final"] if not Path(row["final"]).is_absolute() else Path(row["final"])
        assert final.resolve() == (project.build / ad / "final.mp4").resolve()
        assert media.probe(final).duration == pytest.approx(8, abs=0.08)
    assert media.probe(project.build / "multi@9x16" / "final.mp4").height == 640
    t1, t2 = s1["totals"], s2["totals"]
    assert (t1["ads"], t1["ok"], t1["failed"]) == (2, 1, 1) and (t2["ads"], t2["ok"], t2["failed"]) == (2, 2, 0)
    # shard 1: good's 2 images, 2 chunks, music. Shard 2 shares good's music and 16:9 cta (same
    # recipes, from the cache): the 16:9 hook (it names the city) image + chunk, and 9:16's 2 + 2
    assert t1["requests_run"] == 5 and t2["requests_run"] == 2 + 4
    # the broken ad's plan failed; the tasks that waited on it are not run, not failed (they were counted so)
    assert bad["tasks"]["failed"] == 1 and bad["tasks"]["not_run"] >= 5 and bad["tasks"]["run"] == 0, bad["tasks"]
    assert (t1["tasks_failed"], t2["tasks_failed"], t2["tasks_not_run"]) == (1, 0, 0)
    assert t1["tasks_not_run"] == bad["tasks"]["not_run"]
    assert "Traceback" not in one.stderr + two.stderr

    # the whole set, human-readable: nothing left to run, still exit 1 while broken is broken
    again = project.adspec("build")
    assert again.returncode == 1
    assert "3 of 4 ads built, 1 failed" in again.stdout
    assert "FAILED  broken" in again.stdout and "ok      good" in again.stdout
    # fixed: the named ad builds, exit 0; a spec name stands for its variants
    broken.write_text("title: Broken\nprompt: An ad for the Zip bottle\nduration: 8\nresolution: 360p\n"
                      "beats:\n  - {id: hook, type: hook, duration: 3, image_prompt: a, motion_prompt: b}\n"
                      "  - {id: cta, type: cta, duration: 5, image_prompt: c, motion_prompt: d}\n", encoding="utf-8")
    fixed = summary_of(project.adspec("build", "--json", "broken", "multi"))
    assert [a["ad"] for a in fixed["ads"]] == ["broken", "multi@16x9", "multi@9x16"] and fixed["ok"] is True
    assert fixed["totals"]["tasks_run"] >= 1  # broken was built now; multi was up to date
    unknown = project.adspec("build", "nope")
    assert unknown.returncode == 1 and "no ad named nope" in unknown.stderr and "Traceback" not in unknown.stderr


def test_doit_takes_the_shard_too(project: Project) -> None:
    project.write_spec("good", small_spec())
    project.write_spec("multi", variant_spec())
    listed = project.doit("list", ADSPEC_SHARD="2/2").stdout.split()
    assert "multi@16x9" in listed and "multi@9x16" in listed and "multi" in listed and "good" not in listed
    listed = project.doit("list", ADSPEC_SHARD="1/2").stdout.split()
    assert "good" in listed and "multi@9x16" not in listed and "multi" not in listed
    bad = project.doit("list", check=False, ADSPEC_SHARD="3/2")
    assert bad.returncode != 0 and "adspec: ADSPEC_SHARD='3/2'" in bad.stderr and "Traceback" not in bad.stderr
    bad = project.adspec("build", ADSPEC_SHARD="half")
    assert bad.returncode == 1 and "ADSPEC_SHARD='half': write i/n" in bad.stderr and "Traceback" not in bad.stderr
    # a huge shard count: doit list looked at every shard (1/10**12 never ended)
    huge = project.doit("list", ADSPEC_SHARD=f"1/{10**12}", timeout=60).stdout.split()
    assert "good" not in huge and "multi" not in huge  # three ads: none in shard 1 of 10**12
    far = project.doit("good", check=False, ADSPEC_SHARD=f"1/{10**12}", timeout=60)
    assert far.returncode != 0 and f"good is built by shard 333333333334/{10**12}" in far.stderr, far.stderr
    bad = project.doit("list", check=False, ADSPEC_SHARD="2/0")
    assert bad.returncode != 0 and "n is the number of shards, at least 1" in bad.stderr
    # an ad named on the command line but built by another shard is said so (it was dropped without a word:
    # `adspec build` reported 0 ads, doit "Invalid parameter")
    elsewhere = "multi is built by shard 2/2, not by this runner's 1/2 (ADSPEC_SHARD): nothing of it is built here"
    bad = project.doit("multi@9x16", "multi", check=False, ADSPEC_SHARD="1/2")
    assert bad.returncode != 0 and f"adspec: {elsewhere}" in bad.stderr.splitlines(), bad.stderr
    assert "adspec: multi@9x16 is built by shard 2/2" in bad.stderr and "Invalid parameter" not in bad.stdout + bad.stderr
    quiet = project.adspec("build", "--json", "multi", ADSPEC_SHARD="1/2")
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["ads"] == [] and f"adspec build: {elsewhere}" in quiet.stderr


def test_shards_are_a_stable_balanced_partition() -> None:
    rng = random.Random(7)
    for _ in range(200):
        names = ["".join(rng.choices(string.ascii_lowercase + "@-", k=rng.randint(1, 12))) for _ in range(rng.randint(0, 40))]
        names = sorted(set(names))
        for n in range(1, 7):
            shards = [shard_of(names, i, n) for i in range(1, n + 1)]
            flat = [a for s in shards for a in s]
            assert sorted(flat) == names and len(flat) == len(set(flat))  # each in exactly one shard
            sizes = [len(s) for s in shards]
            assert max(sizes) - min(sizes) <= 1  # balanced
            shuffled = names[:]
            rng.shuffle(shuffled)
            assert [shard_of(shuffled, i, n) for i in range(1, n + 1)] == shards  # stable: order does not matter
            where = shards_of(names, n)  # each name's shard, found directly (n may be huge)
            assert all(where[a] == i for i, s in enumerate(shards, 1) for a in s)
    ads = [(a, Path("x.yaml")) for a in ("b", "a@1", "a@2", "c")]
    kept, groups = take(ads, {"a": ["a@1", "a@2"]}, (1, 2))
    assert [a for a, _ in kept] == ["a@1", "a@2"] and groups == {"a": ["a@1", "a@2"]}
    kept, groups = take(ads, {"a": ["a@1", "a@2"]}, (2, 2))
    assert [a for a, _ in kept] == ["b", "c"] and groups == {}
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1) and parse_shard("") is None
    for bad in ("0/4", "5/4", "1/0", "a/b", "2", "-1/2"):
        with pytest.raises(ShardError):
            parse_shard(bad)


def test_example_workflow_renders_shards_with_a_budget_cache_and_artifacts() -> None:
    from adspec.cli import build_parser

    doc = yaml.safe_load((REPO / "examples" / "github-actions.yml").read_text(encoding="utf-8"))
    job = doc["jobs"]["render"]
    shards = job["strategy"]["matrix"]["shard"]
    n = len(shards)
    assert shards == list(range(1, n + 1)) and n >= 2 and job["strategy"]["fail-fast"] is False
    env = job["env"]
    assert env["ADSPEC_SHARD"] == "${{ matrix.shard }}/" + str(n)
    assert float(env["ADSPEC_BUDGET_USD"]) > 0
    assert doc["permissions"] == {"contents": "read"}
    cache_dir = doc["env"]["ADSPEC_CACHE_DIR"]  # one place for every job
    steps = job["steps"]
    uses = {s.get("uses", "").split("@")[0]: s for s in steps if "uses" in s}
    restore = uses["actions/cache/restore"]
    assert restore["with"]["path"] == "${{ env.ADSPEC_CACHE_DIR }}" and cache_dir.endswith(".adspec-cache")
    assert restore["with"]["restore-keys"].strip() == "adspec-requests-"  # the same merged cache on every shard
    assert "actions/cache/save" not in uses  # shards never save: the cache job merges and saves
    merged = {s.get("uses", "").split("@")[0]: s for s in doc["jobs"]["cache"]["steps"] if "uses" in s}
    assert "paid.outputs.any" in merged["actions/cache/save"]["if"]  # only when something was paid
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact") and "ads-" in s["with"]["name"])
    paths = upload["with"]["path"].split()
    assert {"build/*/final.mp4", "build/*/index.html", "build/*/beats/*/storyboard.png"} <= set(paths)
    assert {"build/*/export/*.mp4", "build/*/checks.json", "build/*/timeline.otio"} <= set(paths)  # what ships
    assert upload["if"] == "always()"
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "adspec build --json" in runs and "adspec validate" in runs
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001
    assert {"build", "validate"} <= commands
    # secrets come from the repository's secrets, never written into the file
    for name in ("REPLICATE_API_TOKEN", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert env[name].startswith("${{ secrets.")


def test_status_of_a_spec_that_now_has_variants_shows_them_not_its_old_build(project: Project) -> None:
    # `adspec status multi` showed build/multi (done, from before the spec had variants)
    project.write_spec("multi", small_spec(title="Multi"))
    project.doit()
    project.write_spec("multi", variant_spec())
    rows = json.loads(project.adspec("status", "--json", "multi").stdout)
    assert [(r["ad"], r["state"]) for r in rows] == [("multi@16x9", "not built"), ("multi@9x16", "not built")], rows
    # one ad built by name (as the studio and agents build): the index its page links to is there too
    (project.build / "index.html").unlink()
    assert project.adspec("build", "multi@16x9").returncode == 0
    index = (project.build / "index.html").read_text()
    assert "multi@16x9" in index and "multi@9x16" in index
    (project.specs / "multi.yaml").unlink()  # a build whose spec is gone is still found by its name
    rows = json.loads(project.adspec("status", "--json", "multi").stdout)
    assert [(r["ad"], r["state"]) for r in rows] == [("multi", "done")], rows
