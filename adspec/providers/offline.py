"""The offline media provider: a free, local render of the same plan (the animatic).

Storyboards are drawn with Pillow, chunks are camera moves over their first frame (ffmpeg
zoompan), music is synthesised with numpy. Recipes are pure and name every value that changes
the output (and nothing else: not the ad, the beat id or the chunk index, so identical beats are
shared); `run` renders from the recipe alone.

Bump a kind's `_VERSIONS` entry whenever its renderer's output changes, so old cache entries are
not reused for a different picture.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import media
from ..errors import ProviderError
from ..hashing import sha256_file
from ..images import open_image
from ..limits import cpu_slot
from ..recipes import OFFLINE, FileRef, Recipe
from ..render import motion
from ..safe_areas import title_insets
from .base import ImageRequest, Job, MusicRequest, RunResult, VideoRequest, VoiceRequest

# The renderers (numpy, Pillow, ffmpeg-python) are imported where they run: a no-op `doit` only
# builds recipes here, and importing them cost it ~0.1 s (bench/).

# video 2: 1 s GOP; 3: superfast+mbtree x264; 4: BT.709; 5: repeatable x264 threads; 6: moves out and back, bounded
# so the words stay in the safe area. image 2: the words inside the safe area (plus the moves' room).
# voice 2: one eSpeak process per line
_VERSIONS = {"image": 2, "video": 6, "music": 1, "voice": 2}
UPSCALE = 2  # zoompan crops on whole pixels of its input: a 2x input halves the visible jitter
PULL_OUT_CANVAS = 1.25  # pull-out shows the frame inside a blurred surround this much larger
MIN_FPS, MAX_FPS = 16, 30


def _kbps(width: int, height: int) -> int | str:
    from .. import media

    kbps = media.video_kbps(width, height)
    return "crf" if kbps is None else kbps


def _version(kind: str) -> str:
    return f"offline/{kind}/{_VERSIONS[kind]}"


def _input(recipe: Recipe, name: str) -> Path:
    """An input file of the recipe, checked against the hash the key was made from."""
    ref = recipe.files.get(name)
    if ref is None:
        raise ProviderError(f"offline {recipe.kind} recipe has no '{name}' file", retryable=False)
    if not ref.path.is_file() or sha256_file(ref.path) != ref.sha256:
        raise ProviderError(f"{ref.path}: input changed since the recipe was made (its hash differs)", retryable=False)
    return ref.path


class OfflineMedia:
    """MediaProvider for ADSPEC_BACKEND=offline (and whenever no live key is set)."""

    name = OFFLINE

    # ---- recipes (pure) ----------------------------------------------------------------------

    def image_recipe(self, req: ImageRequest) -> Recipe:
        first = req.references[0] if req.references else req.reference
        files = {"reference": FileRef.of(first)} if first else {}
        files.update({f"reference_{i}": FileRef.of(p) for i, p in enumerate(req.references[1:], 1)})
        return Recipe(
            provider=self.name,
            kind="image",
            model=req.model,
            version=_version("image"),
            params={
                "beat_type": req.beat_type,
                "prompt": req.prompt,
                "style": req.style,
                "aspect_ratio": req.aspect_ratio,
                "width": req.width,
                "height": req.height,
                "palette": list(req.palette),
                "brand_name": req.brand_name,
                "tagline": req.tagline,
                "seed": req.seed,
            },
            files=files,
        )

    def video_recipe(self, req: VideoRequest) -> Recipe:
        if not MIN_FPS <= req.fps <= MAX_FPS:
            raise ProviderError(f"offline video: fps {req.fps} is outside {MIN_FPS}..{MAX_FPS}", retryable=False)
        if req.seconds <= 0:
            raise ProviderError(f"offline video: clip length {req.seconds} s must be positive", retryable=False)
        # only the seconds the ad shows are drawn (a beat's last chunk may run past its end), of
        # the same move as the whole clip's: the stitch copies it whole, no frame is thrown away
        shown = {} if req.shown is None or req.shown >= req.seconds else {"shown": max(1, req.shown)}
        return Recipe(
            provider=self.name,
            kind="video",
            model=req.model,
            version=_version("video"),
            params={
                "prompt": req.prompt,
                "move": motion.camera_move(req.prompt),
                "strength": motion.move_strength(req.prompt),
                "seconds": req.seconds,
                **shown,
                "fps": req.fps,
                "width": req.width,
                "height": req.height,
                "audio": bool(req.native_audio),
                # the encoder's bitrate (ADSPEC_VIDEO_KBPS): another one is another clip
                "kbps": _kbps(req.width, req.height),
            },
            files={"first_frame": FileRef.of(req.first_frame)},
        )

    def music_recipe(self, req: MusicRequest) -> Recipe:
        return Recipe(
            provider=self.name,
            kind="music",
            model=req.model,
            version=_version("music"),
            params={"prompt": req.prompt, "bpm": req.bpm, "seconds": req.seconds, "seed": req.seed},
        )

    def voice_recipe(self, req: VoiceRequest) -> Recipe:
        """eSpeak NG speaks every voice model's lines offline: the voice is the model's own when
        it is an eSpeak voice, else one of the same register, in the line's language where eSpeak
        has a voice for it (see render.speech.espeak_voice)."""
        from ..registry import load_registry
        from ..render.speech import espeak_voice

        offline = load_registry().resolve("espeak", "voice")
        return Recipe(
            provider=self.name,
            kind="voice",
            model=req.model,
            version=_version("voice"),
            params={"text": req.text, "voice": espeak_voice(req.voice, offline.voices, req.language),
                    "speed": req.speed},
        )

    # ---- rendering -----------------------------------------------------------------------------

    def run(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        """Render `recipe` into `out` from its params and files alone, on one core."""
        with cpu_slot():
            return self._render(recipe, job, out)

    def _render(self, recipe: Recipe, job: Job, out: Path) -> RunResult:
        if recipe.provider != self.name:
            raise ProviderError(f"offline provider cannot run a {recipe.provider} recipe", retryable=False)
        job.progress("rendering")
        out = Path(out)
        if recipe.kind == "image":
            self._image(recipe, out)
        elif recipe.kind == "video":
            self._video(recipe, out)
        elif recipe.kind == "music":
            from ..render.music import (
                render_music,  # start-up time: numpy synthesis only when asked
            )

            p = recipe.params
            render_music(out, seconds=p["seconds"], bpm=p["bpm"], prompt=p["prompt"], seed=p["seed"])
        elif recipe.kind == "voice":
            from ..render.speech import speak_to_wav

            p = recipe.params
            speak_to_wav(p["text"], out, voice=p["voice"], speed=float(p["speed"]))
        else:
            raise ProviderError(f"offline provider cannot render a {recipe.kind} recipe", retryable=False)
        return RunResult(job_id=None, cost_usd=0.0, meta={"renderer": recipe.version})

    def _image(self, recipe: Recipe, out: Path) -> None:
        from ..render.storyboard import (
            draw_storyboard,  # start-up time: Pillow drawing only when asked
        )

        p = recipe.params
        ref = _input(recipe, "reference") if "reference" in recipe.files else None
        draw_storyboard(
            out,
            width=p["width"],
            height=p["height"],
            beat_type=p["beat_type"],
            prompt=p["prompt"],
            brand_name=p.get("brand_name"),
            tagline=p.get("tagline"),
            palette=tuple(p.get("palette") or ()),
            reference=ref,
            seed=p["seed"],
            style=f"{p.get('style') or ''} · {p.get('aspect_ratio') or ''}".strip(" ·"),
        )

    def _video(self, recipe: Recipe, out: Path) -> None:
        from PIL import Image, ImageEnhance, ImageFilter, ImageOps

        p = recipe.params
        width, height, fps, seconds = p["width"], p["height"], p["fps"], p["seconds"]
        move = p["move"]
        # the words of an offline storyboard stay inside the safe area all along the move
        strength = motion.max_zoom(move, float(p["strength"]), title_insets(width, height))
        first = _input(recipe, "first_frame")
        frames = int(round(seconds * fps))
        with open_image(first, f"{recipe.kind} first frame") as im:
            frame = ImageOps.exif_transpose(im).convert("RGB")
        if frame.size != (width, height):
            frame = ImageOps.fit(frame, (width, height), Image.Resampling.LANCZOS)
        big = frame.resize((width * UPSCALE, height * UPSCALE), Image.Resampling.BICUBIC)
        base_zoom = 1.0
        if move == "pull-out":
            cw, ch = round(big.width * PULL_OUT_CANVAS / 2) * 2, round(big.height * PULL_OUT_CANVAS / 2) * 2
            surround = frame.resize((cw // 4, ch // 4), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(6))
            surround = ImageEnhance.Brightness(surround).enhance(0.7).resize((cw, ch), Image.Resampling.BICUBIC)
            surround.paste(big, ((cw - big.width) // 2, (ch - big.height) // 2))
            big, base_zoom = surround, cw / big.width
        zoom, x, y = motion.zoompan_exprs(move, frames, strength, base_zoom)
        with tempfile.TemporaryDirectory(prefix=".offline-", dir=out.parent) as tmp:
            # raw pixels (PPM): ffmpeg reads the same RGB as from a PNG, without the ~0.3 s of
            # compressing 2x-upscaled pixels that are read once and removed
            src = Path(tmp) / "still.ppm"
            big.save(src, format="PPM")
            media.camera_clip(src, out, width=width, height=height, fps=fps, seconds=seconds, zoom=zoom, x=x, y=y,
                              with_audio=bool(p.get("audio")), shown=p.get("shown"))
