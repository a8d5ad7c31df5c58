"""Languages: BCP 47 tags and text fields that are a string or a map language -> text.

A spec has `language:` (default `en`); variants may set it. Text fields (a beat's `voiceover` and
`on_screen`, the brand's `tagline` and `cta`) may be a plain string, which is the text in the
spec's own language (the one written at the spec's top level), or a map from language to text:

    voiceover: {en: "Meet Zip.", de: "Das ist Zip."}

The text of an ad in language L is the map's L entry, else its primary subtag's (`de` for
`de-AT`), else the plain string when L is the spec's own language. Anything else is missing:
an error that names the beat, the field and the language (the offline planner cannot translate).
"""

from __future__ import annotations

import re
from typing import Mapping, Union

#: a practical subset of BCP 47: language[-script][-region] (en, de-AT, zh-Hans, pt-BR, sr-Latn-RS)
BCP47_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?$")
DEFAULT_LANGUAGE = "en"
#: right-to-left languages (primary subtags)
RTL = {"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv"}
#: languages written without spaces between words: text wraps between characters
NO_SPACES = {"zh", "ja", "th", "lo", "km", "my"}
#: ISO 639-2 codes for the subtitle track's language tag
ISO639_2 = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "ja": "jpn",
            "zh": "zho", "ko": "kor", "ar": "ara", "he": "heb", "ru": "rus", "pl": "pol", "sv": "swe", "da": "dan",
            "fi": "fin", "no": "nor", "tr": "tur", "hi": "hin", "fa": "fas", "uk": "ukr", "cs": "ces", "el": "ell",
            "zu": "zul", "xh": "xho", "af": "afr", "sw": "swa", "id": "ind", "ms": "msa", "vi": "vie", "th": "tha",
            "hu": "hun", "ro": "ron", "bg": "bul", "hr": "hrv", "sr": "srp", "sk": "slk", "sl": "slv", "lt": "lit",
            "lv": "lav", "et": "est", "ca": "cat", "eu": "eus", "gl": "glg", "is": "isl", "ga": "gle", "cy": "cym",
            "bn": "ben", "ta": "tam", "te": "tel", "mr": "mar", "ur": "urd", "pa": "pan", "gu": "guj", "kn": "kan",
            "ml": "mal", "am": "amh", "yo": "yor", "ig": "ibo", "ha": "hau", "tl": "tgl", "fil": "fil", "nb": "nob",
            "nn": "nno", "yi": "yid", "ps": "pus", "km": "khm", "lo": "lao", "my": "mya", "ka": "kat", "hy": "hye",
            "kk": "kaz", "uz": "uzb", "az": "aze", "mn": "mon", "ne": "nep", "si": "sin"}

Text = Union[str, dict[str, str]]


def primary(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def is_rtl_language(tag: str) -> bool:
    return primary(tag) in RTL


def iso639_2(tag: str) -> str:
    return ISO639_2.get(primary(tag), "und")


def _cased(tag: str) -> str:
    """`tag` in BCP 47's conventional case: language lower, Script title, REGION upper."""
    parts = tag.replace("_", "-").split("-")
    return "-".join([parts[0].lower()] + [p.title() if len(p) == 4 else p.upper() if len(p) in (2, 3) else p
                                          for p in parts[1:]])


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a BCP 47 tag adspec takes (None: it is). Tags are compared as written (a
    text map's `de-AT` key, a variant's name), so one written in another case is refused with its
    conventional spelling rather than taken as a second language."""
    if BCP47_RE.fullmatch(tag):
        return None
    cased = _cased(tag)
    if BCP47_RE.fullmatch(cased):
        return f"'{tag}': write '{cased}' (BCP 47's conventional case: language lower, Script title, REGION upper)"
    first = cased.split("-")[:3]
    while first and not BCP47_RE.fullmatch("-".join(first)):
        first.pop()
    if len(first) > 0 and re.fullmatch(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})+", cased):  # a variant, an extension
        return (f"'{tag}': adspec takes language[-Script][-REGION] (e.g. {'-'.join(first)}), not BCP 47's "
                "variant, extension or private-use subtags")
    return f"'{tag}' is not a BCP 47 language tag (e.g. en, de, pt-BR, zh-Hans)"


def text_in(value: Text | None, language: str, own: str) -> str | None:
    """The text of `value` in `language` (None when the field is unset). KeyError(language) when
    the field is set but has no text for the language. `own`: the language of a plain string."""
    if value is None:
        return None
    if isinstance(value, str):
        if language == own or primary(language) == primary(own):
            return value
        raise KeyError(language)
    if language in value:
        return value[language]
    for tag, text in value.items():
        if primary(tag) == primary(language):
            return text
    raise KeyError(language)


def languages_of(value: Text | None, own: str) -> list[str]:
    """The languages a text field has."""
    if value is None:
        return []
    if isinstance(value, str):
        return [own]
    return list(value)


def any_text(value: Text | None, own: str) -> str | None:
    """The text in the spec's own language if there is one, else the first given (for checks)."""
    if value is None or isinstance(value, str):
        return value
    try:
        return text_in(value, own, own)
    except KeyError:
        return next(iter(value.values()), None)


def texts_by_language(value: Text | None, own: str) -> list[tuple[str, str]]:
    """(language, text) of every text a field has (a plain string is in `own`)."""
    if value is None:
        return []
    return [(own, value)] if isinstance(value, str) else list(value.items())


def all_texts(value: Text | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value.values())


def check_map(value: Mapping[str, str], max_len: int) -> None:
    """ValueError when a map's key is no language tag or a text is empty or too long."""
    if not value:
        raise ValueError("a map of languages must name at least one")
    for tag, text in value.items():
        problem = tag_problem(tag)
        if problem:
            raise ValueError(problem)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"the {tag} text must not be empty")
        if len(text) > max_len:
            raise ValueError(f"the {tag} text is longer than {max_len} characters")


__all__ = ["BCP47_RE", "DEFAULT_LANGUAGE", "Text", "all_texts", "any_text", "check_map", "is_rtl_language", "iso639_2",
           "languages_of", "primary", "tag_problem", "text_in", "texts_by_language"]
