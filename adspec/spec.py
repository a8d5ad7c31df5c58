"""The spec and the beat file as pydantic models (extra fields forbidden, versioned).

Loading YAML with file:line errors lives in `adspec.loader`; this module says what a valid spec
and beat file are. Single-field rules are pydantic validators (so their errors carry the field's
location); rules across fields are `spec_issues` / `beat_file_issues`, which return
(location, message) pairs the loader maps to lines. Used directly (`Spec.model_validate`), the
models run those cross-field checks too and fail on the first.

Text fields of a spec (title, prompt, style, brand name and tagline) and every beat prompt may
hold jinja2 placeholders: `{{ var }}` for the spec's `vars`; beat prompts may also use
`{{ brand }}`, `{{ tagline }}`, `{{ product }}`, `{{ style }}` and `{{ title }}`. They are
rendered at build time by `render_beat_prompts` in a sandbox with undefined names as errors.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import SpecError
from .languages import DEFAULT_LANGUAGE, Text, all_texts, any_text, check_map, tag_problem, text_in, texts_by_language
from .library import Library, TemplateProblem, load_library, render_template
from .placements import load_placements, misfit, placement_ids, text_zones, unknown_placement_message
from .plan_file import composed_locally
from .prompt_text import plain_text, product_from_prompt
from .registry import Registry, load_registry, reference_capacity
from .variants import Variants

AspectRatio = Literal["16:9", "9:16", "1:1", "4:5"]
Resolution = Literal["360p", "720p", "1080p"]  # 360p: quick drafts

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
AD_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: names filled from the spec itself in beat prompts; a var may not shadow them
RESERVED_VARS = ("brand", "tagline", "product", "style", "title")
WORDS_RE = r"\S"  # a text with at least one character that is not a space

Slug = Annotated[str, Field(pattern=SLUG_RE.pattern, description="lower-case letters, digits and '-'")]
Color = Annotated[str, Field(pattern=COLOR_RE.pattern, description='"#RRGGBB"')]
VarValue = Union[str, int, Annotated[float, Field(allow_inf_nan=False)], bool]


def _var_name(name: str) -> str:
    """A variable's name, checked as a key (so its error stands at the key's own line)."""
    if not VAR_NAME_RE.fullmatch(name):
        raise ValueError(f"variable name '{name}' must be an identifier (letters, digits, _)")
    if name in RESERVED_VARS:
        raise ValueError(f"variable name '{name}' is reserved (it is filled from the spec: {', '.join(RESERVED_VARS)})")
    return name


VarName = Annotated[str, AfterValidator(_var_name)]


def _lang_text(max_len: int) -> AfterValidator:
    def check(v: Any) -> Any:
        if isinstance(v, dict):
            check_map(v, max_len)
        return v

    return AfterValidator(check)


def _text(max_len: int) -> Any:
    """A text field drawn or spoken: a string, or a map language -> string (adspec.languages)."""
    return Annotated[Union[Annotated[str, Field(min_length=1, max_length=max_len)], dict[str, str]], _lang_text(max_len)]


def _relative_path(rel: str) -> str:
    if not rel.strip():
        raise ValueError("path must not be empty")
    if rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel) or Path(rel).is_absolute():
        raise ValueError(f"path '{rel}' must be relative to the spec's folder, not absolute")
    if "\x00" in rel:
        raise ValueError("path contains a NUL character")
    return rel


AssetPath = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_relative_path)]


def _known_placement(name: str) -> str:
    if name not in load_placements():
        raise ValueError(unknown_placement_message(name))
    return name


def _placement_enum() -> list[str]:
    try:
        return placement_ids()
    except Exception:  # the schema must not depend on the data file being readable
        return []


PlacementId = Annotated[str, AfterValidator(_known_placement), Field(json_schema_extra={"enum": _placement_enum()})]

Loc = tuple[Union[str, int], ...]
Issue = tuple[Loc, str]  # (location in the document, one-line message)

#: context key that tells the models to skip cross-field checks (the loader runs them itself)
SKIP_CROSS_CHECKS = "adspec_skip_cross_checks"


def _registry() -> Registry:
    return load_registry()


def _model_enum(kind: str) -> list[str]:
    try:
        reg = _registry()
        return sorted(reg.names(kind) + [a for a, n in reg.aliases.items() if reg.models[n].kind == kind])
    except Exception:  # the schema must not depend on the registry being readable
        return []


def _enum(values: list[str]) -> dict[str, Any]:
    """A JSON-schema enum for an editor's completion (the validators give the real errors)."""
    return {"enum": values}


