"""Cost, estimate and budget against the fake providers with known prices: the estimate equals
what the build that follows pays, is 0 on a no-op, names exactly an edited beat's targets; the
budget cap stops a run before any request reaches a server; receipts match the cache."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from adspec.cost import RunBudget, guarded, recipe_price
from adspec.errors import BudgetError
from adspec.providers.base import RunResult
from adspec.recipes import Recipe
from adspec.registry import load_registry, price_for
from conftest import Project, executed_tasks, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
OPENAI_KEY = "sk-FAKE-key-not-real-0000000"


def _unique_media(kind: str, data: dict, seconds: float) -> bytes:
    """An image or clip whose pixels depend on the whole input, as a real model's would."""
    import hashlib
    import subprocess
    import tempfile

    import imageio_ffmpeg

    colour = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:6]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / ("o.png" if kind == "image" else "o.mp4")
        args = ["-f", "lavfi", "-i", f"color=c=0x{colour}:size=320x180:rate=24:duration={seconds}"]
        args += ["-frames:v", "1"] if kind == "image" else ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, str(out)],
                       check=True, capture_output=True)
        return out.read_bytes()


class PricedReplicate(FakeReplicate):
    """Reports the compute time the registry's musicgen rule expects (2 s per second of audio),
    so every price in a build is known before it is paid; images and clips differ with their
    input (the base fake returns one picture per aspect ratio), as a real model's do."""

    def _output_for(self, p):
        import base64

        from fakes.replicate_server import SCHEMAS

        schema = SCHEMAS[p["slug"]]
        if p["output"] is None and schema["kind"] in ("image", "video"):
            seconds = float(p["input"].get("duration", 5))
            blob = _unique_media(schema["kind"], p["input"], seconds)
            mime = "image/png" if schema["kind"] == "image" else "video/mp4"
            item = f"data:{mime};base64," + base64.b64encode(blob).decode()
            p["output"] = [item] if schema["output"] == "list" else item
        return super()._output_for(p)

    def prediction_json(self, p):
        out = super().prediction_json(p)
        if out.get("metrics") and p["slug"] == "meta/musicgen":
            entry = load_registry().models["musicgen"]
            out["metrics"]["predict_time"] = float(entry.price["estimate_predict_seconds"]) * p["input"]["duration"]
        return out


@pytest.fixture
def live(project: Project):
    with PricedReplicate(latency=0.05) as replicate, FakeOpenAI() as openai:
        project.env.update(
            ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
            REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url,
        )
        yield project, replicate, openai


def estimate(project: Project, *names: str) -> dict:
    proc = project.adspec("estimate", "--json", *names)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def spent(project: Project, since: int = 0) -> float:
    return round(sum(e["cost_usd"] for e in project.ledger()[since:]), 6)


def pay_targets(est: dict) -> list[str]:
    return sorted(t["target"] for a in est["ads"] for t in a["targets"] if t["action"] == "pay")


def two_chunk_spec() -> dict:
    spec = small_spec(duration=15)
    spec["beats"][1]["duration"] = 12  # two 6 s clips: chunk 1 starts from chunk 0's last frame
    return spec


