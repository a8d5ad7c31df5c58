"""Motion prompt -> camera move, for the offline animatic.

Pure: the same prompt always gives the same move. Keywords decide when the prompt names a move
("slow push in on the bottle", "pan left across the shelf"); otherwise a deterministic default is
drawn from the prompt's hash, so beats without camera words still move, and differently.

Every move starts at the unmoved frame (zoom 1, centred): frame 0 of a chunk is its input image,
so a continuation chunk carries on exactly from the previous chunk's last frame.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

MOVES = ("push-in", "pull-out", "pan-left", "pan-right", "tilt-up", "tilt-down", "orbit", "static")

# phrase -> move; the phrase that occurs FIRST in the prompt wins (people name the move early).
_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"push(?:es|ing)?[ -]?in|zoom(?:s|ing)?[ -]?in|dolly(?:ing)?[ -]?in|moves? closer|close[ -]?up|closer", "push-in"),
    (r"pull(?:s|ing)?[ -]?(?:out|back)|zoom(?:s|ing)?[ -]?out|dolly(?:ing)?[ -]?(?:out|back)|reveal|widen", "pull-out"),
    (r"pan(?:s|ning)?[ -]?left|to the left|leftwards?|track(?:s|ing)?[ -]?left|truck[ -]?left", "pan-left"),
    (r"pan(?:s|ning)?[ -]?right|to the right|rightwards?|track(?:s|ing)?[ -]?right|truck[ -]?right|tracking|pans?\b", "pan-right"),
    (r"tilt(?:s|ing)?[ -]?up|crane(?:s|ing)?[ -]?up|pedestal up|rises?|rising|upwards?|ascend", "tilt-up"),
    (r"tilt(?:s|ing)?[ -]?down|crane(?:s|ing)?[ -]?down|pedestal down|descend|downwards?|lowers?", "tilt-down"),
    (r"orbit|circl(?:e|es|ing)|around|arc(?:s|ing)?\b|rotat|swirl|drift", "orbit"),
    (r"static|still|locked[ -]?off|tripod|no camera (?:move|motion)|holds?\b|steady", "static"),
)
_COMPILED = [(re.compile(r"\b(?:" + pat + r")", re.I), move) for pat, move in _KEYWORDS]
_DEFAULTS = ("push-in", "pan-right", "pan-left", "tilt-up", "orbit", "push-in", "pull-out", "tilt-down")


def camera_move(prompt: str) -> str:
    """The camera move a motion prompt asks for (one of MOVES)."""
    best: tuple[int, str] | None = None
    for rx, move in _COMPILED:
        m = rx.search(prompt)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), move)
    if best is not None:
        return best[1]
    digest = hashlib.sha256(" ".join(prompt.lower().split()).encode("utf-8")).digest()
    return _DEFAULTS[digest[0] % len(_DEFAULTS)]


def move_strength(prompt: str) -> float:
    """How far the camera travels in one chunk, as the zoom reached at its end (1.0 = none)."""
    text = prompt.lower()
    if re.search(r"\b(fast|quick(?:ly)?|rapid(?:ly)?|whip|rush|dramatic(?:ally)?|energetic)\b", text):
        return 1.25
    if re.search(r"\b(slow(?:ly)?|gentle|gently|subtle|subtly|soft(?:ly)?|calm)\b", text):
        return 1.07
    return 1.14


@dataclass(frozen=True)
class View:
    """The visible part of the image at time t: zoom (>1 = closer, <1 = image shown smaller on a
    blurred surround) and the view centre as fractions of the image (0.5, 0.5 = centred)."""

    zoom: float
    cx: float
    cy: float


def _offsets(move: str, t: float) -> tuple[float, float]:
    """Where the view sits inside its free travel, -1..1 per axis (0 = centred)."""
    if move == "pan-left":
        return -1.0, 0.0
    if move == "pan-right":
        return 1.0, 0.0
    if move == "tilt-up":
        return 0.0, -1.0
    if move == "tilt-down":
        return 0.0, 1.0
    if move == "orbit":
        a = math.pi * t
        return math.sin(a), -0.6 * math.sin(2 * a)
    return 0.0, 0.0


def view_at(move: str, t: float, strength: float = 1.14) -> View:
    """The view at fraction t (0..1) of a chunk. t=0 is always the unmoved image."""
    t = min(max(t, 0.0), 1.0)
    if move == "static":
        return View(1.0, 0.5, 0.5)
    if move == "pull-out":
        return View(strength ** (-t), 0.5, 0.5)
    zoom = strength**t
    fx, fy = _offsets(move, t)
    travel = (1 - 1 / zoom) / 2  # how far the centre can move before the view leaves the image
    return View(zoom, 0.5 + fx * travel, 0.5 + fy * travel)


def zoompan_exprs(move: str, frames: int, strength: float, base_zoom: float = 1.0) -> tuple[str, str, str]:
    """ffmpeg zoompan expressions (zoom, x, y) for `view_at` over `frames` frames.

    `base_zoom` is the zoom at which the crop is exactly the image: 1 for a plain image, >1 for
    a canvas with a surround (pull-out). Frame `on`=0 is t=0, the last frame t=1."""
    t = f"(on/{max(frames - 1, 1)})"
    if move == "static":
        z = f"{base_zoom}"
    elif move == "pull-out":
        z = f"{base_zoom}*pow({strength},-{t})"
    else:
        z = f"{base_zoom}*pow({strength},{t})"
    if move == "orbit":
        fx, fy = f"sin(PI*{t})", f"(-0.6*sin(2*PI*{t}))"
    else:
        ox, oy = _offsets(move, 0.0) if move != "static" else (0.0, 0.0)
        fx, fy = f"{ox}", f"{oy}"
    # left edge = (iw - iw/zoom) * (0.5 + 0.5*f): f=-1 left-aligned, 0 centred, 1 right-aligned
    x = f"(iw-iw/zoom)*(0.5+0.5*{fx})"
    y = f"(ih-ih/zoom)*(0.5+0.5*{fy})"
    return z, x, y
