"""Reading a spec's words: the product's name in its prompt, and text without placeholders.

Pure text rules shared by the spec's prompt context, the offline planner and the music default.
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_STOP = r"(?:in|with|that|which|who|where|showing|featuring|ending|using|at|on|to|from|by|and|as|so|while|set|targeting|aimed)"
_AFTER_AD = re.compile(
    r"\b(?:ad|ads|advert|advertisement|commercial|spot|video|promo|campaign|teaser)\s+"
    r"(?:for|about|of|introducing|launching|showcasing|promoting)\s+(?:the\s+|an?\s+|our\s+|new\s+)*"
    r"(.+?)(?=\s*[,.;:!?()\n\"“”]|\s+[-–—]\s|\s+" + _STOP + r"\b|$)",
    re.I,
)
_AFTER_VERB = re.compile(
    r"\b(?i:for|introducing|launching|meet|presenting|showcasing|promoting)\s+(?i:the\s+|an?\s+|our\s+|new\s+)*"
    r"([A-Z0-9\x00][\w'’\x00-]*(?:\s+[A-Z0-9\x00][\w'’\x00-]*){0,5})"
)


def product_from_prompt(prompt: str, brand: str | None = None) -> str:
    """The product's name from the spec's prompt ("... ad for the TrailRunner X running shoe,
    ..." -> "TrailRunner X running shoe"), else the brand's product, else "the product".
    {{ placeholders }} in the prompt are kept whole."""
    saved: list[str] = []

    def protect(m: re.Match[str]) -> str:
        saved.append(m.group(0))
        return f"\x00{len(saved) - 1}\x00"

    text = _PLACEHOLDER.sub(protect, prompt or "")
    name = ""
    m = _AFTER_AD.search(text)
    if m:
        name = m.group(1)
    else:
        m = _AFTER_VERB.search(text)
        if m:
            name = m.group(1)
    words = name.split()
    if len(words) > 8 or not words:
        name = ""
    else:
        name = " ".join(words)
    name = re.sub(r"\x00(\d+)\x00", lambda m: saved[int(m.group(1))], name).strip(" -–—'\"")
    if name:
        return name
    if brand:
        return f"the {brand} product" if not _PLACEHOLDER.search(brand) else brand
    return "the product"


def plain_text(text: str) -> str:
    """Text without placeholders, collapsed to one line (for the music prompt, never rendered)."""
    return " ".join(_PLACEHOLDER.sub(" ", text or "").split())
