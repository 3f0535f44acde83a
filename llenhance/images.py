"""Reading and writing image files: the library's one place for file I/O of pictures.

Inside the library an image is a float32 numpy array of shape HxWx3, RGB, values in [0, 1].
Conversion from and to files happens here, once:

* :func:`read_image` decodes a file (Pillow; OpenCV for 16-bit/float PNG and TIFF data, which
  Pillow would reduce to 8 bits; libvips, a band of rows at a time, for PNG, JPEG, TIFF and
  WebP photos from :data:`BAND_DECODE_MEGAPIXELS`), applies the EXIF orientation so the pixels
  are upright, and returns the RGB array plus an :class:`ImageInfo` with what is needed to
  write the result back like the input (format, bit depth, alpha, ICC profile, EXIF with
  Orientation reset to 1).
* :func:`write_image` writes atomically (temporary file in the same directory, then
  ``os.replace``), picks the format from the extension and keeps alpha, ICC and EXIF where the
  format allows.

Every problem a user can cause (missing, empty, truncated, corrupt, oversized or unsupported
files, unwritable destinations) raises :class:`~llenhance.errors.UserError` with one line that
names the file; programming errors (wrong array shape, NaN pixels) raise ``ValueError``.

Limitations:

* PNG and TIFF output are encoded by hand (:mod:`llenhance.png`, :mod:`llenhance.tiff`) as rows
  arrive, 8- or 16-bit, with ICC profile and EXIF; JPEG by Pillow a band at a time, joined
  into one file (:mod:`llenhance.jpeg`). WebP and BMP rows are gathered on disk first: BMP is
  then written a band at a time (:mod:`llenhance.bmp`), WebP by OpenCV (:mod:`llenhance.webp`)
  from the whole result, as its encoder needs it.
* Only the first frame of multi-frame files (animated GIF/WebP, multi-page TIFF) is read.
* Large photos are decoded whole (not in bands) where libvips cannot stand in for Pillow:
  BMP and GIF files, palette and CMYK pixels, tRNS transparency, 16-bit grey with alpha.
  Alpha is held whole as float32 (4 bytes a pixel).
* An embedded ICC profile is kept only if it is an RGB profile. CMYK JPEGs are converted to
  sRGB through their profile when LittleCMS is available (naive conversion otherwise); grey
  profiles are dropped because the output is RGB.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from llenhance import banddecode, bmp, webp
from llenhance.atomic import check_target, create_temp, publish, write_error
from llenhance.banddecode import BandDecoder
from llenhance.bands import SpooledImage
from llenhance.errors import UserError
from llenhance.jpeg import JpegEncoder
from llenhance.pixels import BAND_ROWS, to_float
from llenhance.pixels import to_native as _native
from llenhance.png import PngEncoder
from llenhance.tiff import LAYOUT_TAGS, TiffEncoder

T = TypeVar("T")

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_MEGAPIXELS",
    "ImageInfo",
    "list_images",
    "read_image",
    "read_rgb",
    "to_uint8",
    "write_image",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")

# Extension -> Pillow format name used when writing.
_WRITE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
_SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
_JPEG_MAX_EXIF = 65533  # one APP1 segment

_DEFAULT_MAX_MEGAPIXELS = 200
_ORIENTATION_TAG = 274


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


@dataclass
class ImageInfo:
    """Everything needed to write a result back like the input it came from."""

    format: str = "PNG"  # Pillow format name: 'PNG', 'JPEG', 'TIFF', 'WEBP', 'BMP', ...
    bit_depth: int = 8  # 8 or 16 (16 also for float sources)
    # float32 HxW in [0, 1]; from spool_image, an HxWx1 SpooledImage of the file's own levels
    alpha: np.ndarray | SpooledImage | None = None
    icc_profile: bytes | None = None  # RGB ICC profile, None if absent or not RGB
    exif: bytes | None = None  # EXIF ("Exif\0\0" + TIFF data), Orientation reset to 1


# --------------------------------------------------------------------------------------------
# Small helpers


def _round_floats(x: np.ndarray, top: int, dtype: type, in_place: bool) -> np.ndarray:
    """clip(x * top + 0.5, 0, top) as ``dtype``; ``in_place`` reuses a float32 ``x`` as the
    scratch (no band-sized temporaries)."""
    if not (in_place and x.dtype == np.float32 and x.flags.writeable):
        return np.clip(x * top + 0.5, 0, top).astype(dtype)
    x *= top
    x += 0.5
    return np.clip(x, 0, top, out=x).astype(dtype)


def to_uint8(rgb: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Quantise [0, 1] floats to uint8 with round-half-up; used wherever 8-bit output counts.

    uint8 input is returned as is and uint16 input is rounded to the nearest 8-bit level.
    ``in_place=True`` may overwrite a float32 input instead of allocating scratch.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return _round_floats(rgb, 255, np.uint8, in_place)


def to_uint16(x: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Quantise [0, 1] floats to uint16 (uint8 is scaled exactly by 257; uint16 passes).
    ``in_place=True`` may overwrite a float32 input instead of allocating scratch."""
    x = np.asarray(x)
    if x.dtype == np.uint16:
        return x
    if x.dtype == np.uint8:
        return x.astype(np.uint16) * np.uint16(257)
    return _round_floats(x, 65535, np.uint16, in_place)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
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


