"""Motion prompt -> camera move, for the offline animatic.

Pure: the same prompt always gives the same move. Keywords decide when the prompt names a move
("slow push in on the bottle", "pan left across the shelf"); otherwise a deterministic default is
drawn from the prompt's hash, so beats without camera words still move, and differently.

Every move starts at the unmoved frame (zoom 1, centred) and returns to it: frame 0 of a chunk is
its input image and its last frame that image again, so a continuation chunk carries on exactly
from the previous chunk's last frame, and chained chunks never add up to a move that pushes the
beat's words out of the frame. `max_zoom` bounds each move so that the words, drawn MOVE_ROOM
inside the safe area, stay inside the safe area all along it: the picture moves, the words stay
legible.
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


#: how much further in than the safe area the storyboard draws its words: the room a camera move
#: has before the words would leave the safe area (adspec.render.storyboard lays them out inside it)
MOVE_ROOM = 0.04
#: a box as insets from the frame's edges, fractions of its width/height: (left, top, right, bottom)
Insets = tuple[float, float, float, float]


@dataclass(frozen=True)
class View:
    """The visible part of the image at time t: zoom (>1 = closer, <1 = image shown smaller on a
    blurred surround) and the view centre as fractions of the image (0.5, 0.5 = centred)."""

    zoom: float
    cx: float
    cy: float


def _progress(t: float) -> float:
    """How far along its move the camera is at fraction t of a chunk: out and back (0 at both
    ends, 1 in the middle), so a chunk ends on the frame it started from and a continuation
    chunk, which starts on that last frame, never pushes the words further out."""
    return math.sin(math.pi * min(max(t, 0.0), 1.0))


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


def _keeps(zoom: float, f: float, inner_lo: float, inner_hi: float, safe_lo: float, safe_hi: float) -> bool:
    """Whether, on one axis, a view at `zoom` placed at offset `f` shows the words' span (insets
    inner_lo/inner_hi of the image) inside the safe span (insets safe_lo/safe_hi of the frame)."""
    w = 1 / zoom
    left = (1 - w) * (0.5 + 0.5 * f)
    return (inner_lo - left) / w >= safe_lo - 1e-9 and (1 - inner_hi - left) / w <= 1 - safe_hi + 1e-9


def max_zoom(move: str, strength: float, safe: Insets, room: float = MOVE_ROOM) -> float:
    """The strongest zoom (at most `strength`) at which `move` keeps words drawn `room` inside
    the safe area (`safe`: its insets) inside the safe area all along the move."""
    if move in ("static", "pull-out") or strength <= 1:
        return strength  # the whole frame stays in view
    inner = tuple(x + room for x in safe)
    ts = [i / 40 for i in range(41)]

    def fits(z: float) -> bool:
        for t in ts:
            zoom = z ** _progress(t)
            fx, fy = _offsets(move, t)
            if not (_keeps(zoom, fx, inner[0], inner[2], safe[0], safe[2]) and _keeps(zoom, fy, inner[1], inner[3], safe[1], safe[3])):
                return False
        return True

    lo, hi = 1.0, strength
    if fits(hi):
        return hi
    for _ in range(40):  # bisection: `fits` holds at 1 (the unmoved frame) and shrinks with zoom
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return round(lo - 5e-5, 4)  # 4 decimals, never above the bound


def view_at(move: str, t: float, strength: float = 1.14) -> View:
    """The view at fraction t (0..1) of a chunk. t=0 and t=1 are the unmoved image; the move is
    strongest half way (see `_progress`)."""
    t = min(max(t, 0.0), 1.0)
    p = _progress(t)
    if move == "static":
        return View(1.0, 0.5, 0.5)
    if move == "pull-out":
        return View(strength ** (-p), 0.5, 0.5)
    zoom = strength**p
    fx, fy = _offsets(move, t)
    travel = (1 - 1 / zoom) / 2  # how far the centre can move before the view leaves the image
    return View(zoom, 0.5 + fx * travel, 0.5 + fy * travel)


def zoompan_exprs(move: str, frames: int, strength: float, base_zoom: float = 1.0) -> tuple[str, str, str]:
    """ffmpeg zoompan expressions (zoom, x, y) for `view_at` over `frames` frames.

    `base_zoom` is the zoom at which the crop is exactly the image: 1 for a plain image, >1 for
    a canvas with a surround (pull-out). Frame `on`=0 is t=0, the last frame t=1."""
    t = f"(on/{max(frames - 1, 1)})"
    p = f"sin(PI*{t})"
    if move == "static":
        z = f"{base_zoom}"
    elif move == "pull-out":
        z = f"{base_zoom}*pow({strength},-{p})"
    else:
        z = f"{base_zoom}*pow({strength},{p})"
    if move == "orbit":
        fx, fy = f"sin(PI*{t})", f"(-0.6*sin(2*PI*{t}))"
    else:
        ox, oy = _offsets(move, 0.0) if move != "static" else (0.0, 0.0)
        fx, fy = f"{ox}", f"{oy}"
    # left edge = (iw - iw/zoom) * (0.5 + 0.5*f): f=-1 left-aligned, 0 centred, 1 right-aligned
    x = f"(iw-iw/zoom)*(0.5+0.5*{fx})"
    y = f"(ih-ih/zoom)*(0.5+0.5*{fy})"
    return z, x, y
