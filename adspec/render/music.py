"""Music bed for the offline backend: a small numpy synthesiser.

A chord progression (pads + arpeggio), a bass line and a kick/snare/hat beat at the plan's bpm,
with the style (mode, key, groove, brightness) chosen from the prompt's words and a seeded RNG.
Exactly `seconds` long, 48 kHz stereo 16-bit, peak-safe (-1 dBFS). Fast: wavetable oscillators
and pre-rendered drum hits placed by slicing, so 30 s takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fsutil import atomic_path

SAMPLE_RATE = 48000
_TABLE = 4096

MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
# progressions as scale degrees (0-based): I–V–vi–IV, vi–IV–I–V, I–vi–IV–V; minor: i–VI–III–VII, i–iv–VI–V
_MAJOR_PROGS = ([0, 4, 5, 3], [5, 3, 0, 4], [0, 5, 3, 4], [0, 3, 4, 3])
_MINOR_PROGS = ([0, 5, 2, 6], [0, 3, 5, 4], [0, 6, 5, 6])


@dataclass(frozen=True)
class Style:
    minor: bool
    root: int  # MIDI note of the key's root (bass octave + 24)
    progression: tuple[int, ...]
    four_on_floor: bool
    hat_16ths: bool
    swing: float  # 0 = straight, 0.3 = lazy
    arp_16ths: bool
    brightness: float  # harmonics in the pad / pluck (0..1)
    drums: bool
    energy: float  # overall drum/arp level


def _words(prompt: str) -> set[str]:
    return set(re.findall(r"[a-z]+", prompt.lower()))


def style_for(prompt: str, seed: int) -> Style:
    """The style a prompt asks for: keywords decide, a seeded RNG fills in the rest."""
    w = _words(prompt)
    digest = hashlib.sha256(f"{seed}:{' '.join(prompt.lower().split())}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    minor = bool(w & {"dark", "moody", "sad", "tense", "minor", "epic", "dramatic", "melancholic", "mysterious", "noir"})
    if not minor and not (w & {"upbeat", "happy", "bright", "joyful", "sunny", "pop", "uplifting", "cheerful", "fun"}):
        minor = bool(rng.random() < 0.3)
    calm = bool(w & {"calm", "chill", "lofi", "lo", "ambient", "soft", "gentle", "relaxed", "mellow", "acoustic", "piano"})
    driving = bool(w & {"edm", "electronic", "driving", "energetic", "dance", "house", "techno", "sport", "sports", "hype", "workout"})
    progs = _MINOR_PROGS if minor else _MAJOR_PROGS
    return Style(
        minor=minor,
        root=48 + int(rng.integers(-5, 7)),
        progression=tuple(progs[int(rng.integers(len(progs)))]),
        four_on_floor=driving or (not calm and rng.random() < 0.4),
        hat_16ths=driving,
        swing=0.25 if (w & {"lofi", "lo", "hiphop", "hip", "jazzy", "swing"}) else 0.0,
        arp_16ths=driving or (not calm and rng.random() < 0.5),
        brightness=0.35 if calm else (0.9 if driving else 0.6),
        drums=not bool(w & {"ambient", "drone", "nodrums"}),
        energy=0.6 if calm else (1.0 if driving else 0.8),
    )


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _table(brightness: float) -> np.ndarray:
    """One period of a soft saw: harmonics up to 2..12 depending on brightness."""
    ph = np.arange(_TABLE) / _TABLE * 2 * np.pi
    top = 2 + int(round(brightness * 10))
    wave_ = sum(np.sin(k * ph) / k for k in range(1, top + 1))
    return (wave_ / np.max(np.abs(wave_))).astype(np.float32)


def _osc(table: np.ndarray, hz: float, n: int, phase0: float = 0.0) -> np.ndarray:
    idx = ((phase0 + np.arange(n, dtype=np.float64) * (hz / SAMPLE_RATE)) * _TABLE).astype(np.int64) & (_TABLE - 1)
    return table[idx]


def _add(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Add `sig` into `buf` at `start`, cut at the end of the buffer."""
    if start >= len(buf):
        return
    end = min(len(buf), start + len(sig))
    buf[start:end] += sig[: end - start]