# Signatures of formats we can name in "corrupt or truncated" messages.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
)


def _sniff(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for sig, name in _SIGNATURES:
        if head.startswith(sig):
            return name
    return None


# --------------------------------------------------------------------------------------------
# Decompression-bomb protection.
#
# MAX_MEGAPIXELS is checked against the size in the file header, before pixels are decoded.
# Pillow has its own check with a module-global limit (Image.MAX_IMAGE_PIXELS: warns above
# 89 MP, refuses above 179 MP) which also guards allocations inside Image.open (e.g. GIF frame
# disposal) that happen before we see the size. While any of our reads is inside Pillow that
# global is set to our limit (so our setting governs, in both directions) and restored when the
# last one finishes. Pillow's warning (between 1x and 2x the limit) is silenced because we then
# refuse the image ourselves; above 2x Pillow raises and we translate its error.

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
def _pillow_limit(pixels: int) -> Iterator[None]:
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


def _check_size(name: str, width: int, height: int, limit: int) -> None:
    if width * height > limit * 1_000_000:
        raise UserError(
            f"{name}: image of {width}x{height} pixels {_BOMB_MESSAGE.format(limit=limit)}"
        )


def _bomb_error(name: str, head: bytes, error: Exception, limit: int) -> UserError:
    """Pillow refused the size before we saw it: say as much about the size as we can."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return UserError(
            f"{name}: image of {width}x{height} pixels {_BOMB_MESSAGE.format(limit=limit)}"
        )
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "this size"
    return UserError(f"{name}: image of {size} {_BOMB_MESSAGE.format(limit=limit)}")


# --------------------------------------------------------------------------------------------
# Reading


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
        image = banddecode._pyvips().Image.new_from_file(str(path), access="sequential")
        _check_size(name, image.width, image.height, limit)
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
#: (:mod:`llenhance.banddecode`), never whole in memory; smaller ones whole by Pillow/OpenCV.
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
        or fmt not in banddecode.FORMATS
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


def _metadata(im: Image.Image) -> tuple[int, bytes | None]:
    """(orientation, EXIF bytes with Orientation reset to 1). Bad EXIF is ignored, not fatal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; we just drop it
            exif = im.getexif()
        orientation = exif.get(_ORIENTATION_TAG, 1)
        orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
        if im.format == "TIFF":  # getexif() returns all of IFD0, layout included
            for tag in list(exif.keys()):
                if tag in LAYOUT_TAGS:
                    del exif[tag]
        if _ORIENTATION_TAG in exif:
            exif[_ORIENTATION_TAG] = 1
        data = exif.tobytes() if len(exif) else None
    except Exception:  # malformed metadata must not block reading the pixels
        return 1, None
    return orientation, data


def _rgb_icc(icc: object) -> bytes | None:
    """Keep an ICC profile only if it describes RGB data (header colour space 'RGB ')."""
    if isinstance(icc, bytes) and len(icc) >= 128 and icc[16:20] == b"RGB ":
        return icc
    return None


Pixels = Image.Image | np.ndarray
"""Decoded, not yet oriented pixels: a loaded Pillow image in a :func:`_plain_mode` mode, or an
array from OpenCV (16-bit and float PNG/TIFF)."""


def _decode(path: str | os.PathLike[str], consume: Callable[[Pixels, int, ImageInfo], T]) -> T:
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
        raise UserError(f"{name}: cannot read file ({_one_line(e.strerror or e)})") from None
    if not head:
        raise UserError(f"{name}: file is empty (0 bytes)")

    limit = MAX_MEGAPIXELS
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_pillow_limit(limit * 1_000_000))
            im = stack.enter_context(Image.open(path))
            _check_size(name, *im.size, limit)
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
                found = banddecode.png_exif(path)  # (EOFError for a file cut short)
                if "exif" not in im.info and (found or "Raw profile type exif" not in im.info):
                    im.info["exif"] = found  # else Pillow would decode the pixels to find it
            orientation, exif = _metadata(im)  # (loads a PNG whose EXIF follows the pixels)
            icc = None if mode == "CMYK" else _rgb_icc(im.info.get("icc_profile"))
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
            kind = _sniff(head)
            deep = _decode_tiff_with_vips(path, name, limit) if kind == "TIFF" else None
            if deep is not None:  # float or signed-integer TIFF: valid, Pillow cannot open it
                depth = 8 if deep.dtype == np.uint8 else 16
                return consume(deep, 1, ImageInfo(format="TIFF", bit_depth=depth))
            if kind:
                raise UserError(f"{name}: corrupt or truncated {kind} file") from None
            raise UserError(f"{name}: not an image file (cannot identify image format)") from None
        except Image.DecompressionBombError as e:
            raise _bomb_error(name, head, e, limit) from None
        except MemoryError:
            raise UserError(f"{name}: not enough memory to decode this image") from None
        except (OSError, EOFError) as e:
            if isinstance(e, EOFError) or "truncated" in str(e).lower():
                raise UserError(f"{name}: file is truncated") from None
            raise UserError(f"{name}: corrupt image data ({_one_line(e)})") from None
        except Exception as e:  # decoders raise anything on corrupt input
            raise UserError(
                f"{name}: corrupt image file ({type(e).__name__}: {_one_line(e)})"
            ) from None
        info = ImageInfo(format=fmt, bit_depth=bit_depth, icc_profile=icc, exif=exif)
        return consume(pixels, orientation, info)