def test_estimate_equals_spend_is_zero_on_noop_and_names_an_edited_beat(live) -> None:
    project, replicate, openai = live
    spec = two_chunk_spec()
    project.write_spec("zip", spec)

    est = estimate(project)
    assert est["within_budget"] is True
    # every price is exact but musicgen's, which is billed by compute time (estimated by its rule)
    assert [t["target"] for t in est["ads"][0]["targets"] if not t["exact"]] == ["music:zip"]
    assert pay_targets(est) == ["chunk:zip/cta/0", "chunk:zip/cta/1", "chunk:zip/hook/0", "music:zip",
                                "storyboard:zip/cta", "storyboard:zip/hook"]
    assert replicate.requests == [] and openai.count == 0  # estimating called nothing
    # known prices: flux-dev $0.025/image, hailuo-2.3-fast 768p $0.032/s x 6 s, musicgen 2 s x 15 s x $0.0014
    expected = 2 * 0.025 + 3 * 0.032 * 6 + 0.0014 * 2 * 15
    assert est["total_usd"] == pytest.approx(expected, abs=1e-6)

    out = project.doit("-n", "2", "-P", "thread").stdout
    assert spent(project) == pytest.approx(est["total_usd"], abs=1e-6)
    assert replicate.paid_creates == len(pay_targets(est))
    assert "adspec: zip: built" in out and "spent $0.668; saved $0.00" in out  # the reporter's summary

    cost = json.loads((project.build / "zip" / "cost.json").read_text())
    assert cost["spent_usd"] == pytest.approx(expected, abs=1e-6) and cost["saved_usd"] == 0
    assert cost["total_usd"] == pytest.approx(cost["spent_usd"] + cost["saved_usd"])
    assert cost["phases"]["storyboard"]["spent_usd"] == pytest.approx(0.05)
    assert cost["phases"]["chunks"]["spent_usd"] == pytest.approx(3 * 0.192)
    assert cost["phases"]["music"]["requests"] == 1 and cost["phases"]["plan"]["requests"] == 0
    assert cost["last_run"]["spent_usd"] == pytest.approx(expected, abs=1e-6)

    # no-op: nothing stale, nothing to pay, nothing run
    noop = estimate(project)
    assert noop["total_usd"] == 0 and all(not a["targets"] for a in noop["ads"])
    assert executed_tasks(project.doit().stdout) == []

    # edit one beat: exactly its image and chunks are paid (then the local stitch, mix, page)
    before, creates = len(project.ledger()), replicate.paid_creates
    spec["beats"][1]["image_prompt"] = "The bottle and the logo on a beach"
    project.write_spec("zip", spec)
    edited = estimate(project)
    assert pay_targets(edited) == ["chunk:zip/cta/0", "chunk:zip/cta/1", "storyboard:zip/cta"]
    stale = {t["target"] for t in edited["ads"][0]["targets"]}
    assert stale == {"plan:zip", "storyboard:zip/cta", "chunk:zip/cta/0", "chunk:zip/cta/1", "stitch:zip",
                     "mix:zip", "check:zip", "timeline:zip", "report:zip"}
    assert edited["ads"][0]["phases"]["chunks"]["to_pay"] == 2
    ran = executed_tasks(project.doit().stdout)
    assert stale == {t for t in ran if ":" in t}, sorted(ran)  # the estimate named what the build ran
    assert spent(project, before) == pytest.approx(edited["total_usd"], abs=1e-6) == pytest.approx(0.025 + 2 * 0.192)
    assert replicate.paid_creates - creates == 3

    # edit the words on screen: free; the estimate names the mix and what follows it, as doit runs
    creates = replicate.paid_creates
    spec["beats"][0]["on_screen"] = "Go further"
    project.write_spec("zip", spec)
    worded = estimate(project)
    assert worded["total_usd"] == 0 and pay_targets(worded) == []
    stale = {t["target"] for t in worded["ads"][0]["targets"]}
    assert stale == {"plan:zip", "mix:zip", "check:zip", "report:zip"}, sorted(stale)
    ran = executed_tasks(project.doit().stdout)
    assert stale == {t for t in ran if ":" in t}, sorted(ran)
    assert replicate.paid_creates == creates

    # a new resolution: the storyboards are made again from the cache at the new size, so every chunk
    # starts from a new picture and is a new request: the estimate names them (it said $0, as current)
    before, creates = len(project.ledger()), replicate.paid_creates
    spec["resolution"] = "720p"
    project.write_spec("zip", spec)
    resized = estimate(project)
    assert pay_targets(resized) == ["chunk:zip/cta/0", "chunk:zip/cta/1", "chunk:zip/hook/0"], pay_targets(resized)
    project.doit()
    assert replicate.paid_creates - creates == 3
    assert spent(project, before) == pytest.approx(resized["total_usd"], abs=1e-6)

    # clean: every target is stale, and every one comes from the cache: 0 to pay, then 0 paid
    project.doit("clean")
    cleaned = estimate(project)
    assert cleaned["total_usd"] == 0
    assert {t["action"] for t in cleaned["ads"][0]["targets"]} <= {"cache", "free"}
    assert len([t for t in cleaned["ads"][0]["targets"] if t["action"] == "cache"]) == 6
    creates = replicate.paid_creates
    project.doit()
    assert replicate.paid_creates == creates
    cost = json.loads((project.build / "zip" / "cost.json").read_text())
    assert cost["spent_usd"] == 0 and cost["saved_usd"] == pytest.approx(cost["total_usd"])
    assert cost["saved_usd"] > 0.5

    # receipts match the cache: same key, job id and cost as the entry, and the artifact's bytes
    from adspec.cache import RequestCache
    from adspec.hashing import sha256_file

    cache = RequestCache(project.cache)
    try:
        receipts = sorted((project.build / "zip").rglob("*.receipt.json"))
        assert len(receipts) == 6
        for path in receipts:
            r = json.loads(path.read_text())
            entry = cache.get(r["key"])
            assert entry is not None, path
            assert (r["job_id"], r["cost_usd"]) == (entry.job_id, entry.cost_usd)
            assert r["job_id"] and r["cache_hit"] is True and r["run"]
            assert r["recipe"]["model"] in ("flux-dev", "hailuo-2.3-fast", "musicgen")
            artifact = path.with_name(r["artifact"])
            assert sha256_file(artifact) == r["sha256"]
            if r["recipe"]["kind"] == "music":  # copied as it is (images are normalised, clips conformed)
                assert r["sha256"] == entry.sha256
    finally:
        cache.close()


