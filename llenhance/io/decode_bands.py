"""Large photos decoded a band of rows at a time by libvips, so the decoded photo is never whole
in memory.

Pillow and OpenCV decode a whole picture before handing over a single row: 4 bytes a pixel
for an 8-bit photo, 12 for a 16-bit one (OpenCV keeps two copies). libvips decodes PNG, JPEG,
TIFF and WebP (:data:`llenhance.io.formats.BAND_DECODED`) top to bottom on demand
("sequential access"), so rows cost memory by the width only (measured in docs/performance.md).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np

from llenhance.errors import UserError

_DTYPES = {"uchar": np.dtype(np.uint8), "ushort": np.dtype(np.uint16)}


@functools.cache
def _pyvips() -> ModuleType:
    """Import pyvips once, with its operation cache off: a cached loader would keep the file
    open and its decoded rows alive after the photo is done."""
    import pyvips

    pyvips.cache_set_max(0)
    return pyvips


def _first_line(error: Exception) -> str:
    detail = getattr(error, "detail", "") or getattr(error, "message", "") or str(error)
    lines = [line.strip() for line in str(detail).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class BandDecoder:
    """The stored (not yet oriented) rows of an image file, decoded on demand in top-to-bottom
    order: ``rows(top, bottom)`` must be asked for with ``top`` at or below the last ``bottom``.

    The header is read on construction. Decoding errors (truncated or corrupt data) surface
    from :meth:`rows` as :class:`UserError` naming the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        pyvips = _pyvips()
        self.name = str(path)
        try:
            self._image = pyvips.Image.new_from_file(
                os.fspath(Path(path)), access="sequential", fail_on="error"
            )
        except pyvips.Error as e:
            raise self._error(e) from None
        self.width: int = self._image.width
        self.height: int = self._image.height
        self.channels: int = self._image.bands
        self.dtype: np.dtype | None = _DTYPES.get(self._image.format)
        # One region for every fetch: a fresh crop per band loses rows vips read ahead.
        self._region = pyvips.Region.new(self._image)
        self._next = 0

    def _error(self, error: Exception) -> UserError:
        """The one-line message :mod:`llenhance.io.decode` gives for the same fault."""
        detail = _first_line(error)
        if "premature end" in detail.lower() or "truncated" in detail.lower():
            return UserError(f"{self.name}: file is truncated")
        return UserError(f"{self.name}: corrupt image data ({detail})")

    def rows(self, top: int, bottom: int) -> np.ndarray:
        """Stored rows [top, bottom) as native data: HxW for one channel, HxWxC otherwise."""
        if self.dtype is None:
            raise ValueError(f"{self.name}: libvips decodes it as {self._image.format} data")
        if top < self._next or not top < bottom <= self.height:
            raise ValueError(
                f"rows [{top}, {bottom}) asked after row {self._next} of {self.height}: "
                "sequential decoding reads each row once, top to bottom"
            )
        try:
            data = self._region.fetch(0, top, self.width, bottom - top)
        except _pyvips().Error as e:
            raise self._error(e) from None
        self._next = bottom
        band = np.frombuffer(data, self.dtype).reshape(bottom - top, self.width, self.channels)
        return band[:, :, 0] if self.channels == 1 else band


def _png_chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(type, data length) of each chunk of an open PNG file up to IEND, the file positioned
    at the chunk's data. Raises EOFError where the file ends before IEND, OSError where a
    chunk header is garbage."""
    size = os.fstat(f.fileno()).st_size
    position = 8  # the signature
    while True:
        f.seek(position)
        header = f.read(8)
        length = int.from_bytes(header[:4], "big")
        if len(header) == 8 and not header[4:].isalpha():
            raise OSError(f"broken PNG file (no chunk at byte {position})")
        if len(header) < 8 or position + 12 + length > size:
            raise EOFError("PNG file ends before its IEND chunk")
        yield header[4:], length
        if header[4:] == b"IEND":
            return
        position += 12 + length


def png_exif(path: str | os.PathLike[str]) -> bytes:
    """The EXIF (eXIf chunk) of a PNG file, b"" if none, found by walking the chunk headers.

    Pillow reads chunks that follow the pixel data only by decoding the pixels; this skips
    over them instead, and raises EOFError for a file cut short (which libvips would report
    only as a read error).
    """
    exif = b""
    with open(path, "rb") as f:
        for kind, length in _png_chunks(f):
            if kind == b"eXIf" and not exif:
                exif = f.read(length)
    return exif