def _known_models_message(kind: str, name: str) -> str:
    reg = _registry()
    other = reg.models.get(reg.aliases.get(name, name))
    if other is not None and other.kind != kind:  # a known model in the wrong place: say which kind it is
        return f"'{name}' is {'an' if other.kind[0] in 'aeiou' else 'a'} {other.kind} model, not {kind}; " \
               f"{kind} models: {', '.join(reg.names(kind))}"
    names = reg.names(kind)
    aliases = sorted(a for a, n in reg.aliases.items() if reg.models[n].kind == kind)
    close = difflib.get_close_matches(name, names + aliases, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    alias_note = f" (aliases: {', '.join(aliases)})" if aliases else ""
    return f"unknown {kind} model '{name}'{hint}; known: {', '.join(names)}{alias_note}"


def _known_model(v: str | None, info: ValidationInfo) -> str | None:
    """A model name field (`image`, `video`, ...) must name a registry model of that kind."""
    if v is None:
        return v
    kind = str(info.field_name)
    try:
        _registry().resolve(v, kind)
    except KeyError:
        raise ValueError(_known_models_message(kind, v)) from None
    return v


class Strict(BaseModel):
    # strict: a number is never silently a string nor a string a number ("7" for a seed, `2024`
    # for a title): the JSON Schema editors use says the same, and so does `adspec validate`
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True)


class Brand(Strict):
    """The brand on screen: name, tagline and palette (words and colours are drawn locally, never paid for)."""

    name: str | None = Field(None, min_length=1, max_length=200, description="the brand's name, as shown on screen")
    tagline: _text(200) | None = Field(None, description="the closing line, e.g. 'Own every mile' (or a map "  # type: ignore[valid-type]
                                                        "language -> text)")
    colors: list[Color] = Field(default_factory=lambda: ["#111111", "#F5F5F5"], min_length=1, max_length=8,
                                description='the palette, 1-8 colours as "#RRGGBB"; the first is the main one')
    logo: AssetPath | None = Field(None, description="the logo image (PNG with transparency best), relative to the spec; "
                                                     "drawn on the end card, never generated")
    font: AssetPath | None = Field(None, description="a .ttf/.otf for every word on screen (default: the bundled "
                                                     "DejaVu Sans Bold; give one that covers CJK for Chinese/Japanese)")
    cta: _text(40) | None = Field(None, description="the call to action, e.g. 'Shop now' (drawn on the cta "  # type: ignore[valid-type]
                                                  "beat and the end card; or a map language -> text)")
    url: str | None = Field(None, min_length=1, max_length=80, description="the address shown under the call to action")


