"""The ad speaks (offline): spoken lines in the beat file, the offline voice, fitting a line to its
beat, captions (files, soft track, burned in) and music ducked under the voice. Checked by facts:
samples, pitch, pixels, parsed subtitle files."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt
from PIL import Image, ImageChops

from adspec import media
from adspec.build_files import VoiceInputs
from adspec.captions import MAX_CHARS, MAX_LINES
from adspec.errors import MediaError
from adspec.loader import load_spec
from adspec.offline_planner import plan_spec_offline
from adspec.registry import load_registry
from adspec.render.speech import child_output, read_child_output, speak_to_wav, synthesize
from adspec.safe_areas import safe_area
from adspec.spec import word_count
from adspec.voice import VoiceFitError, fit_line
from conftest import Project, executed_tasks, small_spec

RATE = 16000


def pcm(path: Path, *, start: float | None = None) -> np.ndarray:
    """The first audio stream as mono floats at 16 kHz (real ffmpeg)."""
    args = [media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"]
    if start is not None:
        args[3:3] = ["-af", f"adelay={round(start * 1000)}:all=1"]
        args = [media.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0",
                "-af", f"adelay={round(start * 1000)}:all=1", "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.int16).astype(np.float64) / 32768.0


def pitch_track(x: np.ndarray, rate: int) -> list[float]:
    """F0 (Hz) of each voiced 40 ms frame by autocorrelation; unvoiced frames are left out."""
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = int(rate / 400), int(rate / 70)
    out = []
    for i in range(0, len(x) - frame, hop):
        f = x[i:i + frame] - np.mean(x[i:i + frame])
        if np.sqrt(np.mean(f ** 2)) < 0.02:
            continue
        ac = np.correlate(f, f, "full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            out.append(rate / lag)
    return out


def speech_facts(x: np.ndarray, rate: int) -> dict[str, float]:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = spectrum[(freqs >= 80) & (freqs <= 4000)].sum() / spectrum.sum()
    f0 = pitch_track(x, rate)
    env = np.array([np.sqrt(np.mean(x[i:i + rate // 50] ** 2)) for i in range(0, len(x) - rate // 50, rate // 50)])
    loud = env > 0.25 * env.max()
    onsets = int(np.sum(loud[1:] & ~loud[:-1]))  # syllable-like bursts of energy
    return {"band": band, "voiced": len(f0) / max(1, len(env) * 2), "f0_std": float(np.std(f0)) if f0 else 0.0,
            "f0_median": float(np.median(f0)) if f0 else 0.0, "onsets": onsets}


def test_offline_voice_is_speech_not_a_tone() -> None:
    raw, rate = synthesize("Ready? Meet the Zip bottle, built for the long way home.", "en-us+f4", 1.0)
    x = np.frombuffer(raw, dtype=np.int16).astype(np.float64) / 32768.0
    facts = speech_facts(x, rate)
    assert 2.0 < len(x) / rate < 6.0  # about 11 words at ~2.7 words a second
    assert facts["band"] > 0.8  # its energy is in the speech band
    assert 120 < facts["f0_median"] < 350 and facts["f0_std"] > 8  # a voice whose pitch moves
    assert facts["onsets"] >= 5  # syllables, not one sustained sound
    # the same checks reject a tone: they can fail
    t = np.arange(rate * 3) / rate
    tone = 0.5 * np.sin(2 * np.pi * 200 * t)
    tone_facts = speech_facts(tone, rate)
    assert tone_facts["f0_std"] < 2 and tone_facts["onsets"] < 2
    # speed is honoured: at 1.5x the line is clearly shorter
    fast, _ = synthesize("Ready? Meet the Zip bottle, built for the long way home.", "en-us+f4", 1.5)
    assert len(fast) < 0.8 * len(raw)


def test_offline_voice_is_a_function_of_the_line(tmp_path: Path) -> None:
    """A line's WAV is the same bytes whatever was spoken before it in the process (eSpeak's
    variants carry state from call to call), so a rebuild or another runner makes the same final."""
    line = "Ready? Meet the Zip bottle."
    first = speak_to_wav(line, tmp_path / "a.wav", voice="en-us+f4", speed=1.0).read_bytes()
    speak_to_wav("Something else entirely, said in between.", tmp_path / "b.wav", voice="en-us+m3", speed=1.2)
    again = speak_to_wav(line, tmp_path / "c.wav", voice="en-us+f4", speed=1.0).read_bytes()
    assert again == first
    # while eSpeak itself, called twice in one process, does not repeat itself: the check can fail
    assert synthesize(line, "en-us+f4", 1.0)[0] != synthesize(line, "en-us+f4", 1.0)[0]


def test_a_voice_cut_short_on_its_way_from_the_child_is_refused(tmp_path: Path) -> None:
    """The speech child says how many samples it sends: all of a long line arrive (more than one
    pipe's 64 KiB), and a stream cut anywhere is an error, never a shorter line in the cache."""
    line = "Ready? Meet the Zip bottle, built for the long way home, from the first mile to the last."
    spoken = speak_to_wav(line, tmp_path / "long.wav", voice="en-us+f4", speed=1.0)
    with wave.open(str(spoken)) as w:
        rate, frames = w.getframerate(), w.getnframes()
    assert frames * 2 > 65536 and frames / rate > 3.0  # the whole line: ~5 s, not 1.5 s
    pcm = spoken.read_bytes()[44:]
    sent = child_output(rate, pcm)
    assert read_child_output(sent) == (rate, pcm)
    for cut in (len(sent) - 1, 65536, 12, 5):
        with pytest.raises(MediaError, match="cut short|header"):
            read_child_output(sent[:cut])


def test_every_offline_voice_speaks_and_repeats(tmp_path: Path) -> None:
    """Each eSpeak voice the registry offers exists and renders the same bytes in two processes."""
    voices = load_registry().resolve("espeak", "voice").voices
    assert voices
    for voice in voices:
        a = speak_to_wav("Built for the long way home.", tmp_path / "a.wav", voice=voice, speed=1.0).read_bytes()
        b = speak_to_wav("Built for the long way home.", tmp_path / "b.wav", voice=voice, speed=1.0).read_bytes()
        assert a == b and len(a) > 20000, voice


def test_offline_voice_speaks_each_language_with_its_own_espeak_voice(tmp_path: Path) -> None:
    """A German or French line is spoken by eSpeak NG's German or French voice (in the register
    asked for), the same bytes in two processes, and not what the English voice makes of it."""
    from adspec.providers.base import NullJob, VoiceRequest
    from adspec.providers.offline import OfflineMedia

    offline = OfflineMedia()
    lines = {"de": "Das ist die Zip Flasche, kalt den ganzen Tag.", "fr": "Voici la bouteille Zip, froide toute la journée."}
    for language, text in lines.items():
        recipe = offline.voice_recipe(VoiceRequest(ad="a", beat_id="hook", text=text, model="espeak",
                                                   voice="en-us+f4", speed=1.0, language=language))
        assert recipe.params["voice"] == f"{language}+f4"
        english = offline.voice_recipe(VoiceRequest(ad="a", beat_id="hook", text=text, model="espeak",
                                                    voice="en-us+f4", speed=1.0))
        assert english.params["voice"] == "en-us+f4" and english.key != recipe.key
        offline.run(recipe, NullJob(), tmp_path / "a.wav")
        offline.run(recipe, NullJob(), tmp_path / "b.wav")  # each run is its own eSpeak process
        offline.run(english, NullJob(), tmp_path / "en.wav")
        a, b = (tmp_path / "a.wav").read_bytes(), (tmp_path / "b.wav").read_bytes()
        assert a == b and len(a) > 20000, language
        assert a != (tmp_path / "en.wav").read_bytes(), language
        assert speech_facts(pcm(tmp_path / "a.wav"), RATE)["onsets"] >= 5, language  # speech, not a tone or silence
    # a live voice's register carries over; a tag's region falls back to its language
    male = offline.voice_recipe(VoiceRequest(ad="a", beat_id="hook", text="Hallo", model="speech-02-turbo",
                                             voice="Deep_Voice_Man", speed=1.0, language="de-AT"))
    assert male.params["voice"] == "de+m3"


def test_a_language_espeak_lacks_is_spoken_in_english_with_a_one_line_note(project: Project) -> None:
    spec = small_spec(duration=6, language="zu", beats=[
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle", "motion_prompt": "push in",
         "voiceover": "Sawubona, nansi ibhodlela."},
        {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The logo", "motion_prompt": "pan left"}])
    spec["brand"] = {"name": "Zip", "colors": ["#FF5A1F", "#111111"]}
    project.write_spec("zu", spec)
    proc = project.doit()
    out = proc.stdout + proc.stderr
    notes = [x for x in out.splitlines() if "no voice for 'zu'" in x]
    assert notes == ["zu/hook voice (speech-02-turbo): eSpeak NG has no voice for 'zu': the offline voice speaks the line "
                     "in English"], out
    receipt = json.loads((project.build / "zu" / "beats" / "hook" / "voice.receipt.json").read_text())
    assert receipt["recipe"]["params"]["voice"].startswith("en-us+")  # the English voice of its register
    assert speech_facts(pcm(project.build / "zu" / "beats" / "hook" / "voice.wav"), RATE)["onsets"] >= 3  # not silence


def test_fit_line_speeds_up_at_most_15_percent_then_says_what_to_do() -> None:
    inputs = VoiceInputs(id="hook", text="a line", model="espeak", voice="en-us", speed=1.0, duration=3,
                         lead_in=0.25, tail=0.15, max_speedup=1.15)
    room = 3 - 0.25 - 0.15
    assert fit_line("hook", 2.0, inputs).tempo == 1.0
    fit = fit_line("hook", room * 1.15, inputs)
    assert fit.tempo == pytest.approx(1.15) and fit.seconds == pytest.approx(room)
    with pytest.raises(VoiceFitError) as e:
        fit_line("hook", room * 1.16, inputs)
    line = e.value.one_line()
    assert "\n" not in line
    for fact in ("'hook'", f"{room * 1.16:.2f} s spoken", "3 s beat", f"{room:.2f} s", "shorten the line"):
        assert fact in line


def test_offline_planner_writes_lines_within_budget_and_none_when_off() -> None:
    spec = load_spec(Path(__file__).resolve().parents[1] / "specs" / "trailrunner.yaml")
    plan = plan_spec_offline(spec)
    spoken = [b for b in plan.beats if b.voiceover]
    assert spoken and plan.beats[0].voiceover and plan.beats[-1].voiceover  # the hook and the cta speak
    for b in spoken:
        assert word_count(b.voiceover) <= int(b.duration * 2.5), (b.id, b.voiceover)
    quiet = plan_spec_offline(spec.model_copy(update={"voiceover": False}))
    assert all(b.voiceover is None for b in quiet.beats)


def voiced_spec(**overrides) -> dict:
    spec = small_spec(**overrides)
    spec["vars"] = {"name": "Zip"}
    spec["beats"][0]["voiceover"] = "Thirsty? Meet {{ name }}."
    spec["beats"][1]["voiceover"] = "Drink more. Get your bottle today."
    return spec


def music_gain(final: np.ndarray, music: np.ndarray, voice: np.ndarray, a: float, b: float) -> float:
    """Least squares of final ≈ g·music + v·voice over [a, b]: the music's gain there."""
    s, e = int(a * RATE), int(b * RATE)
    n = min(len(final), len(music), len(voice))
    s, e = min(s, n), min(e, n)
    A = np.stack([music[s:e], voice[s:e]], axis=1)
    coef, *_ = np.linalg.lstsq(A, final[s:e], rcond=None)
    return float(coef[0])


def test_offline_ad_speaks_with_captions_and_ducked_music(project: Project) -> None:
    project.write_spec("zip", voiced_spec())
    out = project.doit().stdout
    assert {"voice:zip/hook", "voice:zip/cta"} <= set(executed_tasks(out))
    root = project.build / "zip"
    final = root / "final.mp4"
    info = media.probe(final)
    assert (info.vcodec, info.acodec, info.width, info.height) == ("h264", "aac", 640, 360)
    assert abs(info.duration - 8) < 0.1
    streams = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(final)], capture_output=True, text=True, check=False).stderr
    assert "Subtitle: mov_text" in streams  # the soft caption track
    assert -18.5 <= media.loudness_lufs(final) <= -14.5  # loudness-normalised as before

    # the voice targets: recipes of the line, the voice and the speed, nothing positional
    import json
    receipt = json.loads((root / "beats" / "hook" / "voice.receipt.json").read_text())
    assert receipt["recipe"]["kind"] == "voice" and set(receipt["recipe"]["params"]) == {"text", "voice", "speed"}
    assert receipt["recipe"]["params"]["text"] == "Thirsty? Meet Zip."

    # captions: parsed with libraries, every cue inside its beat, readable sizes
    beats = {"hook": (0.0, 3.0), "cta": (3.0, 8.0)}
    cues = list(srt.parse((root / "captions.srt").read_text()))
    vtt = webvtt.read(str(root / "captions.vtt"))
    assert len(cues) == len(vtt.captions) >= 2
    assert "Thirsty? Meet Zip." in cues[0].content and "bottle today" in cues[-1].content
    for cue, v in zip(cues, vtt.captions):
        start, end = cue.start.total_seconds(), cue.end.total_seconds()
        h, m, sec = v.start.split(":")
        assert abs(int(h) * 3600 + int(m) * 60 + float(sec) - start) < 0.002 and v.text == cue.content
        beat = next(b for b in beats.values() if b[0] <= start < b[1])
        assert beat[0] <= start < end <= beat[1]
        assert end - start >= 1.0 - 1e-3
        lines = cue.content.split("\n")
        assert len(lines) <= MAX_LINES and all(len(x) <= MAX_CHARS for x in lines)

    # the mix: voice in each line's window, the music measurably ducked there (>= 6 dB)
    x = pcm(final)
    music = pcm(root / "music.wav")
    # the final carries no MP4 edit list (issue 14), so AAC's encoder priming is decoded as a few
    # ms of lead: align the final to the music bed before fitting sample by sample
    n = len(music) - 2048
    lag = max(range(0, 2048), key=lambda k: float(np.dot(x[k:k + n], music[:n])) if len(x) >= k + n else -1e9)
    x = x[lag:]
    hook_at, cta_at = 0.25, 3.25
    voice = pcm(root / "beats" / "hook" / "voice.wav", start=hook_at)
    cta_voice = pcm(root / "beats" / "cta" / "voice.wav", start=cta_at)
    def fit(a: np.ndarray) -> np.ndarray:
        return np.pad(a, (0, max(0, len(x) - len(a))))[: len(x)]

    voice, music = fit(voice) + fit(cta_voice), fit(music)
    hook_len = media.decoded_duration(root / "beats" / "hook" / "voice.wav", "a")
    cta_len = media.decoded_duration(root / "beats" / "cta" / "voice.wav", "a")
    assert hook_len <= 3 - 0.25 - 0.15 + 0.01 and cta_len <= 5 - 0.4 + 0.01  # never into the next beat
    under_hook = music_gain(x, music, voice, hook_at + 0.2, hook_at + hook_len - 0.1)
    under_cta = music_gain(x, music, voice, cta_at + 0.2, cta_at + cta_len - 0.1)
    # clear of the ducking ramps (0.35 s release, 0.12 s attack) and of the music's fade-out
    between = music_gain(x, music, voice, hook_at + hook_len + 0.45, cta_at - 0.2)
    after = music_gain(x, music, voice, cta_at + cta_len + 0.45, 6.4)
    for ducked in (under_hook, under_cta):
        for free in (between, after):
            assert 20 * np.log10(free / ducked) >= 6.0, (ducked, free)
    for a, length in ((hook_at, hook_len), (cta_at, cta_len)):
        s, e = int(a * RATE), int((a + length) * RATE)
        in_line = np.sqrt(np.mean(x[s:e] ** 2))
        voice_part = np.sqrt(np.mean(voice[s:e] ** 2))
        assert voice_part > 0.05 and np.corrcoef(x[s:e], voice[s:e])[0, 1] > 0.5 and in_line > 0.05

    # burned captions change pixels only inside the caption area
    box = safe_area("16:9").caption_box(640, 360)
    t = (cues[-1].start.total_seconds() + cues[-1].end.total_seconds()) / 2
    with_captions = frame_at(final, t, project.root / "a.png")
    without = frame_at(root / "video.mp4", t, project.root / "b.png")
    diff = np.asarray(ImageChops.difference(with_captions, without).convert("L"), dtype=np.float64)
    inside = diff[box.top:box.bottom, box.left:box.right]
    outside = diff.copy()
    outside[box.top:box.bottom, box.left:box.right] = 0
    # the text layer's words (the cta beat's tagline, issue 17) stand where text_layout.json says
    for text in json.loads((root / "text_layout.json").read_text())["texts"]:
        if text["role"] != "caption" and text["start"] <= t <= text["end"]:
            left, top, right, bottom = text["box"]
            assert diff[top:bottom, left:right].mean() > 20
            outside[top:bottom, left:right] = 0
    assert inside.mean() > 20 and (inside > 60).mean() > 0.05  # text and box drawn there
    # elsewhere only re-encoding noise: faint on average, a strong difference on a few pixels at most
    assert outside.mean() < 1.5 and (outside >= 40).sum() <= 25, (outside.mean(), (outside >= 40).sum())

    # reorder the beats: no line is made again (nothing positional in a voice recipe)
    spec = voiced_spec()
    spec["beats"] = spec["beats"][::-1]
    project.write_spec("zip", spec)
    again = executed_tasks(project.doit().stdout)
    assert not [t for t in again if t.startswith(("voice:", "storyboard:", "chunk:"))] and "mix:zip" in again


def frame_at(video: Path, t: float, png: Path) -> Image.Image:
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1", str(png)],
                   check=True)
    return Image.open(png).convert("RGB")


