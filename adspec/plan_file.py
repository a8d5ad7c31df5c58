"""The resolved ad: a spec plus its beat file, turned into everything the build graph needs.

Pure: no provider, no ffmpeg. The plan task writes it to build/<ad>/plan.json and splits it into
per-beat files (build/<ad>/beats/<id>/beat.json) that change only when that beat's inputs do,
so doit's file_dep sees an edit of one beat as an edit of one file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from .build_files import (
    RECORD_VERSIONS,
    BeatInputs,
    MusicInputs,
    Speech,
    SpokenLineEntry,
    Timeline,
    TimelineBeat,
    VoiceInputs,
    compact_text,
    decode,
    read_model,
)
from .errors import BuildFileError
from .hashing import canonical_json
from .paths import AdPaths

FPS = 24  # the output frame rate of every ad; model clips at other rates are re-timed in stitch

_SHORT_SIDE = {"360p": 360, "720p": 720, "1080p": 1080}
_RATIOS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:5": (4, 5)}


def output_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Width and height (even numbers) with the short side at the resolution's height."""
    w, h = _RATIOS[aspect_ratio]
    short = _SHORT_SIDE[resolution]
    if w >= h:
        return _even(short * w / h), short
    return short, _even(short * h / w)


def _even(x: float) -> int:
    return int(round(x / 2.0)) * 2


def composed_locally(beat_type: str, kit: dict[str, Any]) -> bool:
    """Whether a beat of `beat_type` is composed by the text layer from the brand kit `kit`
    (name, tagline, cta, url, logo): an end card with something of the brand to show."""
    return beat_type == "end-card" and any(kit.get(k) for k in ("name", "tagline", "cta", "url", "logo"))


@dataclass(frozen=True)
class PlannedBeat:
    id: str
    type: str
    start: int
    duration: int
    image_prompt: str | None  # rendered: spec variables filled in (None: your own still or footage needs none)
    motion_prompt: str | None  # (None: your own footage needs none)
    clips: tuple[int, ...]  # clip lengths of its chunks; the last one is trimmed
    voiceover: str | None = None  # the spoken line, rendered (None: a silent beat)
    on_screen: str | None = None  # the super drawn over the beat, rendered (None: none)
    approved: str | None = None  # sha256 of the approved storyboard (never a recipe input)
    image_model: str | None = None  # the beat's own models (registry names), else the ad's
    video_model: str | None = None
    own: dict[str, Any] | None = None  # own still or footage: own_image/footage (absolute), their sha256, footage_from
    references: tuple[dict[str, Any], ...] | None = None  # what it shows: [{name, role, path}] (None: no `shows:`)
    note: str | None = None  # e.g. why its image model was chosen for it (the estimate says it)

    @property
    def chunk_count(self) -> int:
        return len(self.clips)