class Models(Strict):
    """Which model makes each part; names from `adspec models` (clip lengths and prices there)."""

    planner: str = Field("gpt-4.1", min_length=1, max_length=100,
                         description="any OpenAI chat model name (writes the beat file), or 'offline'")
    image: str = Field("flux-dev", description="the storyboard image model",
                       json_schema_extra=_enum(_model_enum("image")))
    video: str = Field("hailuo-2.3-fast", description="the image-to-video model; its clip lengths set the chunking",
                       json_schema_extra=_enum(_model_enum("video")))
    music: str = Field("musicgen", description="the music model", json_schema_extra=_enum(_model_enum("music")))
    voice: str = Field("speech-02-turbo", json_schema_extra=_enum(_model_enum("voice")),
                       description="the voiceover's speech model (offline builds speak with eSpeak NG)")

    @field_validator("planner")
    @classmethod
    def _planner(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    _known = field_validator("image", "video", "music", "voice")(_known_model)


class BeatModels(Strict):
    """A beat's own image and video models (else the spec's `models:`); its chunking follows its
    own video model's clip lengths."""

    image: str | None = Field(None, description="this beat's storyboard image model",
                              json_schema_extra=_enum(_model_enum("image")))
    video: str | None = Field(None, description="this beat's image-to-video model; its clip lengths cut this beat",
                              json_schema_extra=_enum(_model_enum("video")))

    _known = field_validator("image", "video")(_known_model)


def _beat_types() -> list[str]:
    return load_library().types


AssetRole = Literal["product", "character", "logo", "style"]


class Asset(Strict):
    """A reference asset with its role: what it is to the beats that show it."""

    path: AssetPath = Field(description="an image relative to the spec's folder, inside the project")
    role: AssetRole = Field(description="product, character (a person or mascot, named by its key), logo, or style (a look to match)",
                            json_schema_extra={"enumDescriptions": [
                                "the product: beats that show the product send it",
                                "a person or mascot, named by its key: beats that show people send it",
                                "the brand's logo: sent where a beat's `shows:` lists it",
                                "a look to match: sent where a beat's `shows:` lists it"]})


#: an asset: a path, or {path, role}; the errors are the ones of the form written
AssetValue = Annotated[Union[Annotated[AssetPath, Tag("path")], Annotated[Asset, Tag("asset")]],
                       Discriminator(lambda v: "asset" if isinstance(v, (dict, Asset)) else "path")]


def asset_path(value: "str | Asset") -> str:
    return value.path if isinstance(value, Asset) else value


def asset_role(name: str, value: "str | Asset") -> str | None:
    """An asset's role: as written, else `product` for the asset named product (as always) and
    `logo` for one named logo; other plain paths have none (a beat may still show them)."""
    if isinstance(value, Asset):
        return value.role
    return name if name in ("product", "logo") else None


#: JSON Schema: a beat of type end-card (composed from the brand kit: no prompt is sent for it)
_END_CARD: dict[str, Any] = {"required": ["type"], "properties": {"type": {"const": "end-card"}}}


class Beat(Strict):
    """One beat of the ad: a storyboard image, then image-to-video chunks from it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True, populate_by_name=True,
                              json_schema_extra={"allOf": [
                                  {"if": {"not": {"anyOf": [{"required": ["footage"]}, _END_CARD]}},
                                   "then": {"required": ["motion_prompt"]}},
                                  {"if": {"not": {"anyOf": [{"required": ["footage"]}, {"required": ["image"]}, _END_CARD]}},
                                   "then": {"required": ["image_prompt"]}}]})

    id: Slug = Field(description="stable, unique slug; names the beat's targets (lower-case letters, digits, '-')")
    type: str = Field(max_length=40, description="one of the library's beat types (purpose and seconds in each one's description)",
                      json_schema_extra=_enum(_beat_types()))
    duration: int = Field(ge=1, le=60, description="whole seconds; within the beat type's range")
    # words, not only spaces: a prompt of spaces would be sent (and paid for) as it is. Required
    # but where nothing is sent (see prompt_presence_issues): JSON Schema's `allOf` below says so
    image_prompt: str | None = Field(None, min_length=1, max_length=2000, pattern=WORDS_RE,
                                     description="what the storyboard image shows; may use {{ var }}, {{ brand }}, "
                                                 "{{ product }}… (not needed with your own `image:` or `footage:`)")
    motion_prompt: str | None = Field(None, min_length=1, max_length=1000, pattern=WORDS_RE,
                                      description="the camera and motion of the beat's video (not needed with your "
                                                  "own `footage:`)")
    voiceover: _text(500) | None = Field(  # type: ignore[valid-type]
        None, description="the words spoken during this beat ({{ var }} allowed; or a map language -> text); "
                          "keep to the word budget")
    on_screen: _text(200) | None = Field(None,  # type: ignore[valid-type]
                                  description="a super drawn over this beat by code (a headline, a price, a feature's "
                                              "name; {{ var }} allowed); the beat type's limit is in the library")
    models: BeatModels | None = Field(None, description="this beat's own image and/or video model (names from `adspec models`)")
    image: AssetPath | None = Field(None, description="your own still (relative to the spec's folder) as this beat's "
                                                      "storyboard: no image request; its video starts from it")
    footage: AssetPath | None = Field(None, description="your own clip (relative to the spec's folder), conformed to the "
                                                        "ad's frame and cut to the beat: no image or video request")
    from_: float | None = Field(None, alias="from", ge=0, le=3600,
                                description="with `footage:`: the second of the clip the beat starts at (default 0)")
    shows: list[Slug] | None = Field(None, max_length=8,
                                     description="the spec's assets this beat shows (e.g. [product, maya]): their images "
                                                 "go with its storyboard request as references")
    approved: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                 description="the sha256 of the storyboard image a person approved (`adspec approve`); "
                                             "with `approval: required` only an approved beat's video is paid for; "
                                             "never shapes the plan nor a paid request")

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        types = _beat_types()
        if v not in types:
            close = difflib.get_close_matches(v, types, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown beat type '{v}'{hint}; known: {', '.join(types)}")
        return v


class Voice(Strict):
    """Who speaks the lines: a voice of `models.voice` (names from `adspec models`) and a speed."""

    name: str | None = Field(None, min_length=1, max_length=100, description="default: the voice model's default voice")
    speed: float = Field(1.0, ge=0.5, le=2.0, description="speaking speed, 0.5-2.0 (1.0: the voice's own)")


class Captions(Strict):
    """Captions of the spoken lines: always written as captions.srt/.vtt and a soft subtitle
    track; burned into the picture unless `burn: false`. Styling is local: it never pays."""

    burn: bool = Field(True, description="false: captions only as files and a soft subtitle track, not in the picture")
    font: AssetPath | None = Field(None, description="a .ttf/.otf file relative to the spec (default: brand.font, "
                                                     "else the bundled DejaVu Sans Bold)")
    color: Color | None = Field(None, description="text colour (default: the brand's lightest colour)")
    box: bool = Field(True, description="a translucent box behind the text (else an outline)")
    size: float = Field(1.0, ge=0.5, le=2.0, description="scale of the default text size")


class Music(Strict):
    """The music bed: one request for the whole ad."""

    prompt: str = Field(min_length=1, max_length=1000, description="what the music model is asked for")
    bpm: int = Field(ge=40, le=220, description="tempo in beats per minute")


def listed_twice(names: Sequence[Any], base: Loc) -> list[Issue]:
    """Each entry of a list of names that an earlier entry already names (as written: an entry
    that is no string is skipped, so a list with one bad entry is still checked)."""
    return [((*base, j), f"'{name}' is listed twice") for j, name in enumerate(names)
            if isinstance(name, str) and name in names[:j]]


def _beats_issues(beats: list[Beat], duration: int | None, base: Loc, what: str, spec: Spec | None = None) -> list[Issue]:
    return (beat_list_issues([(b.id, b.duration) for b in beats], duration, base, what)
            + prompt_presence_issues(beats, base, composes_end_card(spec)))


def composes_end_card(spec: Spec | None) -> bool:
    """Whether the spec's end card is composed by code from its brand kit (`plan_file.composed_locally`),
    so an `end-card` beat asks no model and needs no prompts. Without a spec (a beat file read
    alone) it is taken to be: the spec's check says otherwise."""
    if spec is None:
        return True
    brand = spec.brand
    kit = {"name": brand.name, "tagline": brand.tagline, "cta": brand.cta, "url": brand.url, "logo": brand.logo}
    return composed_locally("end-card", kit)


def prompt_presence_issues(beats: Sequence[Beat | dict[str, Any]], base: Loc, end_card_composed: bool = True
                           ) -> list[Issue]:
    """The prompts a beat needs: what is sent for it. Your own still needs no image prompt (its
    video is asked from it with the motion prompt); your own footage needs neither, nor does an
    end card composed from the brand kit (`end_card_composed`). Beats as validated, or as written
    (a file with schema errors: every beat's missing prompt is said)."""
    issues: list[Issue] = []
    for i, beat in enumerate(beats):
        if not isinstance(beat, (Beat, dict)):
            continue
        written = beat if isinstance(beat, dict) else beat.model_dump(by_alias=True)
        if end_card_composed and written.get("type") == "end-card":
            continue
        if written.get("footage") is None and written.get("motion_prompt") is None:
            issues.append(((*base, i, "motion_prompt"), "is required: the beat's video is asked for with it (a beat "
                                                        "of your own `footage:` needs none)"))
        if written.get("footage") is None and written.get("image") is None and written.get("image_prompt") is None:
            issues.append(((*base, i, "image_prompt"), "is required: the storyboard image is asked for with it (a beat "
                                                       "of your own `image:` or `footage:` needs none)"))
    return issues


def beat_list_issues(beats: Sequence[tuple[Any, Any]], duration: int | None, base: Loc, what: str) -> list[Issue]:
    """Duplicate ids and the total duration, from each beat's (id, duration) as written: also
    checked in a beat file where some beat fails its schema (an id or a duration that is no
    string or whole number is skipped, and then the total is not checked)."""
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for i, (beat_id, _) in enumerate(beats):
        if not isinstance(beat_id, str):
            continue
        if beat_id in seen:
            issues.append(((*base, i, "id"), f"duplicate beat id '{beat_id}' (already used by beats.{seen[beat_id]})"))
        else:
            seen[beat_id] = i
    lengths = [d for _, d in beats if isinstance(d, int) and not isinstance(d, bool)]
    total = sum(lengths)
    if duration is not None and len(lengths) == len(beats) and total != duration:
        issues.append((base, f"{what} last {total} s in total but the spec's duration is {duration} s"))
    return issues


class Spec(Strict):
    """What a person writes in specs/<ad>.yaml."""

    version: Literal[1] = Field(1, description="the spec format's version")
    title: str = Field("", min_length=1, max_length=200,
                       description="a name for people; shapes nothing the providers see (default: the file's name, "
                                   "readable: trail-runner.yaml -> Trail Runner)")
    prompt: str = Field(min_length=1, max_length=4000,
                        description="what the ad is about; the planner works from it (may use {{ var }})")
    duration: int = Field(30, ge=5, le=180, description="seconds, 5-180; the beats' durations sum to it exactly "
                                                        "(default: the prompt's, e.g. '15-second', else 30)")
    aspect_ratio: AspectRatio = Field("16:9", description="16:9, 9:16, 1:1 or 4:5",
                                      json_schema_extra={"enumDescriptions": ["landscape (YouTube, TV)", "vertical (Shorts, Reels, TikTok)",
                                                                              "square (feeds)", "portrait (feeds)"]})
    resolution: Resolution = Field("720p", description="the short side of the frame: 720p, 1080p, or 360p for quick drafts",
                                   json_schema_extra={"enumDescriptions": ["quick drafts: not for delivery", "HD", "full HD"]})
    style: str = Field("cinematic", min_length=1, max_length=200,
                       description="free text; keywords (energetic, calm, luxury, playful, minimal, urgent, cinematic) "
                                   "pick the beat arc, look, camera language and tempo")
    brand: Brand = Field(default_factory=Brand, description="name, tagline and colours (drawn locally, never paid for)")
    models: Models = Field(default_factory=Models, description="planner, image, video and music models (`adspec models`)")
    assets: dict[Slug, AssetValue] = Field(
        default_factory=dict,
        description="name -> image path relative to the spec's folder (or {path, role}: role product, character, logo, "
                    "style); 'product' is the product's reference image; a beat's `shows:` sends its references",
        json_schema_extra={"propertyNames": {"pattern": SLUG_RE.pattern,
                                             "description": "lower-case letters, digits and '-'"}},
    )
    vars: dict[VarName, VarValue] = Field(default_factory=dict, description="values for {{ name }} placeholders in prompts",
                                      json_schema_extra={"propertyNames": {
                                          "pattern": VAR_NAME_RE.pattern, "not": {"enum": list(RESERVED_VARS)},
                                          "description": "an identifier (letters, digits, _), not one of "
                                                         + ", ".join(RESERVED_VARS)}})
    seed: int = Field(0, ge=0, le=2**31 - 1, description="passed to every model that takes one")
    approval: Literal["required", "off"] = Field(
        "off", description="required: `doit` pays for storyboards, but for a beat's video only once `adspec approve` "
                           "recorded that beat's storyboard in the beat file (see `adspec approve --list`)",
        json_schema_extra={"enumDescriptions": ["a beat's video waits until its storyboard is approved",
                                                "no approval: every beat's video is made (the default)"]})
    native_audio: bool = Field(False, description="use the video model's own audio (if it has any) instead of music")
    voice: Voice = Field(default_factory=Voice, description="who speaks the voiceover lines, and how fast")
    voiceover: bool = Field(True, description="false: no spoken lines (the planner writes none, the build speaks none)")
    language: str = Field(DEFAULT_LANGUAGE, description="the ad's language, a BCP 47 tag (en, de, pt-BR, ja); plain "
                                                        "strings in text fields are in it; variants may set it")
    captions: Captions = Field(default_factory=Captions, description="captions of the spoken lines: burned in or not, font, colour")
    placements: list[PlacementId] = Field(
        default_factory=list, max_length=20, json_schema_extra={"uniqueItems": True},
        description="where the ad runs (`adspec placements`): each is checked (`check:<ad>`) and exported "
                    "(build/<ad>/export/<placement>.mp4); local only, never paid for")
    music: Music | None = Field(None, description="music for inline beats (default: derived from the style)")
    beats: list[Beat] | None = Field(None, min_length=1, max_length=60, description="inline beats: no planner runs")
    variants: Variants | None = Field(None, description="matrix / include / exclude / named: each variant is an ad <name>@<variant> (see adspec.variants)")

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        problem = tag_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("vars")
    @classmethod
    def _var_names(cls, v: dict[str, VarValue]) -> dict[str, VarValue]:
        for name, value in v.items():
            if isinstance(value, str) and len(value) > 500:
                raise ValueError(f"variable '{name}' is longer than 500 characters")
        return v

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> "Spec":
        if (info.context or {}).get(SKIP_CROSS_CHECKS):
            return self
        issues = spec_issues(self)
        if issues:
            loc, message = issues[0]
            where = ".".join(str(p) for p in loc)
            raise ValueError(f"{where}: {message}" if where else message)
        return self


class PlannedFrom(Strict):
    """What the planner planned from (the lock): written by the planner, not meant to be edited."""

    spec_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of the spec's plan-shaping fields")
    planner: str = Field(min_length=1, max_length=100, description="the planner model that wrote the beats")
    library: str = Field(min_length=1, max_length=40, description="the beat library's version")
    content_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="hash of music+beats as planned: detects hand edits")


