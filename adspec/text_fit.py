"""Where words on screen stand: the pure layout of supers and the end card (no drawing).

Every text is laid out inside the title-safe box of its aspect ratio (adspec.safe_areas),
narrowed to the safe zones of the placements the ad is made for (`zones`: placement id ->
fractions kept clear on each side), in the brand's font, at a size that is a fraction of the
frame's short side: supers start at SUPER_SIZE and shrink, wrapping onto at most SUPER_LINES
lines, down to MIN_SIZE (the readable minimum); a text that still does not fit is a
TextFitError naming the text. Words wrap at spaces; text without spaces (Chinese, Japanese)
wraps between any two characters; right-to-left scripts are laid out right to left by Pillow's
raqm engine. A font that lacks a character of the text is an error too (no boxes on screen).

The result is a list of `Block`s: the text's lines, its font size and its box in pixels. The
text layer (adspec.render.text_layer) draws exactly these boxes and records them in
build/<ad>/text_layout.json.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import ImageFont

from .safe_areas import Box, text_area

#: placement id -> the fractions of the frame it keeps clear of text (left, right, top, bottom)
Zones = Mapping[str, Mapping[str, float]]

SUPER_SIZE = 0.085  # a super's text height at first, as a fraction of the frame's short side
MIN_SIZE = 0.038  # the readable minimum (about 14 px at 360p, 27 px at 720p)
MIN_PX = 12
SUPER_LINES = 2
PAD = 0.35  # box padding, of the font size
LINE_GAP = 0.22  # of the font size
#: the end card's rows: text height as a fraction of the short side at scale 1
CARD_SIZES = {"name": 0.10, "tagline": 0.06, "cta": 0.055, "url": 0.042}
CARD_LOGO = 0.30  # the logo's height, at most, as a fraction of the safe box's height
CARD_GAP = 0.35  # between rows, of the row's size


class TextFitError(ValueError):
    """A text cannot stand inside the safe zone at a readable size (or its font lacks a glyph).
    `field`: where the text comes from (e.g. beats.<id>.on_screen, brand), when known."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class MissingGlyphError(TextFitError):
    """The font has no glyph for a character of the text (it would draw an empty box)."""


def bundled_font() -> Path:
    """DejaVu Sans Bold, shipped with adspec (see fonts/LICENSE-DejaVu.txt): Latin, Greek,
    Cyrillic, Arabic and Hebrew; no Chinese or Japanese (give `brand.font` for those)."""
    return Path(str(resources.files("adspec").joinpath("fonts/DejaVuSans-Bold.ttf")))


@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.RAQM)


def font_problem(path: str | Path) -> str | None:
    """What is wrong with a font file of the spec's, or None: FreeType must open it (a file named
    .ttf that is no font is caught by validate, not by a traceback halfway through a build)."""
    try:
        ImageFont.truetype(str(path), 12)
    except (OSError, ValueError) as e:
        return f"is not a font FreeType can read ({' '.join(str(e).split())[:80]})"
    return None


def font_at(path: str | Path, size: int) -> ImageFont.FreeTypeFont:
    return _font(str(path), int(size))


