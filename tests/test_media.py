"""adspec.media against the real ffmpeg binary and real files: facts, not file existence."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adspec import media
from adspec.errors import MediaError

W, H, FPS = 320, 180, 24
FRAME = 1 / FPS


def _lavfi(out: Path, video: str | None, seconds: float, *, audio: str | None = None, vargs: tuple[str, ...] = ()) -> Path:
    """A source clip made by ffmpeg's own generators (not by the code under test)."""
    args = [media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if video:
        args += ["-f", "lavfi", "-i", video]
    if audio:
        args += ["-f", "lavfi", "-i", audio]
    args += ["-t", str(seconds), *vargs, str(out)]
    subprocess.run(args, check=True, capture_output=True)
    return out


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of moving test pattern + a tone, encoded by ffmpeg with default (foreign) settings."""
    d = tmp_path_factory.mktemp("src")
    return _lavfi(d / "src.mp4", f"testsrc2=s={W}x{H}:r={FPS}", 3, audio="sine=f=330:r=44100",
                  vargs=("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"))


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory, src: Path) -> dict[str, Path]:
    """Clips in our own encoder settings, 2 s and 3 s."""
    d = tmp_path_factory.mktemp("ours")
    return {
        "2s": media.normalise_clip(src, d / "two.mp4", width=W, height=H, fps=FPS, seconds=2),
        "3s": media.normalise_clip(src, d / "three.mp4", width=W, height=H, fps=FPS, seconds=3),
    }


def test_ffmpeg_exe_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundled = media.ffmpeg_exe()
    assert Path(bundled).is_file()
    custom = tmp_path / "custom" / "ffmpeg"
    custom.parent.mkdir()
    custom.symlink_to(bundled)
    monkeypatch.setenv("ADSPEC_FFMPEG", str(custom))
    assert media.ffmpeg_exe() == str(custom)
    # one that is not there is a one-line settings error, not a FileNotFoundError from every task
    from adspec.config import SettingsError

    monkeypatch.setenv("ADSPEC_FFMPEG", "/opt/custom/ffmpeg")
    with pytest.raises(SettingsError, match="ADSPEC_FFMPEG='/opt/custom/ffmpeg': no such program"):
        media.ffmpeg_exe()


def test_probe_reports_stream_facts(src: Path) -> None:
    info = media.probe(src)
    assert (info.vcodec, info.acodec, info.pix_fmt) == ("h264", "aac", "yuv420p")
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    assert info.has_video and info.has_audio
    assert info.audio_rate == 44100 and info.audio_channels == 1
    assert abs(info.duration - 3) <= FRAME
    assert media.count_frames(src) == 3 * FPS


@pytest.mark.parametrize(
    "name,content",
    [("empty.mp4", b""), ("page.mp4", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n"),
     ("junk.mp4", bytes(range(256)) * 40)],
)
def test_non_media_raises_media_error_naming_the_file(tmp_path: Path, name: str, content: bytes) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(MediaError) as err:
        media.probe(bad)
    assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(MediaError, match=name):
        media.normalise_clip(bad, tmp_path / "out.mp4", width=W, height=H, fps=FPS)
    assert not (tmp_path / "out.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp files left behind


def test_truncated_video_is_a_one_line_error(tmp_path: Path, ours: dict[str, Path]) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(ours["3s"].read_bytes()[:3000])
    with pytest.raises(MediaError) as err:
        media.count_frames(cut)
    assert "cut.mp4" in str(err.value) and "Traceback" not in str(err.value)


def test_normalise_clip_exact_size_fps_duration_and_no_audio(tmp_path: Path, src: Path) -> None:
    out = media.normalise_clip(src, tmp_path / "n.mp4", width=180, height=180, fps=16, seconds=1.5)
    info = media.probe(out)
    assert (info.width, info.height, info.fps, info.pix_fmt, info.vcodec) == (180, 180, 16, "yuv420p", "h264")
    assert not info.has_audio
    assert media.count_frames(out) == 24
    kept = media.normalise_clip(src, tmp_path / "k.mp4", width=W, height=H, fps=FPS, seconds=2, keep_audio=True)
    kinfo = media.probe(kept)
    assert kinfo.acodec == "aac" and kinfo.audio_rate == 48000 and kinfo.audio_channels == 2
    assert abs(media.decoded_duration(kept, "a") - 2) <= FRAME


def test_normalise_clip_holds_last_frame_when_source_is_short(tmp_path: Path, src: Path) -> None:
    out = media.normalise_clip(src, tmp_path / "long.mp4", width=W, height=H, fps=FPS, seconds=4)
    assert media.count_frames(out) == 4 * FPS


def test_last_frame_is_the_true_last_decoded_frame(tmp_path: Path, ours: dict[str, Path]) -> None:
    clip = ours["3s"]
    frames = tmp_path / "frames"
    frames.mkdir()
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(clip), "-fps_mode", "passthrough",
                    str(frames / "%05d.png")], check=True)
    decoded = sorted(frames.glob("*.png"))
    assert len(decoded) == media.count_frames(clip) == 72
    last = media.last_frame(clip, tmp_path / "last.png")
    assert np.array_equal(_pixels(last), _pixels(decoded[-1]))
    assert not np.array_equal(_pixels(last), _pixels(decoded[-2]))  # the pattern moves: frames differ
    first = media.first_frame(clip, tmp_path / "first.png")
    assert np.array_equal(_pixels(first), _pixels(decoded[0]))


def test_concat_copies_matching_clips_and_reencodes_only_the_others(
    tmp_path: Path, src: Path, ours: dict[str, Path]
) -> None:
    other = _lavfi(tmp_path / "other.mp4", "testsrc=s=400x300:r=30", 2, vargs=("-c:v", "libx264"))
    items = [
        media.ConcatItem(ours["2s"], 2.0),  # matches: copied
        media.ConcatItem(ours["3s"], 1.5),  # matches but must be trimmed: re-encoded
        media.ConcatItem(other, 2.0),  # other size and fps: re-encoded
        media.ConcatItem(src, 3.0),  # right size/fps but another encoder's settings: re-encoded
        media.ConcatItem(ours["3s"], 3.0),  # matches: copied
        media.ConcatItem(ours["3s"], 2.0),  # matches, cut at a keyframe (whole GOPs): copied
    ]
    out = tmp_path / "video.mp4"
    report = media.concat(items, out, width=W, height=H, fps=FPS)
    assert report.copied == [ours["2s"], ours["3s"], ours["3s"]]
    assert report.cut == [ours["3s"]]
    assert report.reencoded == [ours["3s"], other, src]
    info = media.probe(out)
    assert (info.vcodec, info.width, info.height, info.fps, info.pix_fmt) == ("h264", W, H, FPS, "yuv420p")
    assert not info.has_audio
    total = 2 + 1.5 + 2 + 3 + 3 + 2
    assert media.count_frames(out) == round(total * FPS)
    assert abs(media.decoded_duration(out) - total) <= FRAME
    assert abs(info.duration - total) <= FRAME
    # a clean join: decoding the result logs nothing (no timestamp or bitstream complaints)
    proc = subprocess.run([media.ffmpeg_exe(), "-v", "warning", "-i", str(out), "-f", "null", "-"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr.strip() == ""
    assert report.to_json()["copied"] == [str(ours["2s"]), str(ours["3s"]), str(ours["3s"])]
    # the cut piece is the source's first 2 s, bit for bit: its last frame is the source's frame 48
    frames = tmp_path / "frames"
    frames.mkdir()
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(out), "-fps_mode", "passthrough",
                    str(frames / "%05d.png")], check=True)
    src_frames = tmp_path / "src_frames"
    src_frames.mkdir()
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(ours["3s"]), "-fps_mode", "passthrough",
                    "-frames:v", "48", str(src_frames / "%05d.png")], check=True)
    got, want = sorted(frames.glob("*.png")), sorted(src_frames.glob("*.png"))
    assert np.array_equal(_pixels(got[-1]), _pixels(want[-1]))
    assert np.array_equal(_pixels(got[-48]), _pixels(want[0]))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_concat_all_matching_is_pure_copy(tmp_path: Path, ours: dict[str, Path]) -> None:
    out = tmp_path / "v.mp4"
    report = media.concat([(ours["2s"], 2), (ours["2s"], 2)], out, width=W, height=H, fps=FPS)
    assert report.reencoded == [] and len(report.copied) == 2
    assert media.count_frames(out) == 4 * FPS
    # the copied bitstream is the source's: the first frames decode identically
    a, b = media.first_frame(out, tmp_path / "a.png"), media.first_frame(ours["2s"], tmp_path / "b.png")
    assert np.array_equal(_pixels(a), _pixels(b))


def test_concat_keep_audio_gives_continuous_audio(tmp_path: Path, ours: dict[str, Path], src: Path) -> None:
    out = tmp_path / "va.mp4"
    media.concat([(ours["2s"], 2), (src, 1)], out, width=W, height=H, fps=FPS, keep_audio=True)
    info = media.probe(out)
    assert info.has_audio and info.acodec == "aac"
    assert abs(media.decoded_duration(out, "a") - 3) <= 2 * FRAME


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("music")
    # quiet, long: the mix must trim it and bring it up to about -16 LUFS
    return _lavfi(d / "m.wav", None, 8, audio="aevalsrc=0.05*sin(2*PI*220*t)+0.03*sin(2*PI*331*t):s=44100")


def test_mix_copies_video_and_normalises_music(tmp_path: Path, ours: dict[str, Path], music: Path) -> None:
    video = media.concat([(ours["2s"], 2), (ours["3s"], 3)], tmp_path / "v.mp4", width=W, height=H, fps=FPS)
    final = media.mix(video.out, music, tmp_path / "final.mp4", seconds=5, native_audio=False)
    info = media.probe(final)
    assert (info.vcodec, info.acodec, info.audio_rate, info.audio_channels) == ("h264", "aac", 48000, 2)
    assert abs(info.duration - 5) <= FRAME
    assert abs(media.decoded_duration(final, "a") - 5) <= FRAME
    assert -20 <= media.loudness_lufs(final) <= -10
    assert media.loudness_lufs(music) < -22  # it really was brought up
    # the video stream was copied, not re-encoded: same frames, same x264 settings string, and
    # the same first decoded frame bit for bit
    assert media.count_frames(final) == media.count_frames(video.out) == 5 * FPS
    assert media.x264_options(final) == media.x264_options(video.out)
    a, b = media.last_frame(final, tmp_path / "a.png"), media.last_frame(video.out, tmp_path / "b.png")
    assert np.array_equal(_pixels(a), _pixels(b))
    # faststart: the moov atom comes before the media data
    head = final.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_a_kept_sound_is_reused_while_intact(tmp_path: Path, ours: dict[str, Path], music: Path) -> None:
    """The mix keeps its sound by what it is made from: the next mix reuses the file as it is,
    and one damaged by hand is made again (never served), the final the same bytes each time."""
    keep = tmp_path / "parts"
    first = media.mix(ours["2s"], music, tmp_path / "a.mp4", seconds=2, native_audio=False, keep=keep)
    (sound,) = keep.glob("sound-*.m4a")
    made = sound.stat().st_mtime_ns
    second = media.mix(ours["2s"], music, tmp_path / "b.mp4", seconds=2, native_audio=False, keep=keep)
    assert sound.stat().st_mtime_ns == made and second.read_bytes() == first.read_bytes()
    data = bytearray(sound.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sound.write_bytes(bytes(data))
    third = media.mix(ours["2s"], music, tmp_path / "c.mp4", seconds=2, native_audio=False, keep=keep)
    assert third.read_bytes() == first.read_bytes()
    assert [p.name for p in keep.glob("sound-*.m4a")] == [sound.name] and sound.read_bytes() != bytes(data)


def test_mix_ducks_music_under_native_audio(tmp_path: Path, ours: dict[str, Path], src: Path, music: Path) -> None:
    native = media.concat([(src, 3)], tmp_path / "native.mp4", width=W, height=H, fps=FPS, keep_audio=True)
    ducked = media.mix(native.out, music, tmp_path / "ducked.mp4", seconds=3, native_audio=True)
    only = media.mix(native.out, None, tmp_path / "only.mp4", seconds=3, native_audio=True)
    for f in (ducked, only):
        info = media.probe(f)
        assert info.has_audio and info.acodec == "aac" and abs(info.duration - 3) <= FRAME
        assert -20 <= media.loudness_lufs(f) <= -10
    silent = media.mix(ours["2s"], None, tmp_path / "silent.mp4", seconds=2, native_audio=False)
    assert media.probe(silent).has_audio and media.loudness_lufs(silent) < -60


def test_normalise_image_cover_crops_to_exact_size(tmp_path: Path) -> None:
    src = tmp_path / "wide.png"
    img = Image.new("RGB", (400, 100), (255, 0, 0))
    img.paste((0, 0, 255), (180, 0, 220, 100))  # a blue band in the middle
    img.save(src)
    out = media.normalise_image(src, tmp_path / "sq.png", 64, 64)
    assert media.image_size(out) == (64, 64)
    px = _pixels(out)
    assert px[32, 32].tolist() == [0, 0, 255]  # centre kept (cover-crop, not letterbox)
    assert px[32, 2].tolist()[0] > 200  # red on the sides, no black bars
    with pytest.raises(MediaError, match="notimg.png"):
        (tmp_path / "notimg.png").write_text("<html></html>")
        media.image_size(tmp_path / "notimg.png")


def test_loudness_of_a_known_signal(tmp_path: Path) -> None:
    loud = _lavfi(tmp_path / "loud.wav", None, 3, audio="sine=f=1000:r=48000")  # ffmpeg's sine is 1/8 FS
    quiet = _lavfi(tmp_path / "quiet.wav", None, 3, audio="aevalsrc=0.01*sin(2*PI*1000*t):s=48000")
    assert media.loudness_lufs(loud) > media.loudness_lufs(quiet) + 15


# ---- what platforms take as is: BT.709, no edit list ------------------------------------------


def _mp4_boxes(path: Path) -> set[bytes]:
    """Every box type in an MP4's box tree (containers walked, media data skipped)."""
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"}
    found: set[bytes] = set()
    data = path.read_bytes()

    def walk(start: int, end: int) -> None:
        at = start
        while at + 8 <= end:
            size = int.from_bytes(data[at:at + 4], "big")
            kind = data[at + 4:at + 8]
            header = 8
            if size == 1:
                size, header = int.from_bytes(data[at + 8:at + 16], "big"), 16
            elif size == 0:
                size = end - at
            found.add(kind)
            if kind in containers:
                walk(at + header, at + size)
            at += max(size, header)

    walk(0, len(data))
    return found


def _bt709_rgb(path: Path, width: int, height: int) -> tuple[int, int, int]:
    """The centre pixel of the first frame, decoded from its raw Y'CbCr with the BT.709 matrix
    (limited range) by hand, as a player honouring the tags does."""
    raw = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "yuv420p", "-"], check=True, capture_output=True).stdout
    n = width * height
    y = np.frombuffer(raw[:n], np.uint8).reshape(height, width)[height // 2, width // 2]
    u = np.frombuffer(raw[n:n + n // 4], np.uint8).reshape(height // 2, width // 2)[height // 4, width // 4]
    v = np.frombuffer(raw[n + n // 4:n + n // 2], np.uint8).reshape(height // 2, width // 2)[height // 4, width // 4]
    luma, cb, cr = (float(y) - 16) / 219, (float(u) - 128) / 224, (float(v) - 128) / 224
    kr, kb = 0.2126, 0.0722
    r, b = luma + 2 * (1 - kr) * cr, luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return tuple(int(round(c * 255)) for c in (r, g, b))  # type: ignore[return-value]


def _colour_tags(path: Path) -> str:
    err = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in err.splitlines() if "Video:" in line)


def test_brand_colour_round_trips_bt709_tagged_without_edit_lists(tmp_path: Path) -> None:
    brand = (0xFF, 0x5A, 0x1F)  # the spec's "#FF5A1F"
    Image.new("RGB", (W, H), brand).save(tmp_path / "brand.png")
    clip = media.camera_clip(tmp_path / "brand.png", tmp_path / "clip.mp4", width=W, height=H, fps=FPS, seconds=2,
                             zoom="1", x="0", y="0")
    foreign = _lavfi(tmp_path / "foreign.mp4", f"color=c=0xFF5A1F:s={W}x{H}:r={FPS}", 2,
                     vargs=("-c:v", "libx264", "-pix_fmt", "yuv420p"))
    media.concat([(clip, 2.0), (foreign, 1.0)], tmp_path / "video.mp4", width=W, height=H, fps=FPS)
    music = _lavfi(tmp_path / "music.wav", None, 3, audio="sine=f=220:r=48000")
    final = media.mix(tmp_path / "video.mp4", music, tmp_path / "final.mp4", seconds=3, native_audio=False)
    for path in (clip, tmp_path / "video.mp4", final):
        assert "bt709" in _colour_tags(path) and "tv" in _colour_tags(path), _colour_tags(path)
        assert "unknown" not in _colour_tags(path), _colour_tags(path)
        boxes = _mp4_boxes(path)
        assert b"moov" in boxes and b"elst" not in boxes and b"edts" not in boxes, (path.name, sorted(boxes))
        got = _bt709_rgb(path, W, H)
        assert max(abs(a - b) for a, b in zip(got, brand)) <= 4, (path.name, got)
    assert abs(media.probe(final).duration - 3) < 0.05


def test_video_bitrate_is_at_least_the_platforms_recommendation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """720p: YouTube asks for 5 Mb/s (SDR, 24-30 fps); ADSPEC_VIDEO_KBPS is the documented knob."""
    busy = _lavfi(tmp_path / "busy.mp4", "testsrc2=s=1280x720:r=24", 2,
                  vargs=("-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p"))

    def kbps(path: Path) -> float:
        return path.stat().st_size * 8 / media.probe(path).duration / 1000

    monkeypatch.delenv("ADSPEC_VIDEO_KBPS", raising=False)
    assert media.video_kbps(1280, 720) == 5000 and media.video_kbps(1080, 1920) == 8000 and media.video_kbps(640, 360) == 1000
    out = media.normalise_clip(busy, tmp_path / "out.mp4", width=1280, height=720, fps=FPS, seconds=2)
    assert kbps(out) >= 0.95 * 5000, kbps(out)
    monkeypatch.setenv("ADSPEC_VIDEO_KBPS", "1500")
    lower = media.normalise_clip(busy, tmp_path / "lower.mp4", width=1280, height=720, fps=FPS, seconds=2)
    assert 0.8 * 1500 <= kbps(lower) <= 1.2 * 1500, kbps(lower)
    monkeypatch.setenv("ADSPEC_VIDEO_KBPS", "lots")
    with pytest.raises(MediaError, match="ADSPEC_VIDEO_KBPS"):
        media.video_kbps(1280, 720)


def _frame_hashes(path: Path) -> list[str]:
    out = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                         check=True, capture_output=True, text=True).stdout
    return [ln.rsplit(",", 1)[-1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]


def test_keyframes_come_from_the_sync_sample_table(tmp_path: Path, ours: dict[str, Path]) -> None:
    from adspec.media_overlay import keyframes

    video = media.concat([(ours["2s"], 2), (ours["3s"], 3)], tmp_path / "v.mp4", width=W, height=H, fps=FPS)
    # closed one-second GOPs in each clip: a keyframe every 24 frames
    assert keyframes(video.out) == [0, 24, 48, 72, 96]
    shown = subprocess.run([media.ffmpeg_exe(), "-v", "info", "-skip_frame", "nokey", "-i", str(video.out), "-map", "0:v:0",
                            "-fps_mode", "passthrough", "-vf", "showinfo", "-f", "null", "-"],
                           capture_output=True, text=True).stderr
    decoded = sorted(round(float(t) * FPS) for t in __import__("re").findall(r"pts_time:\s*([\d.]+)", shown))
    assert keyframes(video.out) == decoded  # what the decoder calls keyframes


def test_words_drawn_over_a_video_reencode_only_the_seconds_they_cover(tmp_path: Path, ours: dict[str, Path],
                                                                       music: Path) -> None:
    from adspec.media_overlay import burn_overlays, dirty_spans

    video = media.concat([(ours["2s"], 2), (ours["3s"], 3)], tmp_path / "v.mp4", width=W, height=H, fps=FPS)
    png = tmp_path / "word.png"
    Image.new("RGBA", (80, 30), (255, 40, 40, 255)).save(png)
    overlays = [media.Overlay(png, 20, 20, 2.2, 2.8), media.Overlay(png, 20, 120, 4.1, 5.0, fade=0.2)]
    assert dirty_spans(overlays, [0, 24, 48, 72, 96], 120, FPS) == [(48, 72), (96, 120)]
    drawn = burn_overlays(video.out, overlays, tmp_path / "drawn.mp4")
    final = media.mix(video.out, music, tmp_path / "final.mp4", seconds=5, native_audio=False, picture=drawn)
    before, after = _frame_hashes(video.out), _frame_hashes(final)
    assert len(after) == len(before) == 5 * FPS
    changed = {i for i, (a, b) in enumerate(zip(before, after)) if a != b}
    # every frame under a word changed; no frame outside the GOPs the words touch did
    assert set(range(round(2.2 * FPS), round(2.8 * FPS))) <= changed
    assert set(range(round(4.3 * FPS), round(4.8 * FPS))) <= changed
    assert changed <= set(range(48, 72)) | set(range(96, 120))
    frame = tmp_path / "f.png"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-ss", "2.5", "-i", str(final), "-frames:v", "1", str(frame)],
                   check=True)
    r, g, b = _pixels(frame)[35, 60]
    assert r > 200 and g < 100 and b < 100  # the word's red, where it was drawn
    assert media.probe(final).has_audio and abs(media.decoded_duration(final, "v") - 5) <= FRAME


def test_a_mix_after_one_clip_changed_draws_only_that_clip_again(tmp_path: Path, ours: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Captions over the whole video, two clips: after the second clip is remade, its piece is
    drawn again, the first clip's piece is the one kept from before, and the result is the same
    bytes as drawing everything afresh."""
    from adspec.media_overlay import burn_overlays, split_for_cores

    monkeypatch.setenv("ADSPEC_CPU_JOBS", "1")  # one core: the anchors alone cut the pieces
    png = tmp_path / "word.png"
    Image.new("RGBA", (80, 30), (255, 40, 40, 255)).save(png)
    caption = media.Overlay(png, 20, 20, 0.0, 5.0)
    keys = [0, 24, 48, 72, 96]
    assert split_for_cores([(0, 120)], [caption], keys, FPS, 1, 48, anchors=[0, 48]) == [(0, 48), (48, 120)]
    fading = media.Overlay(png, 20, 120, 1.5, 3.5, fade=0.2)  # never cut inside a fade, anchor or not
    assert split_for_cores([(0, 120)], [caption, fading], keys, FPS, 1, 48, anchors=[0, 48]) == [(0, 120)]
    other = _lavfi(tmp_path / "other.mp4", f"mandelbrot=s={W}x{H}:r={FPS}", 3, vargs=("-c:v", "libx264", "-pix_fmt", "yuv420p"))
    remade = media.normalise_clip(other, tmp_path / "remade.mp4", width=W, height=H, fps=FPS, seconds=3)
    keep = tmp_path / "drawn"

    def kept() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in keep.glob("*.mp4")}

    before = media.concat([(ours["2s"], 2), (ours["3s"], 3)], tmp_path / "v1.mp4", width=W, height=H, fps=FPS)
    burn_overlays(before.out, [caption], tmp_path / "a.mp4", anchors=[0.0, 2.0], keep=keep)
    first = kept()
    assert len(first) == 2  # one piece per clip
    after = media.concat([(ours["2s"], 2), (remade, 3)], tmp_path / "v2.mp4", width=W, height=H, fps=FPS)
    again = burn_overlays(after.out, [caption], tmp_path / "b.mp4", anchors=[0.0, 2.0], keep=keep)
    second = kept()
    assert len(second) == 2 and len(set(second) & set(first)) == 1  # the old second piece removed
    (same,) = set(second) & set(first)
    assert second[same] == first[same]  # reused, not written again
    afresh = burn_overlays(after.out, [caption], tmp_path / "c.mp4", anchors=[0.0, 2.0])
    assert again.read_bytes() == afresh.read_bytes()
    assert _frame_hashes(again)[:48] == _frame_hashes(tmp_path / "a.mp4")[:48]
    assert _frame_hashes(again)[48:] != _frame_hashes(tmp_path / "a.mp4")[48:]
    # a kept piece damaged by hand is not served: it is drawn again, the result the same bytes
    damaged = keep / same
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    mended = burn_overlays(after.out, [caption], tmp_path / "d.mp4", anchors=[0.0, 2.0], keep=keep)
    assert mended.read_bytes() == afresh.read_bytes()
    assert set(kept()) == set(second) and damaged.read_bytes() != bytes(data)


def test_lumas_are_kept_by_gop_and_only_new_gops_decoded(tmp_path: Path, ours: dict[str, Path]) -> None:
    """The flash check's lumas: kept by the digest of each GOP's coded bytes, the same values as
    a decode of the whole file, and a GOP seen before is not decoded again."""
    from adspec.hashing import sha256_json
    from adspec.media_delivery import luma_means
    from adspec.mp4_table import gop_digests

    other = _lavfi(tmp_path / "other.mp4", f"mandelbrot=s={W}x{H}:r={FPS}", 3, vargs=("-c:v", "libx264", "-pix_fmt", "yuv420p"))
    remade = media.normalise_clip(other, tmp_path / "remade.mp4", width=W, height=H, fps=FPS, seconds=3)
    before = media.concat([(ours["2s"], 2), (ours["3s"], 3)], tmp_path / "v1.mp4", width=W, height=H, fps=FPS).out
    after = media.concat([(ours["2s"], 2), (remade, 3)], tmp_path / "v2.mp4", width=W, height=H, fps=FPS).out
    gops_before, gops_after = gop_digests(before), gop_digests(after)
    assert [(a, n) for a, n, _ in gops_after] == [(0, 24), (24, 24), (48, 24), (72, 24), (96, 24)]
    assert [d for *_, d in gops_before[:2]] == [d for *_, d in gops_after[:2]]  # the first clip's GOPs
    assert not {d for *_, d in gops_before[2:]} & {d for *_, d in gops_after[2:]}
    keep = tmp_path / "lumas.json"
    assert luma_means(before, keep=keep) == luma_means(before)
    kept = json.loads(keep.read_text())
    marked = {**kept["gops"], **{digest: [7.0] * 24 for _a, _n, digest in gops_before[:2]}}
    # a file whose values do not match the digest written with them (damaged) is not believed
    keep.write_text(json.dumps({**kept, "gops": marked}))
    assert luma_means(before, keep=keep) == luma_means(before)
    # a kept value is used as it is: mark the first clip's GOPs, then measure the remade video
    keep.write_text(json.dumps({**kept, "gops": marked, "sha256": sha256_json(marked)}))
    measured, whole = luma_means(after, keep=keep), luma_means(after)
    assert measured[:48] == [7.0] * 48  # not decoded again
    assert measured[48:] == whole[48:] and len(measured) == len(whole) == 5 * FPS  # decoded from its keyframe
    assert set(json.loads(keep.read_text())["gops"]) == {d for *_, d in gops_after}  # only this file's kept


def test_long_words_are_encoded_in_pieces_on_every_core_and_drawn_across_the_cut(
        tmp_path: Path, ours: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from adspec.media_overlay import burn_overlays, split_for_cores

    png = tmp_path / "word.png"
    Image.new("RGBA", (80, 30), (255, 40, 40, 255)).save(png)
    keys = [0, 24, 48, 72, 96]
    caption = media.Overlay(png, 20, 20, 0.0, 5.0)
    assert split_for_cores([(0, 120)], [caption], keys, FPS, 2, 48) == [(0, 48), (48, 120)]
    assert split_for_cores([(0, 120)], [caption], keys, FPS, 1, 48) == [(0, 120)]
    fading = media.Overlay(png, 20, 120, 1.5, 3.5, fade=0.2)  # its fade is never cut
    assert split_for_cores([(0, 120)], [caption, fading], keys, FPS, 2, 48) == [(0, 120)]
    monkeypatch.setenv("ADSPEC_CPU_JOBS", "2")
    video = media.concat([(ours["2s"], 2), (ours["3s"], 3)], tmp_path / "v.mp4", width=W, height=H, fps=FPS)
    drawn = burn_overlays(video.out, [caption], tmp_path / "drawn.mp4")
    assert media.count_frames(drawn) == 5 * FPS
    for t in (0.5, 1.95, 2.05, 4.9):  # on both sides of the cut at 2 s
        frame = tmp_path / f"f{t}.png"
        subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-ss", str(t), "-i", str(drawn), "-frames:v", "1",
                        str(frame)], check=True)
        r, g, b = _pixels(frame)[35, 60]
        assert r > 200 and g < 100 and b < 100, t
