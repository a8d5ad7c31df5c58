"""OpenAIPlanner through the real `openai` client against a fake OpenAI server on loopback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adspec.errors import ProviderError  # noqa: E402
from adspec.library import load_library  # noqa: E402
from adspec.providers.base import PlanRequest  # noqa: E402
from adspec.providers.openai_planner import OpenAIPlanner, check_plan  # noqa: E402
from adspec.registry import load_registry  # noqa: E402
from adspec.spec import BeatPlan  # noqa: E402
from fakes.openai_server import FakeOpenAI, default_plan  # noqa: E402

KEY = "sk-fake-SECRET-abcdef0123456789"


class RecordingJob:
    def __init__(self) -> None:
        self.resume_id = None
        self.sent_before = False
        self.events: list[str] = []

    def sending(self) -> None:
        self.events.append("sending")

    def started(self, job_id: str) -> None:
        self.events.append(f"started:{job_id}")

    def progress(self, status: str) -> None:
        self.events.append(f"progress:{status}")


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch):
    with FakeOpenAI(usage=(1200, 400)) as f:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f.base_url)
        yield f


def request(duration: int = 30, model: str = "gpt-4.1") -> PlanRequest:
    shaping = {"title": "Trailrunner", "prompt": "A trail running shoe that grips wet rock", "duration": duration,
               "style": "energetic", "aspect_ratio": "16:9", "seed": 5, "brand": {"name": "Acme"}}
    return PlanRequest(ad="trailrunner", shaping=shaping, clip_lengths=(6, 10), planner_model=model)


def cost_of(calls: int, model: str = "gpt-4.1") -> float:
    p = load_registry().planner_prices[model]
    return calls * (1200 * p["input"] + 400 * p["output"]) / 1e6


def test_recipe_is_pure_and_carries_library_spec_and_clip_lengths():
    planner = OpenAIPlanner()
    a, b = planner.plan_recipe(request()), planner.plan_recipe(request())
    assert a.key == b.key and a.provider == "openai" and a.kind == "plan" and a.version == "chat.completions"
    user = a.params["messages"][1]["content"]
    lib = load_library()
    assert all(t in user for t in lib.beats) and "[6, 10]" in user and "grips wet rock" in user
    schema = a.params["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["$defs"]["Beat"]["properties"]["type"]["enum"] == list(lib.beats)
    # no dict-typed fields (OpenAI strict mode rejects additionalProperties other than false)
    assert '"additionalProperties": {' not in json.dumps(schema)
    assert planner.plan_recipe(request(45)).key != a.key


@pytest.mark.parametrize("duration", [15, 30, 60])
def test_valid_plan(fake, tmp_path, duration):
    out = tmp_path / "plan.json"
    job = RecordingJob()
    res = OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request(duration)), job, out)
    plan = BeatPlan.model_validate_json(out.read_text())
    assert sum(b.duration for b in plan.beats) == duration and plan.beats[0].type == "hook"
    assert fake.count == 1 and res.job_id == "chatcmpl-1"
    assert res.cost_usd == pytest.approx(cost_of(1))
    body = fake.requests[0]
    assert set(body) == {"model", "messages", "response_format", "seed", "temperature"}
    assert body["model"] == "gpt-4.1" and body["response_format"]["type"] == "json_schema"
    assert fake.headers[0]["authorization"] == f"Bearer {KEY}"
    assert job.events[0] == "sending"


def test_refusal_reasks_once_then_errors(fake, tmp_path):
    fake.script.extend(["refusal", "refusal"])
    out = tmp_path / "plan.json"
    with pytest.raises(ProviderError, match="refused"):
        OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), out)
    assert fake.count == 2 and not out.exists()
    reask = fake.requests[1]["messages"]
    assert reask[-1]["role"] == "user" and "refused" in reask[-1]["content"]


def test_invalid_json_then_valid(fake, tmp_path):
    fake.script.append("invalid_json")
    out = tmp_path / "plan.json"
    res = OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), out)
    assert fake.count == 2 and res.meta["attempts"] == 2
    assert "not valid JSON" in fake.requests[1]["messages"][-1]["content"]
    BeatPlan.model_validate_json(out.read_text())
    assert res.cost_usd == pytest.approx(cost_of(2))  # both calls are paid for


def test_rule_breaking_plan_gets_one_reask_with_the_errors(fake, tmp_path):
    fake.script.append("rule_break")
    out = tmp_path / "plan.json"
    OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), out)
    assert fake.count == 2
    reask = fake.requests[1]["messages"][-1]["content"]
    assert "31 s" in reask  # the durations no longer add up to 30 s


def test_rule_breaking_twice_is_an_error(fake, tmp_path):
    fake.script.extend(["rule_break", "length"])
    out = tmp_path / "plan.json"
    with pytest.raises(ProviderError, match="cut off"):
        OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), out)
    assert fake.count == 2 and not out.exists()


def test_429_is_asked_again_by_adspec_not_the_client(fake, tmp_path):
    fake.script.extend(["429", "429"])
    out = tmp_path / "plan.json"
    res = OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), out)
    assert fake.count == 3 and res.meta["requests"] == 3 and res.meta["billed_requests"] == 1
    assert [h["x-stainless-retry-count"] for h in fake.headers] == ["0", "0", "0"]  # the client resends nothing
    assert res.cost_usd == pytest.approx(cost_of(1))  # a 429 is not billed


# ---- never paid twice per call (issue 12, point 6) ----------------------------------------------


@pytest.mark.parametrize("fault", ["drop", "500", "slow", "html"])
def test_a_request_whose_answer_is_lost_is_never_sent_again(fake, tmp_path, fault):
    """The request reached the server and its answer was lost (connection dropped after the
    request was read, a 5xx, a reply slower than the timeout, a 200 that is no chat completion,
    e.g. a proxy's HTML page): the model may have run and
    billed, so it is sent once, and the error says so. (The client's own retries sent it up
    to 6 times.)"""
    if fault == "slow":
        fake.hold.clear()  # the reply never comes before the timeout
    else:
        fake.script.append(fault)
    planner = OpenAIPlanner(timeout_s=1.0)
    err = None
    try:
        planner.run(planner.plan_recipe(request()), RecordingJob(), tmp_path / "plan.json")
    except ProviderError as e:
        err = e
    finally:
        fake.hold.set()
    assert fake.count == 1, f"{fake.count} POSTs for one plan"
    assert isinstance(err, ProviderError)
    assert err.maybe_billed and err.retryable and err.attempts == 1 and err.spent_usd == 0
    assert "not sent again" in str(err) and "openai planner" in str(err)
    assert not (tmp_path / "plan.json").exists()


def test_refused_connection_is_tried_again_and_costs_nothing(tmp_path, monkeypatch):
    """Nothing was sent: adspec tries again (with backoff), and the error counts nothing."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    waits: list[float] = []
    planner = OpenAIPlanner(max_retries=3, sleep=waits.append)
    with pytest.raises(ProviderError, match="cannot reach the API") as info:
        planner.run(planner.plan_recipe(request()), RecordingJob(), tmp_path / "plan.json")
    assert info.value.attempts == 4 and waits == [0.5, 1.0, 2.0]
    assert not info.value.maybe_billed and info.value.spent_usd == 0


def test_unusable_replies_are_billed_all_the_same(fake, tmp_path):
    fake.script.extend(["refusal", "invalid_json"])
    with pytest.raises(ProviderError) as info:
        OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), tmp_path / "plan.json")
    assert fake.count == 2 and info.value.spent_usd == pytest.approx(cost_of(2), abs=1e-6)
    assert not info.value.maybe_billed


