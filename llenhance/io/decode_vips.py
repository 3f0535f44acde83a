"""The libvips route: every file of a format libvips has a loader for (PNG, JPEG, TIFF, WebP and
GIF: :data:`~llenhance.io.formats.VIPS_LOADED`), small or large, decoded a band of rows at a
time.

libvips decodes top to bottom on demand ("sequential access"), so a band of rows costs memory by
the width only, and one decoder reads every kind of pixel these formats hold: 8 and 16 bits,
float and signed-integer TIFF, palettes, transparency, grey with alpha, CMYK. Where it reads a
file differently from Pillow (the route before it), it follows the format's specification:

* A grey or RGB PNG whose tRNS chunk names a transparent colour gets an alpha channel, 0 where
  that colour is, as the PNG specification says (Pillow ignored it in 8-bit files; 16-bit ones
  already had it).
* Signed-integer TIFF data is scaled from its positive range to 16 bits and unsigned 32-bit data
  shifted to 16 bits, grey as well as colour (Pillow read some grey ones as raw integers).
* An animated GIF whose later frames use transparency has an alpha channel on its first frame
  too (libvips gives the whole animation one layout; Pillow dropped it for an opaque frame),
  and a GIF's fully transparent pixels are black (Pillow kept their palette colour).
* EXIF (and its orientation) of TIFFs Pillow could not open (float, signed) is kept too.
* An ICC profile is as long as its header says: libpng leaves out bytes stored after that
  length, which are no part of the profile (Pillow kept them).

Metadata comes from libvips's fields (``icc-profile-data``, ``exif-data``, ``orientation``)
except where libvips has none: a PNG's eXIf chunk that follows the pixel data, which libvips
sees only once the pixels are decoded (:func:`png_exif` walks the chunk headers to it), and a
TIFF's tags, which libvips does not hand over as EXIF (Pillow's EXIF parser reads the file's
first directory: no pixel is decoded); a PNG's "Raw profile type exif" text is read as Pillow
reads it. Orientation is applied by the caller (:func:`llenhance.io.metadata.orient`, band by
band), not by libvips's ``autorot``: a quarter turn needs random access, for which libvips first
decodes the whole photo (into memory, or a temporary file of its own for large ones).

A file whose header libvips cannot read is not decoded here (:func:`open_file` returns None):
:mod:`llenhance.io.decode_pillow` decodes it or says what is wrong with it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from llenhance.errors import UserError
from llenhance.io import limits
from llenhance.io.formats import Format
from llenhance.io.limits import check_size
from llenhance.io.metadata import ImageInfo, exif_metadata, parse_exif, rgb_icc
from llenhance.pixels import to_native

_DTYPES = {
    "uchar": np.dtype(np.uint8),
    "char": np.dtype(np.int8),
    "ushort": np.dtype(np.uint16),
    "short": np.dtype(np.int16),
    "uint": np.dtype(np.uint32),
    "int": np.dtype(np.int32),
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
}
# Colour spaces libvips converts to sRGB itself (CMYK is handled apart: its ICC profile decides).
_TO_SRGB = frozenset({"lab", "labq", "labs", "lch", "cmc", "xyz", "yxy", "hsv"})
_FETCH_BYTES = 1 << 20  # the most one libvips fetch decodes (see VipsDecoder.rows)
_TRUNCATED = re.compile(r"premature end|unexpected end|truncated|got \d+ bytes, expected", re.I)


@functools.cache
def _pyvips() -> ModuleType:
    """Import pyvips once, with its operation cache off: a cached loader would keep the file
    open and its decoded rows alive after the photo is done."""
    import pyvips

    pyvips.cache_set_max(0)
    return pyvips


def _clear_errors() -> None:
    """Empty libvips's error buffer, where its loaders also log what they read past (libtiff's
    warnings): an error's detail then holds only what went wrong in the call that failed."""
    _pyvips().vips_lib.vips_error_clear()