def test_validate_reports_every_line_over_budget_in_one_line_each(project: Project) -> None:
    spec = voiced_spec()
    spec["beats"][0]["voiceover"] = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    spec["beats"][1]["voiceover"] = "a b c d e f g h i j k l m"
    path = project.write_spec("zip", spec)
    proc = project.adspec("validate", str(path))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if "voiceover" in x]
    text = path.read_text().splitlines()
    hook_line = next(i for i, x in enumerate(text, 1) if "voiceover: one two" in x)
    assert f"specs/zip.yaml:{hook_line}: beats.0.voiceover: 14 words for a 3 s beat (budget 7)" in lines
    assert any(x.endswith("beats.1.voiceover: 13 words for a 5 s beat (budget 12)") for x in lines)
    # a line is drawn on screen too: a control character in it is refused like the brand's
    spec["beats"][1]["voiceover"] = "Drink \x1b[31m more"
    path = project.write_spec("zip", spec)
    proc = project.adspec("validate", str(path))
    out = proc.stdout + proc.stderr
    assert "beats.1.voiceover: holds the control character \\x1b at position 7" in out


def test_validate_names_a_voice_the_model_lacks_and_a_missing_caption_font(project: Project) -> None:
    path = project.write_spec("zip", voiced_spec(voice={"name": "Wize_Woman"}, captions={"font": "fonts/brand.ttf"}))
    proc = project.adspec("validate", str(path))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "voice.name: speech-02-turbo has no voice 'Wize_Woman' (did you mean 'Wise_Woman'?)" in out
    assert "captions.font: file 'fonts/brand.ttf' not found" in out


def test_overlong_spoken_line_fails_its_voice_task_with_one_line(project: Project) -> None:
    spec = voiced_spec(voice={"speed": 0.5})  # within the word budget, but spoken at half speed
    spec["beats"][0]["voiceover"] = "Unbelievably refreshing, extraordinarily practical."
    project.write_spec("zip", spec)
    proc = project.doit(check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text
    line = next(x for x in text.splitlines() if "beat 'hook': the line lasts" in x)
    assert "s spoken but the 3 s beat leaves 2.60 s" in line and "shorten the line, lengthen the beat" in line
    # at the line and field, as every other error of a beat (it named neither the file nor the line)
    at = next(i for i, x in enumerate((project.specs / "zip.yaml").read_text().splitlines(), 1) if "Unbelievably" in x)
    assert line.startswith("FAILED voice:zip/hook: ") and \
        f"specs/zip.yaml:{at}: beats.0.voiceover: beat 'hook': the line lasts" in line, line  # (doit's folder: absolute)
    assert not (project.build / "zip" / "beats" / "hook" / "voice.wav").exists()
