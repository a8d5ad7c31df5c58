"""Storyboard frames for the offline backend, drawn with Pillow.

A frame a person can review: a gradient from the brand palette, the beat type as a heading, the
image prompt as readable wrapped text, the brand and tagline, and the product reference image
composited in when the spec has one. Deterministic: the same inputs give the same pixels (the
only randomness is a `random.Random(seed)` for the background texture).
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from ..fsutil import atomic_path
from ..images import open_image
from ..safe_areas import title_insets
from .motion import MOVE_ROOM

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
_DEFAULT_PALETTE = ("#111111", "#F5F5F5")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=64)
def _font(size: int, bold: bool = False) -> Font:
    """DejaVu Sans if installed, else Pillow's built-in scalable font."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for d in _FONT_DIRS:
        p = Path(d) / name
        if p.is_file():
            return ImageFont.truetype(str(p), size)
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _lum(c: tuple[int, int, int]) -> float:
    r, g, b = (x / 255 for x in c)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _background(width: int, height: int, palette: Sequence[str], rng: random.Random) -> Image.Image:
    """A diagonal gradient between two palette colours (darkened so text reads), plus a few soft
    seeded light blobs: enough texture to see camera moves in the animatic."""
    cols = [_rgb(c) for c in (palette or _DEFAULT_PALETTE)]
    a = cols[0]
    b = cols[1] if len(cols) > 1 else _mix(a, (255, 255, 255), 0.35)
    # keep the frame mid/dark so white text always reads; keep the brand hue
    if _lum(a) > 0.55:
        a = _mix(a, (0, 0, 0), 0.55)
    if _lum(b) > 0.55:
        b = _mix(b, (0, 0, 0), 0.35)
    angle = math.radians(rng.choice((20, 35, 55, 125, 145, 160)))
    gx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :] * math.cos(angle) * width
    gy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None] * math.sin(angle) * height
    ramp = gx + gy
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    mask = Image.fromarray(np.round(ramp * 255).astype(np.uint8), "L")
    img = Image.composite(Image.new("RGB", (width, height), b), Image.new("RGB", (width, height), a), mask)
    glow = Image.new("L", (width, height), 0)
    gd = ImageDraw.Draw(glow)
    short = min(width, height)
    for _ in range(7):
        r = rng.uniform(0.08, 0.3) * short
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        gd.ellipse((cx - r, cy - r, cx + r, cy + r), fill=rng.randint(25, 60))
    glow = glow.filter(ImageFilter.GaussianBlur(short / 25))
    accent = cols[2] if len(cols) > 2 else _mix(b, (255, 255, 255), 0.6)
    img = Image.composite(Image.new("RGB", (width, height), accent), img, glow)
    return img


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, max_w: float) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        words, cur = para.split(), ""
        for w in words:
            trial = f"{cur} {w}".strip()
            if draw.textlength(trial, font=font) <= max_w or not cur:
                cur = trial
            else:
                lines.append(cur)
                cur = w
        if cur:
            lines.append(cur)
    return lines


