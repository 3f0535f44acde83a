"""BMP written from rows kept on disk, a band at a time, so a result of any size is never whole
in memory (Pillow encodes BMP only from a whole image).

A BMP is a 54-byte header and uncompressed BGR rows, each padded to 4 bytes, stored bottom row
first: the bytes are those Pillow writes for an RGB image (24 bits, 96 dpi).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

from llenhance.pixels import BAND_ROWS, RowSource

_HEADERS = 14 + 40  # file header, BITMAPINFOHEADER
_PIXELS_PER_METRE = int(96 * 39.3701 + 0.5)  # 96 dpi, as Pillow writes it
MAX_BYTES = 2**32 - 1
"""The largest file the format's 32-bit size field describes."""


def _stride(width: int) -> int:
    return (width * 3 + 3) & ~3


def file_size(width: int, height: int) -> int:
    return _HEADERS + _stride(width) * height


def header(width: int, height: int) -> bytes:
    """File header and BITMAPINFOHEADER of a 24-bit RGB image."""
    image = _stride(width) * height
    if _HEADERS + image > MAX_BYTES:
        raise ValueError(f"a {width}x{height} BMP would exceed the format's 4 GiB")
    return b"BM" + struct.pack(
        "<IHHIIiiHHIIiiII",
        _HEADERS + image,
        0,
        0,
        _HEADERS,
        40,
        width,
        height,
        1,
        24,
        0,
        image,
        _PIXELS_PER_METRE,
        _PIXELS_PER_METRE,
        0,
        0,
    )


def write(file: BinaryIO, rows: RowSource) -> None:
    """Write ``rows`` (an HxWx3 uint8 RGB row source) to ``file`` as a BMP, bottom band first."""
    height, width = rows.shape[:2]
    file.write(header(width, height))
    padding = _stride(width) - width * 3
    for bottom in range(height, 0, -BAND_ROWS):
        band = rows[max(0, bottom - BAND_ROWS) : bottom][::-1, :, ::-1]  # bottom-up, BGR
        band = band.reshape(band.shape[0], width * 3)
        if padding:
            band = np.pad(band, ((0, 0), (0, padding)))
        file.write(np.ascontiguousarray(band).tobytes())
