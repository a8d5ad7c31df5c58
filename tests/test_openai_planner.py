"""OpenAIPlanner through the real `openai` client against a fake OpenAI server on loopback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes.openai_server import FakeOpenAI, default_plan  # noqa: E402

from adspec.errors import ProviderError  # noqa: E402
from adspec.library import load_library  # noqa: E402
from adspec.providers.base import PlanRequest  # noqa: E402
from adspec.providers.openai_planner import OpenAIPlanner, check_plan  # noqa: E402
from adspec.registry import load_registry  # noqa: E402
from adspec.spec import BeatPlan  # noqa: E402

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


def test_429_is_retried_by_the_client(fake, tmp_path):
    fake.script.append("429")
    out = tmp_path / "plan.json"
    OpenAIPlanner().run(OpenAIPlanner().plan_recipe(request()), RecordingJob(), out)
    assert fake.count == 2 and fake.headers[1]["x-stainless-retry-count"] == "1"


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