class BeatFile(Strict):
    """specs/<ad>.beats.yaml: the lock of the plan, written by the planner, owned by the person."""

    version: Literal[1] = Field(1, description="the beat file format's version")
    planned_from: PlannedFrom | None = Field(None, description="the lock: what this plan was made from (written by the planner)")
    music: Music = Field(description="the music bed")
    beats: list[Beat] = Field(min_length=1, max_length=60, description="the beats in playing order; durations sum to the spec's")

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> "BeatFile":
        if (info.context or {}).get(SKIP_CROSS_CHECKS):
            return self
        issues = _beats_issues(self.beats, None, ("beats",), "the beats")
        if issues:
            loc, message = issues[0]
            where = ".".join(str(p) for p in loc)
            raise ValueError(f"{where}: {message}" if where else message)
        return self


#: a beat's fields a person sets, never a planner (the LLM planner's schema leaves them out;
#: `shows` is filled after it from the beat library)
PERSON_FIELDS = ("models", "image", "footage", "from", "shows", "approved")


class BeatPlan(Strict):
    """What a planner returns (the LLM's structured output): music and beats."""

    music: Music
    beats: list[Beat] = Field(min_length=1, max_length=60)


# ---- prompts: the placeholders of a beat file, rendered with the spec's values --------------


def spec_text(text: str, spec: Spec) -> str:
    """A spec text field (title, prompt, style, brand name, tagline) with its {{ var }} filled."""
    return render_template(text, dict(spec.vars))


