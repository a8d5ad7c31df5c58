"""The beat library (data in beats.yaml) and the sandboxed template renderer.

Templates, whether the library's or the prompts of a beat file, are rendered by
`render_template`: a jinja2 SandboxedEnvironment with StrictUndefined and autoescape off, plus a
whitelist of template constructs (no loops, calls, assignments, includes, or operators that can
multiply text), so a template cannot escape the sandbox, hang, or blow up memory.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from ..data_yaml import load_data
from ..errors import SpecError

LIBRARY_FILE = "beats.yaml"
POSITIONS = ("first", "last", "closing", "middle")
MAX_TEMPLATE_CHARS = 8000
MAX_OUTPUT_CHARS = 20000


class TemplateProblem(ValueError):
    """A template cannot be rendered; the caller turns it into a SpecError naming file and field."""


# ---- the sandbox ---------------------------------------------------------------------------

_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.If,
    nodes.CondExpr, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand, nodes.And, nodes.Or,
    nodes.Not, nodes.Concat, nodes.Add, nodes.Sub, nodes.Neg, nodes.Pos, nodes.Getattr,
    nodes.Getitem, nodes.Slice, nodes.List, nodes.Tuple, nodes.Keyword,
)
_ALLOWED_FILTERS = {
    "upper", "lower", "title", "capitalize", "trim", "default", "d", "truncate", "striptags",
    "length", "count", "string", "first", "last", "join", "wordcount", "round", "int", "float", "abs",
}
_ALLOWED_TESTS = {"defined", "undefined", "none", "string", "number", "true", "false", "eq", "ne", "in"}


class _Sandbox(SandboxedEnvironment):
    """No attribute that is a method or function: templates cannot call anything, and rendering
    one (`{{ brand.upper }}`) would put a memory address into a prompt, changing its recipe key,
    and so paying again, on every run."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not callable(value) and super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format / format_map are methods like any other here: refused

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # at once, not as an Undefined that a list or a test would render silently
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


#: names jinja2 resolves to its own objects whatever the context holds (`self` is the template)
_RESERVED_NAMES = {"self"}


def _make_env() -> SandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals.clear()
    env.filters = {k: v for k, v in env.filters.items() if k in _ALLOWED_FILTERS}
    env.tests = {k: v for k, v in env.tests.items() if k in _ALLOWED_TESTS}
    return env


_ENV = _make_env()


def _describe(node: nodes.Node) -> str:
    names = {
        "For": "loops ({% for %})", "Call": "function or method calls", "Assign": "assignments ({% set %})",
        "AssignBlock": "assignments ({% set %})", "Macro": "macros", "Include": "includes",
        "Import": "imports", "FromImport": "imports", "Extends": "template inheritance",
        "Mul": "the * operator", "Pow": "the ** operator", "Mod": "the % operator",
        "Div": "the / operator", "FloorDiv": "the // operator",
    }
    return names.get(type(node).__name__, f"{type(node).__name__} expressions")


def _check_ast(ast: nodes.Template) -> None:
    for node in ast.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateProblem(f"templates may not use {_describe(node)} (line {node.lineno} of the template)")
        if isinstance(node, nodes.Filter) and node.name not in _ALLOWED_FILTERS:
            raise TemplateProblem(f"filter '{node.name}' is not allowed; allowed: {', '.join(sorted(_ALLOWED_FILTERS))}")
        if isinstance(node, nodes.Test) and node.name not in _ALLOWED_TESTS:
            raise TemplateProblem(f"test '{node.name}' is not allowed")
        if isinstance(node, nodes.Name) and node.name in _RESERVED_NAMES:
            raise TemplateProblem(f"'{node.name}' is reserved in templates (jinja2's own object); use another name")


def _parse(text: str) -> nodes.Template:
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"template is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        ast = _ENV.parse(text)
    except TemplateError as e:
        line = getattr(e, "lineno", None)
        where = f" (line {line} of the template)" if line and "\n" in text else ""
        raise TemplateProblem(f"template syntax error: {e.message or e}{where}") from None
    _check_ast(ast)
    return ast


def _compile(text: str) -> tuple[Template, frozenset[str]]:
    """A template, checked and compiled, and the variables it uses."""
    ast = _parse(text)
    return _ENV.from_string(ast), frozenset(meta.find_undeclared_variables(ast))


#: a prompt compiled once per process: a plan renders each prompt several times (validation,
#: planning, recipes), and compiling was most of the cost (an estimate of 10 ads compiled its
#: prompts 1 450 times); a long text (rare) is compiled each time, so the cache stays small
_compiled = lru_cache(maxsize=1024)(_compile)


