"""The model registry: data in providers/models.yaml, read once, looked up by name or alias."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from .data_yaml import load_data
from .recipes import OFFLINE

KINDS = ("image", "video", "music", "voice")


@dataclass(frozen=True)
class VideoReferences:
    """How a video model takes reference images with a chunk (models.yaml `references:`): the
    input field is the one whose template is "{references}"; the rest are the conditions under
    which the provider honours them. Where a condition does not hold, none are sent."""

    max: int  # at most this many images in one request
    aspect_ratios: tuple[str, ...] = ()  # only at these aspect ratios (empty: any)
    clip_lengths: tuple[int, ...] = ()  # only with clips of these lengths (empty: any)
    resolutions: tuple[str, ...] = ()  # only at these of the model's own resolution values (empty: any)
    first_frame: bool = True  # whether the start image is still sent with them (false: reference-to-video)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    provider: str
    slug: str | None = None
    version: str | None = None
    aliases: tuple[str, ...] = ()
    clip_lengths: tuple[int, ...] = ()
    fps: int = 24
    aspect_ratios: tuple[str, ...] = ()
    native_audio: bool = False
    uses_reference: bool = False
    max_references: int = 0  # reference images it takes in one list field ({references}); 0: see uses_reference
    max_seconds: int | None = None
    price: dict[str, Any] = field(default_factory=dict)
    # live input shaping (see models.yaml header): the exact JSON input template, which of its
    # fields carry local files, spec resolution -> model value, clip lengths per model value
    input: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    resolutions: dict[str, str] = field(default_factory=dict)
    clip_lengths_at: dict[str, tuple[int, ...]] = field(default_factory=dict)
    output: str = "single"  # "single" (one URI) or "list" ([URI])
    references: VideoReferences | None = None  # video models that take reference images (issue 18)
    voices: tuple[str, ...] = ()  # voice models: the voice names `voice.name` may use
    default_voice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # anything else in the entry

    @property
    def ref(self) -> str:
        """The provider reference: "owner/name" or "owner/name:version"."""
        if self.slug is None:
            return self.name
        return f"{self.slug}:{self.version}" if self.version else self.slug


@dataclass(frozen=True)
class Registry:
    models: dict[str, ModelEntry]
    aliases: dict[str, str]
    planner_default: str
    planner_prices: dict[str, dict[str, Any]]

    def resolve(self, name: str, kind: str) -> ModelEntry:
        """The entry for `name` (or an alias) of `kind`; KeyError if there is none."""
        canonical = self.aliases.get(name, name)
        entry = self.models.get(canonical)
        if entry is None or entry.kind != kind:
            raise KeyError(name)
        return entry

    def names(self, kind: str) -> list[str]:
        return sorted(n for n, e in self.models.items() if e.kind == kind)


_KNOWN = {f for f in ModelEntry.__dataclass_fields__} - {"name", "extra"}


def _entry(name: str, raw: dict[str, Any]) -> ModelEntry:
    known = {k: v for k, v in raw.items() if k in _KNOWN}
    extra = {k: v for k, v in raw.items() if k not in _KNOWN}
    for key in ("aliases", "clip_lengths", "aspect_ratios", "files", "voices"):
        if key in known:
            known[key] = tuple(known[key])
    if "clip_lengths_at" in known:
        known["clip_lengths_at"] = {str(k): tuple(v) for k, v in known["clip_lengths_at"].items()}
    if "references" in known:
        rule: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in known["references"].items()}
        rule.pop("source", None)  # where the rule was read: for people, not for the code
        try:
            known["references"] = VideoReferences(**rule)
        except TypeError as e:
            raise ValueError(f"models.yaml: {name}: references: {e}") from None
    entry = ModelEntry(name=name, extra=extra, **known)
    _check_entry(entry)
    return entry


def parse_registry(data: dict[str, Any]) -> Registry:
    models = {name: _entry(name, raw) for name, raw in data["models"].items()}
    aliases = {a: e.name for e in models.values() for a in e.aliases}
    planners = data.get("planners", {})
    return Registry(
        models=models,
        aliases=aliases,
        planner_default=planners.get("default", "gpt-4.1"),
        planner_prices=planners.get("prices", {}),
    )


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    text = resources.files("adspec.providers").joinpath("models.yaml").read_text(encoding="utf-8")
    return parse_registry(load_data(text))


# ---- input shaping ----------------------------------------------------------------------------

PLACEHOLDERS = {
    "image": {"prompt", "aspect_ratio", "seed", "width", "height", "reference", "references"},
    "video": {"prompt", "first_frame", "seconds", "resolution", "aspect_ratio", "seed", "fps",
              "frames", "native_audio", "references"},
    "music": {"prompt", "seconds", "seed", "bpm"},
    "voice": {"text", "voice", "speed"},
}
FILE_PLACEHOLDERS = {"reference", "references", "first_frame"}
PRICE_RULES = ("per_image", "per_second", "per_run", "per_predict_second", "per_1k_chars")
_PH = re.compile(r"^\{([a-z_]+)\}$")


def _placeholder(value: Any) -> str | None:
    if isinstance(value, str):
        m = _PH.match(value)
        if m:
            return m.group(1)
    return None


def _check_entry(e: ModelEntry) -> None:
    """Reject a registry entry that could only fail at a paid call."""
    where = f"models.yaml: {e.name}"
    if e.kind not in KINDS:
        raise ValueError(f"{where}: kind {e.kind!r} is not one of {KINDS}")
    rules = [r for r in PRICE_RULES if r in e.price]
    if e.provider != OFFLINE and len(rules) != 1:
        raise ValueError(f"{where}: price needs exactly one of {PRICE_RULES}, has {rules}")
    if e.price and e.provider != OFFLINE and "checked" not in e.price:
        raise ValueError(f"{where}: price needs a `checked:` date")
    for fname, value in e.input.items():
        ph = _placeholder(value)
        if ph is not None and ph not in PLACEHOLDERS[e.kind]:
            raise ValueError(f"{where}: input.{fname} uses unknown placeholder {{{ph}}}")
        if ph in FILE_PLACEHOLDERS and fname not in e.files:
            raise ValueError(f"{where}: input.{fname} takes a file but is not listed in `files`")
    for fname in e.files:
        if fname not in e.input:
            raise ValueError(f"{where}: files lists {fname!r}, which is not an input field")
    if e.kind == "video" and e.provider != OFFLINE and not e.clip_lengths:
        raise ValueError(f"{where}: a video model needs clip_lengths")
    if e.output not in ("single", "list", "bytes"):
        raise ValueError(f"{where}: output must be 'single', 'list' or 'bytes'")
    takes_refs = any(_placeholder(v) == "references" for v in e.input.values())
    if e.kind == "video" and takes_refs != (e.references is not None):
        raise ValueError(f"{where}: a video model takes reference images with both a `references:` rule and "
                         "an input field of \"{references}\", or with neither")
    if e.references is not None and (e.kind != "video" or e.references.max < 1):
        raise ValueError(f"{where}: `references:` is for video models, with `max` of 1 or more")
    if e.kind == "voice" and (not e.voices or (e.default_voice or e.voices[0]) not in e.voices):
        raise ValueError(f"{where}: a voice model needs `voices` (and its default_voice among them)")


def model_resolution(entry: ModelEntry, resolution: str, seconds: int | None = None) -> str | None:
    """The model's own resolution value for a spec resolution ("720p"/"1080p"), honouring
    `clip_lengths_at` (e.g. Hailuo's 1080p allows only 6 s: a 10 s clip falls back to 768p)."""
    if not entry.resolutions:
        return None
    order = list(entry.resolutions)  # spec resolutions, lowest first as written
    idx = order.index(resolution) if resolution in order else len(order) - 1
    for spec_res in reversed(order[: idx + 1]):
        value = entry.resolutions[spec_res]
        allowed = entry.clip_lengths_at.get(value)
        if seconds is None or allowed is None or seconds in allowed:
            return value
    return entry.resolutions[order[0]]


def spec_resolution_for(width: int, height: int) -> str:
    """"1080p" when the short side is at least 1080 pixels, else "720p"."""
    return "1080p" if min(width, height) >= 1080 else "720p"


def shape_input(entry: ModelEntry, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fill the entry's input template. Returns (params, files): params are the JSON fields sent
    as they are; files maps input field -> the file value (e.g. a Path) from `values`. A field
    whose placeholder value is None is left out (the model's default applies)."""
    params: dict[str, Any] = {}
    files: dict[str, Any] = {}
    for fname, template in entry.input.items():
        ph = _placeholder(template)
        if ph is None:
            params[fname] = template
            continue
        value = values.get(ph)
        if value is None:
            continue
        if fname in entry.files and isinstance(value, (list, tuple)):
            if not value:
                continue
            for i, item in enumerate(value):  # a list of files: `field[i]` (see list_field)
                files[f"{fname}[{i}]"] = item
        elif fname in entry.files:
            files[fname] = value
        else:
            params[fname] = value
    return params, files


def list_field(name: str) -> tuple[str, int] | None:
    """("input_images", 1) for the recipe file name "input_images[1]" (a list input), else None."""
    if name.endswith("]") and "[" in name:
        base, _, index = name[:-1].partition("[")
        if index.isdigit():
            return base, int(index)
    return None


def reference_capacity(entry: ModelEntry) -> int:
    """How many reference images an image model takes with a request (0: none)."""
    return entry.max_references or (1 if entry.uses_reference else 0)


def reference_model(registry: "Registry", count: int, provider: str) -> ModelEntry | None:
    """The cheapest image model of `provider` that takes `count` reference images (data: the
    registry's `uses_reference` / `max_references` and per-image prices), or None."""
    able = [e for e in registry.models.values()
            if e.kind == "image" and e.provider == provider and reference_capacity(e) >= count]
    able.sort(key=lambda e: (float(e.price.get("per_image", 1e9)) if isinstance(e.price.get("per_image"), (int, float))
                             else 1e9, e.name))
    return able[0] if able else None


def reference_problem(entry: ModelEntry, count: int, aspect_ratio: str, seconds: int,
                      resolution: str | None) -> str | None:
    """Why one chunk of video model `entry` cannot carry `count` reference images (a phrase that
    follows the model's name), or None when it can. `resolution`: the model's own value."""
    rule = entry.references
    if rule is None:
        return "takes no reference images"
    if count > rule.max:
        return f"takes at most {rule.max} reference images (the beat shows {count})"
    if rule.aspect_ratios and aspect_ratio not in rule.aspect_ratios:
        return f"takes them only at {' or '.join(rule.aspect_ratios)} (this ad is {aspect_ratio})"
    if rule.clip_lengths and seconds not in rule.clip_lengths:
        lengths = " or ".join(str(c) for c in rule.clip_lengths)
        return f"takes them only with clips of {lengths} s (this one is {seconds} s)"
    if rule.resolutions and resolution not in rule.resolutions:
        return f"takes them only at {' or '.join(rule.resolutions)} (this chunk is {resolution})"
    return None


@dataclass(frozen=True)
class ChunkReferences:
    """Which chunks of a beat carry the reference images of what it shows, and what to tell the
    user about it (one line each, or None)."""

    chunks: tuple[int, ...] = ()
    why_not: str | None = None  # why chunks that would carry them do not (a condition of the model fails)
    note: str | None = None  # what sending them changes (reference-to-video: no start image)


def chunk_references(entry: ModelEntry, names: tuple[str, ...] | list[str], aspect_ratio: str,
                     clips: tuple[int, ...] | list[int], spec_resolution: str, own_still: bool = False) -> ChunkReferences:
    """The chunks of a beat (clip lengths `clips`) that video model `entry` is sent the beat's
    reference images with (`names`: what it shows). Pure: the registry's `references:` rule only.

    A model that still takes the start image with them gets them with every chunk. One that does
    not (reference-to-video) gets them with the beat's first chunk only: the chunks after it must
    start from the last frame of the one before, or the beat would cut at every clip; and none
    when the beat starts from your own still (`own_still`: it is what the beat is made from)."""
    rule = entry.references
    if rule is None or not names or not clips:
        return ChunkReferences()
    if own_still and not rule.first_frame:
        return ChunkReferences(why_not=f"its video is made without its reference images ({', '.join(names)}): it starts "
                                       f"from your own still (`image:`), and {entry.name} takes no start image with them")
    candidates = range(len(clips)) if rule.first_frame else range(1)
    chunks: list[int] = []
    missed: list[int] = []
    problem: str | None = None
    for k in candidates:
        why = reference_problem(entry, len(names), aspect_ratio, clips[k],
                                model_resolution(entry, spec_resolution, clips[k]))
        if why is None:
            chunks.append(k)
        else:
            missed.append(k)
            problem = problem or why
    why_not = None
    if missed:
        which = "its video is" if not chunks else \
            ("chunks " if len(missed) > 1 else "chunk ") + ", ".join(str(k + 1) for k in missed) + \
            f" of {len(clips)} {'are' if len(missed) > 1 else 'is'}"
        why_not = f"{which} made without its reference images ({', '.join(names)}): {entry.name} {problem}"
    note = None
    if chunks and not rule.first_frame:
        note = (f"its first chunk is sent its reference images ({', '.join(names)}) and starts from them, not from "
                f"the storyboard: {entry.name} takes no start image with them")
    return ChunkReferences(tuple(chunks), why_not, note)


# ---- prices -----------------------------------------------------------------------------------


def _rate(rule: Any, resolution: str | None) -> float:
    if isinstance(rule, dict):
        if resolution is not None and resolution in rule:
            return float(rule[resolution])
        return float(max(rule.values()))  # unknown resolution: the dearest, never under-estimate
    return float(rule)


def price_for(
    entry: ModelEntry,
    seconds: float | None = None,
    native_audio: bool = False,
    *,
    resolution: str | None = None,
    predict_time: float | None = None,
    chars: int | None = None,
) -> float:
    """USD for one call of `entry`. `seconds` is the output length (video/music); `resolution`
    the model's own resolution value (see model_resolution); `predict_time` the provider's
    metrics.predict_time for hardware-billed models (else an estimate from the output length)."""
    p = entry.price
    if "per_1k_chars" in p:  # speech: billed by the characters of the text sent (`chars`)
        return float(p["per_1k_chars"]) * float(chars or 0) / 1000.0
    if "per_image" in p:
        return float(p["per_image"])
    if "per_run" in p:
        return _rate(p["per_run"], resolution)
    if "per_second" in p:
        rule = p["per_second_audio"] if native_audio and "per_second_audio" in p else p["per_second"]
        return _rate(rule, resolution) * float(seconds or 0)
    if "per_predict_second" in p:
        if predict_time is None:
            predict_time = float(p.get("estimate_predict_seconds", 1.0)) * float(seconds or 0)
        return float(p["per_predict_second"]) * float(predict_time)
    return 0.0


def planner_price(model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
    """USD for one chat completion; unknown models are priced like the default planner."""
    reg = load_registry()
    prices = reg.planner_prices.get(model) or reg.planner_prices.get(reg.planner_default) or {}
    if not prices:
        return 0.0
    fresh = max(0, prompt_tokens - cached_tokens)
    cached_rate = prices.get("cached_input", prices.get("input", 0.0))
    return (fresh * prices.get("input", 0.0) + cached_tokens * cached_rate
            + completion_tokens * prices.get("output", 0.0)) / 1_000_000


def _describe_price(p: dict[str, Any]) -> str:
    def fmt(rule: Any) -> str:
        if isinstance(rule, dict):
            return ", ".join(f"{k} ${float(v):g}" for k, v in rule.items())
        return f"${float(rule):g}"

    if "per_image" in p:
        return f"{fmt(p['per_image'])}/image"
    if "per_1k_chars" in p:
        return f"{fmt(p['per_1k_chars'])} per 1k characters"
    if "per_run" in p:
        return f"{fmt(p['per_run'])} per run"
    if "per_second" in p:
        text = f"{fmt(p['per_second'])}/s"
        if "per_second_audio" in p:
            text += f" ({fmt(p['per_second_audio'])}/s with audio)"
        return text
    if "per_predict_second" in p:
        return f"{fmt(p['per_predict_second'])}/s of compute"
    return "free"


def describe_references(entry: ModelEntry) -> str:
    """What reference images a model takes, for `adspec models`: "" for none."""
    rule = entry.references
    if rule is not None:
        only = [", ".join(rule.aspect_ratios), " or ".join(f"{c} s" for c in rule.clip_lengths), ", ".join(rule.resolutions)]
        text = f"up to {rule.max}" + (f" ({'; '.join(x for x in only if x)} only)" if any(only) else "")
        return text + ("" if rule.first_frame else ", without the start image")
    takes = reference_capacity(entry) if entry.kind == "image" else 0
    return f"up to {takes}" if takes else ""


def models_table() -> list[dict[str, Any]]:
    """One row per model and per known planner, for `adspec models`."""
    reg = load_registry()
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        for name in reg.names(kind):
            e = reg.models[name]
            rows.append({
                "name": name,
                "kind": kind,
                "provider": e.provider,
                "ref": e.ref,
                "aliases": ", ".join(e.aliases),
                "clip_lengths": ", ".join(str(c) for c in e.clip_lengths),
                "aspect_ratios": ", ".join(e.aspect_ratios),
                "native_audio": e.native_audio,
                "voices": ", ".join(e.voices),
                "references": describe_references(e),
                "price": _describe_price(e.price),
                "verified": bool(e.price.get("verified", True)),
                "checked": e.price.get("checked", ""),
            })
    for name, p in sorted(reg.planner_prices.items()):
        rows.append({
            "name": name + (" (default)" if name == reg.planner_default else ""),
            "kind": "planner",
            "provider": "openai",
            "ref": name,
            "aliases": "",
            "clip_lengths": "",
            "aspect_ratios": "",
            "native_audio": False,
            "voices": "",
            "references": "",
            "price": f"${p.get('input', 0):g} in / ${p.get('output', 0):g} out per 1M tokens",
            "verified": True,
            "checked": p.get("checked", ""),
        })
    return rows