def product_name(spec: Spec) -> str:
    """The product's name as the planner sees it: from the prompt, else the brand, else generic.

    The raw text may hold {{ var }} placeholders (the prompt is a template over `vars`)."""
    return product_from_prompt(spec.prompt, spec.brand.name)


def prompt_context(spec: Spec) -> dict[str, Any]:
    """Every name a beat prompt may use: the spec's vars plus brand, tagline, product, style, title.

    TemplateProblem if one of the spec's own text fields does not render."""
    ctx: dict[str, Any] = dict(spec.vars)
    ctx["brand"] = spec_text(spec.brand.name, spec) if spec.brand.name else ""
    tagline = any_text(spec.brand.tagline, spec.language)
    ctx["tagline"] = spec_text(tagline, spec) if tagline else ""
    ctx["style"] = spec_text(spec.style, spec)
    ctx["title"] = spec_text(spec.title, spec)
    ctx["product"] = spec_text(product_name(spec), spec)
    return ctx


def render_beat_prompts(beat: Beat, spec: Spec, source: str | Path = "<beats>") -> tuple[str | None, str | None]:
    """(image_prompt, motion_prompt) of `beat` with its placeholders filled from `spec` (None: not
    written, as a beat of your own media may leave them).

    Raises SpecError naming `source` (the beat file, or the spec for inline beats), the beat's id
    and the field."""
    try:
        ctx = prompt_context(spec)
    except TemplateProblem as e:
        raise SpecError(source, None, None, f"the spec's text fields do not render: {e}") from None
    out: list[str | None] = []
    for field in ("image_prompt", "motion_prompt"):
        written = getattr(beat, field)
        try:
            out.append(None if written is None else " ".join(render_template(written, ctx).split()))
        except TemplateProblem as e:
            raise SpecError(source, None, f"beats.{beat.id}.{field}", str(e)) from None
    return out[0], out[1]


