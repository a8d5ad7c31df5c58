"""Requests for a beat's storyboard and chunks, and for the music, from the plan's files.

Pure: the same beat inputs give the same requests, whatever the beat's position in the ad."""

from __future__ import annotations

from pathlib import Path

from .build_files import BeatInputs, MusicInputs
from .paths import AdPaths
from .plan_file import FPS
from .providers.base import ImageRequest, MusicRequest, VideoRequest
from .registry import ChunkReferences, chunk_references, load_registry, spec_resolution_for

#: what the local picture under an end card composed from the brand kit is drawn from when its beat
#: has no prompts (none is needed: the card covers it, and nothing is sent to a model for it)
_LOCAL_END_CARD = {"image_prompt": "end card", "motion_prompt": "static"}


def _sent(prompt: str | None, beat: BeatInputs, field: str) -> str:
    """A prompt that is sent: the spec checks require it of every beat a request is made for (an
    end card the text layer composes is drawn locally, from its prompts where it has them)."""
    if prompt is None and beat.local:
        return _LOCAL_END_CARD[field]
    if prompt is None:
        raise ValueError(f"beat '{beat.id}' has no {field}: a request is made for it")  # a bug: the checks let it through
    return prompt


def image_request(ad: str, beat: BeatInputs) -> ImageRequest:
    return ImageRequest(
        ad=ad,
        beat_id=beat.id,
        beat_type=beat.type,
        prompt=_sent(beat.image_prompt, beat, "image_prompt"),
        model=beat.image_model,
        aspect_ratio=beat.aspect_ratio,
        width=beat.width,
        height=beat.height,
        seed=beat.seed,
        style=beat.style,
        palette=beat.palette,
        brand_name=beat.brand_name,
        tagline=None,  # words on screen are drawn by the text layer, never by (or for) a model
        reference=Path(beat.reference) if beat.reference else None,
        references=tuple(Path(r["path"]) for r in beat.references or ()),
    )


def beat_chunk_references(beat: BeatInputs) -> ChunkReferences:
    """Which chunks of a beat its video model is sent the images of what it shows with (its
    `shows:`, never the spec-wide product of a beat without one), and what to say about it: the
    registry's `references:` rule of the model (registry.chunk_references). None for a beat whose
    video no model makes (your own footage, an end card the text layer composes)."""
    if not beat.references or beat.footage or beat.local:
        return ChunkReferences()
    entry = load_registry().resolve(beat.video_model, "video")
    names = tuple(str(r["name"]) for r in beat.references)
    return chunk_references(entry, names, beat.aspect_ratio, beat.clips, spec_resolution_for(beat.width, beat.height),
                            own_still=bool(beat.own_image))


def video_references(beat: BeatInputs, index: int) -> tuple[Path, ...]:
    """The reference images chunk `index` of a beat is sent with (none where the rule fails)."""
    if index not in beat_chunk_references(beat).chunks:
        return ()
    return tuple(Path(r["path"]) for r in beat.references or ())


def video_request(ad: str, beat: BeatInputs, index: int, paths: AdPaths) -> VideoRequest:
    entry = load_registry().resolve(beat.video_model, "video")
    return VideoRequest(
        ad=ad,
        beat_id=beat.id,
        index=index,
        prompt=_sent(beat.motion_prompt, beat, "motion_prompt"),
        model=entry.name,
        seconds=beat.clips[index],
        aspect_ratio=beat.aspect_ratio,
        width=beat.width,
        height=beat.height,
        fps=entry.fps or FPS,
        seed=beat.seed,
        first_frame=paths.first_frame(beat.id, index),
        native_audio=beat.native_audio,
        references=video_references(beat, index),
        shown=shown_seconds(beat, index),
    )


def shown_seconds(beat: BeatInputs, index: int) -> int:
    """The seconds of chunk `index` the ad shows: all of it but for a beat's last chunk, which
    may run past what the beat has left."""
    return min(beat.clips[index], beat.duration - sum(beat.clips[:index]))


def music_request(ad: str, music: MusicInputs) -> MusicRequest:
    return MusicRequest(
        ad=ad,
        prompt=music.prompt,
        bpm=music.bpm,
        seconds=music.seconds,
        seed=music.seed,
        model=music.model,
    )