def _stored_size(pixels: Pixels) -> tuple[int, int]:
    """(height, width) of decoded pixels, before orientation."""
    if isinstance(pixels, np.ndarray):
        return pixels.shape[0], pixels.shape[1]
    return pixels.height, pixels.width


def _stored_rows(pixels: Pixels, top: int, bottom: int) -> np.ndarray:
    """Rows [top, bottom) of the stored (not yet oriented) pixels as native data; only those
    rows of a Pillow image are converted."""
    if isinstance(pixels, BandDecoder):
        return pixels.rows(top, bottom)
    if isinstance(pixels, np.ndarray):
        return pixels[top:bottom]
    if (top, bottom) == (0, pixels.height):
        return _native(np.asarray(pixels))
    return _native(np.asarray(pixels.crop((0, top, pixels.width, bottom))))


def _upright_corner(orientation: int, top: int, bottom: int, height: int) -> tuple[int, int]:
    """(row, column) in the upright image of the top-left corner of stored rows [top, bottom)
    once oriented (the stored image is ``height`` rows tall)."""
    if orientation in (1, 2):
        return top, 0
    if orientation in (3, 4):
        return height - bottom, 0
    if orientation in (5, 8):  # stored rows become columns, first row leftmost
        return 0, top
    return 0, height - bottom  # 6, 7: stored rows become columns, first row rightmost


def _upright_size(pixels: Pixels, orientation: int) -> tuple[int, int]:
    height, width = _stored_size(pixels)
    return (width, height) if orientation >= 5 else (height, width)