def _chord(style: Style, degree: int) -> list[int]:
    """MIDI notes (root, third, fifth, seventh-ish) of a scale-degree triad in the key."""
    scale = MINOR if style.minor else MAJOR
    notes = []
    for step in (0, 2, 4):
        d = degree + step
        notes.append(style.root + 12 * (d // 7) + scale[d % 7])
    return notes


def synth(seconds: float, bpm: int, prompt: str, seed: int) -> np.ndarray:
    """The track as float32 stereo samples, shape (n, 2), exactly round(seconds*48000) long."""
    n = int(round(seconds * SAMPLE_RATE))
    style = style_for(prompt, seed)
    rng = np.random.default_rng(seed + 7919)
    beat = 60.0 / bpm
    spb = beat * SAMPLE_RATE  # samples per beat
    left = np.zeros(n + 1, dtype=np.float32)
    right = np.zeros(n + 1, dtype=np.float32)
    pad_table = _table(style.brightness * 0.7)
    pluck_table = _table(style.brightness)
    sine = np.sin(np.arange(_TABLE) / _TABLE * 2 * np.pi).astype(np.float32)
    bars = int(np.ceil(seconds / (4 * beat))) + 1

    # drum hits, rendered once
    k_n = int(0.35 * SAMPLE_RATE)
    tk = np.arange(k_n) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (45 * tk + (110 / 30) * (1 - np.exp(-30 * tk)))) * np.exp(-tk * 9)
    kick = (kick * 0.9).astype(np.float32)
    s_n = int(0.22 * SAMPLE_RATE)
    ts = np.arange(s_n) / SAMPLE_RATE
    noise = rng.standard_normal(s_n).astype(np.float32)
    snare = (0.45 * noise * np.exp(-ts * 18) + 0.35 * np.sin(2 * np.pi * 185 * ts) * np.exp(-ts * 25)).astype(np.float32)
    h_n = int(0.05 * SAMPLE_RATE)
    hn = rng.standard_normal(h_n + 1).astype(np.float32)
    hat = (np.diff(hn) * np.exp(-np.arange(h_n) / SAMPLE_RATE * 90) * 0.18).astype(np.float32)

    def at(beats: float) -> int:
        return int(round(beats * spb))

    pan = [0.35, 0.65, 0.5, 0.2, 0.8]
    for bar in range(bars):
        degree = style.progression[bar % len(style.progression)]
        notes = _chord(style, degree)
        b0 = bar * 4.0
        # pad: the chord an octave up, held for the bar, detuned pair per voice
        length = at(4.0) + int(0.3 * SAMPLE_RATE)
        env = np.minimum(1.0, np.arange(length) / (0.25 * SAMPLE_RATE)) * np.minimum(
            1.0, (length - np.arange(length)) / (0.3 * SAMPLE_RATE)
        )
        env = env.astype(np.float32) * 0.07
        for v, note in enumerate(notes):
            hz = _midi_hz(note + 12)
            sig = (_osc(pad_table, hz * 1.003, length) + _osc(pad_table, hz * 0.997, length, 0.31)) * env
            p = pan[v % len(pan)]
            _add(left, at(b0), sig * (1 - p))
            _add(right, at(b0), sig * p)
        # bass: root on eighth notes with a pluck envelope
        bass_len = at(0.5)
        tb = np.arange(bass_len) / SAMPLE_RATE
        benv = (np.exp(-tb * 5) * np.minimum(1.0, (bass_len - np.arange(bass_len)) / 200)).astype(np.float32)
        for e in range(8):
            if e % 4 == 3 and rng.random() < 0.3:
                continue
            hz = _midi_hz(notes[0] - 12 + (12 if e == 7 and rng.random() < 0.5 else 0))
            sig = (_osc(sine, hz, bass_len) + 0.3 * _osc(sine, 2 * hz, bass_len)) * benv * 0.28
            _add(left, at(b0 + e * 0.5), sig)
            _add(right, at(b0 + e * 0.5), sig)
        # arpeggio: chord tones two octaves up, 8ths or 16ths
        step = 0.25 if style.arp_16ths else 0.5
        arp_len = at(step * 1.8)
        ta = np.arange(arp_len) / SAMPLE_RATE
        aenv = (np.exp(-ta * 9) * np.minimum(1.0, np.arange(arp_len) / 60)).astype(np.float32) * 0.09 * style.energy
        pattern = [0, 1, 2, 1] if rng.random() < 0.5 else [0, 2, 1, 2]
        for i in range(int(4 / step)):
            note = notes[pattern[i % 4]] + 24 + (12 if i % 8 == 6 else 0)
            off = step * i + (style.swing * step if i % 2 else 0.0)
            sig = _osc(pluck_table, _midi_hz(note), arp_len) * aenv
            p = 0.3 + 0.4 * ((i * 3) % 4) / 3
            _add(left, at(b0 + off), sig * (1 - p))
            _add(right, at(b0 + off), sig * p)
        # drums
        if style.drums:
            kicks = [0, 1, 2, 3] if style.four_on_floor else [0, 1.5, 2.5] if bar % 2 else [0, 2, 2.75]
            for k in kicks:
                _add(left, at(b0 + k), kick * style.energy)
                _add(right, at(b0 + k), kick * style.energy)
            for s in (1, 3):
                _add(left, at(b0 + s), snare * 0.9 * style.energy)
                _add(right, at(b0 + s), snare * 1.0 * style.energy)
            hstep = 0.25 if style.hat_16ths else 0.5
            for i in range(int(4 / hstep)):
                off = hstep * i + (style.swing * hstep if i % 2 else 0.0)
                accent = 1.0 if i % 2 == 0 else 0.6
                _add(left, at(b0 + off), hat * accent * 0.7)
                _add(right, at(b0 + off), hat * accent)

    mix = np.stack([left[:n], right[:n]], axis=1)
    mix = np.tanh(mix * 1.2)  # gentle glue, never above 1
    peak = float(np.max(np.abs(mix))) if n else 0.0
    if peak > 0:
        mix *= 0.891 / peak  # -1 dBFS
    ramp = min(n, int(0.01 * SAMPLE_RATE))
    if ramp:
        mix[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)[:, None]
        mix[n - ramp :] *= np.linspace(1, 0, ramp, dtype=np.float32)[:, None]
    return mix.astype(np.float32)


def write_wav(samples: np.ndarray, out: str | Path) -> Path:
    """Write float stereo samples as 16-bit 48 kHz WAV, atomically."""
    out = Path(out)
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with atomic_path(out, suffix=".wav") as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.tobytes())
    return out


def render_music(out: str | Path, *, seconds: float, bpm: int, prompt: str, seed: int) -> Path:
    """Synthesise the music bed to `out` (48 kHz stereo 16-bit WAV, exactly `seconds`)."""
    return write_wav(synth(seconds, bpm, prompt, seed), out)