def render_template(text: str, context: Mapping[str, Any]) -> str:
    """Render `text` in the sandbox with `context`. Undefined variables are errors.

    Raises TemplateProblem (a ValueError) with a one-line message."""
    if not isinstance(text, str):
        raise TemplateProblem("template must be text")
    template, variables = _compiled(text) if len(text) <= 4096 else _compile(text)
    unknown = sorted(variables - set(context))
    if unknown:
        known = ", ".join(sorted(context)) or "none"
        hint = ""
        close = difflib.get_close_matches(unknown[0], list(context), n=1)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
        raise TemplateProblem(f"unknown variable '{unknown[0]}'{hint}; known: {known}")
    try:
        out = template.render(dict(context))
    except TemplateError as e:
        raise TemplateProblem(f"template error: {e.message or type(e).__name__}") from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError, OverflowError, RecursionError) as e:
        raise TemplateProblem(f"template error: {type(e).__name__}: {e}") from None
    if len(out) > MAX_OUTPUT_CHARS:
        raise TemplateProblem(f"template renders to more than {MAX_OUTPUT_CHARS} characters")
    return out


# ---- the library ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BeatType:
    name: str
    purpose: str
    min: int
    max: int
    ideal: int
    position: str  # first | last | closing | middle
    repeatable: bool
    shows_product: bool
    image_prompt: str
    motion_prompt: str
    favoured_by: tuple[str, ...]  # styles whose arc plays it early (rank <= 3)
    #: spoken-line templates, longest first, by tone (a style name, or "default"); none: no voice
    voiceover: dict[str, tuple[str, ...]] = field(default_factory=dict)
    shows_people: bool = False  # a spec's `character` assets appear in it (its `shows:`)

    def lines_for(self, style: str) -> tuple[str, ...]:
        """The line templates for a style's tone (its own, else the default ones)."""
        lines = self.voiceover or {}
        return tuple(lines.get(style) or lines.get("default") or ())


@dataclass(frozen=True)
class VoiceRules:
    """How a spoken line fits its beat (library data, `voice:` in beats.yaml)."""

    words_per_second: float  # the word budget of a beat: floor(duration * words_per_second)
    lead_in: float  # seconds of the beat before its line starts
    tail: float  # seconds kept clear before the next beat
    max_speedup: float  # a line longer than its beat is sped up at most this much (1.15 = 15 %)

    def budget(self, seconds: float) -> int:
        return int(seconds * self.words_per_second + 1e-9)

    def room(self, seconds: float) -> float:
        """Seconds a line may last inside a beat of `seconds`."""
        return max(0.0, seconds - self.lead_in - self.tail)


@dataclass(frozen=True)
class OnScreenRules:
    """Supers per beat type (library data, `on_screen:` in beats.yaml)."""

    max_chars: dict[str, int]  # beat type -> the longest super it holds (0: none)
    planned: tuple[str, ...]  # the types the planners write a super for
    default_max_chars: int = 40

    def limit(self, beat_type: str) -> int:
        return self.max_chars.get(beat_type, self.default_max_chars)


@dataclass(frozen=True)
class Style:
    name: str
    keywords: tuple[str, ...]
    bpm: int
    music: str
    look: str
    camera: str
    arc: tuple[tuple[str, int], ...]  # (beat type, rank) in playing order


@dataclass(frozen=True)
class Library:
    version: str
    beats: dict[str, BeatType]
    styles: dict[str, Style]
    default_style: str
    voice: VoiceRules = VoiceRules(2.5, 0.25, 0.15, 1.15)
    on_screen: OnScreenRules = OnScreenRules({}, ())

    @property
    def types(self) -> list[str]:
        return list(self.beats)

    def style_for(self, style_text: str) -> Style:
        """The library style named by the earliest keyword found in the spec's free-text style."""
        words = "".join(c if c.isalnum() or c == "-" else " " for c in (style_text or "").lower()).split()
        for word in words:
            for style in self.styles.values():
                if word in style.keywords or word == style.name:
                    return style
        return self.styles[self.default_style]


SAMPLE_CONTEXT = {
    "product": "Acme Widget", "brand": "Acme", "tagline": "Made to last", "style": "energetic",
    "look": "soft light", "camera": "slow dolly", "setting": "in {{ city }}", "n": 2,
}


class LibraryError(SpecError):
    """The library data itself is inconsistent (names beats.yaml and the field)."""

    def __init__(self, message: str):
        head, _, rest = message.partition(": ")
        field: str | None = head
        if not rest:
            field, rest = None, message
        super().__init__(f"adspec/library/{LIBRARY_FILE}", None, field, rest)


