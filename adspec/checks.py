"""Delivery checks: a finished ad held against the rules of its placements (adspec.placements)
and the rules that hold for every ad. One line per violation; measured on the files, never on
what the spec says.

Every ad (no placements needed):
  format     H.264 video, AAC audio, an MP4 file
  loudness   integrated loudness within UNIVERSAL_LUFS (EBU R128), true peak at most UNIVERSAL_TRUE_PEAK
  flashes    at most 3 flashes in any 1 s (the photosensitivity rule of WCAG 2.3.1 / ITU-R BT.1702 /
             Ofcom): a flash is a pair of opposing changes of the frame's mean luma of at least
             FLASH_DELTA (10 % of the luma range); measured on the whole frame's mean, so a small
             flashing area is not seen (a simplification of the 25 %-of-screen area rule)
Per placement (the file delivered to it: build/<ad>/export/<placement>.mp4 when made, else final.mp4):
  duration   exact (within one frame) or within min/max
  aspect     width:height within 1 % of the placement's
  loudness   integrated within +-LOUDNESS_TOLERANCE LU of the target, true peak at most the ceiling
  captions   where required: a subtitle stream or burned captions
  safe zone  every text box the build drew (text_layout.json: supers, end card, burned captions) inside the
             placement's safe zone
  format     codecs, container, video and audio bitrate, sample rate within the placement's limits
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .build_files import RECORD_VERSIONS, record_version
from .fsutil import write_json_atomic
from .media import decoded_duration, probe
from .media_delivery import SILENCE_LUFS, file_facts, loudness, luma_means
from .paths import AdPaths
from .placements import Placement, load_placements

UNIVERSAL_LUFS = (-27.0, -13.0)  # the range any platform's normaliser takes without audible harm
UNIVERSAL_TRUE_PEAK = -1.0  # dBTP (EBU R128 s1: -1 dBTP for distribution)
LOUDNESS_TOLERANCE = 1.0  # LU
FLASH_DELTA = 20.0  # of 255 (~10 % of the luma range; BT.1702 / WCAG: 10 % of the maximum relative luminance)
MAX_FLASHES_PER_SECOND = 3
UNIVERSAL_VIDEO_CODECS = ("h264",)
UNIVERSAL_AUDIO_CODECS = ("aac",)
_RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:5": 4 / 5}


@dataclass(frozen=True)
class Violation:
    placement: str | None  # None: a rule for every ad
    check: str  # duration, aspect, loudness, true-peak, captions, safe-zone, flashes, format
    message: str

    def line(self, ad: str) -> str:
        where = f"{self.placement}: " if self.placement else ""
        return f"{ad}: {where}{self.check}: {self.message}"


@dataclass
class CheckReport:
    ad: str
    placements: list[str]
    violations: list[Violation] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        return [v.line(self.ad) for v in self.violations]

    def to_json(self) -> dict[str, Any]:
        return {"ad": self.ad, "passed": self.passed, "placements": self.placements,
                "violations": [asdict(v) for v in self.violations], "lines": self.lines(),
                "measured": self.measured, "notes": self.notes, "version": RECORD_VERSIONS["checks.json"]}


# ---- pure rules --------------------------------------------------------------------------------


def flash_transitions(lumas: Sequence[float], delta: float = FLASH_DELTA) -> list[int]:
    """Frame indexes where the luma has gone the other way by at least `delta` from the last
    extreme (hysteresis: slow drifts and small flicker are no transitions)."""
    if not lumas:
        return []
    hi = lo = lumas[0]
    state = 0  # 0: unknown, 1: last transition was a rise, -1: a fall
    events: list[int] = []
    for i, v in enumerate(lumas[1:], 1):
        hi, lo = max(hi, v), min(lo, v)
        if state >= 0 and hi - v >= delta:
            events.append(i)
            state, lo, hi = -1, v, v
        elif state <= 0 and v - lo >= delta:
            events.append(i)
            state, hi, lo = 1, v, v
    return events


def max_flashes_per_second(lumas: Sequence[float], fps: float, delta: float = FLASH_DELTA) -> tuple[float, float]:
    """(most flashes in any 1 s window, the window's start in seconds); a flash is two transitions."""
    events = flash_transitions(lumas, delta)
    window = max(1, int(round(fps)))
    best, at, j = 0, 0, 0
    for i, e in enumerate(events):
        while events[j] <= e - window:
            j += 1
        if i - j + 1 > best:
            best, at = i - j + 1, events[j]
    return best / 2, at / fps if fps else 0.0


def duration_violation(seconds: float, p: Placement, fps: float) -> str | None:
    d = p.duration
    frame = 1 / fps if fps else 0.05
    if d.exact is not None and abs(seconds - d.exact) > frame:
        return f"{seconds:.2f} s, must be exactly {d.exact:g} s"
    if d.max is not None and seconds > d.max + frame:
        return f"{seconds:.2f} s, over the maximum of {d.max:g} s"
    if d.min is not None and seconds < d.min - frame:
        return f"{seconds:.2f} s, under the minimum of {d.min:g} s"
    return None


def aspect_violation(width: int, height: int, p: Placement) -> str | None:
    want = _RATIOS[p.aspect_ratio]
    if abs(width / height - want) / want > 0.01:
        return f"{width}x{height} is not {p.aspect_ratio}"
    return None


def safe_zone_violations(layout: dict[str, Any], p: Placement) -> list[str]:
    """One message per text box of the layout outside the placement's safe zone."""
    width, height = int(layout.get("width", 0)), int(layout.get("height", 0))
    if not width or not height:
        return []
    left, top, right, bottom = p.safe_zone.box(width, height)
    z = p.safe_zone
    out = []
    for box in layout.get("boxes", []):
        x0, y0 = int(box["x"]), int(box["y"])
        x1, y1 = x0 + int(box["w"]), y0 + int(box["h"])
        sides = []
        if y1 > bottom:
            sides.append(f"the bottom {z.bottom:.0%} (y {y1} > {bottom} of {height})")
        if y0 < top:
            sides.append(f"the top {z.top:.0%} (y {y0} < {top})")
        if x0 < left:
            sides.append(f"the left {z.left:.0%} (x {x0} < {left})")
        if x1 > right:
            sides.append(f"the right {z.right:.0%} (x {x1} > {right} of {width})")
        if sides:
            text = " ".join(str(box.get("text", "")).split())
            text = text if len(text) <= 30 else text[:29] + "…"
            out.append(f"{box.get('kind', 'text')} \"{text}\" at {box['start']:.2f}-{box['end']:.2f} s reaches into "
                       + " and ".join(sides))
    return out


# ---- measuring a file --------------------------------------------------------------------------


def _format_violations(path: Path, p: Placement | None) -> list[str]:
    info, facts = probe(path), file_facts(path)
    vcodecs = p.video.codecs if p else UNIVERSAL_VIDEO_CODECS
    acodecs = p.audio.codecs if p else UNIVERSAL_AUDIO_CODECS
    containers = p.video.containers if p else ("mp4",)
    out = []
    if info.vcodec not in vcodecs:
        out.append(f"video codec {info.vcodec}, must be {' or '.join(vcodecs)}")
    if info.acodec not in acodecs:
        out.append(f"audio codec {info.acodec or 'none'}, must be {' or '.join(acodecs)}")
    if not any(c in facts.formats for c in containers) or facts.suffix.lstrip(".") not in containers:
        out.append(f"container {facts.suffix or '?'} ({','.join(facts.formats)}), must be {' or '.join(containers)}")
    if p is not None:
        if facts.video_kbps is not None and facts.video_kbps > p.video.max_kbps:
            out.append(f"video bitrate {facts.video_kbps} kbps, over the maximum of {p.video.max_kbps} kbps")
        if facts.audio_kbps is not None and facts.audio_kbps > p.audio.max_kbps:
            out.append(f"audio bitrate {facts.audio_kbps} kbps, over the maximum of {p.audio.max_kbps} kbps")
        if info.audio_rate is not None and info.audio_rate not in p.audio.sample_rates:
            rates = " or ".join(f"{r} Hz" for r in p.audio.sample_rates)
            out.append(f"audio sample rate {info.audio_rate} Hz, must be {rates}")
    return out


def check_file(ad: str, path: Path, placements: Sequence[str], *, layout: dict[str, Any] | None = None,
               delivered: dict[str, Path] | None = None, measure_flashes: bool = True,
               kept_lumas: Path | None = None) -> CheckReport:
    """Every check of `placements` (and the universal ones) on `path` (the final), with the
    placement's own file from `delivered` (its export) where there is one; `kept_lumas` keeps the
    frames' lumas by GOP for the next check (media_delivery.luma_means)."""
    known = load_placements()
    report = CheckReport(ad, list(placements))
    info = probe(path)
    facts = file_facts(path)
    report.measured["final"] = {"duration": info.duration, "width": info.width, "height": info.height,
                                "fps": info.fps, "video_kbps": facts.video_kbps, "audio_kbps": facts.audio_kbps,
                                "subtitle_streams": facts.subtitle_streams}
    add = report.violations.append
    for msg in _format_violations(path, None):
        add(Violation(None, "format", msg))
    # the two decodes of the final (its sound's loudness, every frame's luma) at once
    with ThreadPoolExecutor(max_workers=1) as pool:
        sound = pool.submit(loudness, path) if info.has_audio else None
        lumas = luma_means(path, keep=kept_lumas) if measure_flashes and info.has_video else None
        if sound is not None:
            lufs, tp = sound.result()
    # the final's picture length, from the frames just decoded (CFR: ours); else decoded again below
    final_seconds = len(lumas) / info.fps if lumas and info.fps else None
    if info.has_audio:
        report.measured["final"].update(lufs=lufs, true_peak=tp)
        if lufs <= SILENCE_LUFS:
            report.notes.append("the ad is silent: no loudness to check")
        else:
            low, high = UNIVERSAL_LUFS
            if not low <= lufs <= high:
                add(Violation(None, "loudness", f"integrated {lufs:.1f} LUFS, outside {low:g} to {high:g} LUFS"))
            if tp > UNIVERSAL_TRUE_PEAK:
                add(Violation(None, "true-peak", f"{tp:.1f} dBTP, over the ceiling of {UNIVERSAL_TRUE_PEAK:g} dBTP"))
    if lumas is not None:
        flashes, at = max_flashes_per_second(lumas, info.fps or 24)
        report.measured["final"]["max_flashes_per_second"] = flashes
        if flashes > MAX_FLASHES_PER_SECOND:
            add(Violation(None, "flashes", f"{flashes:g} flashes in the second from {at:.2f} s, more than "
                                           f"{MAX_FLASHES_PER_SECOND} per second (photosensitivity)"))
    layout = layout or {}
    burned = any(b.get("kind") == "caption" for b in layout.get("boxes", []))  # a super is not a caption
    if not layout:
        report.notes.append("no text layout recorded: words on screen are not checked against safe zones")
    for pid in placements:
        p = known[pid]
        file = (delivered or {}).get(pid, path)
        finfo = probe(file) if file != path else info
        measured: dict[str, Any] = {"file": file.name}
        # the picture's length, and the file's (its sound ends with the picture: media.aac_fit_seconds)
        if file == path and final_seconds is not None:
            measured["video_seconds"] = final_seconds
        else:
            measured["video_seconds"] = decoded_duration(file, "v") if finfo.has_video else finfo.duration
        measured["file_seconds"] = finfo.duration
        too_long = duration_violation(max(measured["video_seconds"], finfo.duration), p, finfo.fps or 24)
        if too_long:
            add(Violation(pid, "duration", too_long))
        misshapen = aspect_violation(finfo.width, finfo.height, p)
        if misshapen:
            add(Violation(pid, "aspect", misshapen))
        if finfo.has_audio:
            lufs, tp = loudness(file) if file != path else (report.measured["final"]["lufs"], report.measured["final"]["true_peak"])
            measured.update(lufs=lufs, true_peak=tp)
            if lufs > SILENCE_LUFS:
                if abs(lufs - p.loudness.lufs) > LOUDNESS_TOLERANCE:
                    add(Violation(pid, "loudness", f"integrated {lufs:.1f} LUFS in {file.name}, target "
                                                   f"{p.loudness.lufs:g} +-{LOUDNESS_TOLERANCE:g} LU"))
                if tp > p.loudness.true_peak:
                    add(Violation(pid, "true-peak", f"{tp:.1f} dBTP in {file.name}, over the ceiling of "
                                                    f"{p.loudness.true_peak:g} dBTP"))
        if p.captions_required and not burned and file_facts(file).subtitle_streams == 0:
            add(Violation(pid, "captions", "required, but the file has no subtitle stream and no burned captions"))
        for msg in safe_zone_violations(layout, p):
            add(Violation(pid, "safe-zone", msg))
        for msg in _format_violations(file, p):
            add(Violation(pid, "format", f"{msg} ({file.name})"))
        report.measured[pid] = measured
    return report


def checks_current(checks_json: str | Path, placements: Sequence[str]) -> bool:
    """Whether checks.json was written for these placements, by this version of the checks (a new
    placement, or checks of another version, re-run them: the graph's uptodate and the estimate)."""
    try:
        data = json.loads(Path(checks_json).read_text(encoding="utf-8"))
        return bool(data.get("placements") == list(placements)
                    and data.get("version") == RECORD_VERSIONS["checks.json"])
    except (OSError, ValueError, AttributeError):
        return False


def layout_current(layout_json: str | Path) -> bool:
    """Whether the mix's record of where it drew words is of this version (the checks read it:
    the graph re-runs the mix for one of another version, and the estimate says so)."""
    return record_version(layout_json) == RECORD_VERSIONS["text_layout.json"]


def read_layout(paths: AdPaths) -> dict[str, Any] | None:
    """The mix's record of where it drew words; None when missing, damaged or of another version
    (the mix task runs again for one of another version: graph's uptodate)."""
    try:
        data: dict[str, Any] = json.loads(paths.text_layout.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == RECORD_VERSIONS["text_layout.json"] else None


def check_ad(paths: AdPaths, ad: str, placements: Sequence[str]) -> CheckReport:
    """The checks of a built ad; the result written to build/<ad>/checks.json."""
    delivered = {pid: paths.export(pid) for pid in placements if paths.export(pid).is_file()}
    report = check_file(ad, paths.final, placements, layout=read_layout(paths), delivered=delivered,
                        kept_lumas=paths.mix_parts / "lumas.json")
    write_json_atomic(paths.checks, report.to_json())
    return report
