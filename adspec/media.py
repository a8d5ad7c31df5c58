"""Every ffmpeg operation adspec performs, in one place.

Why one module: the encoder settings must be identical for every piece that is later joined
with a stream copy, and the ffmpeg binary must be found the same way everywhere. Only the single
ffmpeg binary is used (imageio-ffmpeg ships one; there is no ffprobe), so `probe` parses
`ffmpeg -i` output and exact facts (frame counts) come from decoding.

Every output is written to a temporary name in the target's folder and `os.replace`d into
place, so a killed build never leaves a half-written target. Failures raise `MediaError` with one
line naming the file and ffmpeg's reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from . import kept_files
from .config import load_settings
from .data_yaml import load_data
from .errors import MediaError
from .file_locks import locked
from .fsutil import atomic_path, temp_dir
from .hashing import sha256_file, sha256_json
from .limits import cpu_slot
from .redact import child_env


class _LazyFfmpeg:
    """ffmpeg-python, imported on first use: `import adspec.media` sits on the no-op path
    (actions imports it) and needs no ffmpeg there."""

    def __getattr__(self, name: str) -> Any:
        import ffmpeg as module

        globals()["ffmpeg"] = module
        return getattr(module, name)


ffmpeg: Any = _LazyFfmpeg()

# ---- encoder settings: ONE place, so copied and re-encoded pieces concatenate cleanly ---------

VIDEO_CODEC = "h264"
PIX_FMT = "yuv420p"
AUDIO_RATE = 48000
AUDIO_CHANNELS = 2
GOP_SECONDS = 1  # a closed GOP every second (fixed, no scene cuts): whole-second trims of our
# own clips are then cut at a keyframe and stream-copied instead of re-encoded
LOUDNESS_TARGET = -16.0  # LUFS (integrated), true peak -1.5 dBTP
TRUE_PEAK = -1.5
PEAK_CEILING = -2.5  # dBFS at 192 kHz before AAC
FINAL_TRUE_PEAK = -1.2  # dBTP of the encoded final (EBU R128's ceiling is -1)


def timescale(fps: float) -> int:
    """MP4 video track timescale: a multiple of every fps we use, the same for every piece."""
    return int(round(fps)) * 1000


def video_kbps(width: int, height: int, *, knob_applies: bool = True) -> int | None:
    """The video bitrate for a frame size: the platforms' recommendation for its short side
    (render/bitrates.yaml: the next size up from the table), or ADSPEC_VIDEO_KBPS; None for
    constant quality (ADSPEC_VIDEO_KBPS=crf). Without `knob_applies`, the table's figure whatever
    the setting (a clip whose last frame is sent to a paid model: see `conform_clip`)."""
    knob = os.environ.get("ADSPEC_VIDEO_KBPS", "").strip().lower() if knob_applies else ""
    if knob == "crf":
        return None
    if knob:
        try:
            return max(100, int(float(knob)))
        except ValueError:
            raise MediaError(f"ADSPEC_VIDEO_KBPS={knob!r}: write a number of kb/s or 'crf'") from None
    table = _bitrate_table()
    short = min(width, height)
    return next((kbps for side, kbps in table if short <= side), table[-1][1])


@lru_cache(maxsize=1)
def _bitrate_table() -> list[tuple[int, int]]:
    data = load_data(resources.files("adspec.render").joinpath("bitrates.yaml").read_text(encoding="utf-8"))
    return sorted((int(k), int(v)) for k, v in data["kbps_by_short_side"].items())


#: x264 on one thread: bitrate with a VBV cap (`maxrate`) is not repeatable under x264's frame
#: or slice threads (the rate control reads other threads' progress: measured, 4 encodes of one
#: input gave 3 different files), so a rebuild, another runner or another core count would make
#: other bytes. One thread each costs little here: many clips encode at once, on every core.
_X264_THREADS = "threads=1"


def video_encoder_args(fps: float, size: tuple[int, int] | None = None, *, knob_applies: bool = True) -> dict[str, Any]:
    """The x264 settings for every video we encode (ffmpeg-python output kwargs). With the
    frame `size`, the bitrate of `video_kbps` (average; peaks up to twice it), so a platform
    takes the ad at the quality it asks for; without it (or ADSPEC_VIDEO_KBPS=crf), CRF 20.
    Deterministic: the same input gives the same bytes (see `_X264_THREADS`).

    `superfast` with veryfast's rate control put back (mbtree over a 10-frame lookahead): a
    quarter less CPU than `veryfast` for the same SSIM (0.994 on a 720p camera move, bench/) and
    ~13 % more bytes. Its stream structure (CABAC, 1 reference, 2 B-frames, weightp 1, 8x8dct:
    `_STRUCTURAL`) is veryfast's, so clips encoded before still join ours by stream copy."""
    gop = max(1, int(round(fps * GOP_SECONDS)))
    kbps = video_kbps(*size, knob_applies=knob_applies) if size else None
    rate: dict[str, Any] = {"crf": 20} if kbps is None else {
        "b:v": f"{kbps}k", "maxrate": f"{2 * kbps}k", "bufsize": f"{2 * kbps}k"}
    return {
        "c:v": "libx264",
        "preset": "superfast",
        "x264-params": f"mbtree=1:rc-lookahead=10:{_X264_THREADS}",
        **rate,
        "profile:v": "high",
        "pix_fmt": PIX_FMT,
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": 0,
        "bf": 2,
        "video_track_timescale": timescale(fps),
        # BT.709 tagged (and converted with its matrix: `to_bt709`), as HD video is: a player or
        # platform decodes the brand colours as written in the spec, not 601-shifted
        "colorspace": "bt709",
        "color_primaries": "bt709",
        "color_trc": "bt709",
        "color_range": "tv",
        **MP4_ARGS,
    }