class MissingLanguage(SpecError):
    """A text field has no text in the ad's language (the offline planner cannot translate)."""


def pick_text(value: Text | None, spec: Spec, own: str | None, source: str | Path, field: str) -> str | None:
    """`value` in the spec's language (plain strings are in `own`, default the spec's language)."""
    try:
        return text_in(value, spec.language, own or spec.language)
    except KeyError:
        has = ", ".join(sorted(set(_languages(value, own or spec.language)))) or "none"
        raise MissingLanguage(source, None, field, f"no '{spec.language}' text (has: {has}); write it, or plan with "
                                                   "an LLM planner, which translates") from None


def language_gaps(spec: Spec, beats: list[Beat], own: str) -> tuple[list[Issue], list[Issue]]:
    """Every text without the ad's language (`spec.language`; plain strings are in `own`), as
    (beat issues located in `beats`, brand issues located in the spec): a beat's spoken line (when
    the ad speaks) and super, the brand's tagline and call to action."""

    def gap(value: Text | None) -> str | None:
        if value is None:
            return None
        try:
            text_in(value, spec.language, own)
            return None
        except KeyError:
            return ", ".join(sorted(set(_languages(value, own)))) or "none"

    in_beats: list[Issue] = []
    for i, beat in enumerate(beats):
        for field in ("voiceover", "on_screen"):
            has = gap(getattr(beat, field)) if field != "voiceover" or spec.voiceover else None
            if has is not None:
                in_beats.append((("beats", i, field), f"beat '{beat.id}' has no '{spec.language}' {field} (has: {has})"))
    in_brand: list[Issue] = []
    for field in ("tagline", "cta"):
        has = gap(getattr(spec.brand, field))
        if has is not None:
            in_brand.append((("brand", field), f"no '{spec.language}' brand.{field} (has: {has})"))
    return in_beats, in_brand


def _languages(value: Text | None, own: str) -> list[str]:
    if value is None:
        return []
    return [own] if isinstance(value, str) else list(value)


def render_voiceover(beat: Beat, spec: Spec, source: str | Path = "<beats>", own: str | None = None) -> str | None:
    """The beat's spoken line in the ad's language with its placeholders filled (None: the beat is
    silent, or the spec says `voiceover: false`). SpecError names the file, the beat and the field."""
    if beat.voiceover is None or not spec.voiceover:
        return None
    line = pick_text(beat.voiceover, spec, own, source, f"beats.{beat.id}.voiceover")
    if line is None:
        return None
    try:
        text = render_template(line, prompt_context(spec))
    except TemplateProblem as e:
        raise SpecError(source, None, f"beats.{beat.id}.voiceover", str(e)) from None
    return " ".join(text.split()) or None


def word_count(text: str) -> int:
    """Words as a listener counts them: runs of letters/digits ( 'ready?' and '—' are one and none)."""
    return len(re.findall(r"[\w'’]+", text))


def voiceover_issues(beats: list[Beat], spec: Spec, base: Loc) -> list[Issue]:
    """Every line that does not render or is over its beat's word budget (library constant)."""
    if not spec.voiceover:
        return []
    try:
        ctx = prompt_context(spec)
    except TemplateProblem:
        return []
    rules = load_library().voice
    issues: list[Issue] = []
    for i, beat in enumerate(beats):
        for line in all_texts(beat.voiceover):
            try:
                text = render_template(line, ctx)
            except TemplateProblem as e:
                issues.append(((*base, i, "voiceover"), f"beat '{beat.id}': {e}"))
                break
            # spoken and drawn as captions: line breaks fold to spaces, other control characters are refused
            problem = control_character_problem(" ".join(text.split()))
            if problem is not None:
                issues.append(((*base, i, "voiceover"), problem))
                break
            words, budget = word_count(text), rules.budget(beat.duration)
            if words > budget:
                issues.append(((*base, i, "voiceover"), f"{words} words for a {beat.duration} s beat (budget {budget})"))
                break
    return issues


