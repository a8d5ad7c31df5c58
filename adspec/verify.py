"""Checks an artifact must pass before the cache keeps it: a provider that returns an HTML error
page, a truncated download or a clip shorter than asked is caught here, not in the final mix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from PIL import UnidentifiedImageError

from . import media
from .errors import MediaError
from .images import open_image
from .spec import BeatPlan

# A clip may be a little shorter than asked (encoders round to whole frames).
_SHORT_TOLERANCE_S = 0.25


def image_verifier(what: str) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        try:
            with open_image(path, f"{what}: the provider's image") as img:
                img.verify()
                w, h = img.size
        except MediaError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise MediaError(f"{what}: the provider's image is not a readable image ({type(e).__name__})") from None
        if w < 16 or h < 16:
            raise MediaError(f"{what}: the provider's image is {w}x{h}, too small to use")

    return verify


def _probe(path: Path, what: str, noun: str) -> media.MediaInfo:
    """ffprobe-level facts, or MediaError naming the target (not the cache's scratch file)."""
    try:
        return media.probe(path)
    except MediaError as e:
        reason = str(e).split(": ", 1)[-1] if str(e).startswith(str(path)) else str(e)
        raise MediaError(f"{what}: the provider's {noun} is not readable media ({reason})") from None


def video_verifier(what: str, seconds: float) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        info = _probe(path, what, "clip")
        if not info.has_video:
            raise MediaError(f"{what}: the provider's clip has no video stream")
        if info.duration + _SHORT_TOLERANCE_S < seconds:
            raise MediaError(f"{what}: the provider's clip lasts {info.duration:.2f} s, shorter than the {seconds} s asked")

    return verify


def audio_verifier(what: str, seconds: float) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        info = _probe(path, what, "music")
        if not info.has_audio:
            raise MediaError(f"{what}: the provider's music has no audio stream")
        if info.duration + _SHORT_TOLERANCE_S < min(seconds, 1.0):
            raise MediaError(f"{what}: the provider's music lasts only {info.duration:.2f} s")

    return verify


def speech_verifier(what: str) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        info = _probe(path, what, "speech")
        if not info.has_audio:
            raise MediaError(f"{what}: the provider's speech has no audio stream")
        if info.duration < 0.2:
            raise MediaError(f"{what}: the provider's speech lasts only {info.duration:.2f} s")

    return verify


def plan_verifier(what: str) -> Callable[[Path], None]:
    def verify(path: Path) -> None:
        try:
            BeatPlan.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except Exception as e:  # noqa: BLE001 - any defect means "not a plan"
            raise MediaError(f"{what}: the planner's output is not a valid plan ({type(e).__name__})") from None

    return verify