def _fit_text(
    draw: ImageDraw.ImageDraw, text: str, box_w: float, box_h: float, start: int, minimum: int
) -> tuple[Font, list[str], int]:
    """The largest font (start..minimum) at which `text` wraps into the box; at the minimum,
    the lines that fit, the last one ending in an ellipsis."""
    size = start
    while True:
        font = _font(size)
        line_h = round(size * 1.3)
        lines = _wrap(draw, text, font, box_w)
        if len(lines) * line_h <= box_h or size <= minimum:
            break
        size = max(minimum, int(size * 0.9))
    max_lines = max(1, int(box_h // line_h))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and draw.textlength(last + " …", font=font) > box_w:
            last = last[:-1]
        lines[-1] = last.rstrip() + " …"
    return font, lines, line_h


def _reference(ref: Path, box: tuple[int, int, int, int], canvas: Image.Image) -> None:
    """Composite the product image, contained in `box`, with a soft shadow and a thin border."""
    x0, y0, x1, y1 = box
    with open_image(ref, "the product reference image") as im:
        if im.format in ("JPEG", "MPO"):  # decode a big photo at a fraction of its size: cheap
            im.draft("RGB", (max(1, x1 - x0), max(1, y1 - y0)))
        im = ImageOps.exif_transpose(im).convert("RGBA")
    im = ImageOps.contain(im, (max(1, x1 - x0), max(1, y1 - y0)), Image.Resampling.LANCZOS)
    px = x0 + (x1 - x0 - im.width) // 2
    py = y0 + (y1 - y0 - im.height) // 2
    pad = max(2, min(canvas.size) // 100)
    blur = max(4, min(canvas.size) // 45)
    shadow = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(shadow).rectangle((px + pad * 2, py + pad * 3, px + im.width + pad * 2, py + im.height + pad * 3), fill=150)
    shadow = shadow.filter(ImageFilter.GaussianBlur(blur))
    canvas.paste(Image.new("RGB", canvas.size, (0, 0, 0)), (0, 0), shadow)
    ImageDraw.Draw(canvas).rectangle((px - pad, py - pad, px + im.width + pad - 1, py + im.height + pad - 1), fill=(250, 250, 250))
    canvas.paste(im, (px, py), im)


def draw_storyboard(
    out_png: str | Path,
    *,
    width: int,
    height: int,
    beat_type: str,
    prompt: str,
    title: str | None = None,
    brand_name: str | None = None,
    tagline: str | None = None,
    palette: Sequence[str] = _DEFAULT_PALETTE,
    reference: Path | str | None = None,
    seed: int = 0,
    style: str | None = None,
) -> Path:
    """Draw one storyboard frame of exactly width x height to `out_png` (atomically)."""
    out_png = Path(out_png)
    rng = random.Random(f"{seed}:{beat_type}:{prompt}")
    img = _background(width, height, palette, rng)
    draw = ImageDraw.Draw(img, "RGBA")
    short = min(width, height)
    # every word goes inside the title-safe area plus the camera moves' room (adspec.render.motion):
    # a move never carries it out of the safe area, so the animatic's words stay legible
    il, it, ir, ib = (x + MOVE_ROOM for x in title_insets(width, height))
    L, T, R, B = round(width * il), round(height * it), width - round(width * ir), height - round(height * ib)
    gap = round(short * 0.04)
    landscape = width >= height * 1.25
    white, soft = (255, 255, 255), (235, 235, 235)

    # header: beat type (heading) left, brand right
    head = max(12, round(short * 0.065))
    small = max(10, round(short * 0.032))
    heading = " ".join(beat_type.replace("_", " ").replace("-", " ").split()).upper() or "BEAT"
    hfont = _font(head, bold=True)
    while draw.textlength(heading, font=hfont) > R - L and head > 12:
        head = int(head * 0.9)
        hfont = _font(head, bold=True)
    draw.text((L, T), heading, font=hfont, fill=white)
    bar_y = T + round(head * 1.25)
    bar_w = round(short * 0.12)
    draw.rectangle((L, bar_y, L + bar_w, bar_y + max(2, short // 160)), fill=white)
    if style:
        sfont = _font(max(9, round(small * 0.85)))
        sx = L + bar_w + round(short * 0.02)
        line = " ".join(style.split())  # a folded `style: >` ends in a line break: drawn on one line
        text = line if len(line) <= 60 else line[:59] + "…"
        while text and draw.textlength(text, font=sfont) > R - sx:
            text = text[:-2].rstrip() + "…" if len(text) > 2 else ""
        draw.text((sx, bar_y + max(2, short // 160) // 2), text, font=sfont, fill=soft, anchor="lm")
    brand = brand_name or title
    bfont = _font(small, bold=True)
    label = ""
    if brand:
        label = brand if draw.textlength(brand, font=bfont) < (R - L) * 0.4 else brand[:24] + "…"
    label_w = draw.textlength(label, font=bfont) if label else 0
    brand_on_top = bool(label) and draw.textlength(heading, font=hfont) + label_w + gap <= R - L
    if brand_on_top:
        draw.text((R, T + (head - small) // 2), label, font=bfont, fill=soft, anchor="ra")
    top = bar_y + round(short * 0.05)

    # footer: tagline left, brand right when the header had no room for it
    bottom = B
    if tagline or (label and not brand_on_top):
        tfont = _font(small)
        room = R - L - (0 if brand_on_top else label_w + gap)
        text = tagline or ""
        while text and draw.textlength(text, font=tfont) > room:
            text = text[:-2].rstrip() + "…" if len(text) > 2 else ""
        if text:
            draw.text((L, bottom), text, font=tfont, fill=soft, anchor="ld")
        if label and not brand_on_top:
            draw.text((R, bottom), label, font=bfont, fill=soft, anchor="rd")
        bottom -= round(small * 1.8)

    # the reference image and the text box share what is left
    ref = Path(reference) if reference else None
    if ref is not None and landscape:
        split = L + round((R - L) * 0.55)
        text_box = (L, top, split - gap, bottom)
        _reference(ref, (split, top, R, bottom), img)
    elif ref is not None:
        ref_h = round((bottom - top) * (0.5 if height > width * 1.2 else 0.45))
        _reference(ref, (L, top, R, top + ref_h), img)
        text_box = (L, top + ref_h + gap, R, bottom)
    else:
        text_box = (L, top, R, bottom)

    x0, y0, x1, y1 = text_box
    pad = round(short * 0.025)
    start = round(short * (0.048 if ref is not None else 0.058))
    font, lines, line_h = _fit_text(
        draw, prompt, x1 - x0 - 2 * pad, y1 - y0 - 2 * pad, start=max(12, start), minimum=max(10, round(short * 0.022))
    )
    block_h = len(lines) * line_h + 2 * pad
    if ref is None or landscape:  # centre the text block in its area
        y0 += max(0, (y1 - y0 - block_h) // 2)
    draw = ImageDraw.Draw(img, "RGBA")
    draw.rounded_rectangle((x0, y0, x1, y0 + block_h), radius=pad, fill=(0, 0, 0, 110))
    for i, line in enumerate(lines):
        draw.text((x0 + pad, y0 + pad + i * line_h), line, font=font, fill=white)

    with atomic_path(out_png, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    return out_png


__all__ = ["draw_storyboard"]
