"""The band-wise JPEG encoder: one valid file whose pixels equal Pillow's whole-image encode."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from llenhance.io import jpeg
from llenhance.io.jpeg import JpegEncoder
from tests.conftest import scene


def _photo(height: int, width: int) -> np.ndarray:
    """Smooth colours with noise: every filter and both chroma planes have work to do."""
    noise = np.random.default_rng(height).normal(0, 12, (height, width, 3))
    return np.clip(scene(height, width) * 255 + noise, 0, 255).astype(np.uint8)


def _encode_in_bands(rgb: np.ndarray, rows: int, **options) -> bytes:
    out = io.BytesIO()
    encoder = JpegEncoder(out, rgb.shape[1], rgb.shape[0], **options)
    for top in range(0, rgb.shape[0], rows):
        encoder.write(rgb[top : top + rows])
    encoder.close()
    return out.getvalue()


@pytest.mark.parametrize("subsampling", [None, "4:4:4", "4:2:2", "4:2:0"])
@pytest.mark.parametrize("height", [40, 256, 601])
def test_bands_decode_to_the_pixels_of_a_whole_image_encode(subsampling, height):
    rgb = _photo(height, 90)
    options = {"quality": 88} | ({} if subsampling is None else {"subsampling": subsampling})
    whole = io.BytesIO()
    Image.fromarray(rgb).save(whole, "JPEG", **options)
    banded = _encode_in_bands(rgb, 77, **options)  # bands of rows cut across the 256-row bands

    expected = np.asarray(Image.open(whole))
    with Image.open(io.BytesIO(banded)) as im:
        assert im.size == (90, height) and im.format == "JPEG"
        np.testing.assert_array_equal(np.asarray(im), expected)
    # A second decoder (OpenCV's libjpeg) agrees too.
    by_opencv = [
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        for data in (banded, whole.getvalue())
    ]
    np.testing.assert_array_equal(*by_opencv)
    # Restart markers cost 2 bytes per row of MCUs (and some padding bits), nothing more.
    assert len(banded) <= len(whole.getvalue()) * 1.01 + 200


def test_metadata_is_written_once_and_bands_never_exceed_band_rows(monkeypatch):
    icc = bytes(range(256)) * 3  # opaque bytes to Pillow's writer and reader
    exif = Image.Exif()
    exif[0x010F] = "llenhance test camera"
    seen: list[tuple[int, ...]] = []
    real_fromarray = Image.fromarray

    def recording_fromarray(array, mode=None):
        seen.append(array.shape)
        return real_fromarray(array, mode)

    monkeypatch.setattr(jpeg.Image, "fromarray", recording_fromarray)
    rgb = _photo(700, 48)
    data = _encode_in_bands(rgb, 700, quality=90, icc_profile=icc, exif=exif.tobytes())
    assert [shape[0] for shape in seen] == [256, 256, 188]
    assert data.count(b"llenhance test camera") == 1 and data.count(b"ICC_PROFILE") == 1
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["icc_profile"] == icc
        assert im.getexif()[0x010F] == "llenhance test camera"
