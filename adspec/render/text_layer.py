"""The text layer: supers, the cta beat's call to action and the brand end card, drawn with Pillow
as transparent pictures the mix lays over the video (one re-encode per ad, at the end).

Input: build/<ad>/text.json (AdPlan.text_inputs). Layout: adspec.text_fit (every box inside the
title-safe zone of the aspect, narrowed to the safe zones of the ad's placements of that aspect).
Output: one PNG per text with its place, time span and fade, and the layout as JSON
(build/<ad>/text_layout.json). Nothing here asks a provider: changing a word, the logo, the font,
a colour or a placement re-renders locally and pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw

from ..images import open_image
from ..safe_areas import text_area
from ..text_fit import (
    Block,
    MissingGlyphError,
    TextFitError,
    bundled_font,
    end_card_blocks,
    font_at,
    measure,
    super_blocks,
)
from .captions import _luminance, _rgb, contrast

FADE = 0.25  # seconds a super takes to fade in, and out
SUPER_LEAD = 0.2  # a super appears this long after its beat starts
SUPER_TAIL = 0.1  # and is gone this long before it ends
BOX_ALPHA = 175


@dataclass(frozen=True)
class Drawn:
    png: Path
    x: int
    y: int
    start: float
    end: float
    fade: float
    beat: str
    blocks: tuple[Block, ...]  # the texts in this picture, in frame coordinates


def best_on(background: str, palette: Sequence[str]) -> str:
    """The palette colour (or white / near-black) that reads best on `background`."""
    return max([*palette, "#FFFFFF", "#111111"], key=lambda c: (contrast(c, background) >= 7, contrast(c, background)))


def super_colours(palette: Sequence[str]) -> tuple[str, str]:
    """(text, box) for supers over video: the brand's lightest colour on its darkest, as captions."""
    lightest = max(palette, key=_luminance) if palette else "#FFFFFF"
    darkest = min(palette, key=_luminance) if palette else "#000000"
    box = darkest if _luminance(darkest) < 0.08 else "#101010"
    return (lightest if contrast(lightest, box) >= 7 else "#FFFFFF"), box


def _draw_lines(draw: ImageDraw.ImageDraw, b: Block, font_path: str, colour: str, ox: int, oy: int) -> None:
    font = font_at(font_path, b.size)
    w, h, pad = measure(b.lines, font, b.size)
    ascent, descent = font.getmetrics()
    gap = round(b.size * 0.22)
    y = oy + b.y + pad
    for line in b.lines:
        direction = "rtl" if b.rtl else None
        lw = font.getlength(line, direction=direction)
        x = ox + b.x + (b.w - lw) / 2
        draw.text((x, y), line, font=font, fill=(*_rgb(colour), 255), direction=direction)
        y += ascent + descent + gap


def _super_picture(blocks: Sequence[Block], font_path: str, palette: Sequence[str]) -> tuple[Image.Image, int, int]:
    """The blocks on one transparent picture (placed at the union of their boxes)."""
    text, box = super_colours(palette)
    accent = palette[0] if palette else "#FF5A1F"
    x0, y0 = min(b.x for b in blocks), min(b.y for b in blocks)
    x1, y1 = max(b.x + b.w for b in blocks), max(b.y + b.h for b in blocks)
    img = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for b in blocks:
        rect = (b.x - x0, b.y - y0, b.x - x0 + b.w - 1, b.y - y0 + b.h - 1)
        radius = max(2, round(b.size * 0.35)) // 2
        if b.role == "cta":  # the call to action as a button in the brand's main colour
            fg = best_on(accent, palette)
            draw.rounded_rectangle(rect, radius=radius * 2, fill=(*_rgb(accent), 255))
            _draw_lines(draw, b, font_path, fg, -x0, -y0)
        else:
            draw.rounded_rectangle(rect, radius=radius, fill=(*_rgb(box), BOX_ALPHA))
            _draw_lines(draw, b, font_path, text, -x0, -y0)
    return img, x0, y0


def _card_picture(blocks: Sequence[Block], font_path: str, palette: Sequence[str], logo: str | None,
                  width: int, height: int) -> Image.Image:
    """The end card: the brand's main colour, the logo and the rows in the colour reading best on it."""
    bg = palette[0] if palette else "#111111"
    fg = best_on(bg, palette[1:] or palette)
    img = Image.new("RGBA", (width, height), (*_rgb(bg), 255))
    draw = ImageDraw.Draw(img)
    for b in blocks:
        if b.role == "logo" and logo:
            with open_image(Path(logo), "brand.logo") as im:
                pic = im.convert("RGBA").resize((b.w, b.h), Image.Resampling.LANCZOS)
            img.alpha_composite(pic, (b.x, b.y))
        elif b.role == "cta":
            radius = max(2, round(b.size * 0.35))
            draw.rounded_rectangle((b.x, b.y, b.x + b.w - 1, b.y + b.h - 1), radius=radius, fill=(*_rgb(fg), 255))
            _draw_lines(draw, b, font_path, bg, 0, 0)
        else:
            _draw_lines(draw, b, font_path, fg, 0, 0)
    return img


