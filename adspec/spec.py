"""The spec and the beat file as pydantic models (extra fields forbidden, versioned).

Loading YAML with file:line errors lives in `adspec.loader`; this module only says what a valid
spec and beat file are.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:5")
AspectRatio = Literal["16:9", "9:16", "1:1", "4:5"]
Resolution = Literal["360p", "720p", "1080p"]  # 360p: quick drafts

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")

Slug = Annotated[str, Field(pattern=SLUG_RE.pattern, description="lower-case letters, digits and '-'")]
Color = Annotated[str, Field(pattern=COLOR_RE.pattern, description='"#RRGGBB"')]
VarValue = Union[str, int, float, bool]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Brand(Strict):
    name: str | None = Field(None, max_length=200)
    tagline: str | None = Field(None, max_length=200)
    colors: list[Color] = Field(default_factory=lambda: ["#111111", "#F5F5F5"], min_length=1, max_length=8)


class Models(Strict):
    planner: str = Field("gpt-4.1", max_length=100)
    image: str = "flux-dev"
    video: str = "hailuo-2.3-fast"
    music: str = "musicgen"


class Beat(Strict):
    id: Slug
    type: str = Field(max_length=40)
    duration: int = Field(ge=1, le=60, description="seconds")
    image_prompt: str = Field(min_length=1, max_length=2000)
    motion_prompt: str = Field(min_length=1, max_length=1000)


class Music(Strict):
    prompt: str = Field(min_length=1, max_length=1000)
    bpm: int = Field(ge=40, le=220)


class Spec(Strict):
    """What a person writes in specs/<ad>.yaml."""

    version: Literal[1] = 1
    title: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1, max_length=4000)
    duration: int = Field(30, ge=5, le=180, description="seconds")
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    style: str = Field("cinematic", max_length=200)
    brand: Brand = Field(default_factory=Brand)
    models: Models = Field(default_factory=Models)
    assets: dict[Slug, str] = Field(default_factory=dict, description="name -> path relative to the spec; 'product' is the reference image")
    vars: dict[str, VarValue] = Field(default_factory=dict)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    native_audio: bool = Field(False, description="use the video model's own audio (if it has any) instead of music")
    music: Music | None = Field(None, description="inline music; with `beats`, no planner runs")
    beats: list[Beat] | None = Field(None, description="inline beats: no planner runs")

    @field_validator("vars")
    @classmethod
    def _var_names(cls, v: dict[str, VarValue]) -> dict[str, VarValue]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise ValueError(f"variable name {name!r} must be a Python-style identifier")
        return v


class PlannedFrom(Strict):
    spec_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    planner: str
    library: str
    content_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="hash of music+beats as planned: detects hand edits")


class BeatFile(Strict):
    """specs/<ad>.beats.yaml: the lock of the plan, written by the planner, owned by the person."""

    version: Literal[1] = 1
    planned_from: PlannedFrom | None = None
    music: Music
    beats: list[Beat] = Field(min_length=1, max_length=60)


class BeatPlan(Strict):
    """What a planner returns (the LLM's structured output): music and beats."""

    music: Music
    beats: list[Beat] = Field(min_length=1, max_length=60)