def voice_issues(spec: Spec) -> list[Issue]:
    """The voice name must be one the voice model has."""
    try:
        entry = _registry().resolve(spec.models.voice, "voice")
    except KeyError:
        return []
    if spec.voice.name is not None and spec.voice.name not in entry.voices:
        close = difflib.get_close_matches(spec.voice.name, list(entry.voices), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return [(("voice", "name"), f"{entry.name} has no voice '{spec.voice.name}'{hint}; its voices: {', '.join(entry.voices)}")]
    return []


# ---- cross-field rules ----------------------------------------------------------------------


#: fields drawn on screen by code: a control character there breaks the text layout
ON_SCREEN_FIELDS = (("brand", "name"), ("brand", "tagline"), ("brand", "cta"), ("brand", "url"))


def control_character_problem(text: str) -> str | None:
    """Words on screen may not hold control characters (\\r, \\x1b, ...) or line/paragraph
    separators: text layout fails on them (`raqm_layout() failed`) or draws boxes."""
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            code = ch.encode("unicode_escape").decode("ascii") if ch.isascii() else f"\\u{ord(ch):04x}"
            return (f"holds the control character {code} at position {i + 1}; words on screen must be plain text")
    return None


def spec_issues(spec: Spec) -> list[Issue]:
    """Rules across fields of a spec that need no files: inline beats, music, model/aspect fit,
    that every text field and inline prompt renders, and that words on screen are plain text."""
    issues: list[Issue] = []
    for loc, text in (
        (("title",), spec.title), (("prompt",), spec.prompt), (("style",), spec.style),
        (("brand", "name"), spec.brand.name), *((("brand", "tagline"), t) for t in all_texts(spec.brand.tagline)),
        *((("brand", "cta"), t) for t in all_texts(spec.brand.cta)), (("brand", "url"), spec.brand.url),
    ):
        if text is None:
            continue
        try:
            rendered = render_template(text, dict(spec.vars))
        except TemplateProblem as e:
            issues.append((loc, str(e)))
            continue
        # the text as written, then as rendered (a var may bring one in; jinja turns \r into \n)
        problem = (control_character_problem(text) or control_character_problem(rendered)) if loc in ON_SCREEN_FIELDS else None
        if problem is not None:
            issues.append((loc, problem))
    try:
        video = _registry().resolve(spec.models.video, "video")
        if video.aspect_ratios and spec.aspect_ratio not in video.aspect_ratios:
            issues.append((("models", "video"), f"{video.name} does not support aspect ratio {spec.aspect_ratio} "
                                                f"(it supports {', '.join(video.aspect_ratios)})"))
    except KeyError:
        pass
    issues += listed_twice(spec.placements, ("placements",))  # two exports and checks of one name: doit refuses the project
    issues += placement_misfits(spec.placements if spec.variants is None else [], spec)  # variants: each its own
    if spec.beats is not None:
        issues += beat_model_issues(spec.beats, spec, ("beats",))
    if spec.music is not None and spec.beats is None:
        issues.append((("music",), "only allowed with inline `beats:`; otherwise the music is planned into the beat file"))
    if spec.beats is not None:
        issues += _beats_issues(spec.beats, spec.duration, ("beats",), "inline beats", spec)
        issues += prompt_issues(spec.beats, spec, ("beats",))
        issues += voiceover_issues(spec.beats, spec, ("beats",))
        issues += on_screen_issues(spec.beats, spec, ("beats",))
    return issues + voice_issues(spec)


def placement_misfits(names: Sequence[Any], spec: Spec) -> list[Issue]:
    """Each known placement in `names` (the spec's list, or as written when an entry of it is
    wrong) that the ad cannot meet by its aspect ratio, its length or its captions."""
    mute_beats = spec.beats is not None and all(b.voiceover is None for b in spec.beats)
    silent = ("`voiceover: false`" if not spec.voiceover else  # captions are the spoken lines
              "no inline beat has a `voiceover:`" if mute_beats else None)
    issues: list[Issue] = []
    for j, name in enumerate(names):
        problem = misfit(name, spec.aspect_ratio, spec.duration, silent=silent) if isinstance(name, str) else None
        if problem is not None and name not in names[:j]:
            issues.append((("placements", j), problem))
    return issues


def beat_model_issues(beats: list[Beat], spec: Spec, base: Loc) -> list[Issue]:
    """A beat's own video model must draw the spec's aspect ratio; `image:` and `footage:`
    exclude each other, and `from:` goes with `footage:`."""
    issues: list[Issue] = []
    for i, beat in enumerate(beats):
        if beat.image is not None and beat.footage is not None:
            issues.append(((*base, i, "footage"), "a beat has either its own still (`image:`) or its own footage, not both"))
        for j, name in enumerate(beat.shows or []):
            if name not in spec.assets:
                close = difflib.get_close_matches(name, list(spec.assets), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                issues.append(((*base, i, "shows", j), f"beat '{beat.id}' shows '{name}', which is not one of the spec's "
                                                    f"assets{hint} (assets: {', '.join(spec.assets) or 'none'})"))
            elif name in (beat.shows or [])[:j]:  # sent twice, and priced as two references
                issues.append(((*base, i, "shows", j), f"beat '{beat.id}' shows '{name}' twice"))
        most = max((reference_capacity(e) for e in _registry().models.values() if e.kind == "image"), default=0)
        if beat.shows and beat.image is None and beat.footage is None and len(set(beat.shows)) > most:
            issues.append(((*base, i, "shows"), f"beat '{beat.id}' shows {len(set(beat.shows))} assets: no image model "
                                                f"in the registry takes more than {most} reference images"))
        if beat.from_ is not None and beat.footage is None:
            issues.append(((*base, i, "from"), "`from:` is the second of the beat's `footage:` to start at: set `footage:` too"))
        if beat.models is None or beat.models.video is None:
            continue
        try:
            video = _registry().resolve(beat.models.video, "video")
        except KeyError:
            continue
        if video.aspect_ratios and spec.aspect_ratio not in video.aspect_ratios:
            issues.append(((*base, i, "models", "video"), f"{video.name} does not support aspect ratio {spec.aspect_ratio} "
                                                          f"(it supports {', '.join(video.aspect_ratios)})"))
    return issues


def prompt_issues(beats: list[Beat], spec: Spec, base: Loc) -> list[Issue]:
    """Render every beat's prompts once with the spec's values: unknown variables, bad syntax."""
    try:
        ctx = prompt_context(spec)
    except TemplateProblem:
        return []  # reported against the spec's own field
    issues: list[Issue] = []
    for i, beat in enumerate(beats):
        for field in ("image_prompt", "motion_prompt"):
            try:
                render_template(getattr(beat, field) or "", ctx)
            except TemplateProblem as e:
                issues.append(((*base, i, field), f"beat '{beat.id}': {e}"))
    return issues


def beat_file_issues(beat_file: BeatFile, spec: Spec | None) -> list[Issue]:
    """The beat file's own rules, and with its spec: the total duration and that prompts render."""
    issues = _beats_issues(beat_file.beats, spec.duration if spec else None, ("beats",), "the beats", spec)
    if spec is not None:
        issues += beat_model_issues(beat_file.beats, spec, ("beats",))
        issues += prompt_issues(beat_file.beats, spec, ("beats",))
        issues += voiceover_issues(beat_file.beats, spec, ("beats",))
        issues += on_screen_issues(beat_file.beats, spec, ("beats",))
    return issues


def render_on_screen(beat: Beat, spec: Spec, source: str | Path = "<beats>", own: str | None = None) -> str | None:
    """The beat's super in the ad's language with its placeholders filled (None: nothing drawn)."""
    words = pick_text(beat.on_screen, spec, own, source, f"beats.{beat.id}.on_screen")
    if words is None:
        return None
    try:
        text = render_template(words, prompt_context(spec))
    except TemplateProblem as e:
        raise SpecError(source, None, f"beats.{beat.id}.on_screen", str(e)) from None
    return " ".join(text.split()) or None


def on_screen_issues(beats: list[Beat], spec: Spec, base: Loc) -> list[Issue]:
    """Every super that does not render, holds a control character, is longer than its beat
    type allows (library data) or cannot stand in the safe zone at a readable size (measured in
    the bundled font; a spec's own `brand.font` is measured again when the ad is planned)."""
    from .plan_file import output_size

    try:
        ctx = prompt_context(spec)
    except TemplateProblem:
        return []
    rules = load_library().on_screen
    width, height = output_size(spec.aspect_ratio, spec.resolution)
    issues: list[Issue] = []
    for i, beat in enumerate(beats):
        for language, words in texts_by_language(beat.on_screen, spec.language):
            problem = _on_screen_problem(beat, words, language, spec, ctx, rules.limit(beat.type), width, height)
            if problem is not None:
                issues.append(((*base, i, "on_screen"), problem))
                break
    return issues


def _on_screen_problem(beat: Beat, words: str, language: str, spec: Spec, ctx: dict[str, Any], limit: int,
                       width: int, height: int) -> str | None:
    """Why one super (in one language) cannot be drawn (None: it can)."""
    from .text_fit import bundled_font, fit_problem, missing_glyphs

    try:
        text = " ".join(render_template(words, ctx).split())
    except TemplateProblem as e:
        return f"beat '{beat.id}': {e}"
    problem = control_character_problem(text)
    if problem is not None:
        return problem
    if limit == 0:
        return f"beat '{beat.id}': a {beat.type} beat holds no super (it is composed from `brand:`)"
    if len(text) > limit:
        return f"beat '{beat.id}': super {text!r} is {len(text)} characters; a {beat.type} beat holds at most {limit}"
    if spec.brand.font is None and language == spec.language:  # drawn only in its own ad's language
        missing = missing_glyphs(bundled_font(), text)
        if missing:
            return (f"beat '{beat.id}', language {language}: the bundled font has no glyph for "
                    f"{''.join(missing[:8])!r} in {text!r}; give brand.font a font that covers the script")
        fit = fit_problem(text, None, width, height, spec.aspect_ratio, text_zones(spec.placements, spec.aspect_ratio))
        if fit is not None:
            return f"beat '{beat.id}': {fit}"
    return None


def music_for(style_text: str, brand: str | None = None, library: Library | None = None) -> Music:
    """The music bed for a style: the library style's music and tempo, plus the spec's words."""
    lib = library or load_library()
    style = lib.style_for(style_text)
    words = plain_text(style_text)[:80]
    mood = f", {words} mood" if words and words.lower() != style.name else f", {style.name} mood"
    return Music(prompt=f"{style.music}{mood}, instrumental, no vocals, {style.bpm} bpm", bpm=style.bpm)


def default_music(spec: Spec) -> Music:
    """The music of a spec with inline beats and no `music:`: the style's bed and tempo."""
    return music_for(spec.style, spec.brand.name)


def inline_plan(spec: Spec) -> BeatPlan | None:
    """The plan a spec carries inline (music defaults from the style), or None."""
    if spec.beats is None:
        return None
    return BeatPlan(music=spec.music or default_music(spec), beats=spec.beats)