# No MP4 edit list (`elst`): some platforms and editors ignore or mishandle one (a B-frame delay
# or AAC priming shown as a gap); negative composition offsets keep the first frame at t=0.
MP4_ARGS: dict[str, Any] = {"movflags": "+faststart+negative_cts_offsets", "use_editlist": 0}

AAC_FRAME = 1024  # samples per AAC frame; the encoder adds one frame of priming before the sound


def aac_fit_seconds(seconds: float) -> float:
    """How much sound to give the AAC encoder so that its track ends at or before `seconds`:
    without an edit list the priming frame and the last frame's padding count in the track's
    length (6 s of sound became a 6.016 s track, and a 6.02 s file where a bumper allows 6 s)."""
    frames = int(seconds * AUDIO_RATE + 1e-6) // AAC_FRAME - 1  # whole frames, less the priming one
    return max(0, frames) * AAC_FRAME / AUDIO_RATE


def to_bt709(stream: Any) -> Any:
    """RGB (a still, a PNG) or another YUV to yuv420p with the BT.709 matrix, limited range:
    ffmpeg's implicit conversion would use BT.601's and the tags would lie."""
    return stream.filter("scale", out_color_matrix="bt709", out_range="tv").filter("format", PIX_FMT)


def _tag_bt709(stream: Any) -> Any:
    """Say so in every frame (ffmpeg's encoder takes the tags from the frames)."""
    return stream.filter("setparams", color_primaries="bt709", color_trc="bt709", colorspace="bt709", range="tv")


# aac_coder fast: FFmpeg's own advice for 192 kb/s and up ("better and much faster at higher
# bitrates" than the default twoloop), 2.3x faster on 30 s of music (bench/)
AUDIO_ENCODER_ARGS: dict[str, Any] = {"c:a": "aac", "aac_coder": "fast", "b:a": "192k", "ar": AUDIO_RATE,
                                      "ac": AUDIO_CHANNELS}


# ---- the binary and running it --------------------------------------------------------------


def ffmpeg_exe() -> str:
    """`ADSPEC_FFMPEG`, else `ffmpeg` on PATH, else imageio-ffmpeg's bundled binary."""
    configured = load_settings().ffmpeg
    if configured:
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_GENERIC = re.compile(
    r"^(Conversion failed!|Error opening (input|output) files?|At least one output file|"
    r"Exiting normally|Press \[q\]|\s*$)",
    re.I,
)
_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


def _reason(stderr: str) -> str:
    """The last meaningful line of ffmpeg's stderr (generic trailers and [ctx @ 0x..] removed)."""
    lines = [_PREFIX.sub("", ln).strip() for ln in stderr.splitlines()]
    meaningful = [ln for ln in lines if ln and not _GENERIC.match(ln)]
    return meaningful[-1] if meaningful else (lines[-1] if lines else "ffmpeg failed")


def run_ffmpeg_args(args: Sequence[str], what: str | Path, *, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg with `args`; MediaError naming `what` on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", *(["-nostdin"] if stdin is None else []), "-y", *map(str, args)]
    try:
        with cpu_slot():  # one core per ffmpeg (it runs on one thread: see _X264_THREADS)
            proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False, env=child_env())
    except OSError as e:
        raise MediaError(f"{what}: cannot run ffmpeg ({e.strerror or e})") from None
    if proc.returncode != 0:
        raise MediaError(f"{what}: {_reason(proc.stderr.decode('utf-8', 'replace'))}")
    return proc


