"""The seed's API on top of specs: `POST /api/generate` writes specs/<slug>.yaml (a spec like
one a person writes, validated as `adspec validate` would), `POST /api/upload` keeps images
under specs/uploads/ by content hash (an asset id is `<sha256 prefix>.<ext>`), usable as
`reference_assets` (the first becomes the spec's `product` reference image)."""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import Settings
from ..errors import SpecError
from ..paths import SPEC_SUFFIXES

UPLOADS = "uploads"
ASSET_ID_RE = re.compile(r"^[0-9a-f]{16}\.(png|jpg|webp)$")
MAX_SLUG = 40


class GenerateRequest(BaseModel):
    """The seed's request: a prompt and a few optional fields (resolution and style too)."""

    # strict, as the spec's own fields: `"duration": true` is refused, not read as 1
    model_config = ConfigDict(extra="forbid", strict=True)
    prompt: str = Field(min_length=1, max_length=4000, description="what the ad is about")
    title: str | None = Field(None, min_length=1, max_length=200, description="a name for people; names the spec")
    model: str | None = Field(None, max_length=80, description="video model name (see `adspec models`)")
    duration: int | None = Field(None, ge=5, le=180, description="seconds")
    aspect_ratio: Literal["16:9", "9:16", "1:1", "4:5"] | None = None
    resolution: Literal["360p", "720p", "1080p"] | None = None
    style: str | None = Field(None, max_length=200)
    reference_assets: list[str] = Field(default_factory=list, max_length=8,
                                        description="asset ids from POST /api/upload; the first is the product image")

    @field_validator("prompt", "title", "style")
    @classmethod
    def _words(cls, value: str | None) -> str | None:
        """Words, not only spaces (the title is made from the prompt's first line), and no control
        characters but line breaks and tabs (a NUL titled an ad)."""
        if value is None:
            return value
        if not value.strip():
            raise ValueError("must hold words, not only spaces")
        bad = next((ch for ch in value if unicodedata.category(ch) == "Cc" and ch not in "\n\t"), None)
        if bad is not None:
            raise ValueError(f"holds the control character U+{ord(bad):04X}; write plain text")
        return value


class GenerateResponse(BaseModel):
    video_id: str
    status: str


class StatusResponse(BaseModel):
    video_id: str
    status: str = Field(description="queued | running | done | waiting (for approval) | failed | not built, or partial | interrupted | ignored | cleaned as `adspec status` says")
    progress: float = Field(description="percent of the build's tasks done, 0-100")
    current_phase: str | None
    animatic_urls: list[str] = Field(description="the storyboard frames built so far, in beat order")
    stitched_video_url: str | None
    final_video_url: str | None
    current_chunk_index: int | None = Field(description="0-based, as in the seed: the chunk being made now "
                                                    "(total_chunks - 1 once every chunk is done; null: no chunks)")
    total_chunks: int
    cost_usd: float = Field(description="USD paid by this ad's build (the cache's savings are not counted)")
    error: str | None


class UploadResponse(BaseModel):
    asset_ids: list[str]


def slugify(text: str) -> str:
    """'TrailRunner X: launch!' -> 'trailrunner-x-launch' (an ad name: lower case, digits, '-')."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = re.findall(r"[a-z0-9]+", ascii_text)
    slug = ""
    for w in words:
        nxt = f"{slug}-{w}" if slug else w
        if len(nxt) > MAX_SLUG:
            break
        slug = nxt
    return slug or "ad"


_names_lock = threading.Lock()


def spec_yaml(req: GenerateRequest, assets: dict[str, str]) -> str:
    import yaml

    spec: dict[str, object] = {"title": req.title or req.prompt.strip().split("\n")[0][:80], "prompt": req.prompt}
    for key in ("duration", "aspect_ratio", "resolution", "style"):
        value = getattr(req, key)
        if value is not None:
            spec[key] = value
    if req.model:
        spec["models"] = {"video": req.model}
    if assets:
        spec["assets"] = assets
    header = ("# yaml-language-server: $schema=../schema/spec.schema.json\n"  # as `adspec init` writes it
              "# Written by `adspec serve` (POST /api/generate); yours to edit like any spec.\n")
    return header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=88)


_FIELD_OF = {"models.video": "model", "assets": "reference_assets"}


def api_field(field: str | None) -> str | None:
    """The request field a spec field came from (models.video -> model)."""
    if field is None:
        return None
    for spec_field, api in _FIELD_OF.items():
        if field == spec_field or field.startswith(spec_field + "."):
            return api
    return field


def write_spec(settings: Settings, req: GenerateRequest) -> tuple[str, Path]:
    """Write specs/<slug>.yaml for `req` (a new name: never over another spec) after checking it
    as `adspec validate` does. Raises SpecError naming the request's field."""
    from ..fsutil import write_text_atomic
    from ..loader import parse_spec_text

    assets: dict[str, str] = {}
    for i, asset_id in enumerate(req.reference_assets):
        if not ASSET_ID_RE.match(asset_id) or not (settings.specs_dir / UPLOADS / asset_id).is_file():
            raise SpecError("request", None, f"reference_assets.{i}",
                            f"unknown asset id '{asset_id[:80]}' (upload it first: POST /api/upload)")
        assets["product" if i == 0 else f"reference-{i + 1}"] = f"{UPLOADS}/{asset_id}"
    text = spec_yaml(req, assets)
    base = slugify(req.title or req.prompt)
    settings.specs_dir.mkdir(parents=True, exist_ok=True)
    with _names_lock:
        n, slug = 1, base
        while any((settings.specs_dir / f"{slug}{suffix}").exists() for suffix in SPEC_SUFFIXES) or \
                (settings.build_dir / slug).exists():
            n += 1
            slug = f"{base}-{n}"
        path = settings.specs_dir / f"{slug}.yaml"
        _, errors = parse_spec_text(text, f"specs/{slug}.yaml", spec_path=path)
        if errors:
            e = errors[0]
            raise SpecError("request", None, api_field(e.field), e.message)
        write_text_atomic(path, text)
    return slug, path


def store_upload(settings: Settings, data: bytes, suffix: str) -> str:
    """Keep an upload as specs/uploads/<sha256[:16]><suffix>; the same image twice is one asset."""
    from ..fsutil import write_bytes_atomic

    asset_id = hashlib.sha256(data).hexdigest()[:16] + suffix
    target = settings.specs_dir / UPLOADS / asset_id
    if not target.exists():
        write_bytes_atomic(target, data)
    return asset_id
