"""Editing a beat's text like a hand edit (adspec.beat_edit, used by `adspec serve` and `adspec
mcp`): only the edited value's characters change; comments, order, quoting, blank lines and the
other beats stay byte for byte; any string round-trips; mistakes are SpecErrors naming the field."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adspec.beat_edit import content_sha256, set_beat_fields, text_fields
from adspec.errors import SpecError

BEATS = """\
# The beat file: yours to edit.
# yaml-language-server: $schema=../build/schema/beats.schema.json
version: 1
planned_from: {spec_sha256: "abc", planner: offline, library: "1", content_sha256: "def"}
music: {prompt: "driving electronic track", bpm: 128}
beats:
  # 3 s from 1 clip (6 s), 3 s trimmed
  - id: hook                  # stable, unique slug
    type: hook
    duration: 3
    image_prompt: >-
      Striking opening shot in {{ city }}: the TrailRunner X on a wet rock at dawn,
      low angle, mist behind
    motion_prompt: "fast low tracking shot"   # camera

  - id: cta
    type: cta
    duration: 5
    image_prompt: 'The bottle and the logo'
    motion_prompt: pan left
"""


def _changed_lines(before: str, after: str) -> list[int]:
    a, b = before.splitlines(), after.splitlines()
    return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


def test_only_the_edited_value_changes() -> None:
    new = set_beat_fields(BEATS, "cta", {"motion_prompt": "orbit around the bottle"})
    assert new == BEATS.replace("motion_prompt: pan left", "motion_prompt: orbit around the bottle")
    new = set_beat_fields(BEATS, "hook", {"motion_prompt": "slow push-in, then a whip pan"})
    assert new == BEATS.replace('"fast low tracking shot"', '"slow push-in, then a whip pan"')  # quotes and comment kept
    new = set_beat_fields(BEATS, "cta", {"image_prompt": "It's the bottle"})
    assert "    image_prompt: 'It''s the bottle'\n" in new and _changed_lines(BEATS, new) == [18]


def test_a_folded_prompt_stays_folded_and_everything_else_stays() -> None:
    text = "A close-up of the bottle on wet granite, {{ city }} skyline far behind, " * 3
    new = set_beat_fields(BEATS, "hook", {"image_prompt": text.strip()})
    assert yaml.safe_load(new)["beats"][0]["image_prompt"] == text.strip()
    assert "    image_prompt: >-\n      A close-up" in new
    head, tail = BEATS.split("    image_prompt: >-")[0], BEATS.split("low angle, mist behind\n")[1]
    assert new.startswith(head) and new.endswith(tail)
    both = set_beat_fields(BEATS, "hook", {"image_prompt": "short", "motion_prompt": "tilt up"})
    assert yaml.safe_load(both)["beats"][0] | {} == {"id": "hook", "type": "hook", "duration": 3,
                                                     "image_prompt": "short", "motion_prompt": "tilt up"}
    assert [x for x in both.splitlines() if x.lstrip().startswith("#")] == \
           [x for x in BEATS.splitlines() if x.lstrip().startswith("#")]


@settings(max_examples=80, deadline=None)
@given(value=st.text(min_size=1, max_size=200), beat=st.sampled_from(["hook", "cta"]),
       field=st.sampled_from(["image_prompt", "motion_prompt"]))
def test_any_text_round_trips(value: str, beat: str, field: str) -> None:
    new = set_beat_fields(BEATS, beat, {field: value})
    data, before = yaml.safe_load(new), yaml.safe_load(BEATS)
    for b in before["beats"]:
        if b["id"] == beat:
            b[field] = value
    assert data == before
    other = "cta" if beat == "hook" else "hook"
    block = lambda t, bid: t.split(f"- id: {bid}")[1].split("- id:")[0]  # noqa: E731
    if other == "cta" and "- id:" not in value:  # the beats after the edited one are untouched, byte for byte
        assert block(new, "cta") == block(BEATS, "cta")


def test_mistakes_name_the_field() -> None:
    with pytest.raises(SpecError, match="no beat with id 'nope'"):
        set_beat_fields(BEATS, "nope", {"image_prompt": "x"})
    with pytest.raises(SpecError) as e:
        set_beat_fields(BEATS, "hook", {"duration": "9"})
    assert e.value.field == "duration" and "not an editable text field" in e.value.message
    with pytest.raises(SpecError) as e:
        set_beat_fields(BEATS, "hook", {"image_prompt": 3})  # type: ignore[dict-item]
    assert e.value.field == "image_prompt"
    assert text_fields()[:2] == ("image_prompt", "motion_prompt")
    assert content_sha256(BEATS) == content_sha256(BEATS.encode()) != content_sha256(BEATS + " ")


def test_a_spoken_line_and_a_super_are_edited_like_prompts() -> None:
    """The page and agents edit a beat's voiceover and on-screen text too (typed as a string or a
    map of languages): a string in place, a map of languages refused (edit it in the file)."""
    assert {"voiceover", "on_screen"} <= set(text_fields()) and "shows" not in text_fields()
    spoken = BEATS.replace('    motion_prompt: pan left\n', '    motion_prompt: pan left\n    voiceover: Drink more.\n'
                           '    on_screen: {en: Drink more, de: Trink mehr}\n')
    new = set_beat_fields(spoken, "cta", {"voiceover": "Drink more, go further."})
    assert new == spoken.replace("voiceover: Drink more.", "voiceover: Drink more, go further.")
    with pytest.raises(SpecError) as e:
        set_beat_fields(spoken, "cta", {"on_screen": "Drink more"})
    assert e.value.field == "on_screen" and "not a text value" in e.value.message