def test_budget_cap_stops_the_run_before_any_request(live) -> None:
    project, replicate, openai = live
    spec = small_spec()
    del spec["beats"], spec["music"]  # the live planner would be asked first
    project.write_spec("zip", spec)
    est = estimate(project)
    plan = est["ads"][0]["targets"][0]
    assert plan["target"] == "plan:zip" and plan["action"] == "pay" and plan["exact"] is False
    assert est["exact"] is False and est["ads"][0]["notes"]  # the stand-in plan is said
    assert est["total_usd"] > 0.2

    run = project.doit(check=False, ADSPEC_BUDGET_USD="0.10")
    assert run.returncode != 0
    assert replicate.requests == [] and openai.count == 0
    lines = [x for x in run.stdout.splitlines() if x.startswith("FAILED ")]
    assert len(lines) == 1 and lines[0].startswith("FAILED budget: this run would pay about $")
    assert "over the cap of $0.100" in lines[0] and "ADSPEC_BUDGET_USD=" in lines[0]
    assert "####" not in run.stdout + run.stderr and "Traceback" not in run.stdout + run.stderr
    assert not (project.build / "zip" / "plan.json").exists()
    status = json.loads((project.build / "zip" / "status.json").read_text())
    assert status["last_error"]["message"].startswith("not run: the run was stopped before paying anything "
                                                      "(over ADSPEC_BUDGET_USD"), status["last_error"]
    summary = json.loads(project.adspec("build", "--json", ADSPEC_BUDGET_USD="0.10").stdout)
    error = summary["ads"][0]["error"]  # was "budget": the workflow's summary showed only that word
    assert error.startswith("not run: this run would pay about $") and "over the cap of $0.100" in error, error
    # the task that failed is the budget's (it named plan:zip, which only waited on it)
    assert summary["ads"][0]["failed_task"] == "budget" and summary["ads"][0]["tasks"]["failed"] == 0, summary
    assert replicate.requests == [] and openai.count == 0

    # within the cap the same run goes through
    project.doit(ADSPEC_BUDGET_USD="5")
    assert openai.count == 1 and replicate.paid_creates > 0


