"""Offline speech: eSpeak NG, from the library and voice data that the `espeakng-loader` wheel
ships (pip alone installs it: no system package), called through ctypes.

Real, intelligible synthesised speech, free. eSpeak NG keeps process-wide state (its voice
variants' flutter and noise advance with every call and survive espeak_Terminate), so a line
spoken after another differs in its samples from the same line spoken first. Each line is
therefore spoken by a fresh child process (`python -m adspec.render.speech`, ~0.1 s): the WAV is a
function of (text, voice, speed) alone, bit for bit, on any runner and in any build order, like
every other offline render.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import threading
import wave
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


def espeak_voice(name: str, offline_voices: tuple[str, ...] = ()) -> str:
    """The eSpeak voice that speaks for `name`: itself when eSpeak has it, else a female or male
    English voice after the live voice's register."""
    if name in offline_voices:
        return name
    low = name.lower()
    return "en-us+f4" if any(w in low for w in _FEMININE) else "en-us+m3"


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
    rate, pcm = int.from_bytes(done.stdout[:4], "little"), done.stdout[4:]
    if not pcm:
        raise MediaError(f"offline voice: no audio for {text!r}")
    out = Path(out)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out


def _child() -> int:
    """The child's side: one line from stdin (JSON) -> 4-byte rate + samples on stdout."""
    job = json.loads(sys.stdin.buffer.read())
    try:
        pcm, rate = synthesize(job["text"], job["voice"], float(job["speed"]))
    except MediaError as e:
        print(e, file=sys.stderr)
        return 1
    sys.stdout.buffer.write(rate.to_bytes(4, "little") + pcm)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child())
