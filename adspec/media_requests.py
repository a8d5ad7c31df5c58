"""Requests for a beat's storyboard and chunks, and for the music, from the plan's files.

Pure: the same beat inputs give the same requests, whatever the beat's position in the ad."""

from __future__ import annotations

from pathlib import Path

from .build_files import BeatInputs, MusicInputs
from .paths import AdPaths
from .plan_file import FPS
from .providers.base import ImageRequest, MusicRequest, VideoRequest
from .registry import load_registry


def image_request(ad: str, beat: BeatInputs) -> ImageRequest:
    return ImageRequest(
        ad=ad,
        beat_id=beat.id,
        beat_type=beat.type,
        prompt=beat.image_prompt,
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


def video_request(ad: str, beat: BeatInputs, index: int, paths: AdPaths) -> VideoRequest:
    entry = load_registry().resolve(beat.video_model, "video")
    return VideoRequest(
        ad=ad,
        beat_id=beat.id,
        index=index,
        prompt=beat.motion_prompt,
        model=entry.name,
        seconds=beat.clips[index],
        aspect_ratio=beat.aspect_ratio,
        width=beat.width,
        height=beat.height,
        fps=entry.fps or FPS,
        seed=beat.seed,
        first_frame=paths.first_frame(beat.id, index),
        native_audio=beat.native_audio,
    )


def music_request(ad: str, music: MusicInputs) -> MusicRequest:
    return MusicRequest(
        ad=ad,
        prompt=music.prompt,
        bpm=music.bpm,
        seconds=music.seconds,
        seed=music.seed,
        model=music.model,
    )
