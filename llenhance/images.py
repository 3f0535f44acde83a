"""Reading and writing image files: the library's one place for file I/O of pictures.

Inside the library an image is a float32 numpy array of shape HxWx3, RGB, values in [0, 1].
Conversion from and to files happens here, once:

* :func:`read_image` decodes a file (Pillow; OpenCV for 16-bit/float PNG and TIFF data, which
  Pillow would reduce to 8 bits), applies the EXIF orientation so the pixels are upright, and
  returns the RGB array plus an :class:`ImageInfo` with what is needed to write the result back
  like the input (format, bit depth, alpha, ICC profile, EXIF with Orientation reset to 1).
* :func:`write_image` writes atomically (temporary file in the same directory, then
  ``os.replace``), picks the format from the extension and keeps alpha, ICC and EXIF where the
  format allows.

Every problem a user can cause (missing, empty, truncated, corrupt, oversized or unsupported
files, unwritable destinations) raises :class:`~llenhance.errors.UserError` with one line that
names the file; programming errors (wrong array shape, NaN pixels) raise ``ValueError``.

Limitations:

* 16-bit TIFF output is encoded by OpenCV, which cannot embed an ICC profile or EXIF; those are
  dropped for 16-bit TIFF writes. 16-bit PNG output keeps both (the chunks are added by hand).
* Only the first frame of multi-frame files (animated GIF/WebP, multi-page TIFF) is read.
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
import secrets
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from llenhance.errors import UserError

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
    alpha: np.ndarray | None = None  # float32 HxW in [0, 1]
    icc_profile: bytes | None = None  # RGB ICC profile, None if absent or not RGB
    exif: bytes | None = None  # EXIF ("Exif\0\0" + TIFF data), Orientation reset to 1


# --------------------------------------------------------------------------------------------
# Small helpers


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Quantise [0, 1] floats to uint8 with round-half-up; used wherever 8-bit output counts.

    uint8 input is returned as is and uint16 input is rounded to the nearest 8-bit level.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def to_uint16(x: np.ndarray) -> np.ndarray:
    """Quantise [0, 1] floats to uint16 (uint8 is scaled exactly by 257; uint16 passes)."""
    x = np.asarray(x)
    if x.dtype == np.uint16:
        return x
    if x.dtype == np.uint8:
        return x.astype(np.uint16) * np.uint16(257)
    return np.clip(x * 65535 + 0.5, 0, 65535).astype(np.uint16)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _native(arr: np.ndarray) -> np.ndarray:
    """Decoded pixel data -> uint8, uint16 or float32 in [0, 1], without widening 8-bit data.

    Keeping 8-bit pixels as uint8 until a tile needs them holds an 8K photo in 100 MB, not 400.
    """
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.dtype.kind in "iu":  # Pillow mode "I": 16-bit data stored as int32
        return np.clip(arr, 0, 65535).astype(np.uint16)
    if arr.dtype.kind == "f":
        return np.clip(np.nan_to_num(arr.astype(np.float32), nan=0.0), 0, 1)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    raise ValueError(f"unsupported pixel data type {arr.dtype}")


def to_float(arr: np.ndarray) -> np.ndarray:
    """uint8, uint16 or float pixel data -> float32 in [0, 1] (float input is passed through)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    return to_float(_native(arr))


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


@contextlib.contextmanager
def _pillow_limit(pixels: int) -> Iterator[None]:
    global _bomb_users, _bomb_saved
    with _bomb_lock:
        if _bomb_users == 0:
            _bomb_saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = pixels
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


