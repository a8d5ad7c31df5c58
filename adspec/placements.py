"""Delivery placements (data in library/placements.yaml): what each platform wants of a finished
ad — aspect, duration, loudness, safe zone, captions, format limits. A thin typed loader; the
checks that hold a file against them live in adspec.checks, the exports in adspec.exports.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import resources
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .data_yaml import load_data

PLACEMENTS_FILE = "placements.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(_Strict):
    exact: float | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> "Duration":
        if self.exact is None and self.max is None:
            raise ValueError("a duration needs `exact` or `max`")
        return self

    def describe(self) -> str:
        if self.exact is not None:
            return f"exactly {self.exact:g} s"
        low = f"{self.min:g}-" if self.min is not None else "up to "
        return f"{low}{self.max:g} s"


class Loudness(_Strict):
    lufs: float = Field(le=0)
    true_peak: float = Field(le=0)


class SafeZone(_Strict):
    """Fractions of the frame kept clear of text on each side."""

    left: float = Field(ge=0, lt=0.5)
    right: float = Field(ge=0, lt=0.5)
    top: float = Field(ge=0, lt=0.5)
    bottom: float = Field(ge=0, lt=0.5)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of the area text may use (right/bottom exclusive)."""
        return (round(width * self.left), round(height * self.top),
                width - round(width * self.right), height - round(height * self.bottom))


class VideoLimits(_Strict):
    codecs: tuple[str, ...]
    max_kbps: int = Field(gt=0)
    containers: tuple[str, ...]


class AudioLimits(_Strict):
    codecs: tuple[str, ...]
    max_kbps: int = Field(gt=0)
    sample_rates: tuple[int, ...]


class Placement(_Strict):
    id: str
    name: str
    aspect_ratio: Literal["16:9", "9:16", "1:1", "4:5"]
    duration: Duration
    loudness: Loudness
    safe_zone: SafeZone
    captions_required: bool
    video: VideoLimits
    audio: AudioLimits


@lru_cache(maxsize=1)
def load_placements() -> dict[str, Placement]:
    """Every placement by id, in the file's order."""
    raw = load_data(resources.files("adspec.library").joinpath(PLACEMENTS_FILE).read_text(encoding="utf-8"))
    return {pid: Placement(id=pid, **fields) for pid, fields in raw.items()}


def text_zones(placements: Sequence[str], aspect_ratio: str) -> dict[str, dict[str, float]]:
    """The safe zones words on screen keep inside, for an ad of `aspect_ratio` delivered to
    `placements`: placement id -> fractions kept clear on each side, for each (known) placement of
    that aspect ratio whose zone reaches further in than the aspect's own title-safe area on some
    side (an export to another aspect is not drawn for; a zone within the aspect's area changes
    nothing, so listing it draws nothing again)."""
    from .safe_areas import safe_area

    known = load_placements()
    title = safe_area(aspect_ratio).title
    out = {}
    for pid in placements:
        p = known.get(pid)
        if p is None or p.aspect_ratio != aspect_ratio:
            continue
        zone = p.safe_zone.model_dump()
        if any(zone[side] > title[side] for side in title):
            out[pid] = zone
    return out


def misfit(pid: str, aspect_ratio: str, seconds: int, *, silent: str | None = None) -> str | None:
    """Why an ad of `aspect_ratio` lasting `seconds` cannot pass placement `pid`'s checks, or None:
    known from the spec alone, so it is said before anything is paid for (its check would fail
    only after the whole ad was built). `silent`: why the ad speaks no line, so has no captions."""
    p = load_placements().get(pid)
    if p is None:
        return None
    if p.aspect_ratio != aspect_ratio:
        return (f"{pid} takes {p.aspect_ratio} video and this ad is {aspect_ratio}; list it in a variant "
                f"of that aspect ratio")
    d = p.duration
    if (d.exact is not None and seconds != d.exact) or (d.max is not None and seconds > d.max) \
            or (d.min is not None and seconds < d.min):
        return f"{pid} takes {d.describe()} and this ad lasts {seconds} s"
    if p.captions_required and silent is not None:
        return (f"{pid} requires captions and this ad speaks no line ({silent}), so it has none; "
                f"give it a voiceover or list the placement in an ad that has one")
    return None


def placement_ids() -> list[str]:
    return list(load_placements())


def unknown_placement_message(name: str) -> str:
    """`unknown placement 'x' (known: …)` with a close match when there is one."""
    known = placement_ids()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown placement '{name}'{hint} (known: {', '.join(known)})"


def placements_file() -> str:
    """The data file's path, for doit's file_dep."""
    return str(resources.files("adspec.library").joinpath(PLACEMENTS_FILE))