@dataclass(frozen=True)
class AdPlan:
    """build/<ad>/plan.json (versioned: one of another version reads as no plan, and the plan
    step rewrites it)."""

    VERSION: ClassVar[int] = 1
    REBUILT: ClassVar[str] = "run doit again: the plan step rewrites it"

    ad: str
    title: str
    duration: int
    aspect_ratio: str
    resolution: str
    width: int
    height: int
    fps: int
    seed: int
    style: str
    palette: tuple[str, ...]
    brand_name: str | None
    tagline: str | None
    reference: str | None  # absolute path of the product reference image
    image_model: str
    video_model: str
    music_model: str
    native_audio: bool  # chunks carry the model's own audio, no music is made
    music_prompt: str
    bpm: int
    beats: tuple[PlannedBeat, ...]
    voice_model: str = "espeak"  # registry name of the voice model
    voice_name: str = "en-us"
    voice_speed: float = 1.0
    voice_lead_in: float = 0.25  # library rules: see adspec.library.VoiceRules
    voice_tail: float = 0.15
    voice_max_speedup: float = 1.15
    captions: dict[str, Any] | None = None  # burn, font (absolute path or None), color, box, size
    #: the brand kit drawn by code: name, tagline, cta, url, logo and font (absolute paths or None)
    brand_kit: dict[str, Any] | None = None
    language: str = "en"
    approval_required: bool = False  # `approval: required`: a beat's video waits for its approval
    placements: tuple[str, ...] = ()  # delivery placements (adspec.placements): checks and exports, local only
    #: placement id -> its safe zone (fractions kept clear of text), for the placements of the ad's
    #: aspect: every word drawn stays inside all of them (local only, like the placements)
    safe_zones: dict[str, dict[str, float]] | None = None
    version: int = VERSION

    def video_model_of(self, beat: PlannedBeat) -> str:
        return beat.video_model or self.video_model

    def image_model_of(self, beat: PlannedBeat) -> str:
        return beat.image_model or self.image_model

    def beat(self, beat_id: str) -> PlannedBeat:
        for b in self.beats:
            if b.id == beat_id:
                return b
        raise KeyError(beat_id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "plan.json") -> "AdPlan":
        """The plan in parsed JSON; BuildFileError when it is of another version or damaged."""
        return decode(cls, data, where)

    @property
    def voiced(self) -> tuple[PlannedBeat, ...]:
        """The beats that speak, in playing order."""
        return tuple(b for b in self.beats if b.voiceover)

    def voice_inputs(self, beat: PlannedBeat) -> VoiceInputs:
        """What a beat's line is made from: the paid part (text, model, voice, speed) and the
        local fit (duration and the library's rules), never its position."""
        return VoiceInputs(
            id=beat.id,
            text=beat.voiceover or "",
            model=self.voice_model,
            voice=self.voice_name,
            speed=self.voice_speed,
            duration=beat.duration,
            lead_in=self.voice_lead_in,
            tail=self.voice_tail,
            max_speedup=self.voice_max_speedup,
            language=self.language,
        )

    def speech(self) -> Speech:
        """What the mix places and captions: each line at its beat's start, and the caption style."""
        return Speech(
            width=self.width,
            height=self.height,
            aspect_ratio=self.aspect_ratio,
            palette=self.palette,
            captions=self.captions,
            safe_zones=self.safe_zones,
            lines=tuple(
                SpokenLineEntry(id=b.id, start=b.start, duration=b.duration, lead_in=self.voice_lead_in,
                                text=b.voiceover or "")
                for b in self.voiced
            ),
        )

    def text_inputs(self) -> dict[str, Any]:
        """What the text layer draws in the mix (words on screen, never part of a paid recipe):
        the brand kit, the palette, the frame, and each beat's super and span."""
        return {
            "width": self.width,
            "height": self.height,
            "aspect_ratio": self.aspect_ratio,
            "palette": list(self.palette),
            "language": self.language,
            "safe_zones": self.safe_zones or {},
            "brand": self.brand_kit or {"name": self.brand_name, "tagline": self.tagline},
            "beats": [
                {"id": b.id, "type": b.type, "start": b.start, "duration": b.duration, "on_screen": b.on_screen}
                for b in self.beats
            ],
            "version": RECORD_VERSIONS["text.json"],
        }

    def composed_locally(self, beat: PlannedBeat) -> bool:
        """An end card with something of the brand to show is composed by the text layer over a
        local picture: no image or video is asked of a model for it."""
        return composed_locally(beat.type, self.brand_kit or {})

    def beat_inputs(self, beat: PlannedBeat) -> BeatInputs:
        """Everything a beat's storyboard and chunks are made from: that beat's own fields and
        the ad-wide look, never its position (moving a beat costs nothing)."""
        own = beat.own or {}
        return BeatInputs(
            id=beat.id,
            type=beat.type,
            duration=beat.duration,
            clips=beat.clips,
            image_prompt=beat.image_prompt,
            motion_prompt=beat.motion_prompt,
            aspect_ratio=self.aspect_ratio,
            width=self.width,
            height=self.height,
            seed=self.seed,
            style=self.style,
            palette=self.palette,
            brand_name=self.brand_name,
            reference=self.reference if beat.references is None else None,
            image_model=self.image_model_of(beat),
            video_model=self.video_model_of(beat),
            native_audio=self.native_audio,
            own_image=own.get("own_image"),
            own_image_sha256=own.get("own_image_sha256"),
            footage=own.get("footage"),
            footage_sha256=own.get("footage_sha256"),
            footage_from=own.get("footage_from"),
            references=None if beat.references is None else tuple(dict(r) for r in beat.references),
            local=self.composed_locally(beat),
        )

    def music_inputs(self) -> MusicInputs:
        """Music depends on the plan's music fields and the total duration only."""
        return MusicInputs(prompt=self.music_prompt, bpm=self.bpm, seconds=self.duration, seed=self.seed,
                           model=self.music_model)

    def timeline(self) -> Timeline:
        """What stitch and mix are made from: the beats in order, each trimmed to its duration."""
        return Timeline(
            width=self.width,
            height=self.height,
            fps=self.fps,
            duration=self.duration,
            native_audio=self.native_audio,
            beats=tuple(TimelineBeat(id=b.id, start=b.start, duration=b.duration, clips=b.clips) for b in self.beats),
        )


def plan_text(plan: AdPlan) -> str:
    """plan.json's bytes: indented, sorted keys, the same for the same plan."""
    return json.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n"


def text_inputs_text(plan: AdPlan) -> str:
    """text.json's bytes: what the text layer draws, as the plan step writes it."""
    return canonical_json(plan.text_inputs()) + "\n"


def plan_files(paths: AdPaths, plan: AdPlan) -> list[tuple[Path, str]]:
    """Every file the plan step writes from `plan`, with its exact bytes: beat.json and
    voice.json of each beat, speech.json, music.json, timeline.json, plan.json and text.json."""
    out: list[tuple[Path, str]] = [(paths.beat_inputs(b.id), compact_text(plan.beat_inputs(b))) for b in plan.beats]
    out += [(paths.voice_inputs(b.id), compact_text(plan.voice_inputs(b))) for b in plan.voiced]
    out += [(paths.speech, compact_text(plan.speech())), (paths.music_inputs, compact_text(plan.music_inputs())),
            (paths.timeline, compact_text(plan.timeline())), (paths.plan, plan_text(plan)),
            (paths.text_inputs, text_inputs_text(plan))]  # the text layer's (free) inputs
    return out


def plan_files_intact(paths: AdPaths) -> bool:
    """Whether plan.json reads as a plan of this version and every file derived from it holds
    exactly what the plan step would write: false when one was hand-edited, damaged, deleted or
    written by another version (the plan step then rewrites it; nothing else is rebuilt when its
    content comes back the same)."""
    plan = load_plan(paths)
    if plan is None:
        return False
    for path, text in plan_files(paths, plan):
        try:
            if path.read_text(encoding="utf-8") != text:
                return False
        except (OSError, UnicodeDecodeError):
            return False
    return True


def load_plan(paths: AdPaths) -> AdPlan | None:
    """The ad's plan.json, or None before the first plan (or when it is not a plan this
    version of adspec wrote, or damaged: the plan step rewrites it)."""
    try:
        return read_model(AdPlan, paths.plan)
    except (OSError, BuildFileError):
        return None
