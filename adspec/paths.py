"""Where each target of an ad lives: build/<ad>/..., a beat's files under beats/<beat-id>/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AdPaths:
    root: Path  # build/<ad>

    @classmethod
    def of(cls, build_dir: Path, ad: str) -> "AdPaths":
        return cls(Path(build_dir) / ad_folder(ad))

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def music_inputs(self) -> Path:
        return self.root / "music.json"

    @property
    def timeline(self) -> Path:
        return self.root / "timeline.json"

    @property
    def music(self) -> Path:
        return self.root / "music.wav"

    @property
    def video(self) -> Path:
        return self.root / "video.mp4"

    @property
    def final(self) -> Path:
        return self.root / "final.mp4"

    @property
    def speech(self) -> Path:
        """Where each spoken line is placed and how captions look (the mix's input)."""
        return self.root / "speech.json"

    @property
    def captions_srt(self) -> Path:
        return self.root / "captions.srt"

    @property
    def captions_vtt(self) -> Path:
        return self.root / "captions.vtt"

    def voice_inputs(self, beat_id: str) -> Path:
        return self.beat_dir(beat_id) / "voice.json"

    def voice(self, beat_id: str) -> Path:
        return self.beat_dir(beat_id) / "voice.wav"

    @property
    def stitch_report(self) -> Path:
        return self.root / "stitch.json"

    def beat_dir(self, beat_id: str) -> Path:
        return self.root / "beats" / beat_id

    def beat_inputs(self, beat_id: str) -> Path:
        return self.beat_dir(beat_id) / "beat.json"

    def storyboard(self, beat_id: str) -> Path:
        return self.beat_dir(beat_id) / "storyboard.png"

    def chunk(self, beat_id: str, index: int) -> Path:
        return self.beat_dir(beat_id) / f"chunk-{index}.mp4"

    def last_frame(self, beat_id: str, index: int) -> Path:
        return self.beat_dir(beat_id) / f"chunk-{index}.last.png"

    def first_frame(self, beat_id: str, index: int) -> Path:
        """Chunk 0 starts from the storyboard image, chunk k>0 from chunk k-1's last frame."""
        return self.storyboard(beat_id) if index == 0 else self.last_frame(beat_id, index - 1)


def receipt_path(artifact: Path) -> Path:
    """The provenance receipt beside an artifact: storyboard.png -> storyboard.receipt.json."""
    name = artifact.name.split(".")[0]
    return artifact.with_name(f"{name}.receipt.json")


def ad_folder(ad: str) -> str:
    """The name of an ad's folder in build/: the ad's name, unless that cannot be one folder
    inside build/ (a spec file `..yaml` or `...yaml` is the ad '.' or '..'; a name with a path
    separator or NUL): then a stand-in inside build/. Such a spec only fails its plan (its name
    is invalid), but status and cost files written for it must stay inside build/."""
    if ad in ("", ".", "..") or any(c in ad for c in "/\\\0"):
        import hashlib

        return "_invalid-" + hashlib.sha256(ad.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return ad
