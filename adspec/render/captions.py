"""Burned-in captions drawn with Pillow: one transparent image per cue, placed inside the
caption band of the frame's safe area, in the brand's colours and a readable bundled font.

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

from ..safe_areas import Box, safe_area

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


def draw_text_block(lines: Sequence[str], style: TextStyle, max_width: int) -> Image.Image:
    """The lines centred on a transparent image with a box or outline for contrast; the font
    shrinks until the widest line fits `max_width`."""
    size = style.size
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    while True:
        font = style.pil_font(size)
        pad = max(2, round(size * 0.35))
        widths = [probe.textlength(line, font=font) for line in lines]
        if max(widths) + 2 * pad <= max_width or size <= MIN_PX:
            break
        size -= 1
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    gap = round(size * style.line_gap)
    w = min(max_width, int(max(widths)) + 2 * pad)
    h = len(lines) * line_h + (len(lines) - 1) * gap + 2 * pad
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


def caption_images(cues: Sequence[Any], out_dir: Path, *, width: int, height: int, aspect_ratio: str,
                   palette: Sequence[str], options: dict[str, Any] | None) -> list[Placed]:
    """One PNG per cue in `out_dir`, positioned centred on the bottom of the caption band."""
    box: Box = safe_area(aspect_ratio).caption_box(width, height)
    style = TextStyle.for_brand(palette, width, height, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    placed = []
    for i, cue in enumerate(cues):
        img = draw_text_block(cue.text.split("\n"), style, box.width)
        if img.height > box.height:  # never outside the band: crop is better than overflow
            img = img.crop((0, 0, img.width, box.height))
        png = out_dir / f"cue-{i:03d}.png"
        img.save(png, format="PNG", compress_level=1)
        x = box.left + (box.width - img.width) // 2
        y = box.bottom - img.height
        placed.append(Placed(png, x, y, cue.start, cue.end))
    return placed
