"""Captions of the spoken lines: cues per phrase, timed to where the voice is.

The usual broadcast/social rules: a cue holds at most 2 lines of about 42 characters and stays
at least 1 s on screen; a cue never leaves its beat. Widths are display columns: a Chinese,
Japanese or Korean character takes two (21 to a line, near the 13–16 of those languages' own
subtitle rules), and such text breaks between characters, where it has no spaces, and after its
own punctuation (。、！？), never before it. Pure given the lines and how long each is spoken;
SRT and WebVTT are written with the `srt` and `webvtt-py` libraries.
"""

from __future__ import annotations

import datetime
import re
import textwrap
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .build_files import Speech

MAX_CHARS = 42  # display columns per caption line (a wide CJK character is two)
MAX_LINES = 2
MIN_SECONDS = 1.0


@dataclass(frozen=True)
class Cue:
    beat: str
    start: float
    end: float
    text: str  # lines joined by "\n"


@dataclass(frozen=True)
class SpokenLine:
    """A line as the mix places it: `start` is when the voice starts, `seconds` how long it speaks."""

    beat: str
    start: float
    seconds: float
    beat_start: float
    beat_end: float
    text: str


# CJK punctuation a line may end with but never start with (kinsoku); a pause after any of them
_CLOSING = "、。，．！？；：」』）〉》】・…ー々"
_PAUSE = "。、，！？；："


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def width(text: str) -> int:
    """Display columns: two for a wide (CJK) character, one for any other."""
    return sum(2 if _wide(c) else 1 for c in text)


def _tokens(text: str) -> list[str]:
    """The units a line may break between: words, and each wide character on its own; a closing
    mark joins what precedes it (a line may end with it, never start with it). A space is a
    token of its own."""
    out: list[str] = []
    for run in re.findall(r"\s+|\S+", text):
        if run.isspace():
            out.append(" ")
            continue
        word = ""
        for ch in run:
            if ch in _CLOSING:
                if word:
                    word += ch
                elif out and out[-1] != " ":
                    out[-1] += ch
                else:
                    out.append(ch)
            elif _wide(ch):
                if word:
                    out.append(word)
                    word = ""
                out.append(ch)
            else:
                word += ch
        if word:
            out.append(word)
    return out


def _wrap_tokens(text: str, limit: int) -> list[str]:
    """Greedy lines of at most `limit` columns (a token longer than that is cut)."""
    lines, cur = [], ""
    for tok in _tokens(text):
        if tok == " ":
            cur = cur + " " if cur else cur
            continue
        if cur and width(cur.rstrip() + tok) > limit:
            lines.append(cur.rstrip())
            cur = ""
        while width(tok) > limit:  # one unbreakable run wider than a line
            cut = 1
            while cut < len(tok) and width(tok[:cut + 1]) <= limit:
                cut += 1
            lines.append(tok[:cut])
            tok = tok[cut:]
        cur += tok
    if cur.strip():
        lines.append(cur.rstrip())
    return lines


