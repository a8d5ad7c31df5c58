"""Burned-in captions drawn with Pillow: one transparent image per cue, placed inside the
caption band of the frame's safe area (narrowed to the safe zones of the ad's placements: the
band sits above the highest bottom any of them keeps clear), in the brand's colours and a
readable font.

`TextStyle` and `draw_text_block` are the reusable part (any words drawn on the picture);
`caption_images` lays out the cues of an ad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..safe_areas import Box, text_area
from ..text_fit import TextFitError, is_cjk, missing_glyphs, wrap

BASE_SIZE = 0.058  # text height as a fraction of the frame's short side, at size 1.0
MIN_PX = 12


def bundled_font() -> Path:
    """DejaVu Sans Bold, shipped with adspec (see fonts/LICENSE-DejaVu.txt)."""
    return Path(str(resources.files("adspec").joinpath("fonts/DejaVuSans-Bold.ttf")))


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _luminance(hex_colour: str) -> float:
    def lin(c: int) -> float:
        x = c / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1..21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@dataclass(frozen=True)
class TextStyle:
    font: Path
    size: int  # pixels
    color: str  # "#RRGGBB"
    backing: str  # box or outline colour
    box: bool  # a translucent box behind the text, else an outline around the letters
    box_alpha: int = 170
    line_gap: float = 0.22  # of the size

    @classmethod
    def for_brand(cls, palette: Sequence[str], width: int, height: int, opts: dict[str, Any] | None) -> TextStyle:
        """The captions' look from the brand: the text in the brand's lightest colour (white
        when that would not read), on its darkest colour (near-black when too light)."""
        opts = opts or {}
        lightest = max(palette, key=_luminance) if palette else "#FFFFFF"
        darkest = min(palette, key=_luminance) if palette else "#000000"
        backing = darkest if _luminance(darkest) < 0.08 else "#101010"
        color = opts.get("color") or (lightest if contrast(lightest, backing) >= 7 else "#FFFFFF")
        font = Path(opts["font"]) if opts.get("font") else bundled_font()
        size = max(MIN_PX, round(min(width, height) * BASE_SIZE * float(opts.get("size", 1.0))))
        return cls(font=font, size=size, color=color, backing=backing, box=bool(opts.get("box", True)))

    def pil_font(self, size: int | None = None) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(str(self.font), size or self.size)


def _measure(lines: Sequence[str], font: ImageFont.FreeTypeFont, size: int, line_gap: float
             ) -> tuple[int, int, int, list[float]]:
    """(width, height, padding, line widths) of the lines' block at `size`."""
    pad = max(2, round(size * 0.35))
    widths = [float(font.getlength(line)) for line in lines]
    ascent, descent = font.getmetrics()
    h = len(lines) * (ascent + descent) + (len(lines) - 1) * round(size * line_gap) + 2 * pad
    return int(max(widths)) + 2 * pad, h, pad, widths


def _joined(lines: Sequence[str]) -> str:
    """The lines as one text again: joined by a space, or by nothing between two characters of a
    script written without spaces (a line break there was not a space)."""
    out = ""
    for line in lines:
        if out and not (is_cjk(out[-1]) and is_cjk(line[:1] or " ")):
            out += " "
        out += line
    return out


def fit_block(lines: Sequence[str], style: TextStyle, max_width: int, max_height: int) -> tuple[list[str], int] | None:
    """(lines, size) of the largest size from the style's down to MIN_PX at which the block fits
    `max_width` x `max_height`: at each size the lines as given, else their words wrapped again to
    the width (between characters for Chinese and Japanese). Wrapping comes before shrinking: a
    long line was drawn at half the captions' size on one line where two lines fit at full size.
    None: nothing fits."""
    for size in range(style.size, MIN_PX - 1, -1):
        font = style.pil_font(size)
        pad = max(2, round(size * 0.35))
        for rewrap in (False, True):
            cand = wrap(_joined(lines), font, max_width - 2 * pad, 99) if rewrap else list(lines)
            if not cand:
                continue
            w, h, _, _ = _measure(cand, font, size, style.line_gap)
            if w <= max_width and h <= max_height:
                return cand, size
    return None


def draw_text_block(lines: Sequence[str], style: TextStyle, size: int) -> Image.Image:
    """The lines centred on a transparent image at `size`, with a box or outline for contrast."""
    font = style.pil_font(size)
    w, h, pad, widths = _measure(lines, font, size, style.line_gap)
    ascent, descent = font.getmetrics()
    line_h, gap = ascent + descent, round(size * style.line_gap)
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    backing = _rgb(style.backing)
    if style.box:
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=pad // 2, fill=(*backing, style.box_alpha))
    stroke = 0 if style.box else max(1, round(size / 12))
    y = pad
    for line, lw in zip(lines, widths):
        x = (w - lw) / 2
        draw.text((x, y), line, font=font, fill=(*_rgb(style.color), 255), stroke_width=stroke,
                  stroke_fill=(*backing, 255))
        y += line_h + gap
    return img


@dataclass(frozen=True)
class Placed:
    png: Path
    x: int
    y: int
    start: float
    end: float
    lines: tuple[str, ...] = ()  # as wrapped to the band
    size: int = 0  # the font size drawn, px


def caption_images(cues: Sequence[Any], out_dir: Path, *, width: int, height: int, aspect_ratio: str,
                   palette: Sequence[str], options: dict[str, Any] | None,
                   zones: dict[str, dict[str, float]] | None = None) -> list[Placed]:
    """One PNG per cue in `out_dir`, positioned centred on the bottom of the caption band.
    TextFitError (naming the beat and the words) for a cue that does not fit the band at the
    smallest size, or whose font lacks one of its characters: never an overflow or a box."""
    box: Box = text_area(aspect_ratio, (zones or {}).values()).caption_box(width, height)
    style = TextStyle.for_brand(palette, width, height, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    placed = []
    for i, cue in enumerate(cues):
        words = " ".join(cue.text.split())
        missing = missing_glyphs(style.font, cue.text)
        if missing:
            raise TextFitError(f"beat '{cue.beat}': the font {style.font.name} has no glyph for "
                               f"{''.join(missing[:8])!r} in the caption {words!r}; give captions.font (or "
                               "brand.font) a font that covers the script")
        fitted = fit_block(cue.text.split("\n"), style, box.width, box.height)
        if fitted is None:
            where = f" of the aspect and {', '.join(zones)}" if zones else ""
            raise TextFitError(f"beat '{cue.beat}': the caption {words!r} does not fit the caption band{where} "
                               f"({box.width}x{box.height} px) at the smallest size of {MIN_PX} px; shorten the line")
        img = draw_text_block(fitted[0], style, fitted[1])
        png = out_dir / f"cue-{i:03d}.png"
        img.save(png, format="PNG", compress_level=1)
        x = box.left + (box.width - img.width) // 2
        y = box.bottom - img.height
        placed.append(Placed(png, x, y, cue.start, cue.end, tuple(fitted[0]), fitted[1]))
    return placed
