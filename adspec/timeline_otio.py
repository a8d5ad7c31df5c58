"""build/<ad>/timeline.otio: the cut as an OpenTimelineIO timeline, so an editor (Resolve, Premiere
through its OTIO import, Avid via adapters) can take the ad over.

  V1     every beat's chunks in order, each with the range the stitch used (the beat's last chunk
         trimmed), media references to the chunk files in build/ (file URLs)
  Voice  each spoken line (beats/<id>/voice.wav) where the mix places it, gaps between
  Music  music.wav over the whole ad (none for a model with native audio)
  markers on V1: one per beat, named by its id, over the beat's time

Written from the plan files the stitch and mix read (timeline.json, speech.json), so it is the
cut the final was made from. Local, free, never part of a recipe.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

from .build_files import Speech, Timeline, read_model
from .fsutil import write_if_changed
from .mp4_table import video_seconds
from .paths import AdPaths


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def _ref(otio: Any, path: Path, seconds: float, rate: float) -> Any:
    return otio.schema.ExternalReference(
        target_url=path.resolve().as_uri(),
        available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                otio.opentime.RationalTime.from_seconds(seconds, rate)))


def build_timeline(paths: AdPaths, ad: str) -> Any:
    """The ad's opentimelineio Timeline."""
    import opentimelineio as otio

    cut = read_model(Timeline, paths.timeline)
    fps = float(cut.fps)
    rt = otio.opentime.RationalTime

    def span(start: float, seconds: float) -> Any:
        return otio.opentime.TimeRange(rt.from_seconds(start, fps), rt.from_seconds(seconds, fps))

    timeline = otio.schema.Timeline(name=ad, global_start_time=rt(0, fps))
    timeline.metadata["adspec"] = {"final": paths.final.resolve().as_uri(), "width": cut.width,
                                   "height": cut.height, "fps": fps, "duration": cut.duration}
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for beat in cut.beats:
        left = float(beat.duration)
        for k, clip_seconds in enumerate(beat.clips):
            used = min(float(clip_seconds), left)
            if used <= 0:
                break
            chunk = paths.chunk(beat.id, k)
            # the file's own length (an offline chunk is made only as long as it is shown; a live one
            # is the model's whole clip): an editor relinking it sees the media as it is
            have = video_seconds(chunk) if chunk.exists() else float(clip_seconds)
            video.append(otio.schema.Clip(name=f"{beat.id}/{k}", media_reference=_ref(otio, chunk, have, fps),
                                          source_range=span(0, min(used, have)),
                                          metadata={"adspec": {"beat": beat.id, "chunk": k}}))
            left -= used
        video.markers.append(otio.schema.Marker(name=beat.id, marked_range=span(beat.start, beat.duration),
                                                color=otio.schema.MarkerColor.RED))
    timeline.tracks.append(video)

    lines = read_model(Speech, paths.speech).lines if paths.speech.exists() else ()
    if lines:
        voice = otio.schema.Track(name="Voice", kind=otio.schema.TrackKind.Audio)
        at = 0.0
        for line in lines:
            wav = paths.voice(line.id)
            seconds = _wav_seconds(wav)
            start = float(line.start) + float(line.lead_in)
            if start > at:
                voice.append(otio.schema.Gap(source_range=span(0, start - at)))
            voice.append(otio.schema.Clip(name=f"voice {line.id}", media_reference=_ref(otio, wav, seconds, fps),
                                          source_range=span(0, seconds)))
            at = start + seconds
        timeline.tracks.append(voice)
    if not cut.native_audio and paths.music.exists():
        music = otio.schema.Track(name="Music", kind=otio.schema.TrackKind.Audio)
        seconds = float(cut.duration)
        music.append(otio.schema.Clip(name="music", media_reference=_ref(otio, paths.music, _wav_seconds(paths.music), fps),
                                      source_range=span(0, seconds)))
        timeline.tracks.append(music)
    return timeline


def write_timeline(paths: AdPaths, ad: str) -> Path:
    import opentimelineio as otio

    text = otio.adapters.write_to_string(build_timeline(paths, ad), "otio_json")
    write_if_changed(paths.timeline_otio, text)  # the same cut (a caption style changed): left as it is
    return paths.timeline_otio