def _split_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Native HxW, HxWx2, HxWx3 or HxWx4 data -> (HxWx3 RGB, HxW alpha or None)."""
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2), None
    if arr.shape[2] == 2:
        return np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1]
    return np.ascontiguousarray(arr[:, :, :3]), (arr[:, :, 3] if arr.shape[2] == 4 else None)


def read_image(
    path: str | os.PathLike[str], *, as_float: bool = True
) -> tuple[np.ndarray, ImageInfo]:
    """Read an image file -> (rgb float32 HxWx3 in [0, 1], upright; :class:`ImageInfo`).

    With ``as_float=False`` the pixels stay in their decoded type (uint8, uint16, or float32
    for float sources), a quarter of the memory for 8-bit photos; :func:`to_float` converts.

    Grey images are replicated to three channels; alpha (also from palette transparency) goes to
    ``info.alpha``. 16-bit and float PNG/TIFF data keep their precision (``bit_depth=16``).
    Raises :class:`UserError` for anything wrong with the file.
    """

    def whole(pixels: Pixels, orientation: int, info: ImageInfo) -> tuple[np.ndarray, ImageInfo]:
        height = _stored_size(pixels)[0]
        rgb, alpha = _split_alpha(_orient(_stored_rows(pixels, 0, height), orientation))
        info.alpha = None if alpha is None else to_float(np.ascontiguousarray(alpha))
        return (to_float(rgb) if as_float else rgb), info

    return _decode(path, whole)


def spool_image(
    path: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None
) -> tuple[SpooledImage, ImageInfo]:
    """Read an image file like :func:`read_image` with ``as_float=False``, but leave its upright
    RGB pixels in an unlinked temporary file in ``directory`` (a :class:`SpooledImage`): the
    stored rows are decoded (for large photos), oriented and written a band at a time, so a
    photo is never in memory twice, and not at all once this returns. Alpha, if any, is spooled
    the same way (``info.alpha``: an HxWx1 :class:`SpooledImage` of the file's own levels,
    which :class:`ImageWriter` reads a band at a time).
    """

    def to_disk(
        pixels: Pixels, orientation: int, info: ImageInfo
    ) -> tuple[SpooledImage, ImageInfo]:
        stored_height = _stored_size(pixels)[0]
        height, width = _upright_size(pixels, orientation)
        spooled: SpooledImage | None = None
        alpha_plane: SpooledImage | None = None
        try:
            for top in range(0, stored_height, BAND_ROWS):
                bottom = min(top + BAND_ROWS, stored_height)
                rgb, alpha = _split_alpha(_orient(_stored_rows(pixels, top, bottom), orientation))
                if spooled is None:
                    spooled = SpooledImage.blank(height, width, 3, rgb.dtype, directory)
                y, x = _upright_corner(orientation, top, bottom, stored_height)
                spooled.place(y, x, rgb)
                if alpha is not None:
                    if alpha_plane is None:
                        alpha_plane = SpooledImage.blank(height, width, 1, alpha.dtype, directory)
                    alpha_plane.place(y, x, alpha[:, :, None])
        except BaseException as e:
            for spool in (spooled, alpha_plane):
                if spool is not None:
                    spool.close()
            if not isinstance(e, OSError):
                raise
            where = directory if directory is not None else "the temporary folder"
            raise UserError(
                f"{path}: cannot write a temporary copy to {where} ({_one_line(e.strerror or e)})"
            ) from None
        assert spooled is not None  # a decoded image has at least one row
        info.alpha = alpha_plane
        return spooled, info

    return _decode(path, to_disk)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding pixels; None if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # the real read reports what is wrong
        return None


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file -> rgb float32 HxWx3 in [0, 1], upright. See :func:`read_image`."""
    return read_image(path)[0]


# --------------------------------------------------------------------------------------------
# Writing


def _validate_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"rgb must be an HxWx3 array, got shape {rgb.shape}")
    if rgb.dtype in (np.uint8, np.uint16):
        return rgb
    if rgb.dtype.kind != "f":
        raise ValueError(f"rgb must be uint8, uint16 or float in [0, 1], got dtype {rgb.dtype}")
    if not np.isfinite(rgb).all():
        raise ValueError("rgb contains NaN or infinite values")
    return np.clip(rgb, 0, 1)


