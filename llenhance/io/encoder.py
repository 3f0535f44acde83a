"""The base of the streaming encoders: rows arrive top to bottom and are counted, and encoders
that work in blocks of rows gather them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class RowEncoder:
    """What the streaming encoders (:mod:`llenhance.io.png`, :mod:`llenhance.io.tiff`,
    :mod:`llenhance.io.jpeg`) share: 8- or 16-bit RGB or RGBA rows of a fixed width arrive top to
    bottom, exactly ``height`` of them, and encoders that work in blocks of rows (TIFF strips,
    JPEG bands) gather them with :meth:`_gather`. ``FORMAT`` names the file in errors."""

    FORMAT = "image"

    def __init__(self, width: int, height: int, bit_depth: int, alpha: bool) -> None:
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")
        self._shape = (width, 4 if alpha else 3)
        self._rows_left = height
        self._held: list[np.ndarray] = []  # rows of the block being gathered
        self._held_rows = 0

    def _accept(self, rows: np.ndarray) -> None:
        """Count ``rows`` in, or refuse them if their shape is wrong or there are too many."""
        if rows.shape[1:] != self._shape:
            raise ValueError(f"rows of shape {rows.shape[1:]}, expected {self._shape}")
        if rows.shape[0] > self._rows_left:
            raise ValueError(f"more rows than the {self.FORMAT}'s height")
        self._rows_left -= rows.shape[0]

    def _check_complete(self) -> None:
        if self._rows_left:
            raise ValueError(f"{self._rows_left} rows of the {self.FORMAT} were never written")

    def _gather(self, rows: np.ndarray, block_rows: int) -> Iterator[np.ndarray]:
        """Whole blocks of ``block_rows`` rows, made of the rows held from earlier calls and
        ``rows``, top to bottom; the rows left over are held for the next call."""
        while len(rows):
            take = min(len(rows), block_rows - self._held_rows)
            self._held.append(rows[:take])
            self._held_rows += take
            rows = rows[take:]
            if self._held_rows == block_rows:
                yield self._release_held()

    def _release_held(self) -> np.ndarray | None:
        """The rows held so far as one array, no longer held; None if there are none."""
        held = self._held
        self._held, self._held_rows = [], 0
        if not held:
            return None
        return held[0] if len(held) == 1 else np.concatenate(held)
