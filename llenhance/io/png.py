"""A PNG encoder fed a band of rows at a time, so a result of any height is never held whole.

Pillow and OpenCV encode PNG only from a whole image in memory; the format itself is a zlib
stream of filtered rows, which numpy and :mod:`zlib` produce band by band. Every row takes the
Up filter, which is nearly free to compute, and on enhanced photos both faster and smaller than
Pillow's adaptive choice of each row's filter (the least sum of absolute filtered bytes, as
libpng does; measured in docs/performance.md).
8- and 16-bit RGB and RGBA, with optional ICC profile (iCCP) and EXIF (eXIf) chunks.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np
from zlib_ng import zlib_ng as zlib  # zlib's API and streams, faster (docs/performance.md)

from llenhance.io.encoder import RowEncoder

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_BYTES = 1 << 16  # IDAT data is written in chunks of about this size (as Pillow does)
_FILTER_ROWS = 64  # rows filtered at once: bounds the filtered copy of a band


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def filter_rows(raw: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Filter ``raw`` (rows x bytes, uint8) whose previous row is ``above`` with PNG's Up
    filter: each output row is the filter type byte (2) followed by the bytes minus those of
    the row above."""
    up = np.concatenate([above[None], raw[:-1]])
    return np.concatenate([np.full((raw.shape[0], 1), 2, np.uint8), raw - up], axis=1)


class PngEncoder(RowEncoder):
    """Writes a PNG to an open binary file: header at once, rows with :meth:`write` (any
    number at a time, top to bottom), the end with :meth:`close`."""

    FORMAT = "PNG"

    def __init__(
        self,
        file: BinaryIO,
        width: int,
        height: int,
        *,
        bit_depth: int = 8,
        alpha: bool = False,
        level: int = 6,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
    ) -> None:
        super().__init__(width, height, bit_depth, alpha)
        self._file = file
        self._dtype = np.dtype(">u2" if bit_depth == 16 else np.uint8)
        self._above = np.zeros(width * self._shape[1] * self._dtype.itemsize, np.uint8)
        self._zlib = zlib.compressobj(level)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        colour_type = 6 if alpha else 2
        header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
        parts = [SIGNATURE, chunk(b"IHDR", header)]
        if icc_profile:
            parts.append(chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
        if exif:
            parts.append(chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
        file.write(b"".join(parts))

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (n x width x 3 or 4, uint8 or uint16 as the bit depth says)."""
        self._accept(rows)
        for top in range(0, rows.shape[0], _FILTER_ROWS):
            part = np.ascontiguousarray(rows[top : top + _FILTER_ROWS], dtype=self._dtype)
            raw = part.view(np.uint8).reshape(part.shape[0], -1)
            self._emit(self._zlib.compress(filter_rows(raw, self._above).tobytes()))
            self._above = raw[-1].copy()

    def close(self) -> None:
        """Finish the zlib stream and write the end chunk (all rows must have been written)."""
        self._check_complete()
        self._emit(self._zlib.flush(), force=True)
        self._file.write(chunk(b"IEND", b""))

    def _emit(self, data: bytes, force: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._pending_bytes += len(data)
        if self._pending_bytes >= _CHUNK_BYTES or (force and self._pending):
            self._file.write(chunk(b"IDAT", b"".join(self._pending)))
            self._pending, self._pending_bytes = [], 0
