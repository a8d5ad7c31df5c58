"""Issue 15, point 4: the offline planner reads the prompt (duration, aspect ratio, occasion,
features), deterministically, with no stray spaces where a field is empty."""

from __future__ import annotations

from pathlib import Path

from adspec.ads import expansion
from adspec.loader import parse_spec_text
from adspec.offline_planner import plan_spec_offline
from adspec.plan_rules import plan_problems

HOLIDAY = "prompt: a 15-second vertical holiday ad for the Zoom runner with ultralight, springy foam\n"


def _texts(plan) -> str:  # type: ignore[no-untyped-def]
    return " ".join(f"{b.image_prompt} {b.motion_prompt} {b.voiceover or ''}" for b in plan.beats)


def test_the_prompt_shapes_the_offline_plan() -> None:
    spec, errors = parse_spec_text(HOLIDAY, "specs/zoom.yaml")
    assert not errors and spec is not None
    assert (spec.duration, spec.aspect_ratio) == (15, "9:16")
    plan = plan_spec_offline(spec)
    assert sum(b.duration for b in plan.beats) == 15
    assert plan_problems(plan, 15) == []
    words = _texts(plan)
    assert "holiday" in words and "springy foam" in words and "ultralight" in words
    spoken = " ".join(b.voiceover or "" for b in plan.beats)
    assert "springy foam" in spoken  # on screen (the storyboard's words) and spoken
    assert plan_spec_offline(spec) == plan  # deterministic


def test_the_spec_wins_over_the_prompt() -> None:
    spec, _ = parse_spec_text(HOLIDAY + "duration: 20\naspect_ratio: '1:1'\nstyle: calm\n", "specs/zoom.yaml")
    assert spec is not None and (spec.duration, spec.aspect_ratio, spec.style) == (20, "1:1", "calm")
    assert sum(b.duration for b in plan_spec_offline(spec).beats) == 20


def test_a_style_word_in_the_prompt_picks_the_style() -> None:
    spec, _ = parse_spec_text("prompt: an energetic ad for the Zoom runner\n", "specs/zoom.yaml")
    assert spec is not None and spec.style == "energetic"
    assert plan_spec_offline(spec).music.bpm == 128  # the energetic style's tempo


def test_a_named_variants_prompt_changes_its_beats(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    path = specs / "zoom.yaml"
    path.write_text(
        "prompt: A 20-second ad for the Zoom runner\n"
        "variants:\n  named:\n    base: {}\n"
        "    holiday: {prompt: 'A 20-second holiday ad for the Zoom runner with springy foam'}\n", encoding="utf-8")
    variants = {v.name: v.spec for v in expansion(path).variants}
    base, holiday = (_texts(plan_spec_offline(variants[n])) for n in ("base", "holiday"))
    assert "holiday" not in base and "springy foam" not in base
    assert "holiday" in holiday and "springy foam" in holiday


def test_no_stray_spaces_when_a_field_is_empty() -> None:
    spec, _ = parse_spec_text("prompt: A 30-second ad for the Zoom runner\n", "specs/zoom.yaml")
    assert spec is not None and spec.brand.tagline is None
    for beat in plan_spec_offline(spec).beats:
        for text in (beat.image_prompt, beat.motion_prompt, beat.voiceover or ""):
            assert " ," not in text and "  " not in text and ",," not in text, (beat.id, text)


def test_no_occasion_asks_an_image_model_for_words() -> None:
    """Every word on screen is drawn by code: what an occasion adds to the image prompts never
    asks for text (Black Friday asked for "bold sale signage", against the prompts' own "No text,
    ... signage")."""
    import re

    from adspec.library.prompt_reader import prompt_words

    asks_for_text = re.compile(r"\b(text|letters?|words?|captions?|sign|signs|signage|logos?|banners?|posters?|"
                               r"labels?|slogans?|headlines?|typography)\b", re.IGNORECASE)
    occasions = prompt_words().occasions
    assert occasions and not {k: v for k, v in occasions.items() if asks_for_text.search(v)}
