"""The ffmpeg measurements and encodes of delivery: what a platform checks of a finished file
(container, bitrates, subtitle streams, loudness and true peak, luminance per frame) and the
per-placement export (loudness normalised, video stream-copied unless its bitrate is over the
placement's limit). Same binary and atomic writes as adspec.media; nothing here is ever paid.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import MediaError
from .fsutil import temp_dir, write_json_atomic
from .hashing import sha256_json
from .media import (
    AUDIO_CHANNELS,
    AUDIO_RATE,
    MP4_ARGS,
    aac_fit_seconds,
    atomic_media,
    ffmpeg_exe,
    probe,
    run_ffmpeg_args,
    video_encoder_args,
)
from .mp4_table import gop_digests
from .redact import child_env

_INPUT = re.compile(r"^Input #0, ([\w,]+), from")
_STREAM = re.compile(r"Stream #0:\d+.*?: (Video|Audio|Subtitle|Data): (.*)$")
_KBPS = re.compile(r"(\d+) kb/s")
_TOTAL_KBPS = re.compile(r"Duration: .*?bitrate: (\d+) kb/s")
_INTEGRATED = re.compile(r"Integrated loudness:\s*I:\s*(-?[\d.]+|-inf) LUFS")
_TRUE_PEAK = re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf) dBFS")
SILENCE_LUFS = -70.0  # below this an ad is silent: no loudness to hold against a target


@dataclass(frozen=True)
class FileFacts:
    """What a platform's ingest sees of a file, beyond adspec.media.MediaInfo."""

    formats: tuple[str, ...]  # the demuxer's names, e.g. ("mov", "mp4", "m4a", ...)
    suffix: str  # ".mp4"
    video_kbps: int | None
    audio_kbps: int | None
    total_kbps: int | None
    subtitle_streams: int


def file_facts(path: str | Path) -> FileFacts:
    path = Path(path)
    probe(path)  # MediaError for a file that is no media
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          check=False, env=child_env())
    err = proc.stderr.decode("utf-8", "replace")
    formats: tuple[str, ...] = ()
    video_kbps = audio_kbps = total_kbps = None
    subtitles = 0
    for line in err.splitlines():
        m = _INPUT.match(line.strip())
        if m:
            formats = tuple(m[1].split(","))
        t = _TOTAL_KBPS.search(line)
        if t:
            total_kbps = int(t[1])
        s = _STREAM.search(line)
        if s:
            kbps = _KBPS.search(s[2])
            if s[1] == "Video" and video_kbps is None and "attached pic" not in line:
                video_kbps = int(kbps[1]) if kbps else None
            elif s[1] == "Audio" and audio_kbps is None:
                audio_kbps = int(kbps[1]) if kbps else None
            elif s[1] == "Subtitle":
                subtitles += 1
    return FileFacts(formats, path.suffix.lower(), video_kbps, audio_kbps, total_kbps, subtitles)