def test_a_run_refused_over_the_budget_leaves_an_up_to_date_ad_as_it_was(live) -> None:
    """Every task waits on the budget check, so a refused run failed every ad: one built before,
    with nothing to do, showed `failed` ("not run") in status.json and in `adspec build --json`."""
    project, replicate, openai = live
    project.write_spec("done", small_spec())
    project.doit()
    paid = replicate.paid_creates
    other = small_spec(prompt="An ad for the Zap flask")
    for beat in other["beats"]:
        beat["image_prompt"] += ", at dusk"  # new pictures: paid
    project.write_spec("new", other)
    run = project.doit(check=False, ADSPEC_BUDGET_USD="0.05")
    assert run.returncode != 0 and replicate.paid_creates == paid
    assert [x for x in run.stdout.splitlines() if x.startswith("FAILED ")][0].startswith("FAILED budget: ")
    done = json.loads((project.build / "done" / "status.json").read_text())
    assert done["state"] == "done" and done["last_error"] is None, done
    new = json.loads((project.build / "new" / "status.json").read_text())
    assert new["state"] == "failed" and new["last_error"]["message"].startswith("not run: the run was stopped"), new
    assert "adspec: done:" not in run.stdout and "adspec: new: nothing built" in run.stdout, run.stdout
    summary = json.loads(project.adspec("build", "--json", ADSPEC_BUDGET_USD="0.05").stdout)
    by_ad = {a["ad"]: a for a in summary["ads"]}
    assert by_ad["done"]["status"] == "ok" and by_ad["done"]["tasks"]["failed"] == 0, by_ad["done"]
    assert by_ad["new"]["status"] == "failed" and summary["exit_code"] == 1
    assert replicate.paid_creates == paid


def test_the_cap_holds_during_a_run_whose_plan_turns_out_dearer(live) -> None:
    """The live planner picks more beats than the offline stand-in the estimate priced: the run
    starts (estimate under the cap), then every paid call reserves its price first, and the
    calls that would pass the cap fail with one line each; spent never exceeds the cap."""
    project, replicate, openai = live
    spec = small_spec(duration=30)
    del spec["beats"], spec["music"]
    project.write_spec("zip", spec)
    est = estimate(project)
    cap = 1.45
    assert est["total_usd"] < cap
    run = project.doit("-n", "3", "-P", "thread", check=False, ADSPEC_BUDGET_USD=str(cap))
    assert run.returncode != 0 and openai.count == 1
    refused = [x for x in run.stdout.splitlines() if x.startswith("FAILED ")]
    assert refused and all(": budget: " in x and "over the cap of $1.45" in x for x in refused), run.stdout
    assert all(x.startswith(("FAILED chunk:zip/", "FAILED storyboard:zip/", "FAILED music:zip")) for x in refused)
    assert spent(project) <= cap + 1e-9
    assert replicate.paid_creates == len(project.ledger()) - 1  # the planner's call is the other one
    assert "####" not in run.stdout + run.stderr and "Traceback" not in run.stdout + run.stderr
    assert not list((project.build / ".adspec" / "runs").glob("*.json"))  # the run's budget file is gone


def test_estimate_before_any_build_counts_a_shared_request_once(project: Project) -> None:
    one = small_spec()
    two = small_spec(title="Another title")  # same requests as `one`
    project.write_spec("one", one)
    project.write_spec("two", two)
    est = estimate(project)  # offline: free, but what would run is still listed
    assert est["total_usd"] == 0 and est["backend"] == {"media": "offline", "planner": "offline"}
    one_t = {t["target"]: t["action"] for t in est["ads"][0]["targets"]}
    two_t = {t["target"]: t["action"] for t in est["ads"][1]["targets"]}
    assert one_t["storyboard:one/hook"] == "free" and two_t["storyboard:two/hook"] == "cache"
    assert two_t["chunk:two/cta/0"] == "cache"  # keyed by the same (not yet made) first frame
    text = project.adspec("estimate").stdout
    assert "Total to pay: $0.00" in text
    # what it lists is what the build then runs (checks and the timeline included)
    ran = executed_tasks(project.doit().stdout)
    ran_one = {t for t in ran if ":" in t and t.split(":", 1)[1].split("/")[0] == "one"}
    assert set(one_t) == ran_one and f"one: {len(ran_one)} to make" in text, (sorted(one_t), sorted(ran_one))

    # an ad that cannot be estimated: every error of its file under its name, the total says what
    # it leaves out, and the exit is 1 (a CI gate on the estimate does not pass over it)
    bad = project.specs / "bad.yaml"
    bad.write_text("promt: p\nduration: 8\nresolution: 4k\n")
    proc = project.adspec("estimate")
    assert proc.returncode == 1, proc
    out = proc.stdout.splitlines()
    at = out.index("bad: cannot estimate:")
    assert out[at + 1].startswith("  specs/bad.yaml:1: promt: unknown field (did you mean 'prompt'?)"), out
    assert out[at + 2].startswith("  specs/bad.yaml:3: resolution: must be one of"), out
    assert out[-1].endswith("; not counting bad, which cannot be estimated)") and "one: " in proc.stdout, out