def wrap(text: str) -> list[str]:
    """Lines of at most MAX_CHARS columns; two lines are balanced (no orphan word on the second).
    Text without wide characters is cut by `textwrap` (English cues stay what they were), text
    with them between its tokens (`_wrap_tokens`)."""
    def cut(limit: int, long_words: bool) -> list[str]:
        if any(_wide(c) for c in text):
            return _wrap_tokens(text, limit)
        return textwrap.wrap(text, limit, break_long_words=long_words, break_on_hyphens=False)

    lines = cut(MAX_CHARS, True)
    if len(lines) == 2:
        for w in range((width(text) + 1) // 2, MAX_CHARS + 1):
            balanced = cut(w, False)
            if len(balanced) == 2:
                return balanced
    return lines


def phrases(text: str) -> list[str]:
    """The line cut where a reader pauses (after . ! ? ; : , and dashes, and after CJK's own
    。、！？), each piece then cut into pieces that wrap to at most MAX_LINES lines."""
    parts = [p.strip() for p in re.split(rf"(?<=[.!?;:,…])\s+|(?<=[{_PAUSE}])|\s+[—–-]\s+", text) if p.strip()]
    out: list[str] = []
    for part in parts:
        cur = ""
        for tok in _tokens(part):
            trial = (cur + tok) if tok != " " else cur + " "
            if cur.strip() and tok != " " and len(wrap(trial.strip())) > MAX_LINES:
                out.append(cur.strip())
                cur = tok
            else:
                cur = trial
        if cur.strip():
            out.append(cur.strip())
    return out


def _fits(text: str) -> bool:
    return len(wrap(text)) <= MAX_LINES


def line_cues(line: SpokenLine) -> list[Cue]:
    """Cues for one spoken line: its phrases over the spoken time, in proportion to their length,
    short neighbours merged so each cue lasts at least MIN_SECONDS where the text allows."""
    pieces = phrases(line.text)
    if not pieces:
        return []
    seconds = max(line.seconds, 0.01)
    per_char = seconds / sum(len(p) for p in pieces)
    merged = True
    while merged and len(pieces) > 1:
        merged = False
        shortest = min(range(len(pieces)), key=lambda i: len(pieces[i]))
        if len(pieces[shortest]) * per_char >= MIN_SECONDS:
            break
        for j in sorted((shortest - 1, shortest + 1), key=lambda j: len(pieces[j]) if 0 <= j < len(pieces) else 1e9):
            if 0 <= j < len(pieces):
                a, b = sorted((shortest, j))
                joined = f"{pieces[a]} {pieces[b]}"
                if _fits(joined):
                    pieces[a:b + 1] = [joined]
                    merged = True
                    break
    total = sum(len(p) for p in pieces)
    cues: list[Cue] = []
    t = line.start
    for i, piece in enumerate(pieces):
        end = line.start + seconds * sum(len(p) for p in pieces[: i + 1]) / total
        cues.append(Cue(line.beat, t, end, "\n".join(wrap(piece))))
        t = end
    # at least MIN_SECONDS each where the beat leaves room: stretch the last cue, then shift
    # the first one earlier into the lead-in, never outside the beat
    last = cues[-1]
    if last.end - last.start < MIN_SECONDS:
        cues[-1] = Cue(last.beat, last.start, min(line.beat_end, last.start + MIN_SECONDS), last.text)
    first = cues[0]
    if first.end - first.start < MIN_SECONDS:
        cues[0] = Cue(first.beat, max(line.beat_start, first.end - MIN_SECONDS), first.end, first.text)
    return cues


def cues(lines: Iterable[SpokenLine]) -> list[Cue]:
    return [c for line in lines for c in line_cues(line)]


def _td(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=round(seconds * 1000))


def to_srt(items: list[Cue]) -> str:
    import srt

    return srt.compose([srt.Subtitle(i + 1, _td(c.start), _td(c.end), c.text) for i, c in enumerate(items)],
                       reindex=False)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def to_vtt(items: list[Cue]) -> str:
    import webvtt

    return webvtt.WebVTT(captions=[webvtt.Caption(start=_vtt_time(c.start), end=_vtt_time(c.end), text=c.text)
                                   for c in items]).content


def spoken_lines(speech: Speech, voice_seconds: dict[str, float]) -> list[SpokenLine]:
    """The lines of speech.json (see AdPlan.speech) with how long each voice.wav speaks."""
    out = []
    for line in speech.lines:
        if line.id not in voice_seconds:
            continue
        start = float(line.start) + float(line.lead_in)
        out.append(SpokenLine(line.id, start, voice_seconds[line.id], float(line.start),
                              float(line.start) + float(line.duration), line.text))
    return out


def write_captions(items: list[Cue], srt_path: Path, vtt_path: Path) -> None:
    from .fsutil import write_text_atomic

    write_text_atomic(srt_path, to_srt(items))
    write_text_atomic(vtt_path, to_vtt(items))