def run_ffmpeg_graph(stream: Any, what: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Run an ffmpeg-python graph with our binary."""
    args = stream.global_args("-loglevel", "error").compile(cmd="ffmpeg")[1:]
    return run_ffmpeg_args(args, what)


@contextmanager
def atomic_media(out: str | Path) -> Iterator[Path]:
    """A temporary path beside `out` (same suffix, so ffmpeg picks the muxer), renamed on success."""
    with atomic_path(out) as tmp:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise MediaError(f"{out}: ffmpeg wrote nothing")


# ---- facts about media ----------------------------------------------------------------------


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int
    height: int
    fps: float
    vcodec: str | None
    acodec: str | None
    pix_fmt: str | None
    has_video: bool
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    vprofile: str | None = None  # e.g. "High": part of what a stream copy must match


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+)(?: \(([^)]*)\))?(.*)$")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)(.*)$")
_SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_FPS = re.compile(r"([\d.]+)(k?) fps")
_TBR = re.compile(r"([\d.]+)(k?) tbr")
_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _num(value: str, k: str) -> float:
    return float(value) * (1000 if k else 1)


def _top_level_split(text: str) -> list[str]:
    """Split on commas outside parentheses: "h264 (High) (avc1 / x), yuv420p(tv, bt709), ..."."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def probe(path: str | Path) -> MediaInfo:
    """Facts about a media file from `ffmpeg -i` alone; MediaError for anything that is not media."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, check=False,
                          env=child_env())
    err = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in err:
        raise MediaError(f"{path}: not a media file ({_reason(err)})")
    duration = 0.0
    m = _DURATION.search(err)
    if m:
        duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    width = height = 0
    fps = 0.0
    vcodec = acodec = pix_fmt = vprofile = None
    rate = channels = None
    for line in err.splitlines():
        v = _VIDEO.search(line)
        if v and vcodec is None and "attached pic" not in line:
            vcodec, rest = v[1], v[3]
            vprofile = v[2] if v[2] and "/" not in v[2] else None
            size = _SIZE.search(rest)
            if size:
                width, height = int(size[1]), int(size[2])
            parts = _top_level_split(rest)
            pf = re.match(r"([a-z0-9_]+)", parts[1]) if len(parts) > 1 else None
            pix_fmt = pf[1] if pf else None
            f = _FPS.search(rest) or _TBR.search(rest)
            fps = _num(f[1], f[2]) if f else 0.0
            continue
        a = _AUDIO.search(line)
        if a and acodec is None:
            acodec, rest = a[1], a[2]
            r = re.search(r"(\d+) Hz", rest)
            rate = int(r[1]) if r else None
            parts = _top_level_split(rest)
            if len(parts) > 2:
                lay = parts[2].split("(")[0].strip()
                c = re.match(r"(\d+) channels", lay)
                channels = int(c[1]) if c else _LAYOUTS.get(lay)
    if vcodec is None and acodec is None:
        raise MediaError(f"{path}: no audio or video stream")
    if vcodec is not None and (width <= 0 or height <= 0):
        raise MediaError(f"{path}: video stream without a size")
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        vcodec=vcodec,
        acodec=acodec,
        pix_fmt=pix_fmt,
        has_video=vcodec is not None,
        has_audio=acodec is not None,
        audio_rate=rate,
        audio_channels=channels,
        vprofile=vprofile,
    )


def _progress(path: str | Path, stream: str) -> dict[str, str]:
    """Decode one stream to null and return ffmpeg's final -progress values (exact counts)."""
    proc = run_ffmpeg_args(
        ["-loglevel", "error", "-nostats", "-i", str(path), "-map", f"0:{stream}:0", "-fps_mode", "passthrough",
         "-progress", "pipe:1", "-f", "null", "-"],
        path,
    )
    values: dict[str, str] = {}
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            values[k.strip()] = v.strip()
    return values


def count_frames(path: str | Path) -> int:
    """The exact number of decoded video frames (decodes the whole stream: for checks, not hot paths)."""
    return int(_progress(path, "v").get("frame", "0"))


def decoded_duration(path: str | Path, stream: str = "v") -> float:
    """The decoded end time of a stream in seconds (microsecond precision, unlike `probe`)."""
    us = _progress(path, stream).get("out_time_us", "0")
    return int(us) / 1e6 if us.lstrip("-").isdigit() else 0.0


def loudness_lufs(path: str | Path) -> float:
    """Integrated loudness (EBU R128) of the first audio stream, in LUFS."""
    proc = run_ffmpeg_args(
        ["-nostats", "-i", str(path), "-map", "0:a:0", "-af", "ebur128=framelog=quiet", "-f", "null", "-"], path
    )
    found = re.findall(r"I:\s*(-?[\d.]+|-inf) LUFS", proc.stderr.decode("utf-8", "replace"))
    if not found:
        raise MediaError(f"{path}: no loudness measurement")
    return float(found[-1]) if found[-1] != "-inf" else float("-inf")


# ---- frames and images ---------------------------------------------------------------------


def last_frame(video: str | Path, out_png: str | Path) -> Path:
    """The true last decoded frame as PNG: seek near the end, decode every frame from there, keep
    the last. Each decoded frame is written as raw BMP (a copy) and only the last one is
    compressed to PNG: PNG-encoding every frame of the last seconds cost 4.6 CPU-s per 720p chunk."""
    from PIL import Image

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir(out_png.parent, "last") as d:
        bmp = Path(d) / "last.bmp"
        run_ffmpeg_args(
            # from the keyframe before the last second (any stream: the seek lands on a keyframe)
            ["-loglevel", "error", "-sseof", "-1", "-i", str(video), "-map", "0:v:0", "-fps_mode", "passthrough",
             "-update", "1", "-c:v", "bmp", "-pix_fmt", "bgr24", "-f", "image2", str(bmp)],
            video,
        )
        if not bmp.exists():
            raise MediaError(f"{video}: no frame decoded")
        with Image.open(bmp) as im, atomic_media(out_png) as tmp:
            im.convert("RGB").save(tmp, format="PNG")
    return out_png


def first_frame(video: str | Path, out_png: str | Path) -> Path:
    """The first decoded frame as PNG."""
    out_png = Path(out_png)
    with atomic_media(out_png) as tmp:
        run_ffmpeg_args(
            ["-loglevel", "error", "-i", str(video), "-map", "0:v:0", "-frames:v", "1", "-c:v", "png",
             "-pix_fmt", "rgb24", "-f", "image2", str(tmp)],
            video,
        )
    return out_png


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image; MediaError naming the file if it is not one."""
    from .images import open_image

    with open_image(path) as im:
        return im.size


def normalise_image(src: str | Path, out_png: str | Path, width: int, height: int) -> Path:
    """Cover-crop `src` to exactly width x height (centre crop, Lanczos): a live model may return
    another size, and every later step relies on the exact frame size."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from .images import open_image

    out_png = Path(out_png)
    try:
        with open_image(src) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            fitted = im if im.size == (width, height) else ImageOps.fit(im, (width, height), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(f"{src}: not an image ({e.__class__.__name__})") from None
    with atomic_media(out_png) as tmp:
        fitted.save(tmp, format="PNG")
    return out_png


# ---- video normalisation and concatenation --------------------------------------------------


def _cover_chain(stream: Any, width: int, height: int, fps: float) -> Any:
    """Cover-crop (fill the frame, crop the overflow) at exact size and fps, yuv420p.

    Cover rather than pad: an ad frame must be full, and live models return sizes a few pixels
    off the request (e.g. 1280x704), where letterbox bars would be worse than a thin crop."""
    return (
        stream.filter("fps", fps=fps)
        # one scale both resizes and converts to BT.709 (a second pass for the matrix cost a
        # quarter of a clip's conform: measured 0.38 vs 0.09 CPU-s for 4 s at 720p)
        .filter("scale", width, height, force_original_aspect_ratio="increase", flags="bicubic",
                out_color_matrix="bt709", out_range="tv")
        .filter("crop", width, height)
        .filter("setsar", 1)
        .filter("format", PIX_FMT)
        .filter("setparams", color_primaries="bt709", color_trc="bt709", colorspace="bt709", range="tv")
    )


def _audio_chain(stream: Any, seconds: float | None) -> Any:
    a = stream.filter("aresample", AUDIO_RATE).filter("aformat", channel_layouts="stereo", sample_fmts="fltp")
    if seconds is not None:
        a = a.filter("apad", whole_dur=seconds).filter("atrim", end=seconds)
    return a


def normalise_clip(
    src: str | Path,
    out: str | Path,
    *,
    width: int,
    height: int,
    fps: float,
    seconds: float | None = None,
    keep_audio: bool = False,
    knob_applies: bool = True,
) -> Path:
    """Re-encode `src` with our encoder settings at exact size and fps (cover-crop), optionally
    trimmed (or held on its last frame) to exactly round(seconds*fps) frames. Audio is dropped
    unless `keep_audio`; then it is AAC 48 kHz stereo, silent if the source has none.
    `knob_applies`: see `video_kbps`."""
    out = Path(out)
    info = probe(src)
    if not info.has_video:
        raise MediaError(f"{src}: no video stream")
    inp = ffmpeg.input(str(src))
    v = inp["v:0"]
    if seconds is not None:
        v = v.filter("tpad", stop_mode="clone", stop_duration=seconds)
    v = _cover_chain(v, width, height, fps)
    kwargs = dict(video_encoder_args(fps, (width, height), knob_applies=knob_applies))
    streams = [v]
    if seconds is not None:
        kwargs["frames:v"] = int(round(seconds * fps))
    if keep_audio:
        if info.has_audio:
            a = inp["a:0"]
        else:
            a = ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi")["a"]
            if seconds is None:
                kwargs["shortest"] = None
        streams.append(_audio_chain(a, seconds))
        kwargs.update(AUDIO_ENCODER_ARGS)
    with atomic_media(out) as tmp:
        run_ffmpeg_graph(ffmpeg.output(*streams, str(tmp), f="mp4", **kwargs), src)
    return out


def conform_clip(
    src: str | Path,
    out: str | Path,
    *,
    width: int,
    height: int,
    fps: float,
    seconds: float,
    keep_audio: bool = False,
    continued: bool = False,
) -> bool:
    """A provider's clip made ready for a stream-copy stitch as soon as it arrives.

    A clip in our own encoder settings (`clip_matches` and `same_encoder`: the offline backend's)
    is copied whole: the stitch cuts it by stream copy. Any other (a live model's) is re-encoded
    by `normalise_clip` to exactly round(seconds*fps) frames, `seconds` being the part of it the
    ad uses, so the stitch copies it as it is. Done per chunk, the re-encode runs while other
    chunks are still being generated, and once per clip instead of inside every stitch (an edit
    of one beat re-encodes that beat's clips only). True if re-encoded.

    A `continued` clip's last frame is what the beat's next chunk is asked from (a paid request):
    it is encoded at the table's bitrate whatever ADSPEC_VIDEO_KBPS says, so that local setting
    never changes what a model is sent (it did: every continuation chunk was paid again)."""
    out = Path(out)
    info = probe(src)
    if clip_matches(info, width, height, fps, audio=keep_audio) and same_encoder(src, fps):
        with atomic_media(out) as tmp:
            shutil.copyfile(src, tmp)
        return False
    normalise_clip(src, out, width=width, height=height, fps=fps, seconds=seconds, keep_audio=keep_audio,
                   knob_applies=not continued)
    return True


# x264 options that shape the bitstream's structure (parameter sets, reorder delay, GOP): two
# streams that differ in any of them do not join cleanly with a stream copy (e.g. another
# `bframes` gives non-monotonic timestamps at the join).
_STRUCTURAL = ("cabac", "ref", "bframes", "b_pyramid", "weightp", "8x8dct", "keyint", "keyint_min",
               "open_gop", "interlaced", "constrained_intra", "bluray_compat", "fake_interlaced")


def x264_options(path: str | Path) -> dict[str, str] | None:
    """The x264 settings a file was encoded with (x264 writes them in an SEI message near the
    start of the stream), or None if it was not encoded by x264."""
    with open(path, "rb") as f:
        head = f.read(4 << 20)
    at = head.find(b"x264 - core")
    if at < 0:
        return None
    opts = head[at: at + 4096].split(b"\x00", 1)[0].decode("ascii", "replace")
    _, _, tail = opts.partition("options: ")
    return dict(kv.split("=", 1) for kv in tail.split() if "=" in kv)


@lru_cache(maxsize=16)
def _our_x264_signature(fps: float) -> tuple[tuple[str, str | None], ...]:
    """The structural x264 options of our own encoder at `fps` (from encoding two tiny frames)."""
    with tempfile.TemporaryDirectory(prefix="adspec-sig-") as d:
        ref = Path(d) / "ref.mp4"
        src = ffmpeg.input(f"color=c=gray:s=64x64:r={fps}", f="lavfi", t=2 / fps)
        run_ffmpeg_graph(ffmpeg.output(src, str(ref), **video_encoder_args(fps)), "encoder signature")
        opts = x264_options(ref) or {}
    return tuple((k, opts.get(k)) for k in _STRUCTURAL)


def same_encoder(path: str | Path, fps: float) -> bool:
    """True if `path` was encoded by x264 with our structural settings (so it can be copied)."""
    opts = x264_options(path)
    return opts is not None and tuple((k, opts.get(k)) for k in _STRUCTURAL) == _our_x264_signature(fps)


def clip_matches(info: MediaInfo, width: int, height: int, fps: float, *, audio: bool = False) -> bool:
    """True if a clip has the target stream facts: H.264 High, yuv420p, exact size and fps (and,
    when audio is kept, AAC 48 kHz stereo). `concat` also requires `same_encoder` to copy."""
    ok = (
        info.has_video
        and info.vcodec == VIDEO_CODEC
        and (info.vprofile or "High") == "High"
        and info.pix_fmt == PIX_FMT
        and (info.width, info.height) == (width, height)
        and abs(info.fps - fps) < 0.01
    )
    if audio:
        ok = ok and info.acodec == "aac" and info.audio_rate == AUDIO_RATE and info.audio_channels == AUDIO_CHANNELS
    return bool(ok)


class ConcatItem(NamedTuple):
    path: Path
    seconds: float


@dataclass
class ConcatReport:
    out: Path
    copied: list[Path] = field(default_factory=list)
    reencoded: list[Path] = field(default_factory=list)
    cut: list[Path] = field(default_factory=list)  # copied, but cut short at a keyframe
    seconds: float = 0.0  # the intended total (sum of the items' seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "seconds": self.seconds,
            "copied": [str(p) for p in self.copied],
            "reencoded": [str(p) for p in self.reencoded],
            "cut": [str(p) for p in self.cut],
        }


def _concat_line(path: Path) -> str:
    return "file '" + str(path.resolve()).replace("'", "'\\''") + "'\n"


def concat(
    clips: Sequence[ConcatItem | tuple[str | Path, float]],
    out: str | Path,
    *,
    width: int,
    height: int,
    fps: float,
    keep_audio: bool = False,
) -> ConcatReport:
    """Join clips, each cut to its `seconds`, into one MP4 at exact size/fps.

    A clip that already matches (`clip_matches`), was encoded with our x264 structure
    (`same_encoder`) and lasts `seconds` (within half a frame) is stream-copied; so is one cut to
    a whole number of GOPs (whole seconds: see GOP_SECONDS), by a keyframe-aligned copy; only the others are re-encoded, with the same encoder settings, then all are
    joined by the concat demuxer with `-c copy`. The total lasts sum(seconds) within a frame."""
    out = Path(out)
    if not clips:
        raise MediaError(f"{out}: nothing to concatenate")
    items = [ConcatItem(Path(p), float(s)) for p, s in clips]
    report = ConcatReport(out=out, seconds=sum(i.seconds for i in items))
    out.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir(out.parent, f"{out.stem}.parts") as parts:
        pieces: list[Path] = []
        for n, item in enumerate(items):
            info = probe(item.path)
            frames = int(round(item.seconds * fps))
            if frames <= 0:
                raise MediaError(f"{item.path}: duration {item.seconds} s is less than one frame")
            same_length = abs(info.duration - frames / fps) <= 0.5 / fps
            copyable = clip_matches(info, width, height, fps, audio=keep_audio) and same_encoder(item.path, fps)
            gop = video_encoder_args(fps)["g"]
            cuttable = not keep_audio and frames % gop == 0 and frames < round(info.duration * fps)
            if copyable and same_length:
                pieces.append(item.path)
                report.copied.append(item.path)
            elif copyable and cuttable:
                # closed GOPs: the first `frames` packets in decode order are exactly the first
                # `frames` pictures, so a keyframe-aligned cut needs no re-encode
                piece = Path(parts) / f"{n:04d}.mp4"
                run_ffmpeg_args(["-loglevel", "error", "-i", str(item.path), "-map", "0:v:0", "-c", "copy",
                                 "-frames:v", str(frames), "-video_track_timescale", str(timescale(fps)),
                                 "-f", "mp4", str(piece)], item.path)
                pieces.append(piece)
                report.copied.append(item.path)
                report.cut.append(item.path)
            else:
                piece = Path(parts) / f"{n:04d}.mp4"
                normalise_clip(item.path, piece, width=width, height=height, fps=fps, seconds=item.seconds,
                               keep_audio=keep_audio)
                pieces.append(piece)
                report.reencoded.append(item.path)
        join_by_copy(pieces, out, fps, Path(parts), keep_audio=keep_audio)
    return report


def join_by_copy(pieces: Sequence[Path], out: Path, fps: float, workdir: Path, *, keep_audio: bool = False) -> Path:
    """`pieces` (our encoder's streams) one after another at `out`, by the concat demuxer with
    stream copy: nothing is decoded."""
    listing = workdir / "list.txt"
    listing.write_text("".join(_concat_line(p) for p in pieces), encoding="utf-8")
    args = ["-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:v:0"]
    if keep_audio:
        args += ["-map", "0:a:0"]
    args += ["-c", "copy", "-video_track_timescale", str(timescale(fps)), "-movflags", MP4_ARGS["movflags"],
             "-use_editlist", "0", "-f", "mp4"]
    with atomic_media(out) as tmp:
        run_ffmpeg_args([*args, str(tmp)], out)
    return out


# ---- final mix ------------------------------------------------------------------------------


def _fades(a: Any, seconds: float) -> Any:
    fade_out = min(1.5, seconds / 3)
    return a.filter("afade", t="in", st=0, d=min(0.5, seconds / 4)).filter(
        "afade", t="out", st=max(0.0, seconds - fade_out), d=fade_out
    )


_INTEGRATED = re.compile(r"Integrated loudness:\s*I:\s*(-?[\d.]+|-inf) LUFS")
_TRUE_PEAK = re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf) dBFS")


