"""Caption cues are cut by display width: a line of English keeps its words whole, a line of
Japanese or Chinese (no spaces) breaks between characters, after its own punctuation, and a wide
character takes two of a line's 42 columns."""

from __future__ import annotations

from adspec.captions import MAX_CHARS, MAX_LINES, SpokenLine, line_cues, width

CLOSING = "、。，！？」"


def cues_of(text: str, seconds: float = 8.0) -> list[str]:
    return [c.text for c in line_cues(SpokenLine("hook", 0.0, seconds, 0.0, seconds + 1, text))]


def check_lines(cues: list[str]) -> None:
    for cue in cues:
        lines = cue.split("\n")
        assert 1 <= len(lines) <= MAX_LINES, cue
        assert all(width(line) <= MAX_CHARS for line in lines), cue
        assert not any(line[0] in CLOSING for line in lines), cue  # no line starts with a closing mark


def test_english_cues_keep_whole_words() -> None:
    text = ("Trail runners know the feeling, the moment the ground turns to scree and every step counts "
            "because one slip ends the race before it has begun.")
    cues = cues_of(text)
    check_lines(cues)
    assert " ".join(" ".join(c.split("\n")) for c in cues).split() == text.split()
    assert len(cues) >= 2


def test_japanese_cues_break_between_characters_within_21_wide_characters() -> None:
    text = "新しいトレイルランニングシューズは、どんな山道でもあなたの足をしっかり守ります。今すぐ公式サイトでチェックしてください！"
    cues = cues_of(text)
    check_lines(cues)
    assert "".join(c.replace("\n", "") for c in cues) == text  # every character, in order, none added
    assert max(len(line) for c in cues for line in c.split("\n")) <= MAX_CHARS // 2
    assert any(c.endswith("。") for c in cues)  # a cue ends where the sentence does
    # before: one cue of 40+ characters a line (42 characters, not columns)
    assert len(cues) >= 3


def test_mixed_scripts_keep_latin_words_whole() -> None:
    text = "Zip ボトルで、もっと水を飲もう。Shop now at zip.example"
    cues = cues_of(text)
    check_lines(cues)
    joined = " ".join(c.replace("\n", " ") for c in cues)
    assert "zip.example" in joined and "Shop now" in joined.replace("\n", " ")
