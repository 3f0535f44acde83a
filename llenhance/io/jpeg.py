"""A baseline JPEG encoder fed a band of rows at a time, so a result of any height is never held
whole (Pillow's encoder takes only a whole image, at 4 bytes a pixel).

Each band of :data:`BAND_ROWS` rows is encoded by Pillow (libjpeg) with a restart marker after
every row of MCUs. A restart resets the entropy coder, so the coded data of consecutive bands,
joined by the restart marker that belongs between them, is one valid scan: the first band's
headers (height patched to the whole image's) followed by every band's coded data. The blocks
are coded exactly as in one whole-image encode with the same options (same quantisation and
Huffman tables, chroma subsampled within each MCU), so the decoded pixels are the same; the
restart markers add 2 bytes per row of MCUs.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np
from PIL import Image

from llenhance.io.encoder import RowEncoder

BAND_ROWS = 256
"""Rows encoded at once: a multiple of 8 rows of MCUs for every subsampling (MCUs are 8 or 16
rows tall), so each band's own restart markers cycle through all eight numbers and the marker
between two bands is always RST7."""

_RST7 = b"\xff\xd7"
_EOI = b"\xff\xd9"
_SOS = 0xDA
_SOF = frozenset({0xC0, 0xC1, 0xC2})  # the frame headers Pillow writes (baseline, extended)


def _split(encoded: bytes) -> tuple[bytes, int, bytes]:
    """(headers up to and including the scan header, offset of the height field in them,
    coded data without the end marker) of one band's JPEG file."""
    position, height_at = 2, -1  # after SOI
    while True:
        if encoded[position] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {position}")
        marker = encoded[position + 1]
        length = int.from_bytes(encoded[position + 2 : position + 4], "big")
        if marker in _SOF:
            height_at = position + 5  # length (2), precision (1), then the height
        position += 2 + length
        if marker == _SOS:
            break
    if height_at < 0 or not encoded.endswith(_EOI):
        raise ValueError("not a single-scan baseline JPEG")
    return encoded[:position], height_at, encoded[position : -len(_EOI)]


class JpegEncoder(RowEncoder):
    """Writes a JPEG to an open binary file: 8-bit RGB rows with :meth:`write` (any number at a
    time, top to bottom), the end with :meth:`close`. ``quality``, ``subsampling`` (Pillow's
    names, None for Pillow's default), ``icc_profile`` and ``exif`` are Pillow's options."""

    FORMAT = "JPEG"

    def __init__(
        self,
        file: BinaryIO,
        width: int,
        height: int,
        *,
        quality: int = 95,
        subsampling: str | None = None,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
    ) -> None:
        super().__init__(width, height, 8, alpha=False)
        self._file, self._height = file, height
        self._options: dict = {"quality": quality, "restart_marker_rows": 1}
        if subsampling is not None:
            self._options["subsampling"] = subsampling
        self._metadata = {"icc_profile": icc_profile, "exif": exif}  # in the first band only
        self._bands = 0

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (n x width x 3, uint8)."""
        self._accept(rows)
        for band in self._gather(rows, BAND_ROWS):
            self._encode(band)

    def close(self) -> None:
        """Encode the last band and write the end marker (all rows must have been written)."""
        self._check_complete()
        last = self._release_held()
        if last is not None:
            self._encode(last)
        self._file.write(_EOI)

    def _encode(self, band: np.ndarray) -> None:
        options = dict(self._options)
        if self._bands == 0:
            options.update({k: v for k, v in self._metadata.items() if v})
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(band), "RGB").save(buffer, "JPEG", **options)
        headers, height_at, coded = _split(buffer.getvalue())
        if self._bands == 0:
            headers = bytearray(headers)
            headers[height_at : height_at + 2] = self._height.to_bytes(2, "big")
            self._file.write(headers)
        else:
            self._file.write(_RST7)
        self._file.write(coded)
        self._bands += 1
