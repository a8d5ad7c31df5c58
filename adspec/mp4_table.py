"""An MP4's video sample table, read without decoding: which samples are keyframes, and a
digest of each GOP's coded bytes (so what was measured on a GOP can be known again by its bytes).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Iterator

from .errors import MediaError


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the ISO BMFF boxes in data[start:end]."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < head:
            return
        yield kind, at + head, min(end, at + size)
        at += size


def _moov(video: Path) -> bytes:
    """The MP4's `moov` box payload, read without reading the media data."""
    with open(video, "rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise MediaError(f"{video}: no moov box: not an MP4")
            size, kind = struct.unpack(">I4s", head)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0] - 8
            if kind == b"moov":
                return f.read(size - 8) if size else f.read()
            if size < 8:
                raise MediaError(f"{video}: a damaged MP4 box")
            f.seek(size - 8, 1)


def top_level_boxes(video: str | Path) -> list[tuple[bytes, bytes]]:
    """(type, the first 16 bytes of its payload) of each top-level box: what a file carries
    besides its media (e.g. a C2PA manifest's `uuid` box), read without reading the media."""
    out: list[tuple[bytes, bytes]] = []
    with open(video, "rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                return out
            size, kind = struct.unpack(">I4s", head)
            start = 8
            if size == 1:
                size, start = struct.unpack(">Q", f.read(8))[0], 16
            first = f.read(16)
            out.append((kind, first))
            if size == 0 or size < start:
                return out
            f.seek(size - start - len(first), 1)


def _child(data: bytes, lo: int, hi: int, kind: bytes) -> tuple[int, int] | None:
    return next(((a, b) for k, a, b in _boxes(data, lo, hi) if k == kind), None)


def _video_mdia(moov: bytes) -> tuple[int, int] | None:
    """The video track's media box (payload bounds in `moov`)."""
    for kind, ta, tb in _boxes(moov, 0, len(moov)):
        mdia = _child(moov, ta, tb, b"mdia") if kind == b"trak" else None
        hdlr = _child(moov, *mdia, b"hdlr") if mdia else None
        if mdia and hdlr and moov[hdlr[0] + 8:hdlr[0] + 12] == b"vide":
            return mdia
    return None


def _video_stbl(moov: bytes) -> tuple[int, int] | None:
    """The video track's sample table box (payload bounds in `moov`)."""
    mdia = _video_mdia(moov)
    minf = _child(moov, *mdia, b"minf") if mdia else None
    return _child(moov, *minf, b"stbl") if minf else None


def video_seconds(video: str | Path) -> float:
    """The video track's length in seconds, from its media header (`mdhd`): nothing is decoded."""
    moov = _moov(Path(video))
    mdia = _video_mdia(moov)
    mdhd = _child(moov, *mdia, b"mdhd") if mdia else None
    if mdhd is None:
        raise MediaError(f"{video}: no video track with a media header in the MP4")
    at = mdhd[0]
    if moov[at] == 1:  # version 1: 64-bit times
        timescale, duration = struct.unpack(">IQ", moov[at + 20:at + 32])
    else:
        timescale, duration = struct.unpack(">II", moov[at + 12:at + 20])
    if not timescale:
        raise MediaError(f"{video}: its video track has no timescale")
    return duration / timescale


def keyframes(video: str | Path) -> list[int]:
    """Frame numbers of the video track's keyframes, from the MP4's sync-sample table (`stss`):
    nothing is decoded. Our streams are closed GOPs, so the n-th sample in decode order that is
    a keyframe is also the n-th picture shown. A track without `stss` is all keyframes."""
    moov = _moov(Path(video))
    stbl = _video_stbl(moov)
    stss = _child(moov, *stbl, b"stss") if stbl else None
    stsz = _child(moov, *stbl, b"stsz") if stbl else None
    if stss is not None:
        (n,) = struct.unpack(">I", moov[stss[0] + 4:stss[0] + 8])
        return [v - 1 for v in struct.unpack(f">{n}I", moov[stss[0] + 8:stss[0] + 8 + 4 * n])]
    if stsz is not None:
        return list(range(struct.unpack(">I", moov[stsz[0] + 8:stsz[0] + 12])[0]))
    raise MediaError(f"{video}: no video track with a sample table in the MP4")


def _sample_spans(moov: bytes, stbl: tuple[int, int]) -> list[tuple[int, int]]:
    """(file offset, size) of every video sample in decode order (stsz, stsc, stco/co64)."""
    stsz, stsc = _child(moov, *stbl, b"stsz"), _child(moov, *stbl, b"stsc")
    stco, co64 = _child(moov, *stbl, b"stco"), _child(moov, *stbl, b"co64")
    box, width = (stco, "I") if stco is not None else (co64, "Q")
    if stsz is None or stsc is None or box is None:
        raise MediaError("no sample table in the MP4's video track")
    fixed, count = struct.unpack(">II", moov[stsz[0] + 4:stsz[0] + 12])
    sizes = [fixed] * count if fixed else list(struct.unpack(f">{count}I", moov[stsz[0] + 12:stsz[0] + 12 + 4 * count]))
    (chunks,) = struct.unpack(">I", moov[box[0] + 4:box[0] + 8])
    offsets = struct.unpack(f">{chunks}{width}", moov[box[0] + 8:box[0] + 8 + struct.calcsize(width) * chunks])
    (runs,) = struct.unpack(">I", moov[stsc[0] + 4:stsc[0] + 8])
    table = [struct.unpack(">III", moov[stsc[0] + 8 + 12 * i:stsc[0] + 20 + 12 * i]) for i in range(runs)]
    spans: list[tuple[int, int]] = []
    for r, (first, per_chunk, _desc) in enumerate(table):
        last = table[r + 1][0] - 1 if r + 1 < runs else chunks
        for chunk in range(first, last + 1):
            at = offsets[chunk - 1]
            for _ in range(per_chunk):
                if len(spans) == count:
                    return spans
                size = sizes[len(spans)]
                spans.append((at, size))
                at += size
    return spans


_VISUAL_ENTRY = 78  # the fields of a VisualSampleEntry before its child boxes (ISO/IEC 14496-12)


def _decoder_setup(moov: bytes, stbl: tuple[int, int]) -> bytes:
    """The video sample entry (codec, size, avcC: SPS and PPS) without its `btrt`, the whole
    track's bitrate, which says nothing about how one GOP decodes."""
    stsd = _child(moov, *stbl, b"stsd")
    if stsd is None:
        return b""
    entries = list(_boxes(moov, stsd[0] + 8, stsd[1]))
    if not entries:
        return b""
    kind, a, b = entries[0]
    children = b"".join(child + moov[ca:cb] for child, ca, cb in _boxes(moov, a + _VISUAL_ENTRY, b) if child != b"btrt")
    return kind + moov[a:a + _VISUAL_ENTRY] + children


def gop_digests(video: str | Path) -> list[tuple[int, int, str]]:
    """(first frame, frames, sha256 of its coded samples and the track's decoder setup) of every GOP of
    the video track, from the sample table: nothing is decoded. Two GOPs with the same digest
    decode to the same pictures (closed GOPs: ours)."""
    video = Path(video)
    moov = _moov(video)
    stbl = _video_stbl(moov)
    if stbl is None:
        raise MediaError(f"{video}: no video track with a sample table in the MP4")
    try:
        setup, spans = _decoder_setup(moov, stbl), _sample_spans(moov, stbl)
    except struct.error:
        raise MediaError(f"{video}: a damaged sample table in the MP4") from None
    starts = [k for k in keyframes(video) if k < len(spans)] or [0]
    out: list[tuple[int, int, str]] = []
    with open(video, "rb") as f:
        for a, b in zip(starts, [*starts[1:], len(spans)]):
            h = hashlib.sha256(setup)
            for offset, size in spans[a:b]:
                f.seek(offset)
                h.update(f.read(size))
            out.append((a, b - a, h.hexdigest()))
    return out