# ---- prices and the run budget ---------------------------------------------------------------------


def test_recipe_price_matches_the_replicate_providers_own_figure() -> None:
    """The estimate prices a recipe as the provider prices the call it makes (same rule, same
    inputs read back from the recipe), for every model in the registry."""
    from adspec.providers.replicate_provider import _Call

    reg = load_registry()
    checked = 0
    for name, entry in reg.models.items():
        if entry.provider != "replicate":
            continue
        values = {"prompt": "p", "aspect_ratio": (entry.aspect_ratios or ("16:9",))[0], "seed": 1, "width": 1280,
                  "height": 720, "seconds": (entry.clip_lengths or (8,))[0], "fps": entry.fps, "bpm": 100,
                  "frames": (entry.clip_lengths or (8,))[0] * entry.fps + 1, "native_audio": entry.native_audio,
                  "resolution": next(iter(entry.resolutions.values()), None)}
        from adspec.registry import shape_input

        params, _ = shape_input(entry, values)
        recipe = Recipe("replicate", entry.kind, name, entry.ref, params)
        call = object.__new__(_Call)
        call.entry, call.recipe = entry, recipe
        theirs = price_for(entry, seconds=call._seconds(), native_audio=bool(call._template_value("native_audio")),
                           resolution=call._template_value("resolution"))
        mine = recipe_price(recipe)
        assert mine.usd == pytest.approx(theirs, abs=1e-6), name
        assert mine.exact == ("per_predict_second" not in entry.price)
        checked += 1
    assert checked >= 10


def test_guarded_calls_never_exceed_the_cap_across_threads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ADSPEC_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("ADSPEC_BUDGET_USD", "0.10")
    monkeypatch.setenv("ADSPEC_RUN_ID", "test-run")
    budget = RunBudget(tmp_path / "build", 0.10, "test-run")
    lock = threading.Lock()
    peak = {"now": 0.0, "max": 0.0, "done": 0, "refused": 0}
    recipe = Recipe("replicate", "image", "flux-dev", "black-forest-labs/flux-dev", {"prompt": "x"})  # $0.025

    def provider(recipe, job, out):
        with lock:
            peak["now"] += 0.025
            peak["max"] = max(peak["max"], peak["now"])
        threading.Event().wait(0.02)
        with lock:
            peak["now"] -= 0.025
        return RunResult(job_id="j", cost_usd=0.025)

    def worker() -> None:
        try:
            guarded(provider, "test image")(recipe, object(), tmp_path / "x")
            with lock:
                peak["done"] += 1
        except BudgetError as e:
            assert "over the cap of $0.100" in str(e) and "ADSPEC_BUDGET_USD=" in str(e)
            with lock:
                peak["refused"] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak["done"] == 4 and peak["refused"] == 4  # 4 x $0.025 = the cap
    state = budget.state()
    assert state["spent_usd"] == pytest.approx(0.10) and state["reserved"] == {}
    assert peak["max"] <= 0.10 + 1e-9


def _reserve_many(build: str, n: int, q) -> None:
    b = RunBudget(Path(build), 1.0, "proc-run")
    ok = 0
    for i in range(n):
        try:
            b.reserve(f"{i}-{multiprocessing.current_process().pid}", 0.1, "x")
        except BudgetError:
            continue
        s = b.state()
        q.put(s["spent_usd"] + sum(r["usd"] for r in s["reserved"].values()))
        b.settle(f"{i}-{multiprocessing.current_process().pid}", 0.1)
        ok += 1
    q.put(("ok", ok))


