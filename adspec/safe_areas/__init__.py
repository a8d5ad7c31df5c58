"""Safe areas per aspect ratio (data: one yaml file per aspect, e.g. 16x9.yaml).

`title` is where words on screen may go; `captions` is the band captions sit in. Fractions of
the frame, so one file serves every resolution. Every word drawn by code (supers, the end card,
burned captions) keeps inside these, narrowed to the safe zones of the placements the ad is made
for (`text_area`): a platform whose buttons cover the bottom third pushes the text above them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from ..data_yaml import load_data


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int  # exclusive
    bottom: int  # exclusive

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True)
class SafeArea:
    aspect_ratio: str
    title: dict[str, float]  # left, right, top, bottom insets
    captions: dict[str, float]  # bottom, max_width, max_height

    def title_box(self, width: int, height: int) -> Box:
        t = self.title
        return Box(round(width * t["left"]), round(height * t["top"]),
                   width - round(width * t["right"]), height - round(height * t["bottom"]))

    def caption_box(self, width: int, height: int) -> Box:
        """The band captions are drawn in: centred, inside the title-safe area."""
        c, title = self.captions, self.title_box(width, height)
        w = min(round(width * c["max_width"]), title.width)
        left = max(title.left, (width - w) // 2)
        right = min(title.right, left + w)
        bottom = min(title.bottom, height - round(height * c["bottom"]))
        top = max(title.top, bottom - round(height * c["max_height"]))
        return Box(left, top, right, bottom)

    def within(self, zones: Iterable[Mapping[str, float]]) -> SafeArea:
        """This area narrowed to placements' safe zones (fractions kept clear on each side):
        text stands only where every zone allows it; the caption band keeps its usual gap above
        the highest bottom."""
        zones = list(zones)
        if not zones:
            return self
        title = {side: max([self.title[side], *(float(z[side]) for z in zones)]) for side in self.title}
        gap = max(0.0, self.captions["bottom"] - self.title["bottom"])
        captions = {**self.captions, "bottom": max(self.captions["bottom"], title["bottom"] + gap)}
        return replace(self, title=title, captions=captions)


def _file(aspect_ratio: str) -> str:
    return aspect_ratio.replace(":", "x") + ".yaml"


@lru_cache(maxsize=8)
def safe_area(aspect_ratio: str) -> SafeArea:
    """The safe area of `aspect_ratio` ("16:9", "9:16", "1:1", "4:5"); KeyError if there is none."""
    try:
        text = resources.files(__name__).joinpath(_file(aspect_ratio)).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(aspect_ratio) from None
    data = load_data(text)
    return SafeArea(str(data["aspect_ratio"]), {k: float(v) for k, v in data["title"].items()},
                    {k: float(v) for k, v in data["captions"].items()})


def text_area(aspect_ratio: str, zones: Iterable[Mapping[str, float]] = ()) -> SafeArea:
    """Where words may stand on a frame of `aspect_ratio` in an ad delivered to placements with
    these safe zones (the intersection of the aspect's title-safe area and every zone)."""
    return safe_area(aspect_ratio).within(zones)


RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:5": 4 / 5}


def safe_area_of_size(width: int, height: int) -> SafeArea:
    """The safe area of the aspect ratio closest to a `width` x `height` frame."""
    ratio = width / max(height, 1)
    return safe_area(min(RATIOS, key=lambda name: abs(RATIOS[name] - ratio)))


def title_insets(width: int, height: int) -> tuple[float, float, float, float]:
    """The title-safe insets (left, top, right, bottom) of a frame of this size, as fractions."""
    t = safe_area_of_size(width, height).title
    return t["left"], t["top"], t["right"], t["bottom"]
