"""Pixels kept on disk instead of in memory, so a photo of any size costs memory by its width only.

The tiler reads its input and emits its output in bands of rows. A :class:`SpooledImage` keeps
a decoded photo's pixels (:func:`llenhance.io.read.spool_image`), or rows waiting to be
encoded, in an unlinked temporary file beside the output.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class SpooledImage:
    """An HxWxC image whose pixels live in a temporary file; ``image[y0:y1]`` reads rows and
    :meth:`append` adds rows at the bottom.

    The file is unlinked as soon as it is made (it vanishes with the process, even on a
    crash). Reads go through the page cache, not through a memory map, so rows read once are
    not counted in this process's resident memory.
    """

    def __init__(
        self,
        width: int,
        channels: int,
        dtype: np.dtype,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.shape = (0, width, channels)
        self.dtype = np.dtype(dtype)
        # Not a with-block: the file lives as long as this object; close() ends it.
        self._file = tempfile.TemporaryFile(dir=None if directory is None else Path(directory))  # noqa: SIM115
        self._row_bytes = width * channels * self.dtype.itemsize

    @classmethod
    def blank(
        cls,
        height: int,
        width: int,
        channels: int,
        dtype: np.dtype,
        directory: str | os.PathLike[str] | None = None,
    ) -> SpooledImage:
        """An image ``height`` rows tall (zeros, stored sparsely) to fill with :meth:`place`
        in any order."""
        image = cls(width, channels, dtype, directory)
        image._file.truncate(height * image._row_bytes)
        image.shape = (height, width, channels)
        return image

    def place(self, top: int, left: int, block: np.ndarray) -> None:
        """Write ``block`` (h x w x channels, of this image's dtype) with its top-left corner at
        (``top``, ``left``): whole rows in one write, narrower blocks a row at a time."""
        height, width, channels = self.shape
        if block.ndim != 3 or block.shape[2] != channels or block.dtype != self.dtype:
            raise ValueError(f"block of {block.shape} {block.dtype} does not fit {self.shape}")
        rows, columns = block.shape[:2]
        if not (0 <= top <= top + rows <= height and 0 <= left <= left + columns <= width):
            raise ValueError(f"block of {block.shape} at ({top}, {left}) overruns {self.shape}")
        block = np.ascontiguousarray(block)
        pixel_bytes = channels * self.dtype.itemsize
        if block.shape[1] == width:
            self._file.seek(top * self._row_bytes)
            block.tofile(self._file)
            return
        for i, row in enumerate(block):
            self._file.seek((top + i) * self._row_bytes + left * pixel_bytes)
            self._file.write(row.data)

    def append(self, band: np.ndarray) -> None:
        """Add ``band`` (n x width x channels, of this image's dtype) below the last row."""
        if band.ndim != 3 or band.shape[1:] != self.shape[1:] or band.dtype != self.dtype:
            raise ValueError(
                f"band of {band.shape} {band.dtype} does not extend {self.shape} {self.dtype}"
            )
        self._file.seek(0, os.SEEK_END)
        np.ascontiguousarray(band).tofile(self._file)
        self.shape = (self.shape[0] + band.shape[0], *self.shape[1:])

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("a SpooledImage reads contiguous row slices only")
        start, stop, _ = rows.indices(self.shape[0])
        count = max(0, stop - start)
        self._file.flush()
        self._file.seek(start * self._row_bytes)
        band = np.fromfile(self._file, self.dtype, count * self._row_bytes // self.dtype.itemsize)
        if band.size * self.dtype.itemsize != count * self._row_bytes:
            raise OSError(f"spool file ended early at row {start}")
        return band.reshape(count, *self.shape[1:])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SpooledImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
