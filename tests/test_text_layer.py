"""Words on screen drawn by code (issue 17): no text asked of the models, supers, the brand end
card, safe zones. Checked at the fake Replicate (what the provider sees, how many requests) and in
the pixels of final.mp4 (OCR with tesseract)."""

from __future__ import annotations

import re

import pytest
from conftest import Project, small_spec
from fakes.replicate_server import FakeReplicate

from adspec.library import load_library, render_template
from adspec.offline_planner import plan_spec_offline
from adspec.spec import Spec

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
TAGLINE = "Drink more every day"
#: words that ask a model to draw text
TEXT_WORDS = re.compile(r"\b(logo|logos|tagline|text|words|lettering|caption|headline|slogan)\b|\"", re.I)


@pytest.fixture
def live(project: Project):
    with FakeReplicate(latency=0.01) as replicate:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN,
                           REPLICATE_BASE_URL=replicate.base_url, REPLICATE_POLL_INTERVAL="0.01")
        yield project, replicate


def prompts_sent(replicate: FakeReplicate, kinds: tuple[str, ...] = ("flux", "hailuo", "veo", "kling", "wan")) -> list[str]:
    out = []
    for body in replicate.create_bodies:
        if any(k in body["slug"] for k in kinds):
            data = body["body"]["input"]
            out.append(" | ".join(str(data.get(f, "")) for f in ("prompt", "negative_prompt")))
    return out


# ---- 1. no text asked of the models ---------------------------------------------------------


def test_library_templates_ask_for_no_words() -> None:
    ctx = {"product": "Widget", "brand": "Acme", "tagline": "Made to last", "style": "calm", "look": "soft light",
           "camera": "slow dolly", "setting": "", "n": 1}
    for bt in load_library().beats.values():
        for field in ("image_prompt", "motion_prompt"):
            out = render_template(getattr(bt, field), ctx)
            assert not TEXT_WORDS.search(out), f"{bt.name}.{field} asks for words: {out}"
            assert "Made to last" not in out


def test_offline_plan_puts_no_tagline_in_prompts_or_lines() -> None:
    spec = Spec.model_validate({"prompt": "A 60-second ad for the Zip bottle", "duration": 60, "style": "calm",
                                "brand": {"name": "Zip", "tagline": TAGLINE}})
    plan = plan_spec_offline(spec)
    assert plan.beats[-1].type in ("cta", "end-card")
    for beat in plan.beats:
        for text in (beat.image_prompt, beat.motion_prompt, beat.voiceover or ""):
            assert TAGLINE not in text and not TEXT_WORDS.search(beat.image_prompt), (beat.id, text)


def test_prompts_sent_to_image_and_video_models_hold_no_tagline(live) -> None:
    project, replicate = live
    spec = small_spec(duration=8)
    spec["brand"]["tagline"] = TAGLINE
    del spec["beats"], spec["music"]  # planned (offline planner: no OpenAI key)
    project.write_spec("zip", spec)
    project.doit()
    sent = prompts_sent(replicate)
    assert len(sent) >= 3
    for prompt in sent:
        assert TAGLINE.lower() not in prompt.lower()
    images = [b["body"]["input"]["prompt"] for b in replicate.create_bodies if "flux" in b["slug"]]
    assert images and all("No text" in p for p in images)