def is_rtl(text: str) -> bool:
    """True when the text's first strong character is right-to-left (Arabic, Hebrew, ...)."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def is_cjk(ch: str) -> bool:
    """A character of a script written without spaces between words (Chinese, Japanese, Korean's Hanja)."""
    o = ord(ch)
    return (0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF
            or 0x20000 <= o <= 0x3134F)


@lru_cache(maxsize=64)
def _notdef(path: str) -> tuple[tuple[int, int], bytes]:
    mask = _font(path, 32).getmask("\U0010fffd")
    return mask.size, bytes(mask)


def missing_glyphs(font_path: str | Path, text: str) -> list[str]:
    """The characters of `text` the font has no glyph for (it would draw its empty box)."""
    notdef = _notdef(str(font_path))
    font = _font(str(font_path), 32)
    out = []
    for ch in dict.fromkeys(text):  # in the order written
        if ch.isspace() or unicodedata.category(ch).startswith(("C", "M", "Z")):
            continue
        mask = font.getmask(ch)
        if (mask.size, bytes(mask)) == notdef:
            out.append(ch)
    return out


def _tokens(text: str) -> list[str]:
    """Break opportunities: words with their following space; every CJK character alone."""
    out: list[str] = []
    word = ""
    for ch in text:
        if is_cjk(ch):
            if word:
                out.append(word)
                word = ""
            out.append(ch)
        elif ch == " ":
            word += ch
            out.append(word)
            word = ""
        else:
            word += ch
    if word:
        out.append(word)
    return out


def _width(font: ImageFont.FreeTypeFont, text: str) -> float:
    return float(font.getlength(text, direction="rtl" if is_rtl(text) else None))


def wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float, max_lines: int) -> list[str] | None:
    """The text in at most `max_lines` lines no wider than `max_width` (greedy), or None."""
    lines: list[str] = []
    line = ""
    for tok in _tokens(" ".join(text.split())):
        cand = line + tok
        if line and _width(font, cand.rstrip()) > max_width:
            lines.append(line.rstrip())
            line = tok.lstrip()
        else:
            line = cand
    if line.strip():
        lines.append(line.rstrip())
    if len(lines) > max_lines or any(_width(font, x) > max_width for x in lines):
        return None
    return lines


@dataclass(frozen=True)
class Block:
    """One text as it stands on the frame: `box` is its backing box (text plus padding)."""

    role: str  # super | name | tagline | cta | url | logo
    text: str
    lines: tuple[str, ...]
    size: int  # font size in pixels (0 for the logo)
    x: int
    y: int
    w: int
    h: int
    rtl: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def box(self) -> Box:
        return Box(self.x, self.y, self.x + self.w, self.y + self.h)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["lines"] = list(self.lines)
        return d


def measure(lines: Sequence[str], font: ImageFont.FreeTypeFont, size: int) -> tuple[int, int, int]:
    """(box width, box height, padding) of lines in `font`."""
    pad = max(2, round(size * PAD))
    ascent, descent = font.getmetrics()
    gap = round(size * LINE_GAP)
    w = max(_width(font, x) for x in lines)
    h = len(lines) * (ascent + descent) + (len(lines) - 1) * gap
    return int(w + 0.999) + 2 * pad, h + 2 * pad, pad


def _fit(text: str, role: str, font_path: str | Path, start: int, least: int, max_w: int, max_h: int,
         max_lines: int, where: str = "") -> Block:
    missing = missing_glyphs(font_path, text)
    if missing:
        raise MissingGlyphError(f"the font {Path(font_path).name} has no glyph for {''.join(missing[:8])!r} in "
                                f"{text!r}; give brand.font a font that covers the script")
    for size in range(start, least - 1, -1):
        font = font_at(font_path, size)
        pad = max(2, round(size * PAD))
        lines = wrap(text, font, max_w - 2 * pad, max_lines)
        if lines is None:
            continue
        w, h, _ = measure(lines, font, size)
        if w <= max_w and h <= max_h:
            return Block(role, text, tuple(lines), size, 0, 0, w, h, is_rtl(text))
    raise TextFitError(f"{text!r} does not fit the safe zone{where} ({max_w}x{max_h} px) in {max_lines} line(s) "
                       f"at the readable minimum of {least} px; shorten it")


def sizes(width: int, height: int, fraction: float) -> int:
    return max(MIN_PX, round(min(width, height) * fraction))


def _zone_words(zones: Zones | None) -> str:
    """How a message names the safe zone: " of the aspect and tiktok, instagram-reels" (or none)."""
    return f" of the aspect and {', '.join(zones)}" if zones else ""


