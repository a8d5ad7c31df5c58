"""Words drawn over a finished video, re-encoding only the seconds they cover.

Why: the text layer (supers, the end card's words, burned captions) is drawn over the stitched
video, whose clips are already in our encoder settings. Re-encoding the whole ad for a super on
its last beat costs a full 720p encode (about 10 CPU-s for 30 s on one thread) and a second
generation of loss everywhere. Our streams are closed GOPs (`media.GOP_SECONDS`), so the video
is split at keyframes by stream copy, only the GOPs an overlay touches are decoded, drawn on and
encoded again with the same settings, and the pieces are joined by stream copy: every frame
outside the overlays' spans is bit-for-bit the stitched one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

from . import kept_files
from .errors import MediaError
from .file_locks import locked
from .fsutil import temp_dir
from .hashing import sha256_file, sha256_file_memo, sha256_json
from .limits import cpu_jobs
from .media import (
    Overlay,
    ffmpeg,
    join_by_copy,
    probe,
    run_ffmpeg_args,
    run_ffmpeg_graph,
    to_bt709,
    video_encoder_args,
)
from .mp4_table import keyframes


def dirty_spans(overlays: Sequence[Overlay], keys: Sequence[int], frames: int, fps: float) -> list[tuple[int, int]]:
    """The frame ranges [a, b) to re-encode: each overlay's span widened to the keyframes around
    it, overlapping ranges merged, so every overlay lies whole inside one range."""
    bounds = sorted({*keys, frames})
    spans: list[tuple[int, int]] = []
    for o in sorted(overlays, key=lambda o: o.start):
        first = max(0, int(o.start * fps))
        last = min(frames, int(-(-o.end * fps // 1)))  # ceil
        if last <= first:
            continue
        a = max((k for k in bounds if k <= first), default=0)
        b = min((k for k in bounds if k >= last), default=frames)
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def split_for_cores(spans: Sequence[tuple[int, int]], overlays: Sequence[Overlay], keys: Sequence[int], fps: float,
                    parts: int, min_frames: int, anchors: Sequence[int] = ()) -> list[tuple[int, int]]:
    """The spans cut at keyframes into pieces: first at the `anchors` (where the stitch put a
    clip: an edit that remakes one clip then leaves every other piece as it was), then, while
    there are fewer pieces than `parts`, each cut into about equal lengths (none shorter than
    `min_frames`) so their encodes run on every core at once. Never inside a fading overlay (its
    fade is drawn whole in one piece), while a cut one is drawn in both pieces."""
    fading = [(o.start * fps, o.end * fps) for o in overlays if o.fade > 0]

    def cuttable(k: int) -> bool:
        return not any(s < k < e for s, e in fading)

    at_anchors: list[tuple[int, int]] = []
    marks = sorted(set(anchors) & set(keys))
    for a, b in spans:
        bounds = [a, *(k for k in marks if a < k < b and cuttable(k)), b]
        at_anchors += list(zip(bounds, bounds[1:]))
    each = -(-parts // max(1, len(at_anchors)))  # ceil: how many pieces each should become
    pieces: list[tuple[int, int]] = []
    for a, b in at_anchors:
        n = max(1, min(each, (b - a) // max(1, min_frames)))
        inner = [k for k in keys if a + min_frames <= k <= b - min_frames and cuttable(k)]
        cuts: list[int] = []
        for i in range(1, n):
            ideal = a + (b - a) * i / n
            best = min(inner, key=lambda k: abs(k - ideal), default=None)
            if best is not None and (not cuts or best - cuts[-1] >= min_frames) and best not in cuts:
                cuts.append(best)
        bounds = [a, *sorted(cuts), b]
        pieces += list(zip(bounds, bounds[1:]))
    return pieces


def _draw(piece: Path, out: Path, overlays: Sequence[Overlay], offset: float, fps: float, size: tuple[int, int],
          frames: int) -> None:
    """Re-encode one piece with the overlays drawn, their times shifted by -offset."""
    v: Any = ffmpeg.input(str(piece))["v:0"]
    for o in overlays:
        start, end = o.start - offset, o.end - offset
        if o.fade > 0:  # a still looped over its span, faded in and out, shifted to its start
            span = max(0.0, end - start)
            pic = (ffmpeg.input(str(o.png), loop=1, t=f"{span:.3f}", framerate=fps)["v:0"]
                   .filter("format", "rgba")
                   .filter("fade", t="in", st=0, d=f"{o.fade:.3f}", alpha=1)
                   .filter("fade", t="out", st=f"{max(0.0, span - o.fade):.3f}", d=f"{o.fade:.3f}", alpha=1)
                   .filter("setpts", f"PTS+{start:.3f}/TB"))
            v = ffmpeg.overlay(v, pic, x=o.x, y=o.y, eof_action="pass")
        else:
            v = ffmpeg.overlay(v, ffmpeg.input(str(o.png))["v:0"], x=o.x, y=o.y,
                               enable=f"between(t,{start:.3f},{end:.3f})")
    kwargs = {**video_encoder_args(fps, size), "frames:v": frames, "an": None, "f": "mp4"}
    run_ffmpeg_graph(ffmpeg.output(to_bt709(v), str(out), **kwargs), out)


#: bump when `_draw` draws differently: a kept piece of the old drawing is not reused
_DRAW_VERSION = 1


def _piece_key(seg: Path, overlays: Sequence[Overlay], offset: float, fps: float, size: tuple[int, int],
               frames: int) -> str:
    """Everything a drawn piece's bytes follow from (its encode is repeatable: `_X264_THREADS`):
    the piece of video, each overlay's picture, place and time within the piece, the encoder."""
    return sha256_json({
        "draw": _DRAW_VERSION,
        "video": sha256_file(seg),
        "overlays": [[sha256_file_memo(o.png), o.x, o.y, f"{o.start - offset:.3f}", f"{o.end - offset:.3f}",
                      f"{o.fade:.3f}"] for o in overlays],
        "fps": fps, "size": list(size), "frames": frames,
        "encoder": video_encoder_args(fps, size),
    })


