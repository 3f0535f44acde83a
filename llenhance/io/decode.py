"""Decoding an image file into native pixels: which decoder reads it, and the errors a user can
cause before either does.

* libvips (:mod:`llenhance.io.decode_vips`) decodes every file of a format it has a loader for
  (PNG, JPEG, TIFF, WebP, GIF: :data:`~llenhance.io.formats.VIPS_LOADED`), small photos and
  large alike, a band of rows at a time, so a photo is never whole in memory unless a caller
  asks for all its rows.
* Pillow (:mod:`llenhance.io.decode_pillow`) decodes the rest whole: BMP, for which libvips has
  no loader, other formats Pillow knows, and files of libvips's formats whose header libvips
  cannot read (Pillow decodes them where it can, else says what is wrong).
* Every problem a user can cause (missing, empty, truncated, corrupt, oversized or unsupported
  files) raises :class:`~llenhance.errors.UserError` with one line that names the file; the
  megapixel limit is checked against the header before a pixel is decoded.

Limitations:

* Only the first frame of multi-frame files (animated GIF/WebP, multi-page TIFF) is read.
* An embedded ICC profile is kept only if it is an RGB profile. CMYK is converted to sRGB
  through its profile where it has one, else by Pillow's naive formula; grey profiles are
  dropped because the output is RGB.

:func:`decode` hands the pixels to a caller's function while the decoder is open;
:mod:`llenhance.io.read` turns them into an array or a spool.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from llenhance.errors import UserError, one_line
from llenhance.io import decode_pillow, decode_vips, limits
from llenhance.io.decode_vips import VipsDecoder
from llenhance.io.formats import identify
from llenhance.io.metadata import ImageInfo
from llenhance.pixels import to_native

T = TypeVar("T")

Pixels = Image.Image | VipsDecoder
"""Decoded, not yet oriented pixels: a libvips decoder handing out rows top to bottom, or a
loaded Pillow image in a :func:`~llenhance.io.decode_pillow.plain_mode` mode."""


def _head(path: Path) -> bytes:
    """The file's first 64 bytes; :class:`UserError` if it cannot be read or is empty."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        raise UserError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a directory, not an image file") from None
    except PermissionError:
        raise UserError(f"{name}: permission denied") from None
    except OSError as e:
        raise UserError(f"{name}: cannot read file ({one_line(e.strerror or e)})") from None
    if not head:
        raise UserError(f"{name}: file is empty (0 bytes)")
    return head


def decode(path: str | os.PathLike[str], consume: Callable[[Pixels, int, ImageInfo], T]) -> T:
    """Decode ``path`` and hand (pixels, EXIF orientation, info without alpha) to ``consume``
    while the decoder is open; return what it returns.

    Every problem with the file becomes a :class:`UserError` (those met while ``consume`` asks
    a libvips decoder for rows too); other errors raised by ``consume`` pass through untouched.
    """
    path = Path(path)
    head = _head(path)
    limit = limits.MAX_MEGAPIXELS
    fmt = identify(head)
    if fmt is not None and fmt.vips_loader:
        try:
            decoder = decode_vips.open_file(path, fmt, limit)
        except MemoryError:
            raise UserError(f"{path}: not enough memory to decode this image") from None
        if decoder is not None:
            try:
                return consume(decoder, decoder.orientation, decoder.info)
            finally:
                decoder.close()
    return decode_pillow.decode(path, head, limit, consume)


def header_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) as stored, from the file's header by the decoder :func:`decode` would
    use, without decoding pixels; None if unreadable."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            fmt = identify(f.read(64))
    except OSError:
        return None
    size = decode_vips.header_size(path, fmt) if fmt is not None and fmt.vips_loader else None
    return size if size is not None else decode_pillow.header_size(path)


def stored_size(pixels: Pixels) -> tuple[int, int]:
    """(height, width) of decoded pixels, before orientation."""
    return pixels.height, pixels.width


def stored_rows(pixels: Pixels, top: int, bottom: int) -> np.ndarray:
    """Rows [top, bottom) of the stored (not yet oriented) pixels as native data; only those
    rows of a Pillow image are converted."""
    if isinstance(pixels, VipsDecoder):
        return pixels.rows(top, bottom)
    if (top, bottom) == (0, pixels.height):
        return to_native(np.asarray(pixels))
    return to_native(np.asarray(pixels.crop((0, top, pixels.width, bottom))))