def super_blocks(texts: Sequence[tuple[str, str]], font_path: str | Path, width: int, height: int,
                 aspect_ratio: str, *, top: bool = True, zones: Zones | None = None) -> list[Block]:
    """Supers (role, text) stacked from the top of the safe box (captions keep the bottom band),
    each centred. TextFitError when one cannot fit at a readable size."""
    area = text_area(aspect_ratio, (zones or {}).values())
    safe = area.title_box(width, height)
    captions = area.caption_box(width, height)
    max_h = max(1, captions.top - safe.top) if top else safe.height
    least, start = sizes(width, height, MIN_SIZE), sizes(width, height, SUPER_SIZE)
    out: list[Block] = []
    y = safe.top
    for role, text in texts:
        scale = 1.0 if role == "super" else 0.7
        b = _fit(text, role, font_path, max(least, round(start * scale)), least, safe.width, max_h, SUPER_LINES,
                 _zone_words(zones))
        if y + b.h > safe.top + max_h:
            raise TextFitError(f"{text!r} does not fit the safe zone{_zone_words(zones)} under the texts above it; "
                               "shorten them")
        out.append(Block(b.role, b.text, b.lines, b.size, safe.left + (safe.width - b.w) // 2, y, b.w, b.h, b.rtl))
        y += b.h + round(b.size * CARD_GAP)
    return out


def end_card_blocks(rows: Sequence[tuple[str, str]], logo_size: tuple[int, int] | None, font_path: str | Path,
                    width: int, height: int, aspect_ratio: str, zones: Zones | None = None) -> list[Block]:
    """The end card: the logo (if any) then the rows (name, tagline, cta, url), centred as one
    stack in the safe box; everything shrinks together until it fits, and a row that would go
    under the readable minimum is a TextFitError naming it."""
    safe = text_area(aspect_ratio, (zones or {}).values()).title_box(width, height)
    least = sizes(width, height, MIN_SIZE)
    scale = 1.0
    while True:
        blocks: list[Block] = []
        if logo_size is not None:
            lw, lh = logo_size
            k = min(safe.height * CARD_LOGO * scale / lh, safe.width * 0.6 / lw)
            blocks.append(Block("logo", "", (), 0, 0, 0, max(1, round(lw * k)), max(1, round(lh * k))))
        for role, text in rows:
            want = round(min(width, height) * CARD_SIZES.get(role, 0.05) * scale)
            if want < least:
                raise TextFitError(f"the end card does not fit the safe zone{_zone_words(zones)}: {text!r} would be "
                                   "under the readable "
                                   f"minimum of {least} px; shorten it or drop a row")
            blocks.append(_fit(text, role, font_path, want, least, safe.width, safe.height, 2, _zone_words(zones)))
        gaps = [round(max(b.size, least) * CARD_GAP) for b in blocks[1:]]
        total = sum(b.h for b in blocks) + sum(gaps)
        if total <= safe.height:
            break
        scale *= 0.9
    y = safe.top + (safe.height - total) // 2
    placed: list[Block] = []
    for i, b in enumerate(blocks):
        placed.append(Block(b.role, b.text, b.lines, b.size, safe.left + (safe.width - b.w) // 2, y, b.w, b.h, b.rtl))
        y += b.h + (gaps[i] if i < len(gaps) else 0)
    return placed


def fit_problem(text: str, font_path: str | Path | None, width: int, height: int, aspect_ratio: str,
                zones: Zones | None = None) -> str | None:
    """Why a super cannot stand on this frame (None: it fits)."""
    try:
        super_blocks([("super", text)], font_path or bundled_font(), width, height, aspect_ratio, zones=zones)
    except TextFitError as e:
        return str(e)
    return None


__all__ = ["Block", "MissingGlyphError", "TextFitError", "Zones", "bundled_font", "end_card_blocks", "fit_problem",
           "font_at", "is_cjk", "is_rtl",
           "measure", "missing_glyphs", "super_blocks", "wrap"]