def _validate_alpha(
    alpha: np.ndarray | SpooledImage, height: int, width: int
) -> np.ndarray | SpooledImage:
    """An alpha plane checked against the image's size; a spooled one (HxWx1) is read, and
    its float levels checked, only a band at a time by :func:`_alpha_rows`."""
    spooled = isinstance(alpha, SpooledImage)
    alpha = alpha if spooled else np.asarray(alpha)
    if alpha.shape != ((height, width, 1) if spooled else (height, width)):
        raise ValueError(f"alpha shape {alpha.shape} does not match image {(height, width)}")
    return alpha if spooled else _finite_alpha(alpha)


def _finite_alpha(alpha: np.ndarray) -> np.ndarray:
    if alpha.dtype.kind == "f":
        if not np.isfinite(alpha).all():
            raise ValueError("alpha contains NaN or infinite values")
        return np.clip(alpha, 0, 1)
    return alpha


def _alpha_rows(alpha: np.ndarray | SpooledImage, top: int, bottom: int) -> np.ndarray:
    """Rows [top, bottom) of a validated alpha plane, HxW."""
    if isinstance(alpha, SpooledImage):
        return _finite_alpha(alpha[top:bottom][:, :, 0])
    return alpha[top:bottom]


PNG_COMPRESSION = 3
"""zlib level for PNG output. A 3840x2160 enhanced photo: level 6 (Pillow's default) takes
2.29 s and 7.4 MB, level 3 0.72 s and 8.3 MB, level 1 0.35 s and 8.7 MB on this project's CPU
(``python -m benchmarks.encoding --levels 1,3,6``)."""


_MAX_SIDES = {"JPEG": 65535, "WEBP": webp.MAX_SIDE}  # what the formats can store


def _create_temp(directory: Path, name: str, suffix: str) -> tuple[int, Path]:
    return create_temp(directory / name)


def _write_error(name: str, e: OSError) -> UserError:
    return write_error(name, e)


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> str:
    """The Pillow format an output ``path`` will be written in; :class:`UserError` if its
    extension is unknown, its directory is missing, it is a directory or (without
    ``overwrite``) it exists, so a run can fail before decoding."""
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(IMAGE_EXTENSIONS)
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise UserError(f"{path}: cannot write {shown}; supported extensions: {supported}")
    check_target(path, overwrite=overwrite)
    return fmt