def test_failed_calls_are_on_the_ledger_and_the_budget(fake, tmp_path, monkeypatch):
    """Through the request cache and the run's budget, as the plan step calls the planner: a
    dropped answer and two unusable replies are recorded (the ledger) and counted (the budget);
    a 429 is neither."""
    from adspec.cache import RequestCache
    from adspec.cost import RunBudget, guarded, recipe_price

    monkeypatch.setenv("ADSPEC_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("ADSPEC_RUN_ID", "test-run")
    cache = RequestCache(tmp_path / "cache")
    planner = OpenAIPlanner()
    recipe = planner.plan_recipe(request())
    budget = RunBudget(tmp_path / "build", 5.0, "test-run")

    def fetch():
        return cache.fetch(recipe, guarded(planner.run, "trailrunner plan"), lambda p: None, suffix=".json")

    fake.script.extend(["429", "drop"])
    with pytest.raises(ProviderError, match="not sent again"):
        fetch()
    estimate = recipe_price(recipe).usd
    assert fake.count == 2
    assert budget.state()["spent_usd"] == pytest.approx(estimate)  # the lost answer may be billed
    fake.script.extend(["refusal", "refusal"])
    with pytest.raises(ProviderError, match="refused"):
        fetch()
    assert budget.state()["spent_usd"] == pytest.approx(estimate + cost_of(2), abs=1e-6)
    fetched = fetch()
    assert fake.count == 5 and not fetched.hit
    lines = cache.ledger()
    assert [(x.get("outcome"), x.get("requests"), x.get("maybe_billed")) for x in lines] == [
        ("failed", 2, True), ("failed", 2, False), (None, 1, None)]
    assert [x["cost_usd"] for x in lines] == pytest.approx([0.0, cost_of(2), cost_of(1)], abs=1e-6)
    assert budget.state()["spent_usd"] == pytest.approx(estimate + cost_of(3), abs=1e-6)
    assert budget.state()["reserved"] == {}


def test_401_is_clear_and_secret_free(fake, tmp_path):
    fake.script.append("401")
    with pytest.raises(ProviderError) as ei:
        OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), tmp_path / "p.json")
    assert "OPENAI_API_KEY" in str(ei.value) and KEY not in str(ei.value) and ei.value.retryable is False
    assert fake.count == 1


