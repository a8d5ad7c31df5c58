"""The ad speaks (live): spoken lines through the real `replicate` and `openai` clients against the
fakes on 127.0.0.1, counting every request. A line is paid once; editing one line pays for that
line only; moving beats, editing prompts, music or caption style pays for no line."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from adspec import media
from conftest import Project, small_spec
from fakes.openai_server import FakeOpenAI
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
OPENAI_KEY = "sk-FAKE-key-not-real-0000000"
TTS = "minimax/speech-02-turbo"


@pytest.fixture
def live(project: Project):
    with FakeReplicate(latency=0.02) as replicate, FakeOpenAI() as openai:
        project.env.update(
            ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
            REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=openai.base_url,
        )
        yield project, replicate, openai


def spec(**overrides) -> dict:
    s = small_spec(**overrides)
    s["vars"] = {"name": "Zip", "city": "Oslo"}
    s["beats"][0]["voiceover"] = "Thirsty? Meet {{ name }}."
    s["beats"][1]["voiceover"] = "Drink more. Get yours today."
    return s


def new_creates(replicate: FakeReplicate, since: int) -> list[dict]:
    return replicate.create_bodies[since:]


def test_each_line_is_paid_once_and_only_what_changed_is_paid_again(live) -> None:
    project, replicate, _ = live
    s = spec()
    project.write_spec("zip", s)
    project.doit()
    speech = [b for b in replicate.create_bodies if b["slug"] == TTS]
    assert len(speech) == 2  # one request per line
    inputs = {b["body"]["input"]["text"]: b["body"]["input"] for b in speech}
    assert set(inputs) == {"Thirsty? Meet Zip.", "Drink more. Get yours today."}
    first = inputs["Thirsty? Meet Zip."]
    assert first["voice_id"] == "Friendly_Person" and first["speed"] == 1.0  # the model's default voice
    root = project.build / "zip"
    cost = json.loads((root / "cost.json").read_text())
    assert cost["phases"]["voice"]["requests"] == 2 and cost["phases"]["voice"]["spent_usd"] == pytest.approx(
        0.06 * (len("Thirsty? Meet Zip.") + len("Drink more. Get yours today.")) / 1000, abs=1e-6)
    assert "Thirsty? Meet Zip." in (root / "index.html").read_text()
    assert '<track kind="captions" src="captions.vtt"' in (root / "index.html").read_text()

    # edit one line: exactly one request, a TTS one, with the new words
    paid = len(replicate.create_bodies)
    s["beats"][1]["voiceover"] = "Drink more water. Get yours today."
    project.write_spec("zip", s)
    est = json.loads(project.adspec("estimate", "--json").stdout)
    voice_items = [i for a in est["ads"] for i in a["targets"] if i["phase"] == "voice"]
    assert [(i["target"], i["action"]) for i in voice_items] == [("voice:zip/cta", "pay")]
    assert voice_items[0]["usd"] == pytest.approx(0.06 * len("Drink more water. Get yours today.") / 1000, abs=1e-6)
    project.doit()
    new = new_creates(replicate, paid)
    assert [b["slug"] for b in new] == [TTS] and new[0]["body"]["input"]["text"] == "Drink more water. Get yours today."

    # reorder the beats, edit a prompt's use of a var, change the music and the caption style:
    # storyboards/music may be asked again where their own inputs changed, but no line is
    paid = len(replicate.create_bodies)
    s["beats"] = s["beats"][::-1]
    s["music"] = {"prompt": "calm piano", "bpm": 80}
    s["captions"] = {"box": False, "color": "#FFEE00", "size": 1.3}
    before = (root / "final.mp4").stat().st_mtime_ns
    project.write_spec("zip", s)
    project.doit()
    new = new_creates(replicate, paid)
    assert [b["slug"] for b in new] == ["meta/musicgen"]  # the music only; no voice, no image, no video
    assert (root / "final.mp4").stat().st_mtime_ns != before  # captions restyled: re-encoded for free

    # a var used by one line re-voices that line only
    paid = len(replicate.create_bodies)
    s["vars"]["name"] = "Zap"
    project.write_spec("zip", s)
    project.doit()
    new = new_creates(replicate, paid)
    assert [(b["slug"], b["body"]["input"]["text"]) for b in new] == [(TTS, "Thirsty? Meet Zap.")]
    # a var no line uses re-voices nothing
    paid = len(replicate.create_bodies)
    s["vars"]["city"] = "Bergen"
    project.write_spec("zip", s)
    project.doit()
    assert new_creates(replicate, paid) == []
    # the captions follow the line that was spoken
    assert "Thirsty? Meet Zap." in (root / "captions.srt").read_text()
    assert all(n == 1 for n in replicate.creates_by_input.values())


def test_openai_compatible_speech_model(live) -> None:
    project, replicate, openai = live
    s = spec(models={"voice": "gpt-4o-mini-tts"}, voice={"name": "coral", "speed": 1.1})
    project.write_spec("zip", s)
    project.doit()
    assert TTS not in replicate.creates_by_model
    assert len(openai.speech) == 2
    body = next(b for b in openai.speech if b["input"] == "Thirsty? Meet Zip.")
    assert body == {"model": "gpt-4o-mini-tts", "input": "Thirsty? Meet Zip.", "voice": "coral", "speed": 1.1,
                    "response_format": "wav"}
    final = project.build / "zip" / "final.mp4"
    assert media.probe(final).has_audio
    receipt = json.loads((project.build / "zip" / "beats" / "hook" / "voice.receipt.json").read_text())
    assert receipt["recipe"]["provider"] == "openai" and receipt["cost_usd"] > 0
    # built again: nothing runs, the server is not asked
    project.doit()
    assert len(openai.speech) == 2
    ledger = Counter(e["model"] for e in project.ledger())
    assert ledger["gpt-4o-mini-tts"] == 2


def test_voice_over_a_native_audio_model_ducks_its_sound(live) -> None:
    """Veo with its own sound (the fake's is a 440 Hz tone): the line is heard over it, and the
    tone is at least 6 dB lower while the line plays than between lines."""
    import numpy as np
    from test_voice import RATE, pcm

    project, replicate, _ = live
    s = spec(models={"video": "veo-3.1-fast"}, native_audio=True)
    del s["music"]
    s["beats"][1]["voiceover"] = "Get yours."
    project.write_spec("zip", s)
    project.doit()
    assert "meta/musicgen" not in replicate.creates_by_model
    root = project.build / "zip"
    x = pcm(root / "final.mp4")
    hook = media.decoded_duration(root / "beats" / "hook" / "voice.wav", "a")
    cta = media.decoded_duration(root / "beats" / "cta" / "voice.wav", "a")

    def tone_db(a: float, b: float) -> float:
        seg = x[int(a * RATE):int(b * RATE)]
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        freqs = np.fft.rfftfreq(len(seg), 1 / RATE)
        return 20 * np.log10(spectrum[(freqs > 430) & (freqs < 450)].max() / len(seg))

    def speech_share(a: float, b: float) -> float:
        seg = x[int(a * RATE):int(b * RATE)]
        spectrum = np.abs(np.fft.rfft(seg)) ** 2
        freqs = np.fft.rfftfreq(len(seg), 1 / RATE)
        return spectrum[((freqs > 100) & (freqs < 400)) | (freqs > 460)].sum() / spectrum.sum()

    under = [tone_db(0.25 + 0.2, 0.25 + hook - 0.1), tone_db(3.25 + 0.2, 3.25 + cta - 0.1)]
    free = [tone_db(0.25 + hook + 0.45, 3.05), tone_db(3.25 + cta + 0.45, 7.8)]
    assert max(under) <= min(free) - 6.0, (under, free)
    assert speech_share(0.25 + 0.2, 0.25 + hook - 0.1) > 0.5  # the voice, not the tone, carries that window


class _Job:
    resume_id = None
    sent_before = False

    def sending(self) -> None: ...

    def started(self, job_id: str) -> None: ...

    def progress(self, status: str) -> None: ...


def _speak(fake: FakeOpenAI, tmp_path, monkeypatch):
    from adspec.providers.base import VoiceRequest
    from adspec.providers.openai_speech import OpenAISpeech

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    provider = OpenAISpeech(sleep=lambda s: None)
    recipe = provider.voice_recipe(VoiceRequest(ad="a", beat_id="hook", text="Fresh coffee, every morning.",
                                                model="gpt-4o-mini-tts", voice="coral", speed=1.0))
    return provider.run(recipe, _Job(), tmp_path / "line.wav")


def test_openai_speech_never_resends_a_request_that_may_have_been_billed(tmp_path, monkeypatch) -> None:
    """A 5xx may have made (and billed) the audio: one request only, the error says so and
    carries the line's price; the key never shows."""
    from adspec.errors import ProviderError

    with FakeOpenAI() as fake:
        fake.speech_failures = [500, 500]
        with pytest.raises(ProviderError) as err:
            _speak(fake, tmp_path, monkeypatch)
        assert len(fake.speech) == 1
    assert err.value.maybe_billed and err.value.spent_usd > 0 and err.value.attempts == 1
    assert "HTTP 500" in str(err.value) and OPENAI_KEY not in str(err.value)
    assert not (tmp_path / "line.wav").exists()


def test_openai_speech_asks_again_after_a_throttle(tmp_path, monkeypatch) -> None:
    """A 429 proves nothing was made: adspec (not the client) asks again, and pays once."""
    with FakeOpenAI() as fake:
        fake.speech_failures = [429, 429]
        result = _speak(fake, tmp_path, monkeypatch)
        assert len(fake.speech) == 3
    assert result.meta["requests"] == 3 and result.cost_usd > 0
    assert media.probe(tmp_path / "line.wav").duration > 0.5
