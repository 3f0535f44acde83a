"""Pure pixel helpers: dtype conversion (decoded data to float and back to 8 or 16 bits) and
box-averaged shrinking of row sources.

No file formats here (no codecs, no spooling): :mod:`llenhance.archs` needs these to measure
whole-image statistics, and importing a model should not load the image readers and writers.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

#: Rec. 601 luma weights of R, G and B: brightness wherever llenhance measures it.
LUMA = (0.299, 0.587, 0.114)

BAND_ROWS = 256
"""Rows per band where a band is read or written for its own sake (spooling, shrinking)."""


class RowSource(Protocol):
    """An HxWxC image whose rows can be read a band at a time: a numpy array, or a
    :class:`~llenhance.io.spool.SpooledImage`."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, rows: slice) -> np.ndarray: ...


def to_native(arr: np.ndarray) -> np.ndarray:
    """Decoded pixel data -> uint8, uint16 or float32 in [0, 1], without widening 8-bit data.

    Keeping 8-bit pixels as uint8 until a tile needs them holds a photo in a quarter of the memory
    float32 would take.
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
    return to_float(to_native(arr))


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


class Shrinker:
    """Box-averages an image over ``factor`` x ``factor`` blocks as its bands of rows arrive, in
    any heights (rows and columns beyond the last whole block are left out; uint8 is rounded)."""

    def __init__(self, factor: int) -> None:
        self.factor = max(1, factor)
        self._rest: np.ndarray | None = None
        self._parts: list[np.ndarray] = []

    def add(self, band: np.ndarray) -> None:
        if self._rest is not None:
            band = np.concatenate([self._rest, band])
        k = self.factor
        rows, cols = band.shape[0] // k * k, band.shape[1] // k * k
        if cols == 0:
            raise ValueError(f"cannot shrink a {band.shape[1]}-pixel-wide image by {k}")
        if rows:
            size = (cols // k, rows // k)
            small = cv2.resize(band[:rows, :cols], size, interpolation=cv2.INTER_AREA)
            self._parts.append(small.reshape(size[1], size[0], -1))
        self._rest = band[rows:].copy() if rows < band.shape[0] else None

    def result(self) -> np.ndarray:
        if not self._parts:
            raise ValueError(f"an image needs {self.factor} rows to shrink by {self.factor}")
        return np.concatenate(self._parts)


def shrink(image: RowSource, factor: int) -> np.ndarray:
    """``image`` box-averaged over ``factor`` x ``factor`` blocks (see :class:`Shrinker`), read
    a band at a time; ``factor`` 1 returns the image itself as an array."""
    if factor <= 1:
        return np.asarray(image[:])
    shrinker = Shrinker(factor)
    step = factor * max(1, BAND_ROWS // factor)
    for top in range(0, image.shape[0], step):
        shrinker.add(np.asarray(image[top : top + step]))
    return shrinker.result()