def _detail(error: Exception) -> str:
    """The last line of a libvips error's detail: the failure itself, after any warnings."""
    detail = getattr(error, "detail", "") or getattr(error, "message", "") or str(error)
    lines = [line.strip() for line in str(detail).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return re.sub(r"^[\w.]+: ", "", lines[-1])  # without libvips's "tiff2vips: " and such


def _native(band: np.ndarray) -> np.ndarray:
    """Decoded samples -> uint8, uint16 or float32 in [0, 1]: signed integers from their positive
    range to 16 bits, unsigned 32-bit ones shifted to 16 bits, floats clipped."""
    if band.dtype.kind == "i":
        shift = band.dtype.itemsize * 8 - 1 - 16
        positive = np.clip(band, 0, None).astype(np.int64)
        scaled = positive >> shift if shift > 0 else positive << -shift
        return np.clip(scaled, 0, 65535).astype(np.uint16)
    if band.dtype == np.uint32:
        return (band >> 16).astype(np.uint16)
    return to_native(band)


def _muldiv255(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    product = a * b + 128
    return ((product >> 8) + product) >> 8


def _naive_cmyk(band: np.ndarray) -> np.ndarray:
    """8-bit CMYK(+alpha) -> RGB(+alpha) without a profile, by Pillow's formula (what files
    without one have always been converted by)."""
    cmyk = band.astype(np.int32)
    ink = 255 - cmyk[..., 3:4]
    rgb = ink - _muldiv255(cmyk[..., :3], ink)
    return np.concatenate([np.clip(rgb, 0, 255), cmyk[..., 4:5]], axis=2).astype(np.uint8)


class VipsDecoder:
    """The stored (not yet oriented) rows of a file libvips loads, decoded on demand in
    top-to-bottom order: ``rows(top, bottom)`` must be asked for with ``top`` at or below the
    last ``bottom``. Rows come as native data (:func:`llenhance.pixels.to_native`): HxW for
    grey, HxWx2 grey+alpha, HxWx3 RGB, HxWx4 RGBA.

    Construction reads the header and metadata only; it raises pyvips's error if libvips
    cannot read the header, :class:`UserError` for a photo beyond the megapixel ``limit`` (from
    the header, before any pixel is decoded) or a PNG cut short. Errors in the pixel data
    surface from :meth:`rows` as :class:`UserError` naming the file.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: Format, limit: int | None = None) -> None:
        pyvips = _pyvips()
        self.name = str(path)
        load = getattr(pyvips.Image, str(fmt.vips_loader))
        _clear_errors()
        image = load(os.fspath(Path(path)), access="sequential", fail_on="error")
        self.width: int = image.width
        self.height: int = image.height
        limit = limits.MAX_MEGAPIXELS if limit is None else limit
        check_size(self.name, self.width, self.height, limit)
        fields = set(image.get_fields())
        icc = image.get("icc-profile-data") if "icc-profile-data" in fields else None
        cmyk = image.interpretation == "cmyk"
        image, self._cmyk = self._to_rgb(image, icc)
        if image.format not in _DTYPES:
            raise UserError(f"{self.name}: unsupported image data ({image.format} samples)")
        self._dtype = _DTYPES[image.format]
        self._bands = image.bands
        self.orientation, self.info = self._metadata(image, fields, fmt, path)
        if not cmyk:  # (a CMYK profile does not describe the RGB output)
            self.info.icc_profile = rgb_icc(icc)
        self._image = image
        # One region for every fetch: a fresh crop per band loses rows vips read ahead.
        self._region = pyvips.Region.new(image)
        self._next = 0

    @staticmethod
    def _to_rgb(image: Any, icc: bytes | None) -> tuple[Any, bool]:
        """The image in sRGB where libvips converts it; (image, True) for 8-bit CMYK left to
        :func:`_naive_cmyk` (no usable profile)."""
        pyvips = _pyvips()
        if image.interpretation == "cmyk" and image.bands >= 4:
            if icc:  # through its profile, as a colour-managed viewer shows it
                depth = 16 if image.format == "ushort" else 8
                try:
                    srgb = image.icc_transform(
                        "srgb", embedded=True, intent="perceptual", depth=depth
                    )
                    return srgb, False
                except pyvips.Error:  # a bad profile only costs colour accuracy
                    pass
            if image.format == "ushort":
                return (image >> 8).cast("uchar"), True
            if image.format == "uchar":
                return image, True
        if image.interpretation in _TO_SRGB or image.interpretation == "cmyk":
            return image.colourspace("srgb"), False
        if image.bands > 4:  # extra samples beyond RGBA (Pillow kept RGB of these too)
            return image.extract_band(0, n=3), False
        return image, False

    def _metadata(
        self, image: Any, fields: set[str], fmt: Format, path: str | os.PathLike[str]
    ) -> tuple[int, ImageInfo]:
        """(EXIF orientation, :class:`ImageInfo` without ICC) from libvips's fields, a PNG's
        trailing eXIf chunk or a TIFF's first directory."""
        exif = image.get("exif-data") if "exif-data" in fields else None
        if fmt.name == "PNG":
            after_pixels = png_exif(path)  # (and EOFError for a file cut short)
            raw = [image.get(f) for f in fields if f.endswith("-Raw profile type exif")]
            if not exif and after_pixels:
                exif = after_pixels
            elif not exif and raw:  # ImageMagick's hex dump, as Pillow reads it
                exif = bytes.fromhex("".join(str(raw[0]).split("\n")[3:]))
        xmp = image.get("xmp-data") if "xmp-data" in fields else None
        tiff = fmt.name == "TIFF"
        orientation, exif_bytes = exif_metadata(
            lambda: parse_exif(exif, tiff=path if tiff else None, xmp=xmp), tiff=tiff
        )
        if "orientation" in fields:
            found = image.get("orientation")
            orientation = found if isinstance(found, int) and 1 <= found <= 8 else 1
        depth = 8 if self._dtype == np.uint8 else 16
        return orientation, ImageInfo(format=fmt.name, bit_depth=depth, exif=exif_bytes)

    def _error(self, error: Exception) -> UserError:
        """A fault in the pixel data as one line, worded as the Pillow route words it."""
        detail = _detail(error)
        if _TRUNCATED.search(str(getattr(error, "detail", ""))):
            return UserError(f"{self.name}: file is truncated")
        if "out of memory" in detail.lower():
            return UserError(f"{self.name}: not enough memory to decode this image")
        return UserError(f"{self.name}: corrupt image data ({detail})")

    def rows(self, top: int, bottom: int) -> np.ndarray:
        """Stored rows [top, bottom) as native data: HxW for one channel, HxWxC otherwise.

        Many rows are fetched a few megabytes at a time into the result: each stage of a
        libvips pipeline holds a buffer the size of one fetch, so a whole photo asked for in
        one fetch would be in memory several times over."""
        if top < self._next or not top < bottom <= self.height:
            raise ValueError(
                f"rows [{top}, {bottom}) asked after row {self._next} of {self.height}: "
                "sequential decoding reads each row once, top to bottom"
            )
        step = max(1, _FETCH_BYTES // (self.width * self._bands * self._dtype.itemsize))
        if bottom - top <= step:
            band = self._fetch(top, bottom)
        else:
            band = None
            for y in range(top, bottom, step):
                part = self._fetch(y, min(y + step, bottom))
                if band is None:
                    band = np.empty((bottom - top, *part.shape[1:]), part.dtype)
                band[y - top : y - top + len(part)] = part
        return band[:, :, 0] if band.shape[2] == 1 else band

    def _fetch(self, top: int, bottom: int) -> np.ndarray:
        _clear_errors()
        try:
            data = self._region.fetch(0, top, self.width, bottom - top)
        except _pyvips().Error as e:
            raise self._error(e) from None
        self._next = bottom
        band = np.frombuffer(data, self._dtype).reshape(bottom - top, self.width, self._bands)
        return _naive_cmyk(band) if self._cmyk else _native(band)

    def close(self) -> None:
        """Let go of the file and libvips's buffers (also done when the decoder is collected)."""
        self._region = self._image = None


def open_file(
    path: str | os.PathLike[str], fmt: Format, limit: int | None = None
) -> VipsDecoder | None:
    """A :class:`VipsDecoder` for ``path``, or None where libvips cannot read its header (the
    caller hands such a file to Pillow, which decodes it or says what is wrong with it)."""
    try:
        return VipsDecoder(path, fmt, limit)
    except _pyvips().Error:
        return None
    except EOFError:
        raise UserError(f"{path}: file is truncated") from None
    except OSError as e:  # a PNG chunk walk that met garbage
        raise UserError(f"{path}: corrupt image data ({e})") from None


def header_size(path: str | os.PathLike[str], fmt: Format) -> tuple[int, int] | None:
    """(width, height) from the header by libvips, without decoding; None if it cannot."""
    pyvips = _pyvips()
    try:
        image = getattr(pyvips.Image, str(fmt.vips_loader))(os.fspath(path), access="sequential")
    except pyvips.Error:
        return None
    return image.width, image.height


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

    libvips reads chunks that follow the pixel data only by decoding the pixels; this skips
    over them instead, and raises EOFError for a file cut short (which libvips would report
    only as a read error).
    """
    exif = b""
    with open(path, "rb") as f:
        for kind, length in _png_chunks(f):
            if kind == b"eXIf" and not exif:
                exif = f.read(length)
    return exif
