"""Where every file lives: the specs and their beat files in specs/, and every file of an ad under
build/<ad>/ (AdPaths; a beat's files under beats/<beat-id>/). No other module spells a file name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

BEATS_SUFFIX = ".beats.yaml"
SPEC_SUFFIXES = (".yaml", ".yml")  # a spec is `<ad>.yaml` or `<ad>.yml`; its beat file takes the same ending
BEATS_SUFFIXES = tuple(".beats" + s for s in SPEC_SUFFIXES)
STATE_DB = ".doit.sqlite3"  # doit's state DB in the build folder (sqlite: two doit processes at once are safe)
VARIANT_SEPARATOR = "@"  # `<spec>@<variant>`: the ad name of a variant (see adspec.variants)


# ---- specs/ ---------------------------------------------------------------------------------------


def is_beat_file(path: str | Path) -> bool:
    """`<ad>.beats.yaml` or `<ad>.beats.yml` (and their variants' `<ad>@<tag>.beats.y[a]ml`)."""
    return Path(path).name.endswith(BEATS_SUFFIXES)


def is_spec_name(path: str | Path) -> bool:
    """A name a spec may have: `*.yaml` or `*.yml`, not a beat file, not a dotfile."""
    name = Path(path).name
    return name.endswith(SPEC_SUFFIXES) and not name.startswith(".") and not is_beat_file(name)


def ad_name(path: str | Path) -> str:
    """The ad's name: the spec file's stem (`specs/trailrunner.yaml` and its beat file
    `specs/trailrunner.beats.yaml` both -> "trailrunner"). See `check_ad_name` for the rule."""
    name = Path(path).name
    for suffix in BEATS_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def find_specs(specs_dir: str | Path) -> list[Path]:
    """Every spec in `specs_dir`: `*.yaml` and `*.yml` except beat files and dotfiles (temp files,
    editors' swap files: never ads), sorted by name."""
    d = Path(specs_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if is_spec_name(p) and p.is_file())


def _ending(path: Path) -> str:
    """`.yml` for a `.yml` spec or beat file, else `.yaml`."""
    return ".yml" if path.name.endswith(".yml") else ".yaml"


def beat_file_path(spec_path: str | Path, tag: str | None = None) -> Path:
    """The beat file (the lock) beside a spec: `<ad>.beats.yaml`, or `<ad>@<tag>.beats.yaml` for
    variants that plan differently from the spec (see adspec.variants); `.beats.yml` beside a
    `.yml` spec."""
    spec_path = Path(spec_path)
    base = ad_name(spec_path)
    name = base if tag is None else f"{base}{VARIANT_SEPARATOR}{tag}"
    return spec_path.with_name(f"{name}.beats{_ending(spec_path)}")


def spec_of_beat_file(beats_path: str | Path) -> Path:
    """The spec a beat file belongs to: specs/x.beats.yaml and specs/x@tag.beats.yaml -> specs/x.yaml
    (specs/x.beats.yml -> specs/x.yml)."""
    beats_path = Path(beats_path)
    base = ad_name(beats_path).split(VARIANT_SEPARATOR, 1)[0]
    return beats_path.with_name(base + _ending(beats_path))


# ---- build/<ad>/ ----------------------------------------------------------------------------------



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
    def translation(self) -> Path:
        """The LLM planner's translation of the texts this ad's language lacks (with its receipt)."""
        return self.root / "translation.json"

    @property
    def plan_inputs(self) -> Path:
        """The stamp of what plan.json was made from (adspec.plan_step.inputs_stamp)."""
        return self.root / "plan.inputs"

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
    def mix_parts(self) -> Path:
        """What the last mix made that the next may reuse: the pieces of picture with words drawn
        (adspec.media_overlay) and the sound (adspec.media.mix); and the lumas the last checks
        measured, by GOP (adspec.media_delivery.luma_means)."""
        return self.root / "mix-parts"

    @property
    def speech(self) -> Path:
        """Where each spoken line is placed and how captions look (the mix's input)."""
        return self.root / "speech.json"

    @property
    def text_inputs(self) -> Path:
        """What the text layer draws (supers, the brand kit): written by the plan, read by the mix."""
        return self.root / "text.json"

    @property
    def text_layout(self) -> Path:
        """Every drawn text's box per time span (written by the mix; placement checks read it)."""
        return self.root / "text_layout.json"

    @property
    def captions_srt(self) -> Path:
        return self.root / "captions.srt"

    @property
    def captions_vtt(self) -> Path:
        return self.root / "captions.vtt"


    @property
    def checks(self) -> Path:
        """The delivery checks' results (adspec.checks)."""
        return self.root / "checks.json"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def export(self, placement: str) -> Path:
        """The final made for one placement (adspec.exports)."""
        return self.export_dir / f"{placement}.mp4"

    @property
    def timeline_otio(self) -> Path:
        """The cut as an OpenTimelineIO file, for editors (adspec.timeline_otio)."""
        return self.root / "timeline.otio"

    def voice_inputs(self, beat_id: str) -> Path:
        return self.beat_dir(beat_id) / "voice.json"

    def voice(self, beat_id: str) -> Path:
        return self.beat_dir(beat_id) / "voice.wav"

    @property
    def stitch_report(self) -> Path:
        return self.root / "stitch.json"

    @property
    def status(self) -> Path:
        """Live progress of the ad (adspec.status)."""
        return self.root / "status.json"

    @property
    def status_lock(self) -> Path:
        """Held while status.json or cost.json is rewritten."""
        return self.root / ".status.lock"

    @property
    def cost(self) -> Path:
        """The ad's cost ledger (adspec.cost)."""
        return self.root / "cost.json"

    @property
    def review_page(self) -> Path:
        return self.root / "index.html"

    @property
    def contact_sheet(self) -> Path:
        """Every beat's storyboard image on one sheet, shown on the review page."""
        return self.root / "storyboard.png"

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


def build_index(build_dir: str | Path) -> Path:
    """build/index.html: the review page of every ad."""
    return Path(build_dir) / "index.html"


def runs_dir(build_dir: str | Path) -> Path:
    """build/.adspec/runs/: one budget file per doit run (adspec.cost.RunBudget)."""
    return Path(build_dir) / ".adspec" / "runs"


def replaced_beat_files_dir(build_dir: str | Path) -> Path:
    """build/.adspec/replaced/: beat files a new plan replaced while they held a person's work
    (comments added, or edits `plan --force` discarded), one copy each (adspec.beat_lock)."""
    return Path(build_dir) / ".adspec" / "replaced"


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
        return "_invalid-" + hashlib.sha256(ad.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return ad