def test_run_budget_is_shared_by_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_reserve_many, args=(str(tmp_path), 6, q)) for _ in range(3)]
    for p in procs:
        p.start()
    results = []
    while len([r for r in results if isinstance(r, tuple)]) < 3:
        results.append(q.get(timeout=30))
    for p in procs:
        p.join(10)
    seen = [r for r in results if not isinstance(r, tuple)]
    assert sum(r[1] for r in results if isinstance(r, tuple)) == 10  # $1.00 cap / $0.10
    assert max(seen) <= 1.0 + 1e-9
    assert RunBudget(tmp_path, 1.0, "proc-run").state()["spent_usd"] == pytest.approx(1.0)


def test_estimate_live_prices_the_live_build_with_no_key_and_no_request(project: Project) -> None:
    """Issue 15, point 5: `adspec estimate --live` with no key set prices what the live
    providers would be paid (the same as the estimate with keys), sending nothing."""
    project.write_spec("inline", small_spec())
    (project.specs / "planned.yaml").write_text("prompt: A 10-second ad for the Zip water bottle\n", encoding="utf-8")
    with PricedReplicate() as replicate, FakeOpenAI() as openai:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_BASE_URL=replicate.base_url, OPENAI_BASE_URL=openai.base_url)
        assert estimate(project)["total_usd"] == 0  # no keys: the offline build is free
        proc = project.adspec("estimate", "--live", "--json")
        assert proc.returncode == 0, proc.stderr
        live = json.loads(proc.stdout)
        assert live["total_usd"] > 0 and live["live"] is True
        assert live["backend"] == {"media": "replicate", "planner": "openai"}
        assert "plan:planned" in pay_targets(live) and "chunk:inline/cta/0" in pay_targets(live)
        assert replicate.requests == [] and openai.count == 0  # nothing was asked
        text = project.adspec("estimate", "--live").stdout
        assert "as the live providers would build it" in text and "Total to pay: about $" in text
        project.env.update(REPLICATE_API_TOKEN=REPLICATE_TOKEN, OPENAI_API_KEY=OPENAI_KEY)
        keyed = estimate(project)  # what a build with keys would be told
        assert keyed["total_usd"] == live["total_usd"] and pay_targets(keyed) == pay_targets(live)
        assert replicate.requests == [] and openai.count == 0


def _translator(body: dict) -> dict:
    """The fake LLM translating every item it is given (prefixed 'DE ')."""
    import re

    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    items = json.loads(re.search(r"<items>\s*(.*?)\s*</items>", user, re.S).group(1))
    return {"items": [{"key": i["key"], "text": f"DE {i['text']}"} for i in items]}


