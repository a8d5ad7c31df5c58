"""The small interfaces every provider implements.

A provider does two things: turn a request into a recipe (pure: what exactly would be asked),
and run a recipe (side effects: call a service or render locally) into a file. The request
cache sits between the two, so a provider never decides whether to pay; it only pays when run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..recipes import Recipe


@dataclass(frozen=True)
class ImageRequest:
    """One storyboard image: the first frame of a beat."""

    ad: str
    beat_id: str
    beat_type: str
    prompt: str
    model: str  # registry name
    aspect_ratio: str  # "16:9" | "9:16" | "1:1" | "4:5"
    width: int
    height: int
    seed: int
    style: str
    palette: tuple[str, ...]  # brand colours, "#RRGGBB"
    brand_name: str | None = None
    tagline: str | None = None
    reference: Path | None = None  # the product reference image, if the spec has one
    references: tuple[Path, ...] = ()  # the images of what the beat shows (its `shows:`), in order


@dataclass(frozen=True)
class VideoRequest:
    """One image-to-video chunk of a beat: chunk 0 starts from the storyboard image, chunk k>0
    from the last frame of chunk k-1."""

    ad: str
    beat_id: str
    index: int
    prompt: str  # the beat's motion prompt
    model: str
    seconds: int  # one of the model's clip lengths
    aspect_ratio: str
    width: int
    height: int
    fps: int
    seed: int
    first_frame: Path
    native_audio: bool = False
    #: the images of what the beat shows, when this chunk carries them (the registry's `references:`
    #: rule of the model holds for it: see registry.chunk_references); () for every other chunk
    references: tuple[Path, ...] = ()
    #: the seconds of the clip the ad shows (the stitch cuts the rest): the last chunk of a beat may
    #: be longer than the beat has left. A model is asked for `seconds` (its clip lengths); a free
    #: renderer draws only these. None: all of it
    shown: int | None = None


@dataclass(frozen=True)
class MusicRequest:
    """The ad's music bed: a function of the plan's music fields and the total duration only."""

    ad: str
    prompt: str
    bpm: int
    seconds: int
    seed: int
    model: str


@dataclass(frozen=True)
class VoiceRequest:
    """One spoken line: the rendered text, the voice model, the voice and the speed. Nothing
    about the beat's position or length (fitting the line to its beat is local work)."""

    ad: str
    beat_id: str
    text: str
    model: str  # registry name of a voice model
    voice: str
    speed: float
    #: the line's language (BCP 47): the offline voice speaks it with eSpeak's voice for it; a
    #: live model reads it from the text (its recipe holds what the provider sees, not this)
    language: str = "en"


@dataclass(frozen=True)
class PlanRequest:
    """Everything a planner may use. `shaping` is the plan-shaping part of the spec as JSON
    (see adspec.plan_rules.plan_shaping_fields); `clip_lengths` are the video model's allowed lengths."""

    ad: str
    shaping: dict[str, Any]
    clip_lengths: tuple[int, ...]
    planner_model: str


@dataclass
class RunResult:
    """What running a recipe produced besides the file: the provider's job id and the cost."""

    job_id: str | None = None
    cost_usd: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


class Job(Protocol):
    """The cache's handle on one paid request while it runs.

    `resume_id` is a job id stored by an earlier run that was interrupted while waiting: the
    provider must resume it instead of creating a new job. `started` must be called with the
    provider's job id as soon as it exists, before waiting: the cache stores it durably.
    `sending()` is called just before a create request goes out; `sent_before` is true when an
    earlier run sent a create for this key and never learnt its id (killed, or timed out): the
    provider must then look the job up (e.g. list recent predictions, match model and input)
    before creating another.
    """

    resume_id: str | None
    sent_before: bool

    def sending(self) -> None: ...

    def started(self, job_id: str) -> None: ...

    def progress(self, status: str) -> None: ...


class MediaProvider(Protocol):
    name: str

    def image_recipe(self, req: ImageRequest) -> Recipe: ...

    def video_recipe(self, req: VideoRequest) -> Recipe: ...

    def music_recipe(self, req: MusicRequest) -> Recipe: ...

    def voice_recipe(self, req: VoiceRequest) -> Recipe: ...

    def run(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        """Produce the artifact of `recipe` at `out` (a temporary path the caller renames)."""
        ...


class PlanProvider(Protocol):
    """Turns a spec into a BeatPlan. `run` writes the plan as JSON (BeatPlan.model_dump) to out."""

    name: str

    def plan_recipe(self, req: PlanRequest) -> Recipe: ...

    def run(self, recipe: Recipe, job: Job, out: Path) -> RunResult: ...


class NullJob:
    """A Job for runs that need no durability (offline renders, tests)."""

    resume_id: str | None = None
    sent_before: bool = False

    def sending(self) -> None:
        pass

    def started(self, job_id: str) -> None:
        pass

    def progress(self, status: str) -> None:
        pass