def burn_overlays(video: str | Path, overlays: Sequence[Overlay], out: str | Path, *,
                  anchors: Sequence[float] = (), keep: Path | None = None) -> Path:
    """`video` (our encoder's stream) with `overlays` drawn, as a video-only MP4 at `out`: the
    GOPs the overlays touch re-encoded, every other GOP copied.

    `anchors` (seconds: where the stitch put each clip) are where pieces are cut first. With
    `keep` (a folder of this ad's), each drawn piece is kept there by what it was made from and
    the next call reuses it while its bytes are intact (kept_files): after an edit that remade
    one clip, only that clip's seconds are drawn and encoded again (the pieces of the last call
    are kept, the rest removed)."""
    out = Path(out)
    info = probe(video)
    fps = info.fps or 24
    size = (info.width, info.height)
    frames = int(round(info.duration * fps))
    keys = keyframes(video)
    spans = dirty_spans(overlays, keys, frames, fps)
    if not spans:
        raise MediaError(f"{video}: no overlay falls inside the video")
    workers = cpu_jobs()
    spans = split_for_cores(spans, overlays, keys, fps, workers, min_frames=max(1, int(round(2 * fps))),
                            anchors=[int(round(a * fps)) for a in anchors])
    cuts = sorted({c for span in spans for c in span} - {0, frames})
    with ExitStack() as stack:
        parts = Path(stack.enter_context(temp_dir(out.parent, f"{out.stem}.overlay")))
        if keep is not None:  # one mix of this ad at a time uses and prunes the kept pieces
            keep.mkdir(parents=True, exist_ok=True)
            stack.enter_context(locked(keep / ".lock", wait=True))
        # one pass splits at the chosen keyframes by stream copy (exact: each cut is a keyframe);
        # no `btrt` (the whole video's bitrate), so a piece's bytes are its frames' alone
        if cuts:
            run_ffmpeg_args(["-loglevel", "error", "-i", str(video), "-map", "0:v:0", "-c", "copy", "-f", "segment",
                             "-segment_frames", ",".join(map(str, cuts)), "-reset_timestamps", "1", "-segment_format", "mp4",
                             "-segment_format_options", "movflags=+negative_cts_offsets:use_editlist=0:write_btrt=0",
                             str(parts / "seg%04d.mp4")], video)
        starts = [0, *cuts]
        ends = [*cuts, frames]
        pieces: list[Path] = []
        jobs = []  # (index in pieces, segment, drawn, overlays inside, start second, frames, key)
        for n, (a, b) in enumerate(zip(starts, ends)):
            seg = parts / f"seg{n:04d}.mp4" if cuts else Path(video)
            if not seg.exists():
                raise MediaError(f"{video}: the split at frame {a} found no keyframe")
            if (a, b) not in spans:
                pieces.append(seg)
                continue
            inside = [o for o in overlays if o.start < b / fps and o.end > a / fps]
            key = _piece_key(seg, inside, a / fps, fps, size, b - a) if keep is not None else ""
            found = kept_files.find_kept(keep, key, ".mp4") if keep is not None else None
            if found is None:
                found = parts / f"drawn{n:04d}.mp4"
                jobs.append((len(pieces), seg, found, inside, a / fps, b - a, key))
            pieces.append(found)
        # the pieces encode at once, one per core (each ffmpeg takes a CPU slot)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
            for done in [pool.submit(_draw, seg, drawn, inside, start, fps, size, n)
                         for _i, seg, drawn, inside, start, n, _k in jobs]:
                done.result()
        if keep is not None:
            for i, _seg, drawn, *_rest, key in jobs:
                pieces[i] = kept_files.keep(drawn, keep, key, ".mp4")
        join_by_copy(pieces, out, fps, parts)
        if keep is not None:
            kept_files.prune(keep, "*.mp4", pieces)
    return out


__all__ = ["burn_overlays", "dirty_spans", "keyframes", "split_for_cores"]
