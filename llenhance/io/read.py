"""Reading an image file: upright RGB pixels in memory (:func:`read_image`) or in a spool on
disk (:func:`spool_image`), plus what is needed to write the result back like the input.

Inside the library an image is a float32 numpy array of shape HxWx3, RGB, values in [0, 1];
:mod:`llenhance.io.decode` picks the decoder, and this module orients the rows, splits off
alpha and converts them.
"""

from __future__ import annotations

import os

import numpy as np

from llenhance.errors import UserError, one_line
from llenhance.io.decode import Pixels, decode, header_size, stored_rows, stored_size
from llenhance.io.metadata import ImageInfo, orient, upright_corner
from llenhance.io.spool import SpooledImage
from llenhance.pixels import BAND_ROWS, to_float


def _upright_size(pixels: Pixels, orientation: int) -> tuple[int, int]:
    height, width = stored_size(pixels)
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

    Grey images are replicated to three channels; alpha (also from palette or tRNS
    transparency) goes to ``info.alpha``. 16-bit and float PNG/TIFF data keep their precision
    (``bit_depth=16``).
    Raises :class:`UserError` for anything wrong with the file.
    """

    def whole(pixels: Pixels, orientation: int, info: ImageInfo) -> tuple[np.ndarray, ImageInfo]:
        height = stored_size(pixels)[0]
        rgb, alpha = _split_alpha(orient(stored_rows(pixels, 0, height), orientation))
        info.alpha = None if alpha is None else to_float(np.ascontiguousarray(alpha))
        return (to_float(rgb) if as_float else rgb), info

    return decode(path, whole)


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
        stored_height = stored_size(pixels)[0]
        height, width = _upright_size(pixels, orientation)
        spooled: SpooledImage | None = None
        alpha_plane: SpooledImage | None = None
        try:
            for top in range(0, stored_height, BAND_ROWS):
                bottom = min(top + BAND_ROWS, stored_height)
                rgb, alpha = _split_alpha(orient(stored_rows(pixels, top, bottom), orientation))
                if spooled is None:
                    spooled = SpooledImage.blank(height, width, 3, rgb.dtype, directory)
                y, x = upright_corner(orientation, top, bottom, stored_height)
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
                f"{path}: cannot write a temporary copy to {where} ({one_line(e.strerror or e)})"
            ) from None
        assert spooled is not None  # a decoded image has at least one row
        info.alpha = alpha_plane
        return spooled, info

    return decode(path, to_disk)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding pixels; None if unreadable
    (the real read reports what is wrong)."""
    return header_size(path)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file -> rgb float32 HxWx3 in [0, 1], upright. See :func:`read_image`."""
    return read_image(path)[0]