def test_unknown_model_priced_like_default(fake, tmp_path):
    res = OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request(model="llama3.1:8b")), RecordingJob(), tmp_path / "p.json")
    assert fake.requests[0]["model"] == "llama3.1:8b"
    assert res.cost_usd == pytest.approx(cost_of(1, "gpt-4.1"))


def test_check_plan_rules():
    lib = load_library()
    fake_body = {"messages": [{"role": "user", "content": OpenAIPlanner().plan_recipe(request(30)).params["messages"][1]["content"]}]}
    good = BeatPlan.model_validate(default_plan(fake_body))
    assert check_plan(good, lib, 30) == []
    bad = good.model_copy(deep=True)
    bad.beats.reverse()
    errors = check_plan(bad, lib, 30)
    assert any("first" in e or "open" in e for e in errors) and any("last" in e or "end" in e for e in errors)
    assert any("add up" in e for e in check_plan(good, lib, 31))


def test_a_planned_beat_without_a_prompt_is_sent_back() -> None:
    """Only a person's own media goes without prompts: a planner's beat (never of own media) that
    left one out is a rule it broke, said back to it on the re-ask, not a request made without it."""
    lib = load_library()
    fake_body = {"messages": [{"role": "user", "content": OpenAIPlanner().plan_recipe(request(30)).params["messages"][1]["content"]}]}
    data = default_plan(fake_body)
    del data["beats"][1]["motion_prompt"]
    errors = check_plan(BeatPlan.model_validate(data), lib, 30)
    assert errors == [f"beats.1 '{data['beats'][1]['id']}': motion_prompt is required: the beat's video is asked for "
                      "with it (a beat of your own `footage:` needs none)"], errors