def test_estimate_prices_a_language_variants_translation_once_per_beat_file_and_language(project: Project) -> None:
    """Issue 17: the LLM planner translates the texts a language variant lacks in one cached call
    per beat file and language; the estimate counts it at the planner model's price, once for
    the variants that share it, and at nothing once it is cached."""
    spec = small_spec()
    spec["beats"][0]["voiceover"] = "Meet the Zip bottle."
    spec["brand"].update(cta="Shop now")
    spec["variants"] = {"matrix": {"language": ["en", "de"], "seed": [1, 2]}}
    project.write_spec("zip", spec)
    with FakeOpenAI(responder=_translator) as openai:
        project.env.update(ADSPEC_BACKEND="", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url)
        est = estimate(project)
        assert est["backend"] == {"media": "offline", "planner": "openai"}
        calls = {a["ad"]: [t for t in a["targets"] if "translation" in t["note"]] for a in est["ads"]}
        assert calls["zip@en-1"] == calls["zip@en-2"] == []  # nothing to translate into English
        first, second = calls["zip@de-1"], calls["zip@de-2"]
        assert len(first) == len(second) == 1
        assert first[0]["target"] == "plan:zip@de-1" and first[0]["action"] == "pay"
        assert first[0]["model"] == load_registry().planner_default and "translation into de" in first[0]["note"]
        assert 0 < first[0]["usd"] < 0.05 and est["total_usd"] == first[0]["usd"]  # the media are offline: free
        assert second[0]["action"] == "cache" and second[0]["usd"] == 0 and second[0]["key"] == first[0]["key"]
        assert openai.count == 0  # an estimate asks nothing

        out = project.doit("plan:zip@de-1").stdout  # the plan step translates (the one paid call)
        assert openai.count == 1
        # and says it paid for it: the run, cost.json and the translation's receipt (it said $0.00)
        import re

        said = re.search(r"zip@de-1: .*spent \$([0-9.]+);", out)
        assert said and float(said.group(1)) > 0, out
        cost = json.loads((project.build / "zip@de-1" / "cost.json").read_text())
        assert cost["phases"]["plan"]["spent_usd"] == cost["spent_usd"] == pytest.approx(float(said.group(1)), abs=1e-4)
        texts = json.loads((project.build / "zip@de-1" / "translation.json").read_text())
        assert texts["language"] == "de" and "beats.hook.voiceover" in texts["texts"], texts
        assert json.loads((project.build / "zip@de-1" / "translation.receipt.json").read_text())["cache_hit"] is False
        after = estimate(project)
        again = [t for a in after["ads"] if a["ad"] == "zip@de-2" for t in a["targets"] if "translation" in t["note"]]
        assert [(t["action"], t["usd"]) for t in again] == [("cache", 0)] and after["total_usd"] == 0
        assert not [t for a in after["ads"] if a["ad"] == "zip@de-1" for t in a["targets"] if "translation" in t["note"]]


def test_the_lines_a_translation_will_write_are_priced_before_it_is_asked(project: Project) -> None:
    """Before the translation was asked, its source texts stood in for a language variant's lines:
    their speech recipes were the source ad's, so they showed as `cache` (free) and the build paid
    for lines the estimate (and the budget) never counted (found by a review)."""
    spec = small_spec()
    spec["beats"][0]["voiceover"] = "Meet the Zip bottle."
    spec["beats"][1]["voiceover"] = "Drink more, carry less."
    spec["models"] = {"planner": "gpt-4.1"}
    spec["variants"] = {"matrix": {"language": ["en", "de"]}}
    project.write_spec("zip", spec)
    with PricedReplicate(latency=0.05) as replicate, FakeOpenAI(responder=_translator) as openai:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                           REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url)
        est = estimate(project)
        voices = {a["ad"]: [t for t in a["targets"] if t["phase"] == "voice"] for a in est["ads"]}
        assert [t["action"] for t in voices["zip@en"]] == ["pay", "pay"]
        de = voices["zip@de"]
        assert [(t["action"], t["key"], t["exact"]) for t in de] == [("pay", None, False)] * 2, de
        assert all("a line not translated yet" in t["note"] and t["usd"] > 0 for t in de)
        project.doit()
        spoken = sum(n for slug, n in replicate.creates_by_model.items() if "speech" in slug)
        assert spoken == sum(1 for ts in voices.values() for t in ts if t["action"] == "pay") == 4, \
            replicate.creates_by_model


def test_the_estimate_says_why_an_ad_asking_for_native_audio_gets_music(project: Project) -> None:
    spec = small_spec(resolution="720p", native_audio=True, models={"video": "veo-3.1-fast"})
    spec["beats"][1]["models"] = {"video": "hailuo-2.3-fast"}
    project.write_spec("zip", spec)
    notes = json.loads(project.adspec("estimate", "--json").stdout)["ads"][0]["notes"]
    assert [n for n in notes if n.startswith("native_audio: true, but hailuo-2.3-fast makes no sound")], notes
    del spec["beats"][1]["models"]  # every beat on Veo: its own sound, no note
    project.write_spec("zip", spec)
    notes = json.loads(project.adspec("estimate", "--json").stdout)["ads"][0]["notes"]
    assert not [n for n in notes if n.startswith("native_audio")], notes
