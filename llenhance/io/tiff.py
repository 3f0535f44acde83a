"""A TIFF encoder fed a band of rows at a time, so a result of any height is never held whole.

Pillow encodes TIFF only from a whole image in memory, and OpenCV drops the ICC profile and
EXIF of 16-bit ones. The format itself is a directory of tags plus strips of rows, each strip
compressed on its own: here Adobe Deflate (zlib) on horizontally differenced rows (compression
8, predictor 2, as libtiff writes it), strips of about 64 KB. The number of strips follows from
the image size, so the directory's size is known before any pixel: it is reserved after the
header and filled in by :meth:`TiffEncoder.close`, when the strips' places are known. Pillow's
``ImageFileDirectory_v2`` serialises the directory, EXIF and GPS sub-directories included.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin, TiffTags
from zlib_ng import zlib_ng as zlib  # zlib's API and streams, faster (docs/performance.md)

from llenhance.io.encoder import RowEncoder

_STRIP_BYTES = 1 << 16  # uncompressed bytes a strip holds (Pillow's and libtiff's scale)
_HEADER = b"II*\x00" + struct.pack("<I", 8)  # little-endian; the directory follows at byte 8
_STRIP_OFFSETS, _STRIP_BYTE_COUNTS = 273, 279
MAX_BYTES = 1 << 32  # a classic TIFF addresses 4 GiB

# Tags that describe how a file stores its pixels, not the photo: an EXIF block must not set
# them (and they are dropped from a TIFF source's EXIF when it is read).
# fmt: off
LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291,
    317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347, 530, 531, 532, 34675,
})
# fmt: on


def exif_tags(exif: bytes) -> dict[int, Any]:
    """The IFD0 tags of an EXIF block ("Exif\\0\\0" + TIFF data), with the EXIF and GPS
    sub-directories as dicts (as Pillow's ``Exif.tobytes`` nests them), layout tags left out."""
    parsed = Image.Exif()
    parsed.load(exif)
    tags: dict[int, Any] = {}
    for tag, value in parsed.items():
        if tag in LAYOUT_TAGS:
            continue
        if tag in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
            value = dict(parsed.get_ifd(tag))
            interop = value.get(ExifTags.IFD.Interop)
            if tag == ExifTags.IFD.Exif and interop is not None and not isinstance(interop, dict):
                value[ExifTags.IFD.Interop] = parsed.get_ifd(ExifTags.IFD.Interop)
        tags[tag] = value
    return tags


class TiffEncoder(RowEncoder):
    """Writes a TIFF to an open, seekable binary file: header and a reserved directory at
    once, rows with :meth:`write` (any number at a time, top to bottom), the directory with
    :meth:`close`. 8- or 16-bit RGB or RGBA (unassociated alpha), optional ICC profile and EXIF.
    """

    FORMAT = "TIFF"

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
        samples = self._shape[1]
        self._file, self._base = file, file.tell()
        self._dtype = np.dtype("<u2" if bit_depth == 16 else np.uint8)
        self._level = level
        self._rows_per_strip = max(1, _STRIP_BYTES // (width * samples * self._dtype.itemsize))
        self._strips = -(-height // self._rows_per_strip)
        self._offsets: list[int] = []
        self._counts: list[int] = []

        tags: dict[int, Any] = exif_tags(exif) if exif else {}
        tags.setdefault(282, 72.0)  # X/YResolution and ResolutionUnit (inch): baseline tags
        tags.setdefault(283, 72.0)
        tags.setdefault(296, 2)
        tags.update(
            {
                256: width,
                257: height,
                258: (bit_depth,) * samples,
                259: 8,  # Adobe Deflate
                262: 2,  # RGB
                277: samples,
                278: self._rows_per_strip,
                284: 1,  # samples interleaved
                317: 2,  # horizontal differencing
                339: (1,) * samples,  # unsigned integers
            }
        )
        if alpha:
            tags[338] = (2,)  # unassociated alpha
        if icc_profile:
            tags[34675] = icc_profile
        self._tags = tags
        self._directory_bytes = len(self._directory([0] * self._strips, [0] * self._strips))
        file.write(_HEADER + bytes(self._directory_bytes))

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (n x width x 3 or 4, uint8 or uint16 as the bit depth says)."""
        self._accept(rows)
        for strip in self._gather(rows, self._rows_per_strip):
            self._write_strip(strip)

    def close(self) -> None:
        """Write the last strip and the directory (all rows must have been written)."""
        self._check_complete()
        last = self._release_held()
        if last is not None:
            self._write_strip(last)
        end = self._file.tell()
        # Pillow stores strip offsets counted from the end of the directory's data (its own
        # writer puts the pixels there) and adds that end when it serialises them.
        pixels = len(_HEADER) + self._directory_bytes
        directory = self._directory([o - pixels for o in self._offsets], self._counts)
        _check_offsets(directory, self._offsets)
        if len(directory) != self._directory_bytes:
            raise RuntimeError("the TIFF directory changed size between reserving and writing")
        self._file.seek(self._base + len(_HEADER))
        self._file.write(directory)
        self._file.seek(end)

    def _write_strip(self, strip: np.ndarray) -> None:
        strip = np.asarray(strip, dtype=self._dtype)
        differences = strip.copy()
        differences[:, 1:] -= strip[:, :-1]  # wraps around, as the predictor defines
        data = zlib.compress(differences.tobytes(), self._level)
        offset = self._file.tell() - self._base
        if offset + len(data) > MAX_BYTES:
            raise OSError("the TIFF would be larger than 4 GiB, which classic TIFF cannot address")
        self._offsets.append(offset)
        self._counts.append(len(data))
        self._file.write(data)

    def _directory(self, offsets: list[int], counts: list[int]) -> bytes:
        """IFD0 and its data, for strips at ``offsets`` from the end of the directory."""
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
        for tag, value in self._tags.items():
            ifd[tag] = value
        ifd[_STRIP_OFFSETS] = tuple(offsets)
        ifd[_STRIP_BYTE_COUNTS] = tuple(counts)
        for tag in (256, 257, 278, _STRIP_OFFSETS, _STRIP_BYTE_COUNTS):
            ifd.tagtype[tag] = TiffTags.LONG
        return ifd.tobytes(len(_HEADER))


def _check_offsets(directory: bytes, offsets: list[int]) -> None:
    """Guard against a Pillow that serialises strip offsets differently from what
    :meth:`TiffEncoder._directory` expects: read them back from the directory's bytes."""
    count = struct.unpack_from("<H", directory)[0]
    for i in range(count):
        tag, _, n, value = struct.unpack_from("<HHII", directory, 2 + 12 * i)
        if tag == _STRIP_OFFSETS:
            if n == 1:
                stored = [value]
            else:
                start = value - len(_HEADER)
                stored = list(struct.unpack_from(f"<{n}I", directory, start))
            if stored != list(offsets):
                raise RuntimeError("this Pillow writes TIFF strip offsets in an unexpected way")
            return
    raise RuntimeError("the TIFF directory has no strip offsets")
