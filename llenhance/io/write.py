"""Writing an image file, atomically, in the format its extension names.

:func:`write_image` writes a whole array; :class:`ImageWriter` takes a result a band of rows at
a time. What each format keeps (alpha, 16 bits, ICC profile, EXIF) and how large it may be
comes from :mod:`llenhance.io.formats`; the encoders are the codec modules beside this one.
PNG, TIFF and JPEG are encoded as rows arrive; WebP and BMP rows are gathered on disk and
encoded at the end. Every file goes through the guarded writer (:mod:`llenhance.io.guard`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from llenhance.errors import UserError, one_line
from llenhance.io import bmp, webp
from llenhance.io.formats import BY_NAME, IMAGE_EXTENSIONS, WRITTEN
from llenhance.io.guard import check_target, create_temp, publish, write_error
from llenhance.io.jpeg import JpegEncoder
from llenhance.io.metadata import ImageInfo, rgb_icc
from llenhance.io.png import PngEncoder
from llenhance.io.spool import SpooledImage
from llenhance.io.tiff import TiffEncoder
from llenhance.pixels import BAND_ROWS, to_uint8, to_uint16

_SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
_LOSSLESS_ENCODERS = {"PNG": PngEncoder, "TIFF": TiffEncoder}
"""Encoders of 8- or 16-bit rows as they arrive; JPEG's takes its own options, and WebP and BMP
rows are gathered on disk and encoded at close."""


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
"""zlib level for PNG and TIFF output: much faster than Pillow's default of 6, for files a
little larger (measured in docs/performance.md)."""


def _create_temp(directory: Path, name: str, suffix: str) -> tuple[int, Path]:
    return create_temp(directory / name)


def _write_error(name: str, e: OSError) -> UserError:
    return write_error(name, e)


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> str:
    """The Pillow format an output ``path`` will be written in; :class:`UserError` if its
    extension is unknown, its directory is missing, it is a directory or (without
    ``overwrite``) it exists, so a run can fail before decoding."""
    path = Path(path)
    spec = WRITTEN.get(path.suffix.lower())
    if spec is None:
        supported = ", ".join(IMAGE_EXTENSIONS)
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise UserError(f"{path}: cannot write {shown}; supported extensions: {supported}")
    check_target(path, overwrite=overwrite)
    return spec.name


class ImageWriter:
    """An image file written a band of rows at a time, top to bottom, atomically.

    Rows go to a temporary file beside ``path``; :meth:`close` renames it into place, and
    :meth:`abort` (or an exception inside a ``with`` block) removes it, so a crash never leaves
    half an image. PNG, TIFF and JPEG are encoded as the rows arrive (:mod:`llenhance.io.png`,
    :mod:`llenhance.io.tiff`, :mod:`llenhance.io.jpeg`), so such a result of any size is never in
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
        spec = BY_NAME[fmt]
        side = spec.max_side
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
        alpha = info.alpha if spec.alpha else None
        self._alpha = None if alpha is None else _validate_alpha(alpha, height, width)
        self._icc = rgb_icc(info.icc_profile) if spec.icc else None
        self._exif = (info.exif or None) if spec.exif else None
        self._format, self._deep = fmt, info.bit_depth == 16 and 16 in spec.bit_depths
        self._height, self._width, self._top = height, width, 0
        self._options = {"quality": quality, "subsampling": subsampling}

        directory = path.parent
        self._file: BinaryIO | None = None
        self._encoder: PngEncoder | TiffEncoder | JpegEncoder | None = None
        self._rows: SpooledImage | None = None
        try:
            fd, self._tmp = _create_temp(directory, path.name, suffix)
        except PermissionError:
            raise UserError(f"{path}: permission denied (cannot write to {directory})") from None
        except OSError as e:
            raise UserError(f"{path}: cannot write file ({one_line(e.strerror or e)})") from None
        with self._aborting():  # from the file's first moment: an interrupt removes it too
            self._file = os.fdopen(fd, "wb")
            if fmt == "JPEG":
                self._encoder = JpegEncoder(
                    self._file,
                    width,
                    height,
                    quality=quality,
                    subsampling=subsampling,
                    icc_profile=self._icc,
                    exif=self._exif if self._exif and len(self._exif) <= spec.max_exif else None,
                )
            elif fmt in _LOSSLESS_ENCODERS:
                self._encoder = _LOSSLESS_ENCODERS[fmt](
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
        if self._file is not None:
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
        (:mod:`llenhance.io.bmp`), WebP into libwebp's YUV picture (:mod:`llenhance.io.webp`)."""
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
    (:mod:`llenhance.io.guard`).
    For results made a band at a time, :class:`ImageWriter` takes the rows as they come.
    """
    rgb = _validate_rgb(rgb)
    options = {"quality": quality, "subsampling": subsampling, "png_compression": png_compression}
    with ImageWriter(
        path, rgb.shape[0], rgb.shape[1], info, **options, overwrite=overwrite
    ) as writer:
        writer.write(rgb)
