"""Decoding an image file into native pixels, by the route that keeps them exact and small.

* Pillow decodes most files; 16-bit colour PNG and TIFF data, which Pillow would reduce to 8
  bits, go to OpenCV; float and signed-integer TIFFs, which Pillow cannot open, to libvips.
* Photos from :data:`BAND_DECODE_MEGAPIXELS` in the formats libvips streams
  (:data:`~llenhance.io.formats.BAND_DECODED`) are decoded a band of rows at a time
  (:mod:`llenhance.io.decode_bands`), so they are never whole in memory.
* Every problem a user can cause (missing, empty, truncated, corrupt, oversized or unsupported
  files) raises :class:`~llenhance.errors.UserError` with one line that names the file.

Limitations:

* Only the first frame of multi-frame files (animated GIF/WebP, multi-page TIFF) is read.
* Large photos are decoded whole (not in bands) where libvips cannot stand in for Pillow:
  BMP and GIF files, palette and CMYK pixels, tRNS transparency, 16-bit grey with alpha.
* An embedded ICC profile is kept only if it is an RGB profile. CMYK JPEGs are converted to
  sRGB through their profile when LittleCMS is available (naive conversion otherwise); grey
  profiles are dropped because the output is RGB.

:func:`decode` hands the pixels to a caller's function while the decoder is open;
:mod:`llenhance.io.read` turns them into an array or a spool.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from llenhance.errors import UserError, one_line
from llenhance.io import decode_bands, limits
from llenhance.io.decode_bands import BandDecoder
from llenhance.io.formats import BAND_DECODED, sniff
from llenhance.io.limits import bomb_error, check_size, pillow_limit
from llenhance.io.metadata import ImageInfo, exif_metadata, rgb_icc
from llenhance.pixels import to_native as _native

T = TypeVar("T")


def _png_bit_depth(head: bytes) -> int:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 25:
        return head[24]
    return 8


def _tiff_bits(im: Image.Image) -> int:
    tags = getattr(im, "tag_v2", None)
    bits = tags.get(258, 8) if tags is not None else 8
    if isinstance(bits, (tuple, list)):
        bits = max(bits) if bits else 8
    return int(bits)


def _decode_with_cv2(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """16-bit/float PNG or TIFF -> native HxWxC (RGB order, alpha last) or None if cv2 can't.

    OpenCV holds two copies of the image while decoding: 12 bytes a pixel for 16-bit RGB. Two
    ways around it are unsafe in OpenCV 5.0: IMREAD_COLOR_RGB returns wrong pixels for 16-bit
    TIFF, and decoding into an array passed as ``dst`` (one copy for PNG) returns that array
    untouched, with no error, when the file is truncated.
    """
    name = os.fspath(path)
    if name.isascii():  # read straight from the file: no copy of it in memory
        arr = cv2.imread(name, cv2.IMREAD_UNCHANGED)
    else:  # OpenCV cannot open non-ASCII paths on Windows
        arr = cv2.imdecode(np.fromfile(name, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[1] != size[0] or arr.shape[0] != size[1]:
        return None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        if arr.shape[2] == 3:
            arr = arr[:, :, ::-1]
        elif arr.shape[2] == 4:
            arr = arr[:, :, [2, 1, 0, 3]]
        elif arr.shape[2] != 2:
            return None
    try:
        return _native(arr)
    except ValueError:
        return None


def _decode_tiff_with_vips(path: Path, name: str, limit: int) -> np.ndarray | None:
    """A TIFF Pillow cannot open (float16/32/64 or signed 16/32-bit samples, RGB or RGBA) read
    by libvips as native pixels: float clipped to [0, 1]; signed integers scaled from their
    positive range to 16 bits. None if libvips cannot read it either."""
    try:
        image = decode_bands._pyvips().Image.new_from_file(str(path), access="sequential")
        check_size(name, image.width, image.height, limit)
        if image.bands not in (1, 2, 3, 4):
            return None
        arr = image.numpy()
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - not readable by libvips either: reported as corrupt
        return None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype.kind == "f":
        return _native(arr)
    if arr.dtype.kind == "i":  # signed: the positive range, to 16 bits
        shift = arr.dtype.itemsize * 8 - 1 - 16
        positive = np.clip(arr, 0, None).astype(np.int64)
        scaled = positive >> shift if shift > 0 else positive << -shift
        return np.clip(scaled, 0, 65535).astype(np.uint16)
    if arr.dtype == np.uint32:
        return (arr >> 16).astype(np.uint16)
    try:
        return _native(arr)
    except ValueError:
        return None


_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})  # 16-bit or float data

#: Photos of at least this many megapixels are decoded a band of rows at a time by libvips
#: (:mod:`llenhance.io.decode_bands`), never whole in memory; smaller ones whole by Pillow/OpenCV.
BAND_DECODE_MEGAPIXELS: float = 16

# Pillow mode -> channels, for the modes whose pixels libvips hands over unchanged.
_BAND_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1, "I;16L": 1, "I;16B": 1, "I": 1}


_VIPS_SAFE_SIDE = 10_000_000
"""libvips refuses images with a side beyond its maximum coordinate (100 million pixels in
recent versions, 10 million in older ones); such images (a 1x150,000,000 strip under the pixel
limit) are decoded whole by Pillow when libvips will not open them."""


def _band_decoder(
    path: Path, fmt: str, mode: str, size: tuple[int, int], bit_depth: int
) -> BandDecoder | None:
    """A libvips band decoder for a large photo, or None where Pillow/OpenCV decode it whole:
    small photos, other formats, and modes whose pixels Pillow converts (palette, CMYK, ...),
    or any file libvips reads as other pixels than Pillow does (e.g. tRNS transparency)."""
    if (
        size[0] * size[1] < BAND_DECODE_MEGAPIXELS * 1e6
        or fmt not in BAND_DECODED
        or mode not in _BAND_CHANNELS
    ):
        return None
    try:
        decoder = BandDecoder(path)
    except Exception:
        if max(size) > _VIPS_SAFE_SIDE:  # beyond what libvips opens: decoded whole instead
            return None
        raise
    expected = (size, _BAND_CHANNELS[mode], np.dtype(np.uint16 if bit_depth > 8 else np.uint8))
    if ((decoder.width, decoder.height), decoder.channels, decoder.dtype) != expected:
        return None
    return decoder


def _plain_mode(im: Image.Image) -> Image.Image:
    """A loaded Pillow image in a mode numpy reads as native data: L (grey), LA (grey+alpha),
    RGB, RGBA, or 16-bit/float modes. Common photos pass through without a copy."""
    mode = im.mode
    if mode in _DEEP_MODES or mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "La":
        return im.convert("LA")
    if mode in ("RGBa", "RGBX"):
        return im.convert("RGBA" if mode == "RGBa" else "RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    return im.convert("RGB")  # YCbCr, LAB, HSV, ...


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                return out
        except Exception:  # a bad profile only costs colour accuracy
            pass
    return im.convert("RGB")


Pixels = Image.Image | np.ndarray
"""Decoded, not yet oriented pixels: a loaded Pillow image in a :func:`_plain_mode` mode, or an
array from OpenCV (16-bit and float PNG/TIFF)."""


def decode(path: str | os.PathLike[str], consume: Callable[[Pixels, int, ImageInfo], T]) -> T:
    """Decode ``path`` and hand (pixels, EXIF orientation, info without alpha) to ``consume``
    while the decoder's image is alive; return what it returns.

    Every problem with the file becomes a :class:`UserError`; errors raised by ``consume`` pass
    through untouched.
    """
    path = Path(path)
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

    limit = limits.MAX_MEGAPIXELS
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(pillow_limit(limit * 1_000_000))
            im = stack.enter_context(Image.open(path))
            check_size(name, *im.size, limit)
            fmt = "JPEG" if im.format == "MPO" else (im.format or "")
            size, mode = im.size, im.mode
            # Pillow reduces 16-bit colour PNG/TIFF to 8 bits: OpenCV decodes those, keeping
            # the precision, and Pillow only if OpenCV cannot (its errors say what is wrong).
            bits = _png_bit_depth(head) if fmt == "PNG" else _tiff_bits(im) if fmt == "TIFF" else 8
            wide = bits > 8 and mode not in _DEEP_MODES
            bit_depth = 16 if wide or mode in _DEEP_MODES else 8
            pixels: Pixels | None = _band_decoder(path, fmt, mode, size, bit_depth)
            if pixels is None and not wide:
                im.load()  # decodes, and so validates, everything else
            if pixels is not None and fmt == "PNG":
                found = decode_bands.png_exif(path)  # (EOFError for a file cut short)
                if "exif" not in im.info and (found or "Raw profile type exif" not in im.info):
                    im.info["exif"] = found  # else Pillow would decode the pixels to find it
            orientation, exif = exif_metadata(im)  # (loads a PNG whose EXIF follows the pixels)
            icc = None if mode == "CMYK" else rgb_icc(im.info.get("icc_profile"))
            if pixels is not None:
                im.close()  # libvips reads the pixels from here on
            elif wide:
                im.close()  # any 8-bit copy goes before OpenCV's 16-bit one is made
                pixels = _decode_with_cv2(path, size)
                if pixels is None:
                    im = stack.enter_context(Image.open(path))
                    im.load()
            if pixels is None:
                pixels = _plain_mode(im)
        except UserError:
            raise
        except UnidentifiedImageError:
            kind = sniff(head)
            deep = _decode_tiff_with_vips(path, name, limit) if kind == "TIFF" else None
            if deep is not None:  # float or signed-integer TIFF: valid, Pillow cannot open it
                depth = 8 if deep.dtype == np.uint8 else 16
                return consume(deep, 1, ImageInfo(format="TIFF", bit_depth=depth))
            if kind:
                raise UserError(f"{name}: corrupt or truncated {kind} file") from None
            raise UserError(f"{name}: not an image file (cannot identify image format)") from None
        except Image.DecompressionBombError as e:
            raise bomb_error(name, head, e, limit) from None
        except MemoryError:
            raise UserError(f"{name}: not enough memory to decode this image") from None
        except (OSError, EOFError) as e:
            if isinstance(e, EOFError) or "truncated" in str(e).lower():
                raise UserError(f"{name}: file is truncated") from None
            raise UserError(f"{name}: corrupt image data ({one_line(e)})") from None
        except Exception as e:  # decoders raise anything on corrupt input
            raise UserError(
                f"{name}: corrupt image file ({type(e).__name__}: {one_line(e)})"
            ) from None
        info = ImageInfo(format=fmt, bit_depth=bit_depth, icc_profile=icc, exif=exif)
        return consume(pixels, orientation, info)


def stored_size(pixels: Pixels) -> tuple[int, int]:
    """(height, width) of decoded pixels, before orientation."""
    if isinstance(pixels, np.ndarray):
        return pixels.shape[0], pixels.shape[1]
    return pixels.height, pixels.width


def stored_rows(pixels: Pixels, top: int, bottom: int) -> np.ndarray:
    """Rows [top, bottom) of the stored (not yet oriented) pixels as native data; only those
    rows of a Pillow image are converted."""
    if isinstance(pixels, BandDecoder):
        return pixels.rows(top, bottom)
    if isinstance(pixels, np.ndarray):
        return pixels[top:bottom]
    if (top, bottom) == (0, pixels.height):
        return _native(np.asarray(pixels))
    return _native(np.asarray(pixels.crop((0, top, pixels.width, bottom))))