def _decode_with_cv2(data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """16-bit/float PNG or TIFF -> float32 HxWxC (RGB order, alpha last) or None if cv2 can't."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
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


_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})  # 16-bit or float data


def _decode_with_pillow(im: Image.Image) -> np.ndarray:
    """A loaded Pillow image -> float32 HxW (grey), HxWx2 (grey+alpha), HxWx3 or HxWx4."""
    mode = im.mode
    if mode in _DEEP_MODES or mode in ("L", "LA", "RGB", "RGBA"):
        pass
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "La":
        im = im.convert("LA")
    elif mode in ("RGBa", "RGBX"):
        im = im.convert("RGBA" if mode == "RGBa" else "RGB")
    elif mode == "CMYK":
        im = _cmyk_to_rgb(im)
    else:  # YCbCr, LAB, HSV, ...
        im = im.convert("RGB")
    return _native(np.asarray(im))


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


# TIFF tags that describe the pixel layout of the source file, not the photo: they must not be
# copied into the EXIF of an output file (Pillow's getexif() on a TIFF returns all of IFD0).
# fmt: off
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291,
    317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347, 530, 531, 532, 34675,
})
# fmt: on


def _metadata(im: Image.Image) -> tuple[int, bytes | None]:
    """(orientation, EXIF bytes with Orientation reset to 1). Bad EXIF is ignored, not fatal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; we just drop it
            exif = im.getexif()
        orientation = exif.get(_ORIENTATION_TAG, 1)
        orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
        if im.format == "TIFF":
            for tag in list(exif.keys()):
                if tag in _TIFF_LAYOUT_TAGS:
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
    try:
        with _pillow_limit(limit * 1_000_000), Image.open(path) as im:
            _check_size(name, *im.size, limit)
            fmt = "JPEG" if im.format == "MPO" else (im.format or "")
            # Pillow decodes (and so validates) everything; it reduces 16-bit colour PNG/TIFF
            # to 8 bits, so those are decoded again by OpenCV, which keeps the precision.
            # (Validating first keeps libpng's complaints about corrupt files off stderr.)
            im.load()
            arr = None
            if im.mode in _DEEP_MODES:
                bit_depth = 16
            elif (fmt == "PNG" and _png_bit_depth(head) > 8) or (
                fmt == "TIFF" and _tiff_bits(im) > 8
            ):
                bit_depth = 16
                arr = _decode_with_cv2(path.read_bytes(), im.size)
            else:
                bit_depth = 8
            if arr is None:
                arr = _decode_with_pillow(im)
            orientation, exif = _metadata(im)
            icc = None if im.mode == "CMYK" else _rgb_icc(im.info.get("icc_profile"))
    except UserError:
        raise
    except UnidentifiedImageError:
        kind = _sniff(head)
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

    if arr.ndim == 2:
        rgb, alpha = np.repeat(arr[:, :, None], 3, axis=2), None
    elif arr.shape[2] == 2:
        rgb, alpha = np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1]
    else:
        rgb = arr[:, :, :3]
        alpha = arr[:, :, 3] if arr.shape[2] == 4 else None
    rgb = np.ascontiguousarray(_orient(rgb, orientation))
    if as_float:
        rgb = to_float(rgb)
    if alpha is not None:
        alpha = to_float(np.ascontiguousarray(_orient(alpha, orientation)))
    info = ImageInfo(format=fmt, bit_depth=bit_depth, alpha=alpha, icc_profile=icc, exif=exif)
    return rgb, info


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file -> rgb float32 HxWx3 in [0, 1], upright. See :func:`read_image`."""
    return read_image(path)[0]


# --------------------------------------------------------------------------------------------
# Writing


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _add_png_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP / eXIf chunks right after IHDR of an encoded PNG."""
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    ihdr_end = 8 + 8 + 13 + 4  # signature + IHDR length/type + IHDR data + CRC
    return png[:ihdr_end] + extra + png[ihdr_end:]


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


PNG_COMPRESSION = 3
"""zlib level for PNG output. A 3840x2160 enhanced photo: level 6 (Pillow's default) takes
2.55 s and 7.5 MB, level 3 0.70 s and 8.6 MB, level 1 0.49 s and 9.1 MB on this project's CPU
(``python -m benchmarks.png``)."""