def parse_library(data: Any, *, check_templates: bool = True) -> Library:
    """Check and build the library from its YAML data (LibraryError on any inconsistency).

    `check_templates` renders every prompt and line once with sample values (undefined names,
    sandbox violations). The shipped library is checked so by the tests; `load_library` skips
    it, since it took ~150 ms of every `doit` start and a template still fails with the same
    one-line error when the planner renders it."""
    if not isinstance(data, dict):
        raise LibraryError("the library must be a mapping")
    beats: dict[str, BeatType] = {}
    raw_styles = data.get("styles") or {}
    for name, raw in (data.get("beats") or {}).items():
        dur = raw["duration"]
        lo, hi, ideal = int(dur["min"]), int(dur["max"]), int(dur.get("ideal", dur["min"]))
        if not 1 <= lo <= ideal <= hi:
            raise LibraryError(f"beats.{name}.duration: need 1 <= min <= ideal <= max")
        if raw["position"] not in POSITIONS:
            raise LibraryError(f"beats.{name}.position: must be one of {', '.join(POSITIONS)}")
        for prompt in ("image_prompt", "motion_prompt") if check_templates else ():
            try:
                render_template(raw[prompt], SAMPLE_CONTEXT)
                render_template(raw[prompt], {**SAMPLE_CONTEXT, "brand": "", "tagline": "", "setting": "", "n": 1})
            except TemplateProblem as e:
                raise LibraryError(f"beats.{name}.{prompt}: {e}") from None
        favoured = tuple(
            s for s, st in raw_styles.items() if any(t == name and int(r) <= 3 for t, r in st.get("arc", []))
        )
        voiceover: dict[str, tuple[str, ...]] = {}
        for tone, lines in (raw.get("voiceover") or {}).items():
            if tone != "default" and tone not in raw_styles:
                raise LibraryError(f"beats.{name}.voiceover: unknown tone {tone!r} (a style name or 'default')")
            for line in lines if check_templates else ():
                try:
                    render_template(line, SAMPLE_CONTEXT)
                except TemplateProblem as e:
                    raise LibraryError(f"beats.{name}.voiceover: {e}") from None
            voiceover[tone] = tuple(str(x) for x in lines)
        beats[name] = BeatType(
            name=name, purpose=str(raw["purpose"]), min=lo, max=hi, ideal=ideal, position=raw["position"],
            repeatable=bool(raw.get("repeatable", False)), shows_product=bool(raw.get("shows_product", False)),
            shows_people=bool(raw.get("shows_people", False)),
            image_prompt=raw["image_prompt"], motion_prompt=raw["motion_prompt"], favoured_by=favoured,
            voiceover=voiceover,
        )
    styles: dict[str, Style] = {}
    for name, raw in raw_styles.items():
        arc = tuple((str(t), int(r)) for t, r in raw["arc"])
        for t, _ in arc:
            if t not in beats:
                raise LibraryError(f"styles.{name}.arc: unknown beat type {t!r}")
        kinds = [t for t, _ in arc]
        if kinds[0] != "hook" or kinds[-1] not in ("cta", "end-card") or len(set(kinds)) != len(kinds):
            raise LibraryError(f"styles.{name}.arc: must start with hook, end with cta/end-card, no repeats")
        if sorted(t for t, r in arc if r == 1) != ["cta", "hook", "product-reveal"]:
            raise LibraryError(f"styles.{name}.arc: rank 1 must be exactly hook, product-reveal, cta")
        styles[name] = Style(
            name=name, keywords=tuple(raw.get("keywords", ())), bpm=int(raw["bpm"]), music=str(raw["music"]),
            look=str(raw["look"]), camera=str(raw["camera"]), arc=arc,
        )
    default = data.get("default_style", "cinematic")
    if default not in styles:
        raise LibraryError(f"default_style: unknown style {default!r}")
    rv = data.get("voice") or {}
    voice = VoiceRules(float(rv.get("words_per_second", 2.5)), float(rv.get("lead_in", 0.25)),
                       float(rv.get("tail", 0.15)), float(rv.get("max_speedup", 1.15)))
    if not (0 < voice.words_per_second <= 6 and 0 <= voice.lead_in < 1 and 0 <= voice.tail < 1 and 1 <= voice.max_speedup <= 1.5):
        raise LibraryError("voice: words_per_second in (0, 6], lead_in and tail in [0, 1), max_speedup in [1, 1.5]")
    ro = data.get("on_screen") or {}
    limits = {str(k): int(v) for k, v in (ro.get("max_chars") or {}).items()}
    planned = tuple(str(t) for t in ro.get("planned") or ())
    for t in [*limits, *planned]:
        if t not in beats:
            raise LibraryError(f"on_screen: unknown beat type {t!r}")
    if any(not 0 <= v <= 200 for v in limits.values()):
        raise LibraryError("on_screen.max_chars: each in 0..200")
    on_screen = OnScreenRules(limits, planned, int(ro.get("default_max_chars", 40)))
    return Library(version=str(data["version"]), beats=beats, styles=styles, default_style=default, voice=voice,
                   on_screen=on_screen)


@lru_cache(maxsize=1)
def load_library() -> Library:
    text = resources.files(__name__).joinpath(LIBRARY_FILE).read_text(encoding="utf-8")
    return parse_library(load_data(text), check_templates=False)


LIBRARY_VERSION: str = load_library().version


@lru_cache(maxsize=1)
def library_digest() -> str:
    """sha256 of the library's data (the beats and the words read from prompts): the offline
    planner's output is a function of it."""
    import hashlib

    h = hashlib.sha256(resources.files(__name__).joinpath(LIBRARY_FILE).read_bytes())
    h.update(resources.files(__name__).joinpath("prompt_words.yaml").read_bytes())
    return h.hexdigest()

__all__ = [
    "LIBRARY_VERSION", "Library", "BeatType", "VoiceRules", "OnScreenRules", "Style", "TemplateProblem", "LibraryError",
    "load_library", "library_digest", "parse_library", "render_template", "template_variables",
]