class ImageWriter:
    """An image file written a band of rows at a time, top to bottom, atomically.

    Rows go to a temporary file beside ``path``; :meth:`close` renames it into place, and
    :meth:`abort` (or an exception inside a ``with`` block) removes it, so a crash never leaves
    half an image. PNG, TIFF and JPEG are encoded as the rows arrive (:mod:`llenhance.png`,
    :mod:`llenhance.tiff`, :mod:`llenhance.jpeg`), so such a result of any size is never in
    memory. WebP and BMP rows are gathered in an unlinked file beside ``path`` (3 bytes a
    pixel, on disk) and encoded only at :meth:`close`: BMP (stored bottom row first) a band at
    a time, WebP, whose encoder takes only a whole picture, from the YUV picture those bands
    are converted into (1.5 bytes a pixel, 2.5 with alpha, at most 268 MP): a caller that frees
    its working memory first keeps the two from adding up.

    Options and what ``info`` keeps are those of :func:`write_image`. Every problem a user can
    cause (bad destination, bad option, disk full) raises :class:`UserError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        height: int,
        width: int,
        info: ImageInfo | None = None,
        *,
        quality: int = 95,
        subsampling: str | None = None,
        png_compression: int = PNG_COMPRESSION,
        overwrite: bool = False,
    ) -> None:
        path = Path(path)
        self.path, self._name = path, str(path)
        self._overwrite = overwrite
        suffix = path.suffix.lower()
        fmt = check_output_path(path, overwrite=overwrite)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise UserError(f"JPEG/WebP quality must be an integer from 1 to 100, got {quality!r}")
        if (
            isinstance(png_compression, bool)
            or not isinstance(png_compression, int)
            or not 0 <= png_compression <= 9
        ):
            raise UserError(
                f"PNG compression must be an integer from 0 to 9, got {png_compression!r}"
            )
        if subsampling is not None and subsampling not in _SUBSAMPLINGS:
            raise UserError(
                f"chroma subsampling must be one of {', '.join(_SUBSAMPLINGS)}, got {subsampling!r}"
            )
        if height < 1 or width < 1:
            raise ValueError(f"an image needs at least one pixel, got {width}x{height}")
        side = _MAX_SIDES.get(fmt)
        if side is not None and max(height, width) > side:
            raise UserError(
                f"{path}: {fmt} holds at most {side} pixels a side, this image is "
                f"{width}x{height}; write PNG or TIFF instead"
            )
        if fmt == "BMP" and bmp.file_size(width, height) > bmp.MAX_BYTES:
            raise UserError(
                f"{path}: BMP holds at most 4 GiB, this {width}x{height} image needs more; "
                "write PNG or TIFF instead"
            )
        info = info if info is not None else ImageInfo(format=fmt)
        alpha = info.alpha if fmt in _ALPHA_FORMATS else None
        self._alpha = None if alpha is None else _validate_alpha(alpha, height, width)
        self._icc = _rgb_icc(info.icc_profile)
        self._exif = info.exif or None
        self._format, self._deep = fmt, info.bit_depth == 16 and fmt in ("PNG", "TIFF")
        self._height, self._width, self._top = height, width, 0
        self._options = {"quality": quality, "subsampling": subsampling}

        directory = path.parent
        try:
            fd, self._tmp = _create_temp(directory, path.name, suffix)
        except PermissionError:
            raise UserError(f"{path}: permission denied (cannot write to {directory})") from None
        except OSError as e:
            raise UserError(f"{path}: cannot write file ({_one_line(e.strerror or e)})") from None
        self._file = os.fdopen(fd, "wb")
        self._encoder: PngEncoder | TiffEncoder | JpegEncoder | None = None
        self._rows: SpooledImage | None = None
        with self._aborting():
            if fmt == "JPEG":
                self._encoder = JpegEncoder(
                    self._file,
                    width,
                    height,
                    quality=quality,
                    subsampling=subsampling,
                    icc_profile=self._icc,
                    exif=self._exif if self._exif and len(self._exif) <= _JPEG_MAX_EXIF else None,
                )
            elif fmt in ("PNG", "TIFF"):
                encoder = PngEncoder if fmt == "PNG" else TiffEncoder
                self._encoder = encoder(
                    self._file,
                    width,
                    height,
                    bit_depth=16 if self._deep else 8,
                    alpha=self._alpha is not None,
                    level=png_compression,
                    icc_profile=self._icc,
                    exif=self._exif,
                )
            else:
                self._rows = SpooledImage(width, 3, np.dtype(np.uint8), directory)

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (n x width x 3: float in [0, 1], uint8 or uint16)."""
        rows = _validate_rgb(rows)
        top, bottom = self._top, self._top + rows.shape[0]
        if rows.shape[1] != self._width or bottom > self._height:
            raise ValueError(
                f"rows {top}-{bottom} of width {rows.shape[1]} do not fit a "
                f"{self._width}x{self._height} image"
            )
        with self._aborting():
            if self._encoder is not None:
                quantize = to_uint16 if self._deep else to_uint8
                self._encoder.write(self._with_alpha(quantize(rows), top, quantize))
            else:
                self._rows.append(to_uint8(rows))
        self._top = bottom

    def close(self) -> None:
        """Encode what is left, then move the file into place (every row must be written)."""
        if self._top != self._height:
            self.abort()
            raise ValueError(f"only {self._top} of {self._height} rows were written")
        with self._aborting():
            if self._encoder is not None:
                self._encoder.close()
            else:
                self._encode_whole()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            publish(self._tmp, self.path, overwrite=self._overwrite)

    @contextlib.contextmanager
    def _aborting(self) -> Iterator[None]:
        """On any error drop the temporary file; a file system error becomes a UserError."""
        try:
            yield
        except OSError as e:
            self.abort()
            raise _write_error(self._name, e) from None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temporary file; the destination is left as it was."""
        self._encoder = None
        if self._rows is not None:
            self._rows.close()
            self._rows = None
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _encode_whole(self) -> None:
        """Encode the gathered rows a band at a time: BMP bottom row first
        (:mod:`llenhance.bmp`), WebP into libwebp's YUV picture (:mod:`llenhance.webp`)."""
        rows = self._rows
        if self._format == "BMP":
            bmp.write(self._file, rows)
        else:
            webp.write(
                self._file,
                self._height,
                self._width,
                self._bands(),
                self._options["quality"],
                self._icc,
                self._exif,
            )
        rows.close()
        self._rows = None

    def _bands(self) -> Iterator[np.ndarray]:
        """The gathered rows, with alpha when kept, a band at a time."""
        for top in range(0, self._height, BAND_ROWS):
            yield self._with_alpha(self._rows[top : top + BAND_ROWS], top, to_uint8)

    def _with_alpha(
        self, pixels: np.ndarray, top: int, quantize: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """``pixels`` (rows from ``top``), with the alpha of those rows in ``quantize``'s
        levels as a fourth channel when alpha is kept."""
        if self._alpha is None:
            return pixels
        alpha = _alpha_rows(self._alpha, top, top + pixels.shape[0])
        return np.dstack([pixels, quantize(alpha)])


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    info: ImageInfo | None = None,
    *,
    quality: int = 95,
    subsampling: str | None = None,
    png_compression: int = PNG_COMPRESSION,
    overwrite: bool = False,
) -> None:
    """Write rgb (float HxWx3 in [0, 1]) to ``path``, atomically; format from the extension.

    With ``info`` (from :func:`read_image`) the file is written like the input: 16-bit for
    PNG/TIFF when ``info.bit_depth == 16``, alpha kept for PNG/TIFF/WebP (dropped for JPEG/BMP),
    ICC profile and EXIF kept for JPEG/PNG/TIFF/WebP. ``quality`` applies to JPEG and WebP,
    ``subsampling`` ('4:4:4', '4:2:2', '4:2:0'; None = Pillow's default) to JPEG,
    ``png_compression`` (zlib level 0-9, see PNG_COMPRESSION) to PNG and TIFF.

    An existing file at ``path`` is refused (:class:`UserError`) unless ``overwrite``; then it is
    replaced only once the new one is completely written. The name is taken exclusively, so of
    two writers of one name without ``overwrite`` only one succeeds
    (:mod:`llenhance.atomic`).
    For results made a band at a time, :class:`ImageWriter` takes the rows as they come.
    """
    rgb = _validate_rgb(rgb)
    options = {"quality": quality, "subsampling": subsampling, "png_compression": png_compression}
    with ImageWriter(
        path, rgb.shape[0], rgb.shape[1], info, **options, overwrite=overwrite
    ) as writer:
        writer.write(rgb)