def _measure(a: Any, what: str | Path) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) of an ffmpeg-python audio stream."""
    graph = ffmpeg.output(a.filter("ebur128", peak="true", framelog="quiet"), "-", f="null")
    proc = run_ffmpeg_args(graph.global_args("-nostats").compile(cmd="ffmpeg")[1:], what)
    err = proc.stderr.decode("utf-8", "replace")
    i, tp = _INTEGRATED.findall(err), _TRUE_PEAK.findall(err)
    if not i or not tp:
        raise MediaError(f"{what}: no loudness measurement")
    return float(i[-1]), float(tp[-1])


def _gain_db(integrated: float, true_peak: float) -> float:
    """The linear gain that brings the track to LOUDNESS_TARGET without its true peak passing
    TRUE_PEAK (a peaky track stays a little under the target rather than being squashed)."""
    if integrated == float("-inf") or integrated < -70:
        return 0.0  # silence: nothing to normalise
    return min(LOUDNESS_TARGET - integrated, TRUE_PEAK - true_peak)


DUCK_GAIN = 0.3  # the music under a spoken line: -10.5 dB
DUCK_ATTACK = 0.12  # seconds the music takes to go down before a line
DUCK_RELEASE = 0.35  # and to come back up after it
BED_UNDER_VOICE_DB = -6.0  # an ad that speaks keeps its music this much lower throughout


@dataclass(frozen=True)
class Overlay:
    """A picture drawn over the video from `start` to `end` at (x, y) (e.g. a caption)."""

    png: Path
    x: int
    y: int
    start: float
    end: float
    fade: float = 0.0  # seconds of fade in and out (0: it cuts in and out)


def duck_expression(windows: Sequence[tuple[float, float]]) -> str:
    """A `volume` expression of t: 1 outside the windows, DUCK_GAIN inside, with linear ramps of
    DUCK_ATTACK before and DUCK_RELEASE after each window (smooth: no clicks, no pumping)."""
    if not windows:
        return "1"
    terms = [f"clip(min((t-{a - DUCK_ATTACK:.3f})/{DUCK_ATTACK},({b + DUCK_RELEASE:.3f}-t)/{DUCK_RELEASE}),0,1)"
             for a, b in windows]
    depth = terms[0]
    for term in terms[1:]:
        depth = f"max({depth},{term})"
    return f"1-{1 - DUCK_GAIN:.3f}*{depth}"


def mix(
    video: str | Path,
    music: str | Path | None,
    out: str | Path,
    *,
    seconds: float,
    native_audio: bool,
    voices: Sequence[tuple[Path, float]] = (),
    duck: Sequence[tuple[float, float]] = (),
    subtitles: Path | None = None,
    subtitle_language: str = "eng",
    picture: str | Path | Future[Path] | None = None,
    keep: Path | None = None,
) -> Path:
    """The final ad: video stream COPIED (from `picture` when given: the video with words drawn
    by `media_overlay`, which has no sound; `video` still gives the native sound), audio built to
    exactly `seconds`. A `picture` still being drawn (a Future) is waited for after the sound is
    made, so the two are made at once.

    Music is trimmed/padded to `seconds`, faded in 0.5 s / out 1.5 s. With `native_audio` and a
    video that has audio, the music is ducked under it (sidechaincompress) and mixed; with no
    music the native track alone is used. `voices` (file, start second) are placed on top and the
    bed under them (music and native sound) is ducked over the `duck` windows (duck_expression).
    `subtitles` (an SRT file) becomes a soft subtitle track (mov_text). The result is loudness
    normalised to -16 LUFS with a true peak under -1.5 dBTP, linearly: one pass measures
    (ebur128), the second applies the gain and encodes AAC 48 kHz stereo (3x faster than a
    one-pass dynamic `loudnorm`, and the music's dynamics are left alone). With neither music nor
    native audio nor voice the track is silent (every final has an audio stream, so players and
    platforms treat all ads alike). With `keep` (a folder of the ad's) the sound is kept there by
    what it was made from, and the next mix with the same music, lines and times reuses it."""
    out = Path(out)
    vinfo = probe(video)
    if not vinfo.has_video:
        raise MediaError(f"{video}: no video stream")
    native = native_audio and vinfo.has_audio
    if music is not None:
        probe(music)

    def bed(vin: Any) -> Any:
        if music is not None:
            m = _fades(_audio_chain(ffmpeg.input(str(music))["a:0"], seconds), seconds)
            if not native:
                return m
            split = _audio_chain(vin["a:0"], seconds).filter_multi_output("asplit", outputs=2)
            voice, key = split.stream(0), split.stream(1)
            ducked = ffmpeg.filter([m, key], "sidechaincompress", threshold=0.03, ratio=8, attack=20, release=400)
            return ffmpeg.filter([ducked, voice], "amix", inputs=2, duration="first", normalize=0)
        if native:
            return _audio_chain(vin["a:0"], seconds)
        return _audio_chain(ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi")["a"], seconds)

    def audio(vin: Any) -> Any:
        a = bed(vin)
        if not voices:
            return a
        a = a.filter("volume", f"{BED_UNDER_VOICE_DB}dB").filter("volume", duck_expression(duck), eval="frame")
        lines = [
            _audio_chain(ffmpeg.input(str(path))["a:0"], None)
            .filter("adelay", delays=str(max(0, round(start * 1000))), all=1)
            for path, start in voices
        ]
        mixed = ffmpeg.filter([a, *lines], "amix", inputs=1 + len(lines), duration="first", normalize=0)
        return _audio_chain(mixed, seconds)

    sound = music is not None or native or bool(voices)
    # the sound alone follows from the music, the lines and their times (not from the picture, but
    # for a native track): kept, an edit that remakes a clip mixes no sound again
    key = f"sound-{_sound_key(music, voices, duck, seconds)}" if keep and sound and not native else None
    out.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir(out.parent, f"{out.stem}.mix") as d, ExitStack() as held:
        track = Path(d) / "audio.m4a"
        if keep is not None and key is not None:
            keep.mkdir(parents=True, exist_ok=True)
            held.enter_context(locked(keep / ".sound.lock", wait=True))
            found = kept_files.find_kept(keep, key, ".m4a")
            if found is None:
                _write_sound(video, track, audio, seconds, out)
                found = kept_files.keep(track, keep, key, ".m4a")
            track = found
            kept_files.prune(keep, "sound-*.m4a", [track])
        else:
            _write_sound(video, track, audio if sound else None, seconds, out)

        if isinstance(picture, Future):
            picture = picture.result()
        kwargs: dict[str, Any] = {"t": seconds, "f": "mp4", "c:v": "copy", "c:a": "copy", **MP4_ARGS}
        streams = [ffmpeg.input(str(picture or video))["v:0"], ffmpeg.input(str(track))["a:0"]]
        if subtitles is not None:
            streams.append(ffmpeg.input(str(subtitles), f="srt")["s:0"])
            kwargs.update({"c:s": "mov_text", "metadata:s:s:0": f"language={subtitle_language}"})
        with atomic_media(out) as tmp:
            run_ffmpeg_graph(ffmpeg.output(*streams, str(tmp), **kwargs), out)
    return out


#: bump when the sound is made differently: a kept sound of the old making is not reused
_SOUND_VERSION = 2  # 2: the track ends at or before the picture (aac_fit_seconds)


def _sound_key(music: str | Path | None, voices: Sequence[tuple[Path, float]], duck: Sequence[tuple[float, float]],
               seconds: float) -> str:
    """What a mix's sound (without a native track) follows from: the files, their times, the levels."""
    return sha256_json({
        "sound": _SOUND_VERSION,
        "music": sha256_file(music) if music is not None else None,
        "voices": [[sha256_file(path), f"{start:.3f}"] for path, start in voices],
        "duck": duck_expression(duck),
        "seconds": f"{seconds:.3f}",
        "levels": [LOUDNESS_TARGET, TRUE_PEAK, PEAK_CEILING, FINAL_TRUE_PEAK, BED_UNDER_VOICE_DB],
        "encoder": AUDIO_ENCODER_ARGS,
    })


def _write_sound(video: str | Path, track: Path, audio: Callable[[Any], Any] | None, seconds: float,
                 what: Path) -> None:
    """The ad's sound at `track` (AAC in MP4), normalised: `audio` builds the mix from an input
    of `video` (its native sound); None writes silence."""
    fit = aac_fit_seconds(seconds)  # the track ends with the picture, not 16-40 ms after it

    def write_audio(gain_db: float) -> None:
        if audio is not None:
            # a limiter, run at 192 kHz so it sees the peaks between samples, keeps them
            # under PEAK_CEILING before the encoder
            limited = (audio(ffmpeg.input(str(video))).filter("volume", f"{gain_db:.2f}dB")
                       .filter("aresample", 192000)
                       .filter("alimiter", limit=f"{10 ** (PEAK_CEILING / 20):.4f}", attack=1, release=50,
                               level="false"))
            a = _audio_chain(limited, fit)
        else:
            a = _audio_chain(ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi")["a"], fit)
        run_ffmpeg_graph(ffmpeg.output(a, str(track), t=fit, f="mp4", **MP4_ARGS, **AUDIO_ENCODER_ARGS), what)

    if audio is None:
        write_audio(0.0)
        return
    gain = _gain_db(*_measure(audio(ffmpeg.input(str(video))), what))
    # AAC can lift true peaks by a few dB on dense, loud material (measured: +3.7 dB on
    # noise): the encoded track is measured, and written again a little quieter while it is
    # over the ceiling. Only the sound is written again: the video is muxed once, after it.
    extra = 0.0
    for _ in range(3):
        write_audio(gain + extra)
        _, peak = _measure(ffmpeg.input(str(track))["a:0"], what)
        if peak <= FINAL_TRUE_PEAK:
            break
        extra -= peak - (FINAL_TRUE_PEAK - 0.3)


# ---- speech ------------------------------------------------------------------------------------

SPEECH_RATE = 48000
_SILENCE = "-50dB"


def trim_speech(src: str | Path, out: str | Path) -> float:
    """The speech of `src` without its leading and trailing silence, as 48 kHz mono 16-bit WAV
    at `out`; returns its length in seconds (what is actually spoken)."""
    out = Path(out)
    a = (
        ffmpeg.input(str(src))["a:0"]
        .filter("aresample", SPEECH_RATE)
        .filter("aformat", channel_layouts="mono", sample_fmts="s16")
        .filter("silenceremove", start_periods=1, start_threshold=_SILENCE, start_silence=0.05)
        .filter("areverse")
        .filter("silenceremove", start_periods=1, start_threshold=_SILENCE, start_silence=0.05)
        .filter("areverse")
    )
    with atomic_media(out) as tmp:
        run_ffmpeg_graph(ffmpeg.output(a, str(tmp), f="wav", acodec="pcm_s16le"), out)
    with wave.open(str(out), "rb") as w:
        return w.getnframes() / float(w.getframerate())


SPEECH_RMS_DB = -20.0  # every line is brought to this level, whoever spoke it
SPEECH_PEAK_DB = -1.0


def speech_gain_db(wav: str | Path) -> float:
    """The gain that brings a 16-bit WAV's speech to SPEECH_RMS_DB (its peak kept under
    SPEECH_PEAK_DB): lines from different providers and voices sit at one level in the mix."""
    import numpy as np

    with wave.open(str(wav), "rb") as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64) / 32768.0
    if x.size == 0:
        return 0.0
    rms = float(np.sqrt(np.mean(x ** 2)))
    peak = float(np.max(np.abs(x)))
    if rms < 1e-5:
        return 0.0
    return min(SPEECH_RMS_DB - 20 * np.log10(rms), SPEECH_PEAK_DB - 20 * np.log10(peak))


def fit_voice(src: str | Path, out: str | Path, *, tempo: float, seconds: float, gain_db: float = 0.0) -> Path:
    """`src` (a trimmed line) sped up by `tempo` without changing its pitch (atempo), and never
    longer than `seconds`, at `gain_db`, as 48 kHz mono WAV at `out`."""
    out = Path(out)
    a = ffmpeg.input(str(src))["a:0"].filter("volume", f"{gain_db:.2f}dB")
    if tempo > 1.0 + 1e-6:
        a = a.filter("atempo", f"{tempo:.5f}")
    a = a.filter("atrim", end=max(0.01, seconds)).filter("afade", t="out", st=max(0.0, seconds - 0.03), d=0.03)
    with atomic_media(out) as tmp:
        run_ffmpeg_graph(ffmpeg.output(a, str(tmp), f="wav", acodec="pcm_s16le", ar=SPEECH_RATE, ac=1), out)
    return out


# ---- camera moves over a still (the offline animatic) ---------------------------------------


def camera_clip(
    src_png: str | Path,
    out: str | Path,
    *,
    width: int,
    height: int,
    fps: float,
    seconds: float,
    zoom: str,
    x: str,
    y: str,
    with_audio: bool = False,
    shown: float | None = None,
) -> Path:
    """Render exactly round(seconds*fps) frames of a zoompan camera move over a still, with our
    encoder settings, or only the first `shown` seconds of that move. `zoom`, `x`, `y` are
    zoompan expressions of `on` (see render.motion); the still is usually pre-upscaled so
    zoompan's whole-pixel crops do not visibly jitter. `with_audio` adds a silent AAC track (a
    stand-in for a model's native audio)."""
    out = Path(out)
    frames = int(round(seconds * fps))
    if frames <= 0:
        raise MediaError(f"{out}: {seconds} s is less than one frame at {fps} fps")
    drawn = frames if shown is None else max(1, min(frames, int(round(shown * fps))))
    v = (
        to_bt709(ffmpeg.input(str(src_png)))  # zoompan rescales every frame: 4:2:0 is 3x cheaper than RGB
        .filter("zoompan", z=zoom, x=x, y=y, d=frames, s=f"{width}x{height}", fps=fps)
        .filter("setsar", 1)
        .filter("format", PIX_FMT)
    )
    v = _tag_bt709(v)
    kwargs: dict[str, Any] = {**video_encoder_args(fps, (width, height)), "frames:v": drawn, "f": "mp4"}
    streams = [v]
    if with_audio:
        streams.append(_audio_chain(ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi")["a"], drawn / fps))
        kwargs.update(AUDIO_ENCODER_ARGS)
    with atomic_media(out) as tmp:
        run_ffmpeg_graph(ffmpeg.output(*streams, str(tmp), **kwargs), src_png)
    return out
