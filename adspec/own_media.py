"""Your own stills and footage in a beat (`image: assets/x.png`, `footage: assets/clip.mp4` with
an optional `from:` second): local work with recipes of their own, never a paid request.

- `image:` the still is the beat's storyboard (cover-cropped to the ad's frame): no image
  request; its chunks are still asked of the video model, from that still.
- `footage:` the clip from `from` on, conformed to the ad's frame and rate and cut to the beat,
  is the beat's one chunk: no image and no video request. Its storyboard (for the review page)
  is the clip's frame at `from`.

Their recipes (provider "local") go through the request cache like any other, so receipts,
`doit`'s up-to-date checks and the estimate treat them alike; the file enters a recipe by its
sha256, so replacing the file rebuilds exactly that beat.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import media
from .build_files import BeatInputs
from .errors import MediaError
from .images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, asset_problem
from .providers.base import RunResult
from .recipes import OWN_MEDIA, FileRef, Recipe

__all__ = ["LOCAL", "is_own", "still_recipe", "footage_recipe", "run_local", "media_problem"]

LOCAL = OWN_MEDIA  # the provider of your own media's recipes


def is_own(beat: BeatInputs) -> bool:
    """Whether a beat's storyboard is the person's own still or footage frame (no image request)."""
    return beat.is_own


def _from(beat: BeatInputs) -> float:
    return beat.footage_from if beat.footage_from is not None else 0.0


def still_recipe(beat: BeatInputs) -> Recipe:
    """The storyboard of a beat with `image:` or `footage:` (local, free)."""
    size = {"width": beat.width, "height": beat.height}
    if beat.footage:
        assert beat.footage_sha256 is not None
        return Recipe(LOCAL, "image", "footage-frame", "local/1", {**size, "from": _from(beat)},
                      {"footage": FileRef(beat.footage_sha256, Path(beat.footage))})
    assert beat.own_image is not None and beat.own_image_sha256 is not None
    return Recipe(LOCAL, "image", "still", "local/1", size,
                  {"image": FileRef(beat.own_image_sha256, Path(beat.own_image))})


def footage_recipe(beat: BeatInputs, fps: int) -> Recipe:
    """The one chunk of a beat with `footage:`: the clip from `from`, cut to the beat."""
    assert beat.footage is not None and beat.footage_sha256 is not None
    return Recipe(LOCAL, "video", "footage", "local/1",
                  {"width": beat.width, "height": beat.height, "fps": fps, "from": _from(beat),
                   "seconds": beat.duration},
                  {"footage": FileRef(beat.footage_sha256, Path(beat.footage))})


def run_local(recipe: Recipe, job: Any, out: Path) -> RunResult:
    """Make the artifact of a local recipe at `out` (the cache renames it into place)."""
    p = recipe.params
    if recipe.model == "still":
        media.normalise_image(recipe.files["image"].path, out, p["width"], p["height"])
    elif recipe.model == "footage-frame":
        with tempfile.TemporaryDirectory(prefix="adspec-footage-") as d:
            cut = _cut(recipe.files["footage"].path, Path(d) / "cut.mp4", p["from"], 1.0)
            frame = media.first_frame(cut, Path(d) / "frame.png")
            media.normalise_image(frame, out, p["width"], p["height"])
    elif recipe.model == "footage":
        with tempfile.TemporaryDirectory(prefix="adspec-footage-") as d:
            cut = _cut(recipe.files["footage"].path, Path(d) / "cut.mp4", p["from"], p["seconds"])
            placed = media.normalise_clip(cut, Path(d) / "placed.mp4", width=p["width"], height=p["height"],
                                          fps=p["fps"], seconds=p["seconds"])
            shutil.copyfile(placed, out)
    else:  # pragma: no cover - recipes are made above
        raise MediaError(f"unknown local recipe {recipe.model}")
    return RunResult(job_id=None, cost_usd=0.0)


def _cut(src: Path, out: Path, start: float, seconds: float) -> Path:
    """`seconds` of `src` from `start` on, re-encoded without loss of note (then conformed)."""
    media.run_ffmpeg_args(["-y", "-ss", f"{float(start):.3f}", "-i", str(src), "-t", f"{float(seconds):.3f}", "-map", "0:v:0",
                           "-an", "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv444p", str(out)], src)
    return out


def media_problem(path: Path, kind: str, start: float = 0.0, seconds: float = 0.0) -> str | None:
    """What is wrong with a beat's own still (`kind` "image") or footage ("footage": must hold
    `start + seconds` of video), or None."""
    if not path.is_file():
        return "not found" if not path.exists() else "is not a file"
    suffix = path.suffix.lower()
    if kind == "image":
        if suffix not in IMAGE_SUFFIXES:
            return f"must be an image ({', '.join(IMAGE_SUFFIXES)})"
        return asset_problem(path)
    if suffix not in VIDEO_SUFFIXES:
        return f"must be a video ({', '.join(VIDEO_SUFFIXES)})"
    try:
        info = media.probe(path)
    except Exception as e:  # unreadable: ffprobe's reason
        return f"is not a readable video ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    if not info.has_video:
        return "has no video stream"
    if info.duration + 1e-3 < start + seconds:
        return (f"is {info.duration:.2f} s long: too short for {seconds:g} s from {start:g} s "
                f"(needs {start + seconds:g} s)")
    return None
