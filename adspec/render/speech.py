"""Offline speech: eSpeak NG, from the library and voice data that the `espeakng-loader` wheel
ships (pip alone installs it: no system package), called through ctypes.

Real, intelligible synthesised speech, free. eSpeak NG keeps process-wide state (its voice
variants' flutter and noise advance with every call and survive espeak_Terminate), so a line
spoken after another differs in its samples from the same line spoken first. Each line is
therefore spoken by a fresh child process (`python -m adspec.render.speech`, ~0.1 s): the WAV is a
function of (text, voice, speed) alone, bit for bit, on any runner and in any build order, like
every other offline render.

A line in another language than English is spoken by eSpeak NG's own voice for that language (its
voice list, `espeak_ListVoices`: German by `de`, Japanese by `ja`, Mandarin by `cmn`, ...), in
the register of the English voice asked for (`+f4`, `+m3`: variants without breath noise, which
would differ from process to process). A language eSpeak NG has no voice for is spoken by the
English voice, and the voice step says so in one line.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
import wave
from functools import lru_cache
from pathlib import Path

from ..errors import MediaError
from ..limits import cpu_slot
from ..redact import child_env

#: words per minute at speed 1.0 (eSpeak's default is 175; a little slower reads as a voiceover)
BASE_RATE = 165
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4

#: live voice names -> an eSpeak voice of the same register (the offline build stands in for them)
_FEMININE = ("woman", "girl", "abbess", "lady", "coral", "nova", "shimmer", "sage", "marin", "ballad", "alloy")

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_rate = 0
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Voice(ctypes.Structure):
    """espeak_VOICE (speak_lib.h): `languages` is a run of (priority byte, language, NUL), then 0."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


@lru_cache(maxsize=1)
def espeak_languages() -> tuple[tuple[str, str, int], ...]:
    """(language, voice, priority) for every language of every voice eSpeak NG ships (its own
    list; the voice as `espeak_SetVoiceByName` takes it: the identifier's last part, lower case)."""
    out: list[tuple[str, str, int]] = []
    with _lock:
        lib, _ = _load()
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        voices = lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            v = voices[i].contents
            voice = v.identifier.decode().rsplit("/", 1)[-1].lower()
            at = v.languages
            while (priority := ctypes.string_at(at, 1)[0]) != 0:
                language = ctypes.string_at(at + 1).decode()
                out.append((language.lower(), voice, priority))
                at += 2 + len(language)
            i += 1
    return tuple(out)


def language_voice(tag: str) -> str | None:
    """eSpeak NG's voice for a BCP 47 language tag: the voice listing the tag itself, else its
    primary subtag (`de-AT` -> `de`, `zh-Hans` -> `cmn`), the most preferred one first. None: eSpeak
    NG has no voice for it."""
    tag = tag.lower()
    for want in (tag, tag.split("-", 1)[0]):
        found = [(priority, i, voice) for i, (language, voice, priority) in enumerate(espeak_languages())
                 if language == want]
        if found:
            return min(found)[2]
    return None


def _english_voice(name: str, offline_voices: tuple[str, ...]) -> str:
    if name in offline_voices:
        return name
    low = name.lower()
    return "en-us+f4" if any(w in low for w in _FEMININE) else "en-us+m3"


def espeak_voice(name: str, offline_voices: tuple[str, ...] = (), language: str = "en") -> str:
    """The eSpeak voice that speaks for `name` in `language`: in English, `name` itself when
    eSpeak has it, else a female or male English voice after the live voice's register; in
    another language, eSpeak's voice for it in the same register (`de+f4`), or the English voice
    when eSpeak has none (see `language_note`)."""
    english = _english_voice(name, offline_voices)
    if language.split("-", 1)[0].lower() == "en":
        return english
    own = language_voice(language)
    if own is None:
        return english
    _, plus, variant = english.partition("+")
    return f"{own}{plus}{variant}"


