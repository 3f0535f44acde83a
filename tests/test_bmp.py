"""Tests for llenhance.io.bmp: BMP written a band at a time from rows on disk."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from llenhance.errors import UserError
from llenhance.io import bmp
from llenhance.io.write import ImageWriter


@pytest.mark.parametrize("width", [8, 9, 10, 11])  # every row padding, 0 to 3 bytes
def test_bytes_equal_pillows_bmp(monkeypatch, width):
    monkeypatch.setattr(bmp, "BAND_ROWS", 4)  # several bands, and a short last one
    rgb = (np.random.default_rng(width).random((13, width, 3)) * 255).astype(np.uint8)
    ours = io.BytesIO()
    bmp.write(ours, rgb)
    pillows = io.BytesIO()
    Image.fromarray(rgb).save(pillows, "BMP")
    assert ours.getvalue() == pillows.getvalue()


def test_image_writer_streams_bmp_from_its_rows_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(bmp, "BAND_ROWS", 5)
    rgb = (np.random.default_rng(0).random((17, 7, 3)) * 255).astype(np.uint8)
    with ImageWriter(tmp_path / "out.bmp", 17, 7) as writer:
        for top in range(0, 17, 6):
            writer.write(rgb[top : top + 6])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.bmp")), rgb)


def test_a_bmp_beyond_4_gib_is_refused_before_any_row(tmp_path):
    with pytest.raises(UserError, match="BMP holds at most 4 GiB"):
        ImageWriter(tmp_path / "huge.bmp", 40_000, 40_000)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="4 GiB"):
        bmp.header(40_000, 40_000)
    assert bmp.file_size(40_000, 35_000) < bmp.MAX_BYTES  # what images checks against
