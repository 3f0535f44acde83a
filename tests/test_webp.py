"""WebP through OpenCV: the same file as Pillow's encoder, with ICC, EXIF and alpha added."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from llenhance import webp
from llenhance.errors import UserError
from llenhance.images import ImageInfo, ImageWriter, read_image, write_image

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.resize(rng.random((6, 8, 3)), (width, height), interpolation=cv2.INTER_CUBIC)
    return (np.clip(smooth, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("quality", [40, 95])
def test_webp_is_the_file_pillow_would_write(quality):
    rgb = _photo()
    pillow = io.BytesIO()
    Image.fromarray(rgb).save(pillow, format="WEBP", quality=quality)
    assert webp.encode(np.ascontiguousarray(rgb[:, :, ::-1]), quality) == pillow.getvalue()


def test_webp_carries_icc_exif_and_alpha(tmp_path):
    exif = Image.Exif()
    exif[271] = "Fujifilm"
    exif.get_ifd(0x8769)[36867] = "2025:05:06 07:08:09"
    alpha = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    info = ImageInfo(format="WEBP", icc_profile=SRGB_ICC, exif=exif.tobytes(), alpha=alpha)
    write_image(tmp_path / "out.webp", _photo().astype(np.float32) / 255, info)
    kinds = [kind for kind, _ in webp.chunks((tmp_path / "out.webp").read_bytes())]
    assert kinds[:2] == [b"VP8X", b"ICCP"] and kinds[-1] == b"EXIF" and b"ALPH" in kinds
    with Image.open(tmp_path / "out.webp") as im:
        assert im.mode == "RGBA" and im.size == (64, 48)
        assert im.info.get("icc_profile") == SRGB_ICC
        out = im.getexif()
        assert out.get(271) == "Fujifilm"
        assert out.get_ifd(0x8769).get(36867) == "2025:05:06 07:08:09"
        assert np.abs(np.asarray(im)[:, :, 3] / 255 - alpha).max() < 1 / 255 + 1e-6
        pixels = np.asarray(im)
    pillow = io.BytesIO()  # Pillow's encoder from the same RGBA: the same pixels
    rgba = np.dstack([_photo(), np.round(alpha * 255).astype(np.uint8)])
    Image.fromarray(rgba).save(pillow, format="WEBP", quality=95)
    with Image.open(pillow) as im:
        np.testing.assert_array_equal(pixels, np.asarray(im))
    assert read_image(tmp_path / "out.webp")[1].icc_profile == SRGB_ICC


def test_webp_without_metadata_stays_simple(tmp_path):
    write_image(tmp_path / "out.webp", _photo().astype(np.float32) / 255)
    assert [kind for kind, _ in webp.chunks((tmp_path / "out.webp").read_bytes())] == [b"VP8 "]


@pytest.mark.parametrize(("suffix", "side"), [(".webp", 16383), (".jpg", 65535)])
def test_too_large_for_the_format_is_refused_before_any_row(tmp_path, suffix, side):
    with pytest.raises(UserError, match=f"at most {side} pixels a side.*PNG or TIFF"):
        ImageWriter(tmp_path / f"out{suffix}", 10, side + 1)
    assert list(tmp_path.iterdir()) == []
