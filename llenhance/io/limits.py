"""Pillow's pixel limit and ours: how large an image may be before a byte of it is decoded.

:data:`MAX_MEGAPIXELS` is checked against the size in the file header (as libvips or Pillow
reads it), before pixels are decoded. Pillow has its own check with a module-global limit
(``Image.MAX_IMAGE_PIXELS``: it warns above one limit and refuses above twice that) which also
guards allocations inside ``Image.open`` (e.g. GIF frame disposal) that happen before we see the
size. While any of our reads is inside Pillow that global is set to our limit (so our setting
governs, in both directions) and restored when the last one finishes. Pillow's warning (between
1x and 2x the limit) is silenced because we then refuse the image ourselves; above 2x Pillow
raises and :func:`bomb_error` translates its error.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
import warnings
from collections.abc import Iterator

from PIL import Image, PngImagePlugin

from llenhance.errors import UserError

_DEFAULT_MAX_MEGAPIXELS = 200


def _megapixels_from_env(default: int = _DEFAULT_MAX_MEGAPIXELS) -> int:
    raw = os.environ.get("LLENHANCE_MAX_MEGAPIXELS", "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        warnings.warn(
            f"LLENHANCE_MAX_MEGAPIXELS={raw!r} is not a positive integer; using {default}",
            stacklevel=2,
        )
        return default
    return value


#: Largest image (width * height, in millions of pixels) that :func:`read_image` will decode.
#: Checked against the size declared in the file header before any pixel is decoded.
#: Set with the environment variable ``LLENHANCE_MAX_MEGAPIXELS`` (read at import time).
MAX_MEGAPIXELS: int = _megapixels_from_env()

_bomb_lock = threading.Lock()
_bomb_users = 0
_bomb_saved: int | None = None
_BOMB_MESSAGE = (
    "exceeds the limit of {limit} megapixels (decompression bomb protection; "
    "raise LLENHANCE_MAX_MEGAPIXELS to allow it)"
)


MAX_METADATA_BYTES = 64 * 1024 * 1024
"""Largest decompressed PNG metadata chunk (ICC profile, EXIF, text) read."""
_text_saved = 0


@contextlib.contextmanager
def pillow_limit(pixels: int) -> Iterator[None]:
    """Pillow's pixel limit set to ``pixels`` (and its PNG metadata limit raised) while inside."""
    global _bomb_users, _bomb_saved, _text_saved
    with _bomb_lock:
        if _bomb_users == 0:
            _bomb_saved = Image.MAX_IMAGE_PIXELS
            _text_saved = PngImagePlugin.MAX_TEXT_CHUNK
        Image.MAX_IMAGE_PIXELS = pixels
        # an ICC profile or EXIF block of a valid photo may be megabytes (Pillow stops at 1 MB)
        PngImagePlugin.MAX_TEXT_CHUNK = max(_text_saved, MAX_METADATA_BYTES)
        _bomb_users += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        with _bomb_lock:
            _bomb_users -= 1
            if _bomb_users == 0:
                Image.MAX_IMAGE_PIXELS = _bomb_saved
                PngImagePlugin.MAX_TEXT_CHUNK = _text_saved


def check_size(name: str, width: int, height: int, limit: int) -> None:
    if width * height > limit * 1_000_000:
        raise UserError(
            f"{name}: image of {width}x{height} pixels {_BOMB_MESSAGE.format(limit=limit)}"
        )


def bomb_error(name: str, head: bytes, error: Exception, limit: int) -> UserError:
    """Pillow refused the size before we saw it: say as much about the size as we can."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return UserError(
            f"{name}: image of {width}x{height} pixels {_BOMB_MESSAGE.format(limit=limit)}"
        )
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "this size"
    return UserError(f"{name}: image of {size} {_BOMB_MESSAGE.format(limit=limit)}")
