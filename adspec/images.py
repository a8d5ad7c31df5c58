"""Opening images with a bound on what a decode may cost.

Pillow reads an image's size from its header before decoding a pixel, so a decompression bomb
(400 megapixels in 48 kB) or a 144 megapixel photo (1.2 GB per decode) is refused here from its
header, with one line that says what to do, before it can take gigabytes. Every place adspec
decodes an image goes through `open_image`; `asset_problem` is what `adspec validate` asks of an
asset, so the same images are refused before any build.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from PIL import Image, UnidentifiedImageError

from .errors import MediaError

__all__ = ["MAX_PIXELS", "FORMATS", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "open_image", "asset_problem"]

#: the largest image adspec decodes: a 48 Mpx phone photo or a 45 Mpx camera original fits; one
#: decode of it costs about 400 MB at most (the storyboard's RGBA copy included)
MAX_PIXELS = 50_000_000
#: what an asset may be (Pillow's format names; MPO is the JPEG many phones write)
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP"}
#: the names a user's still (an asset, a logo, a beat's own `image:`) and own footage may have:
#: what validate asks and what the plan step reads, from one place
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv")

# Pillow refuses by itself above twice its limit (DecompressionBombError) and warns between: our
# own check below refuses everything above MAX_PIXELS, so its warning would only be noise.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _too_big(pixels: int, size: tuple[int, int] | None = None) -> str:
    dims = f"{size[0]}x{size[1]}, " if size else ""
    return (f"is {dims}{pixels / 1e6:.0f} megapixels, more than the {MAX_PIXELS // 1_000_000} adspec decodes "
            f"(a decompression bomb, or a photo to scale down, e.g. to 4096 px on its long side)")


def _refusal(e: BaseException) -> str:
    """Why Pillow would not open a file, in words."""
    if isinstance(e, Image.DecompressionBombError):
        m = _BOMB_PIXELS.search(str(e))
        return _too_big(int(m.group(1))) if m else "has too many pixels to decode (a decompression bomb?)"
    if isinstance(e, UnidentifiedImageError):
        return "is not an image (Pillow cannot identify it: is it really a PNG, JPEG or WebP?)"
    return f"is not a readable image ({type(e).__name__}: {' '.join(str(e).split())[:120]})"


@contextmanager
def open_image(path: str | Path | IO[bytes], what: str | None = None) -> Iterator[Image.Image]:
    """`Image.open(path)` with its size checked before any pixel is decoded; MediaError (one
    line naming `what`, else the file) for a file that is no image or one too big to decode."""
    label = what or str(path)
    try:
        im = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"{label}: {_refusal(e)}") from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise MediaError(f"{label}: {_too_big(w * h, (w, h))}")
        yield im


def asset_problem(path: str | Path | IO[bytes]) -> str | None:
    """What is wrong with an asset image, or None: it must be a PNG, JPEG or WebP of at most
    MAX_PIXELS that decodes whole (a truncated file is caught here, not halfway through a build)."""
    try:
        with open_image(path, "image") as im:
            fmt = im.format or "?"
            if fmt not in FORMATS:
                return f"holds a {fmt} image; use {', '.join(sorted(set(FORMATS.values())))}"
            if fmt == "PNG":
                im.verify()  # every chunk's CRC, without decoding the pixels
            else:
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))  # JPEG: decode at 1/8 scale
                im.load()
    except MediaError as e:
        return str(e).removeprefix("image: ")
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        return f"is a damaged image ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
    return None