def _logo_size(logo: str | None) -> tuple[int, int] | None:
    if not logo:
        return None
    with open_image(Path(logo), "brand.logo") as im:
        return im.size


def beat_texts(beat: dict[str, Any], brand: dict[str, Any], has_end_card: bool) -> list[tuple[str, str]]:
    """The (role, text) supers over a beat: its own super; the cta beat adds the brand's call to
    action and URL (and the tagline, when the ad has no end card to carry it)."""
    texts: list[tuple[str, str]] = []
    if beat.get("on_screen"):
        texts.append(("super", beat["on_screen"]))
    if beat["type"] == "cta":
        if not texts and brand.get("tagline") and not has_end_card:
            texts.append(("super", brand["tagline"]))
        if brand.get("cta"):
            texts.append(("cta", brand["cta"]))
        if brand.get("url") and not has_end_card:
            texts.append(("url", brand["url"]))
    return texts


def card_rows(brand: dict[str, Any]) -> list[tuple[str, str]]:
    return [(role, brand[role]) for role in ("name", "tagline", "cta", "url") if brand.get(role)]


def layout(text: dict[str, Any]) -> list[tuple[dict[str, Any], str, list[Block]]]:
    """(beat, "super" | "card", blocks) for every beat with words on it. TextFitError names the text."""
    width, height, aspect = int(text["width"]), int(text["height"]), str(text["aspect_ratio"])
    brand = text.get("brand") or {}
    font = brand.get("font") or str(bundled_font())
    has_end_card = any(b["type"] == "end-card" for b in text["beats"])
    zones = text.get("safe_zones") or {}
    out: list[tuple[dict[str, Any], str, list[Block]]] = []
    for beat in text["beats"]:
        try:
            if beat["type"] == "end-card":
                rows = card_rows(brand)
                if rows or brand.get("logo"):
                    logo = _logo_size(brand.get("logo"))
                    out.append((beat, "card", end_card_blocks(rows, logo, font, width, height, aspect, zones)))
                continue
            texts = beat_texts(beat, brand, has_end_card)
            if texts:
                out.append((beat, "super", super_blocks(texts, font, width, height, aspect, zones=zones)))
        except TextFitError as e:
            where = "brand" if beat["type"] == "end-card" or not beat.get("on_screen") else f"beats.{beat['id']}.on_screen"
            language = f", language {text.get('language', 'en')}" if isinstance(e, MissingGlyphError) else ""
            raise TextFitError(f"beat '{beat['id']}'{language}: {e}", where) from None
    return out


def draw(text: dict[str, Any], out_dir: Path) -> tuple[list[Drawn], dict[str, Any]]:
    """Every text picture in `out_dir` and the layout record (text_layout.json's content)."""
    width, height, aspect = int(text["width"]), int(text["height"]), str(text["aspect_ratio"])
    brand = text.get("brand") or {}
    font = brand.get("font") or str(bundled_font())
    palette = list(text.get("palette") or [])
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: list[Drawn] = []
    for i, (beat, kind, blocks) in enumerate(layout(text)):
        start, end = float(beat["start"]), float(beat["start"]) + float(beat["duration"])
        png = out_dir / f"text-{i:03d}.png"
        if kind == "card":
            img, x, y, fade = _card_picture(blocks, font, palette, brand.get("logo"), width, height), 0, 0, 0.0
        else:
            img, x, y = _super_picture(blocks, font, palette)
            room = end - start
            lead, tail = min(SUPER_LEAD, room / 4), min(SUPER_TAIL, room / 8)
            start, end = start + lead, end - tail
            fade = min(FADE, (end - start) / 4)
        img.save(png, format="PNG", compress_level=1)
        drawn.append(Drawn(png, x, y, start, end, fade, beat["id"], tuple(blocks)))
    zones = text.get("safe_zones") or {}
    safe = text_area(aspect, zones.values()).title_box(width, height)
    record = {
        "width": width, "height": height, "aspect_ratio": aspect, "language": text.get("language", "en"),
        "safe_box": [safe.left, safe.top, safe.right, safe.bottom], "safe_zones": sorted(zones),
        "texts": [
            {"beat": d.beat, "role": b.role, "text": b.text, "lines": list(b.lines), "size": b.size,
             "box": [b.x, b.y, b.x + b.w, b.y + b.h], "start": round(d.start, 3), "end": round(d.end, 3)}
            for d in drawn for b in d.blocks
        ],
    }
    return drawn, record


__all__ = ["Drawn", "draw", "layout", "beat_texts", "card_rows", "super_colours", "best_on"]