def language_note(language: str) -> str | None:
    """One line when the offline voice cannot speak `language` (None: it can)."""
    if language.split("-", 1)[0].lower() == "en" or language_voice(language) is not None:
        return None
    return f"eSpeak NG has no voice for '{language}': the offline voice speaks the line in English"


def _load() -> tuple[ctypes.CDLL, int]:
    global _lib, _rate
    if _lib is None:
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - a dependency of adspec
            raise MediaError("offline voice: the espeakng-loader package is missing (pip install espeakng-loader)") from e
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise MediaError("offline voice: eSpeak NG did not initialise")
        _lib, _rate = lib, rate
    return _lib, _rate


def synthesize(text: str, voice: str, speed: float) -> tuple[bytes, int]:
    """(16-bit mono samples, sample rate) of `text` spoken by eSpeak `voice` at `speed`."""
    chunks: list[bytes] = []

    def collect(wav, n, _events):  # type: ignore[no-untyped-def]
        if n > 0:
            chunks.append(ctypes.string_at(wav, n * 2))
        return 0

    callback = _CALLBACK(collect)
    with _lock:
        lib, rate = _load()
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise MediaError(f"offline voice: eSpeak NG has no voice '{voice}'")
        lib.espeak_SetParameter(_RATE, round(BASE_RATE * speed), 0)
        data = text.encode("utf-8")
        if lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            raise MediaError("offline voice: eSpeak NG could not speak the line")
        lib.espeak_Synchronize()
        lib.espeak_SetSynthCallback(None)
    return b"".join(chunks), rate


def speak_to_wav(text: str, out: str | Path, *, voice: str, speed: float) -> Path:
    """Write `text` spoken as a mono 16-bit WAV at `out`, by a fresh eSpeak NG (a child process),
    so the samples depend on the line alone."""
    job = json.dumps({"text": text, "voice": voice, "speed": speed})
    with cpu_slot():
        done = subprocess.run([sys.executable, "-m", __name__], input=job.encode(), capture_output=True,
                              env=child_env(), timeout=120, check=False)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"offline voice: {why[-1] if why else 'eSpeak NG failed'}")
    rate, pcm = read_child_output(done.stdout)
    if not pcm:
        raise MediaError(f"offline voice: no audio for {text!r}")
    out = Path(out)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out


def child_output(rate: int, pcm: bytes) -> bytes:
    """What the child sends: the sample rate (4 bytes), the samples' length (8 bytes), the samples."""
    return rate.to_bytes(4, "little") + len(pcm).to_bytes(8, "little") + pcm


def read_child_output(data: bytes) -> tuple[int, bytes]:
    """(rate, samples) from the child's output, refused when fewer samples arrived than it said:
    a line cut short would be cached, and served, as if eSpeak had spoken it so (seen: a child's
    stdout stopped at one pipe's 64 KiB while a profiler interrupted its writes)."""
    if len(data) < 12:
        raise MediaError(f"offline voice: the speech process sent {len(data)} bytes, not even its header")
    rate, size, pcm = int.from_bytes(data[:4], "little"), int.from_bytes(data[4:12], "little"), data[12:]
    if len(pcm) != size:
        raise MediaError(f"offline voice: the speech process's samples were cut short ({len(pcm)} of {size} bytes)")
    return rate, pcm


def _child() -> int:
    """The child's side: one line from stdin (JSON) -> `child_output` on stdout."""
    job = json.loads(sys.stdin.buffer.read())
    try:
        pcm, rate = synthesize(job["text"], job["voice"], float(job["speed"]))
    except MediaError as e:
        print(e, file=sys.stderr)
        return 1
    data = memoryview(child_output(rate, pcm))
    while data:  # a write may take less than asked (a pipe, a signal): write the rest, unbuffered
        data = data[os.write(sys.stdout.fileno(), data):]
    return 0


if __name__ == "__main__":
    raise SystemExit(_child())
