"""What the mix needs from the spoken lines: each voice.wav at its beat's start, the windows the
music ducks in, the captions (written to captions.srt/.vtt) and their burned-in images.

Local work only: nothing here asks a provider, so changing how captions look re-encodes the
final and pays nothing.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import captions
from .build_files import Speech, read_model
from .errors import MediaError
from .fsutil import temp_dir
from .media import Overlay
from .paths import AdPaths


@dataclass
class SpeechParts:
    voices: list[tuple[Path, float]] = field(default_factory=list)  # (voice.wav, start second)
    duck: list[tuple[float, float]] = field(default_factory=list)  # seconds the music is ducked in
    overlays: list[Overlay] = field(default_factory=list)
    subtitles: Path | None = None
    cues: list[captions.Cue] = field(default_factory=list)
    drawn: list[tuple[list[str], int]] = field(default_factory=list)  # each burned cue's wrapped lines and px size


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def text_layout(parts: SpeechParts, width: int, height: int) -> dict[str, Any]:
    """Where the words drawn on the picture sit (each burned caption's box and time), for the
    delivery checks' safe zones; written by the mix beside the final."""
    from PIL import Image

    boxes = []
    for overlay, cue in zip(parts.overlays, parts.cues):
        with Image.open(overlay.png) as img:
            w, h = img.size
        boxes.append({"kind": "caption", "text": cue.text, "x": overlay.x, "y": overlay.y, "w": w, "h": h,
                      "start": overlay.start, "end": overlay.end})
    return {"width": width, "height": height, "boxes": boxes}


@contextmanager
def speech_parts(paths: AdPaths) -> Iterator[SpeechParts]:
    """The parts of an ad's speech, with caption files written and images drawn in a scratch
    folder that lives as long as the context (the mix reads them)."""
    parts = SpeechParts()
    speech = read_model(Speech, paths.speech) if paths.speech.exists() else None
    seconds = {}
    for line in speech.lines if speech is not None else ():
        wav = paths.voice(line.id)
        seconds[line.id] = wav_seconds(wav)
        start = float(line.start) + float(line.lead_in)
        parts.voices.append((wav, start))
        parts.duck.append((start, start + seconds[line.id]))
    if speech is None or not parts.voices:
        for stale in (paths.captions_srt, paths.captions_vtt):
            stale.unlink(missing_ok=True)
        yield parts
        return
    parts.cues = captions.cues(captions.spoken_lines(speech, seconds))
    captions.write_captions(parts.cues, paths.captions_srt, paths.captions_vtt)
    parts.subtitles = paths.captions_srt
    options = speech.captions or {}
    with temp_dir(paths.root, "captions") as tmp:
        if options.get("burn", True):
            from .render.captions import caption_images
            from .text_fit import TextFitError

            try:
                placed = caption_images(parts.cues, Path(tmp), width=speech.width, height=speech.height,
                                        aspect_ratio=speech.aspect_ratio, palette=speech.palette, options=options,
                                        zones=speech.safe_zones)
            except TextFitError as e:  # one line naming the beat and the words, never a crop
                raise MediaError(f"captions: {e}") from None
            parts.overlays = [Overlay(p.png, p.x, p.y, p.start, p.end) for p in placed]
            parts.drawn = [(list(p.lines), p.size) for p in placed]
        yield parts