# --------------------------------------------------------------------------------------------
# Listing inputs


def is_image_name(p: Path) -> bool:
    """An image by its extension, and not a hidden file (such as a temporary output)."""
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def list_images(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, directories and glob patterns into a list of image files.

    * a file is taken as given (whatever its extension; reading it reports problems);
    * a directory contributes its image files (not recursive, sorted, extension matched
      case-insensitively, hidden files skipped); one without images is a :class:`UserError`;
    * a pattern with ``*``, ``?`` or ``[`` (``**`` recurses) contributes matching image files;
      matching none is a :class:`UserError`;
    * a path that does not exist is a :class:`UserError`.

    Duplicates are dropped, first occurrence kept.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    exts = ", ".join(IMAGE_EXTENSIONS)
    for item in inputs:
        text = os.path.expanduser(os.fspath(item))
        p = Path(text)
        if p.is_dir():
            images = sorted(c for c in p.iterdir() if c.is_file() and is_image_name(c))
            if not images:
                raise UserError(f"{text}: directory contains no image files ({exts})")
            for c in images:
                add(c)
        elif p.is_file():
            add(p)
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            images = [m for m in matches if m.is_file() and is_image_name(m)]
            if not images:
                what = "no image files" if matches else "nothing"
                raise UserError(f"{text}: pattern matches {what}")
            for m in images:
                add(m)
        elif p.exists():
            raise UserError(f"{text}: not a regular file or directory")
        else:
            raise UserError(f"{text}: no such file or directory")
    return found
