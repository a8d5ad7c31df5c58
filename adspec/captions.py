"""Captions of the spoken lines: cues per phrase, timed to where the voice is.

The usual broadcast/social rules: a cue holds at most 2 lines of about 42 characters and stays
at least 1 s on screen; a cue never leaves its beat. Pure given the lines and how long each is
spoken; SRT and WebVTT are written with the `srt` and `webvtt-py` libraries.
"""

from __future__ import annotations

import datetime
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .build_files import Speech

MAX_CHARS = 42  # per caption line
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


def wrap(text: str) -> list[str]:
    """Lines of at most MAX_CHARS; two lines are balanced (no orphan word on the second)."""
    lines = textwrap.wrap(text, MAX_CHARS, break_long_words=True, break_on_hyphens=False)
    if len(lines) == 2:
        for width in range((len(text) + 1) // 2, MAX_CHARS + 1):
            balanced = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
            if len(balanced) == 2:
                return balanced
    return lines


def phrases(text: str) -> list[str]:
    """The line cut where a reader pauses (after . ! ? ; : , and dashes), each piece then cut
    into pieces that wrap to at most MAX_LINES lines."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?;:,…])\s+|\s+[—–-]\s+", text) if p.strip()]
    out: list[str] = []
    for part in parts:
        words, cur = part.split(), ""
        for word in words:
            trial = f"{cur} {word}".strip()
            if cur and len(wrap(trial)) > MAX_LINES:
                out.append(cur)
                cur = word
            else:
                cur = trial
        if cur:
            out.append(cur)
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
