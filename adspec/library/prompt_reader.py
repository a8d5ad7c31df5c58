"""Reading a spec's prompt: the settings it names (duration, aspect ratio, style) and its key
phrases (an occasion such as "holiday", the product's features such as "springy foam").

Pure and deterministic; the words it knows are data (prompt_words.yaml, and the beat library's
style keywords). Used by the loader (a spec's defaults) and the offline planner (its beats).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..data_yaml import load_data
from ..prompt_text import _PLACEHOLDER
from . import load_library

WORDS_FILE = "prompt_words.yaml"
MIN_SECONDS, MAX_SECONDS = 5, 180

_SECONDS = re.compile(r"\b(\d{1,3})\s*[- ]?\s*(?:seconds?|secs?|s)\b", re.I)
_MINUTES = re.compile(r"\b(one|two|three|1|2|3)\s*[- ]?\s*minutes?\b", re.I)
_MINUTE_WORDS = {"one": 1, "two": 2, "three": 3, "1": 1, "2": 2, "3": 3}


@dataclass(frozen=True)
class PromptWords:
    aspect_words: dict[str, str]
    occasions: dict[str, str]
    feature_after: tuple[str, ...]
    not_features: frozenset[str]
    max_features: int
    max_feature_words: int


@lru_cache(maxsize=1)
def prompt_words() -> PromptWords:
    data: dict[str, Any] = load_data(resources.files(__package__).joinpath(WORDS_FILE).read_text(encoding="utf-8"))
    return PromptWords(
        aspect_words={str(k).lower(): str(v) for k, v in data["aspect_words"].items()},
        occasions={str(k).lower(): str(v) for k, v in data["occasions"].items()},
        feature_after=tuple(str(w).lower() for w in data["feature_after"]),
        not_features=frozenset(str(w).lower() for w in data["not_features"]),
        max_features=int(data["max_features"]),
        max_feature_words=int(data["max_feature_words"]),
    )


def _plain(prompt: str) -> str:
    return " ".join(_PLACEHOLDER.sub(" ", prompt or "").split())


def _has(text: str, phrase: str) -> bool:
    return re.search(r"(?<![\w'’-])" + re.escape(phrase) + r"(?![\w'’-])", text, re.I) is not None


def prompt_duration(prompt: str) -> int | None:
    """Seconds the prompt names ("a 15-second ad", "30 s", "one-minute"), if 5-180."""
    text = _plain(prompt)
    m = _SECONDS.search(text)
    seconds = int(m.group(1)) if m else None
    if seconds is None:
        mm = _MINUTES.search(text)
        seconds = 60 * _MINUTE_WORDS[mm.group(1).lower()] if mm else None
    return seconds if seconds is not None and MIN_SECONDS <= seconds <= MAX_SECONDS else None


def prompt_aspect_ratio(prompt: str) -> str | None:
    """The aspect ratio the prompt names ("vertical" -> 9:16, "square" -> 1:1, or "9:16" itself)."""
    text = _plain(prompt)
    m = re.search(r"\b(16:9|9:16|1:1|4:5)\b", text)
    best: tuple[int, str] | None = (m.start(), m.group(1)) if m else None
    for word, ratio in prompt_words().aspect_words.items():
        w = re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text, re.I)
        if w and (best is None or w.start() < best[0]):
            best = (w.start(), ratio)
    return best[1] if best else None


def prompt_style(prompt: str) -> str | None:
    """The first of the library's style keywords in the prompt ("an energetic ad ..." -> "energetic")."""
    lib = load_library()
    words = "".join(c if c.isalnum() or c == "-" else " " for c in _plain(prompt).lower()).split()
    for word in words:
        for style in lib.styles.values():
            if word in style.keywords or word == style.name:
                return word
    return None


def prompt_settings(prompt: str) -> dict[str, Any]:
    """The spec fields a prompt names: {duration, aspect_ratio, style}, only those it names."""
    out: dict[str, Any] = {}
    for key, value in (("duration", prompt_duration(prompt)), ("aspect_ratio", prompt_aspect_ratio(prompt)),
                       ("style", prompt_style(prompt))):
        if value is not None:
            out[key] = value
    return out


def prompt_occasion(prompt: str) -> tuple[str, str] | None:
    """(the occasion's word, what images add for it) for the first occasion the prompt names."""
    text = _plain(prompt)
    best: tuple[int, str, str] | None = None
    for word, phrase in prompt_words().occasions.items():
        m = re.search(r"(?<![\w'’-])" + re.escape(word) + r"(?![\w'’-])", text, re.I)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), word, phrase)
    return (best[1], best[2]) if best else None


def _is_setting_word(phrase: str) -> bool:
    words = prompt_words()
    low = phrase.lower()
    if low in words.not_features or low in words.aspect_words or low in words.occasions:
        return True
    if prompt_style(phrase) is not None and len(low.split()) <= 2:
        return True
    return prompt_duration(phrase) is not None


def prompt_features(prompt: str, product: str | None = None) -> list[str]:
    """The product's features the prompt lists ("... with ultralight, springy foam" ->
    ["ultralight", "springy foam"]), in order, at most `max_features`."""
    words = prompt_words()
    text = _plain(prompt)
    triggers = "|".join(re.escape(w) for w in words.feature_after)
    found: list[str] = []
    for m in re.finditer(r"(?:\b(?:" + triggers + r")\b|:)\s+([^.!?;\n]+)", text, re.I):
        chunk = m.group(1)
        for part in re.split(r",|\band\b|\bor\b|\s[-–—]\s", chunk):
            phrase = " ".join(part.replace("{", " ").replace("}", " ").split()).strip(" '\"“”()")
            phrase = re.sub(r"^(?:a|an|the|its|their|our|plus)\s+", "", phrase, flags=re.I)
            if not phrase or len(phrase.split()) > words.max_feature_words or _is_setting_word(phrase):
                continue
            if product and phrase.lower() in product.lower():
                continue
            if phrase.lower() not in (f.lower() for f in found):
                found.append(phrase)
            if len(found) >= words.max_features:
                return found
    return found


__all__ = ["prompt_settings", "prompt_duration", "prompt_aspect_ratio", "prompt_style", "prompt_occasion",
           "prompt_features", "prompt_words"]
