"""The Pillow route: files of a format libvips has no loader for, decoded whole by Pillow.

That is BMP in the format table (libvips has no BMP loader), and any other file Pillow
identifies by its content (PPM, TGA, ICO, ...). A file of a libvips format whose header libvips
cannot read comes here too: Pillow decodes it where it can (an image with a side beyond
libvips's largest coordinate) and otherwise says what is wrong with it, in the one-line messages
the tests pin. Pillow reduces 16-bit colour to 8 bits, so such a fallback file is read at 8.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PIL import Image, UnidentifiedImageError

from llenhance.errors import UserError, one_line
from llenhance.io.formats import sniff
from llenhance.io.limits import bomb_error, check_size, pillow_limit
from llenhance.io.metadata import ImageInfo, exif_metadata, rgb_icc

T = TypeVar("T")

_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})  # 16-bit or float data


def plain_mode(im: Image.Image) -> Image.Image:
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


def decode(
    path: Path,
    head: bytes,
    limit: int,
    consume: Callable[[Image.Image, int, ImageInfo], T],
) -> T:
    """Decode ``path`` (its first bytes ``head``) whole with Pillow and hand (loaded image in a
    :func:`plain_mode`, EXIF orientation, info without alpha) to ``consume`` while the image is
    open; return what it returns. Problems with the file raise :class:`UserError`; errors
    raised by ``consume`` pass through untouched."""
    name = str(path)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(pillow_limit(limit * 1_000_000))
            im = stack.enter_context(Image.open(path))
            check_size(name, *im.size, limit)
            fmt = "JPEG" if im.format == "MPO" else (im.format or "")
            mode = im.mode
            im.load()  # decodes, and so validates, the pixels
            orientation, exif = exif_metadata(im.getexif, tiff=fmt == "TIFF")
            icc = None if mode == "CMYK" else rgb_icc(im.info.get("icc_profile"))
            pixels = plain_mode(im)
        except UserError:
            raise
        except UnidentifiedImageError:
            kind = sniff(head)
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
        depth = 16 if mode in _DEEP_MODES else 8
        info = ImageInfo(format=fmt, bit_depth=depth, icc_profile=icc, exif=exif)
        return consume(pixels, orientation, info)


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header by Pillow, without decoding; None if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # the real read reports what is wrong
        return None
