"""What a file carries besides its pixels: :class:`ImageInfo`, EXIF orientation and ICC profiles.

Results are written like their input (format, bit depth, alpha, ICC profile, EXIF), and pixels
are turned upright by the EXIF orientation as they are read, so the written EXIF says 1.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from llenhance.io.spool import SpooledImage
from llenhance.io.tiff import LAYOUT_TAGS

_ORIENTATION_TAG = 274


@dataclass
class ImageInfo:
    """Everything needed to write a result back like the input it came from."""

    format: str = "PNG"  # Pillow format name: 'PNG', 'JPEG', 'TIFF', 'WEBP', 'BMP', ...
    bit_depth: int = 8  # 8 or 16 (16 also for float sources)
    # float32 HxW in [0, 1]; from spool_image, an HxWx1 SpooledImage of the file's own levels
    alpha: np.ndarray | SpooledImage | None = None
    icc_profile: bytes | None = None  # RGB ICC profile, None if absent or not RGB
    exif: bytes | None = None  # EXIF ("Exif\0\0" + TIFF data), Orientation reset to 1


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an HxW or HxWxC array, like ImageOps.exif_transpose."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = np.swapaxes(arr, 0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = np.swapaxes(arr, 0, 1)[::-1, ::-1]
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    return np.ascontiguousarray(arr)


def parse_exif(
    data: bytes | None = None,
    *,
    tiff: str | os.PathLike[str] | None = None,
    xmp: bytes | str | None = None,
) -> Image.Exif:
    """EXIF as Pillow's ``getexif`` gives it, without decoding a pixel: parsed from an EXIF block
    (``data``, with or without its "Exif\\0\\0" prefix) or read from a TIFF file's first
    directory (``tiff``: all its tags, layout included), with XMP's ``tiff:Orientation`` where
    the EXIF has no Orientation. Raises on malformed data."""
    exif = Image.Exif()
    if data:
        exif.load(data)
    elif tiff is not None:
        with open(tiff, "rb") as f:
            head = f.read(16)
            exif.endian = "<" if head[:2] == b"II" else ">"
            exif.bigtiff = head[2:4] in (b"\x2b\x00", b"\x00\x2b")
            offset = head[8:16] if exif.bigtiff else head[4:8]
            exif.load_from_fp(f, int.from_bytes(offset, "little" if exif.endian == "<" else "big"))
    if _ORIENTATION_TAG not in exif and xmp:
        pattern = rb'tiff:Orientation(="|>)([0-9])'
        found = re.search(pattern, xmp if isinstance(xmp, bytes) else xmp.encode())
        if found:
            exif[_ORIENTATION_TAG] = int(found[2])
    return exif


def exif_metadata(load: Callable[[], Image.Exif], *, tiff: bool) -> tuple[int, bytes | None]:
    """(orientation, EXIF bytes with Orientation reset to 1) of the EXIF ``load`` returns; a
    TIFF's layout tags are left out. Bad EXIF is ignored, not fatal: (1, None)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; we just drop it
            exif = load()
        orientation = exif.get(_ORIENTATION_TAG, 1)
        orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
        if tiff:  # a TIFF's first directory holds its layout too
            for tag in list(exif.keys()):
                if tag in LAYOUT_TAGS:
                    del exif[tag]
        if _ORIENTATION_TAG in exif:
            exif[_ORIENTATION_TAG] = 1
        data = exif.tobytes() if len(exif) else None
    except Exception:  # malformed metadata must not block reading the pixels
        return 1, None
    return orientation, data


def rgb_icc(icc: object) -> bytes | None:
    """Keep an ICC profile only if it describes RGB data (header colour space 'RGB ')."""
    if isinstance(icc, bytes) and len(icc) >= 128 and icc[16:20] == b"RGB ":
        return icc
    return None


def upright_corner(orientation: int, top: int, bottom: int, height: int) -> tuple[int, int]:
    """(row, column) in the upright image of the top-left corner of stored rows [top, bottom)
    once oriented (the stored image is ``height`` rows tall)."""
    if orientation in (1, 2):
        return top, 0
    if orientation in (3, 4):
        return height - bottom, 0
    if orientation in (5, 8):  # stored rows become columns, first row leftmost
        return 0, top
    return 0, height - bottom  # 6, 7: stored rows become columns, first row rightmost