def _encode(
    rgb: np.ndarray,
    info: ImageInfo,
    fmt: str,
    quality: int,
    subsampling: str | None,
    png_compression: int = PNG_COMPRESSION,
) -> tuple[bytes | None, Image.Image | None, dict]:
    """Either encoded bytes (16-bit via OpenCV) or a Pillow image plus save() options."""
    alpha = info.alpha if fmt in _ALPHA_FORMATS else None
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
        if not np.isfinite(alpha).all():
            raise ValueError("alpha contains NaN or infinite values")
        alpha = np.clip(alpha, 0, 1)
    icc = _rgb_icc(info.icc_profile)
    exif = info.exif or None

    if info.bit_depth == 16 and fmt in ("PNG", "TIFF"):
        data = to_uint16(rgb)[:, :, ::-1]
        if alpha is not None:
            data = np.dstack([data, to_uint16(alpha)])
        params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if fmt == "PNG" else []
        ok, buf = cv2.imencode(
            ".png" if fmt == "PNG" else ".tiff", np.ascontiguousarray(data), params
        )
        if not ok:
            raise OSError("OpenCV could not encode the image")
        encoded = buf.tobytes()
        if fmt == "PNG":
            encoded = _add_png_metadata(encoded, icc, exif)
        return encoded, None, {}

    pixels = to_uint8(rgb)
    if alpha is not None:
        im = Image.fromarray(np.dstack([pixels, to_uint8(alpha)]), "RGBA")
    else:
        im = Image.fromarray(pixels, "RGB")
    options: dict = {}
    if fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        if icc:
            options["icc_profile"] = icc
        if exif and not (fmt == "JPEG" and len(exif) > _JPEG_MAX_EXIF):
            options["exif"] = exif
    if fmt == "JPEG":
        options["quality"] = quality
        if subsampling is not None:
            options["subsampling"] = subsampling
    elif fmt == "WEBP":
        options["quality"] = quality
    elif fmt == "PNG":
        options["compress_level"] = png_compression
    elif fmt == "TIFF":
        options["compression"] = "tiff_lzw"
    return None, im, options


def _create_temp(directory: Path, name: str, suffix: str) -> tuple[int, Path]:
    # os.open with mode 0o666 so the final file gets the usual umask-based permissions
    # (tempfile.mkstemp would create it 0600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = directory / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    info: ImageInfo | None = None,
    *,
    quality: int = 95,
    subsampling: str | None = None,
    png_compression: int = PNG_COMPRESSION,
) -> None:
    """Write rgb (float HxWx3 in [0, 1]) to ``path``, atomically; format from the extension.

    With ``info`` (from :func:`read_image`) the file is written like the input: 16-bit for
    PNG/TIFF when ``info.bit_depth == 16``, alpha kept for PNG/TIFF/WebP (dropped for JPEG/BMP),
    ICC profile and EXIF kept for JPEG/PNG/TIFF/WebP. ``quality`` applies to JPEG and WebP,
    ``subsampling`` ('4:4:4', '4:2:2', '4:2:0'; None = Pillow's default) to JPEG,
    ``png_compression`` (zlib level 0-9, see PNG_COMPRESSION) to PNG.

    Limitation: 16-bit TIFF is encoded by OpenCV, which drops the ICC profile and EXIF.
    An existing file at ``path`` is replaced only once the new one is completely written.
    """
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
    fmt = _WRITE_FORMATS.get(suffix)
    if fmt is None:
        supported = ", ".join(IMAGE_EXTENSIONS)
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise UserError(f"{name}: cannot write {shown}; supported extensions: {supported}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise UserError(f"JPEG/WebP quality must be an integer from 1 to 100, got {quality!r}")
    if (
        isinstance(png_compression, bool)
        or not isinstance(png_compression, int)
        or not 0 <= png_compression <= 9
    ):
        raise UserError(f"PNG compression must be an integer from 0 to 9, got {png_compression!r}")
    if subsampling is not None and subsampling not in _SUBSAMPLINGS:
        raise UserError(
            f"chroma subsampling must be one of {', '.join(_SUBSAMPLINGS)}, got {subsampling!r}"
        )
    rgb = _validate_rgb(rgb)
    info = info if info is not None else ImageInfo(format=fmt)

    directory = path.parent
    if not directory.is_dir():
        if directory.exists():
            raise UserError(f"{name}: output directory is not a directory")
        raise UserError(f"{name}: output directory does not exist")
    if path.is_dir():
        raise UserError(f"{name}: is a directory")

    encoded, im, options = _encode(rgb, info, fmt, quality, subsampling, png_compression)
    try:
        fd, tmp = _create_temp(directory, path.name, suffix)
    except PermissionError:
        raise UserError(f"{name}: permission denied (cannot write to {directory})") from None
    except OSError as e:
        raise UserError(f"{name}: cannot write file ({_one_line(e.strerror or e)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if encoded is not None:
                f.write(encoded)
            else:
                im.save(f, format=fmt, **options)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, PermissionError):
            raise UserError(f"{name}: permission denied") from None
        if isinstance(e, OSError):
            raise UserError(f"{name}: cannot write file ({_one_line(e.strerror or e)})") from None
        raise


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
