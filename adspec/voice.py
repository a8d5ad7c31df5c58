"""Spoken lines: the `voice:<ad>/<beat>` step, its recipe and how a line fits its beat.

A line's recipe is what the speech provider hears (the rendered text, the voice model, the voice
and the speed), so moving a beat, editing its prompts or changing the music never re-voices it.
Fitting the line to its beat is local: it starts `lead_in` after the beat does and must end
`tail` before the next one; a longer line is sped up (pitch kept) by at most `max_speedup`, past
that the step fails with one line saying what to do. The paid audio stays in the cache either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import media
from .actions import context, current_settings, paid_fetch
from .build_files import VoiceInputs, read_model
from .config import load_settings
from .errors import AdspecError, SpecError
from .fsutil import temp_dir
from .paths import AdPaths
from .providers.base import MediaProvider, VoiceRequest
from .providers.select import voice_provider
from .receipts import receipt_key, write_receipt
from .recipes import OFFLINE, Recipe
from .tasknames import task_name
from .verify import speech_verifier

log = logging.getLogger("adspec.build")


class VoiceFitError(AdspecError):
    """A spoken line cannot fit its beat even sped up as far as the library allows."""


@dataclass(frozen=True)
class Fit:
    spoken: float  # seconds the provider's audio lasts
    room: float  # seconds the beat leaves for it
    tempo: float  # 1.0, or the speed-up applied (pitch kept)

    @property
    def seconds(self) -> float:
        return self.spoken / self.tempo


def fit_line(beat_id: str, spoken: float, inputs: VoiceInputs) -> Fit:
    """How a line of `spoken` seconds fits its beat (pure). VoiceFitError past the speed-up limit."""
    duration = float(inputs.duration)
    room = max(0.0, duration - float(inputs.lead_in) - float(inputs.tail))
    if spoken <= room:
        return Fit(spoken, room, 1.0)
    tempo = spoken / room if room > 0 else float("inf")
    limit = float(inputs.max_speedup)
    if tempo <= limit + 1e-9:
        return Fit(spoken, room, tempo)
    raise VoiceFitError(
        f"beat '{beat_id}': the line lasts {spoken:.2f} s spoken but the {duration:g} s beat leaves "
        f"{room:.2f} s for it (even {round((limit - 1) * 100)} % faster it would not fit): shorten the line, "
        f"lengthen the beat or raise voice.speed"
    )


def _at_its_line(e: VoiceFitError, ad: str, beat_id: str, specs_dir: Path) -> AdspecError:
    """The error at the beat's `voiceover:` in the file it is written in, as every other error of
    a beat is (only a spoken line's length is known this late: from the voice itself)."""
    from .ads import ad_source, choose_ads
    from .loader import load_beat_file, locate_in_file

    try:
        spec_path = choose_ads(specs_dir, [ad])[0][0][1]
        spec, beats_path = ad_source(ad, spec_path)
        source = spec_path if spec.beats is not None else beats_path
        beats = spec.beats if spec.beats is not None else load_beat_file(beats_path).beats
        at = [b.id for b in beats].index(beat_id)
    except (SpecError, ValueError, IndexError, OSError):
        return e
    return SpecError(source, locate_in_file(source, ("beats", at, "voiceover")), f"beats.{at}.voiceover", str(e))


def voice_request(ad: str, inputs: VoiceInputs) -> VoiceRequest:
    return VoiceRequest(ad=ad, beat_id=inputs.id, text=inputs.text, model=inputs.model,
                        voice=inputs.voice, speed=float(inputs.speed), language=inputs.language)


def provider_for(model: str) -> MediaProvider:
    return voice_provider(current_settings(), model)


def read_inputs(build_dir: Path, ad: str, beat_id: str) -> VoiceInputs:
    return read_model(VoiceInputs, AdPaths.of(build_dir, ad).voice_inputs(beat_id))


def voice_recipe(build_dir: Path, ad: str, beat_id: str) -> Recipe:
    inputs = read_inputs(build_dir, ad, beat_id)
    return provider_for(inputs.model).voice_recipe(voice_request(ad, inputs))


def make_voice(ad: str, beat_id: str) -> None:
    """voice:<ad>/<beat>: the line from the cache or the provider, fitted into voice.wav."""
    ctx = context()
    paths = AdPaths.of(ctx.settings.build_dir, ad)
    inputs = read_inputs(ctx.settings.build_dir, ad, beat_id)
    provider = provider_for(inputs.model)
    recipe = provider.voice_recipe(voice_request(ad, inputs))
    what = f"{ad}/{beat_id} voice ({inputs.model})"
    task = task_name("voice", ad, beat_id)
    if recipe.provider == OFFLINE:
        from .render.speech import language_note

        note = language_note(inputs.language)
        if note:
            log.warning("%s: %s", what, note)
    fetched = paid_fetch(ctx, recipe, provider.run, speech_verifier(what), suffix=".audio", label=what, ad=ad, task=task)
    target = paths.voice(beat_id)
    with temp_dir(target.parent, "voice") as tmp:
        trimmed = Path(tmp) / "trimmed.wav"
        spoken = media.trim_speech(fetched.path, trimmed)
        try:
            fit = fit_line(beat_id, spoken, inputs)
        except VoiceFitError as e:
            raise _at_its_line(e, ad, beat_id, ctx.settings.specs_dir) from None
        if fit.tempo > 1.0:
            log.info("%s: %.2f s line sped up %.0f %% to fit %.2f s", what, spoken, (fit.tempo - 1) * 100, fit.room)
        media.fit_voice(trimmed, target, tempo=fit.tempo, seconds=fit.room, gain_db=media.speech_gain_db(trimmed))
    write_receipt(target, recipe, fetched, task)


def is_current(artifact: str, ad: str, beat_id: str) -> bool:
    """doit `uptodate`: voice.wav was made from exactly the recipe this task would ask now."""
    path = Path(artifact)
    if not path.exists():
        return False
    try:
        return receipt_key(path) == voice_recipe(load_settings().build_dir, ad, beat_id).key
    except (OSError, ValueError, KeyError):
        return False