def loudness(path: str | Path) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) of the first audio stream (EBU R128,
    ffmpeg's ebur128 filter with true-peak metering)."""
    proc = run_ffmpeg_args(["-nostats", "-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=quiet",
                            "-f", "null", "-"], path)
    err = proc.stderr.decode("utf-8", "replace")
    i, tp = _INTEGRATED.findall(err), _TRUE_PEAK.findall(err)
    if not i or not tp:
        raise MediaError(f"{path}: no loudness measurement")
    return float(i[-1]), float(tp[-1])


def luma_means(path: str | Path, size: int = 32, *, keep: Path | None = None) -> list[float]:
    """The mean luma (0-255, limited-range Y as decoded) of every frame, from a `size`x`size`
    grey thumbnail of each (area-averaged: the mean of the whole frame).

    With `keep` (a JSON file of the ad's), each GOP's values are kept by the digest of its coded
    bytes (mp4_table.gop_digests) and the next call decodes only the GOPs it has not seen: after
    an edit that remade one clip, only that clip's seconds (the mix copies the rest)."""
    if keep is None:
        return _decode_lumas(path, size)
    try:
        gops = gop_digests(path)
    except MediaError:
        return _decode_lumas(path, size)
    known = _read_kept(keep, size)
    fps = probe(path).fps or 24.0
    lumas: dict[str, list[float]] = {}
    todo = [g for g in gops if g[2] not in known]
    runs: list[list[tuple[int, int, str]]] = []
    for g in todo:  # contiguous GOPs decode in one pass
        if runs and runs[-1][-1][0] + runs[-1][-1][1] == g[0]:
            runs[-1].append(g)
        else:
            runs.append([g])
    for run in runs:
        first, frames = run[0][0], sum(g[1] for g in run)
        values = _decode_lumas(path, size, first=first, frames=frames, fps=fps)
        if len(values) != frames:  # not decodable GOP by GOP (an open GOP): the whole file
            return _decode_lumas(path, size)
        at = 0
        for _first, n, digest in run:
            lumas[digest], at = values[at:at + n], at + n
    out: list[float] = []
    for _first, _n, digest in gops:
        out += lumas.get(digest) or known[digest]
    keep.parent.mkdir(parents=True, exist_ok=True)
    kept = {d: lumas.get(d) or known[d] for _f, _n, d in gops}
    write_json_atomic(keep, {"size": size, "gops": kept, "sha256": sha256_json(kept)})
    return out


def _read_kept(keep: Path, size: int) -> dict[str, list[float]]:
    """The kept lumas by GOP digest; none when the file is missing, of another size, or its
    values no longer match the digest written with them (a damaged file is not believed)."""
    try:
        data = json.loads(keep.read_text(encoding="utf-8"))
        gops = dict(data["gops"])
        return gops if data.get("size") == size and data.get("sha256") == sha256_json(gops) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _decode_lumas(path: str | Path, size: int, *, first: int = 0, frames: int | None = None,
                  fps: float = 24.0) -> list[float]:
    """Every frame's mean luma, or `frames` of them from frame `first` (a keyframe: the seek
    lands half a frame before it and the frames before it are decoded and dropped)."""
    import numpy as np

    seek = ["-ss", f"{(first - 0.5) / fps:.6f}"] if first > 0 else []
    count = ["-frames:v", str(frames)] if frames is not None else []
    proc = run_ffmpeg_args(["-loglevel", "error", *seek, "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                            *count, "-vf", f"scale={size}:{size}:flags=area,format=gray", "-f", "rawvideo", "-"], path)
    data = np.frombuffer(proc.stdout, dtype=np.uint8)
    n = data.size // (size * size)
    return [float(x) for x in data[: n * size * size].reshape(n, size * size).mean(axis=1)]


def _db_to_linear(db: float) -> float:
    return float(10 ** (db / 20))


def export(final: str | Path, out: str | Path, *, lufs: float, true_peak: float, max_video_kbps: int,
           audio_kbps: int, tolerance: float = 0.5, passes: int = 8) -> bool:
    """The final re-packaged for one placement: audio brought to `lufs` with its true peak under
    `true_peak` (a measured gain, then a peak limiter run at 192 kHz so it catches the peaks
    between samples; each pass measures the encoded result (EBU R128) and corrects the gain and
    the limit until both hold, within `tolerance` LU), AAC at `audio_kbps` (the audio stream-copied
    when it already holds: silent, or on target under the ceiling); video stream-copied,
    or re-encoded capped at `max_video_kbps` when the final's is over it; subtitles copied.
    True when the video was copied."""
    final, out = Path(final), Path(out)
    info, facts = probe(final), file_facts(final)
    copy = facts.video_kbps is None or facts.video_kbps <= max_video_kbps
    with temp_dir(out.parent, "export") as scratch:
        video = final if copy else _capped_video(final, Path(scratch) / "video.mp4", info.fps or 24, max_video_kbps)
        base = ["-loglevel", "error", "-i", str(final), "-i", str(video), "-map", "1:v:0", "-map", "0:a:0", "-c:v", "copy"]
        if facts.subtitle_streams:
            base += ["-map", "0:s?", "-c:s", "copy"]
        _audio_passes(final, out, base, info.duration, lufs=lufs, true_peak=true_peak, audio_kbps=audio_kbps,
                      tolerance=tolerance, passes=passes)
    return copy


def _capped_video(final: Path, out: Path, fps: float, max_kbps: int, tries: int = 3) -> Path:
    """The final's picture re-encoded (our x264 settings) with its bitrate under `max_kbps`:
    measured after each encode, the target lowered until it holds (short clips overshoot)."""
    kbps = max(50, int(max_kbps * 0.85))
    for _ in range(tries):
        enc = video_encoder_args(fps)
        enc.pop("crf", None)
        enc.update({"b:v": f"{kbps}k", "maxrate": f"{max_kbps}k", "bufsize": f"{max_kbps}k"})
        args = ["-loglevel", "error", "-i", str(final), "-map", "0:v:0", "-an", "-sn"]
        for k, v in enc.items():
            args += [f"-{k}", str(v)]
        run_ffmpeg_args([*args, "-f", "mp4", str(out)], out)
        got = file_facts(out).video_kbps
        if got is None or got <= max_kbps:
            return out
        kbps = max(50, int(kbps * max_kbps / got * 0.95))
    raise MediaError(f"{final}: cannot bring the video under {max_kbps} kbps")


def _audio_passes(final: Path, out: Path, base: list[str], seconds: float, *, lufs: float, true_peak: float,
                  audio_kbps: int, tolerance: float, passes: int) -> None:
    tail = ["-c:a", "aac", "-b:a", f"{audio_kbps}k", "-ar", str(AUDIO_RATE), "-ac", str(AUDIO_CHANNELS),
            "-t", f"{seconds:.6f}", "-f", "mp4"]
    for k, v in MP4_ARGS.items():
        tail += [f"-{k}", str(v)]
    integrated, peak = loudness(final)
    silent = integrated == float("-inf") or integrated < SILENCE_LUFS
    if silent or (abs(integrated - lufs) <= tolerance and peak <= true_peak):  # nothing to change: copy
        with atomic_media(out) as tmp:
            run_ffmpeg_args([*base, "-c:a", "copy", *tail[tail.index("-t"):], str(tmp)], out)
        return
    gain, limit = lufs - integrated, true_peak - 1.0
    # encoded again, the sound gets a priming frame of its own: cut so it still ends with the picture
    fit = f"atrim=end={aac_fit_seconds(seconds):.6f}"
    with atomic_media(out) as tmp:
        for _ in range(max(1, passes)):
            chain = [fit] if silent else [f"volume={gain:.2f}dB", "aresample=192000",
                                          f"alimiter=limit={_db_to_linear(limit):.4f}:attack=1:release=50:level=false",
                                          f"aresample={AUDIO_RATE}", fit]
            run_ffmpeg_args([*base, *(["-af", ",".join(chain)] if chain else []), *tail, str(tmp)], out)
            if silent:
                break
            got, peak = loudness(tmp)
            if abs(got - lufs) <= tolerance and peak <= true_peak:
                break
            gain += lufs - got  # the limiter took some loudness away (or the codec added some)
            if peak > true_peak:
                limit -= peak - true_peak + 0.2
