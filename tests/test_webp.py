"""WebP through libwebp a band at a time: the same file as Pillow's encoder, with ICC, EXIF and
alpha added, and a retry for very large pictures."""

from __future__ import annotations

import io
import tracemalloc

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from llenhance.errors import UserError
from llenhance.io import webp
from llenhance.io.metadata import ImageInfo
from llenhance.io.read import read_image
from llenhance.io.write import ImageWriter, write_image

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.resize(rng.random((6, 8, 3)), (width, height), interpolation=cv2.INTER_CUBIC)
    return (np.clip(smooth, 0, 1) * 255).astype(np.uint8)


def _bands(picture: np.ndarray, rows: int) -> list[np.ndarray]:
    return [picture[top : top + rows] for top in range(0, len(picture), rows)]


def _pillow_webp(picture: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="WEBP", quality=quality)
    return out.getvalue()


def test_libwebp_is_loaded_here():
    """Pillow's wheel bundles libwebp: without it every test below would exercise OpenCV."""
    assert webp.LIBWEBP is not None


@pytest.mark.parametrize("quality", [40, 95])
@pytest.mark.parametrize(("height", "width", "rows"), [(48, 64, 256), (601, 333, 100), (1, 1, 2)])
def test_webp_in_bands_is_the_file_pillow_writes_whole(quality, height, width, rows):
    """Each band is converted to YUV by libwebp on its own: on even rows no chroma block spans
    two bands, so the planes, and so the file, equal one whole-picture conversion."""
    rgb = _photo(height, width)
    out = io.BytesIO()
    webp.write(out, height, width, _bands(rgb, rows), quality)
    assert out.getvalue() == _pillow_webp(rgb, quality)


def test_webp_bands_need_even_rows_and_all_the_rows():
    rgb = _photo(40, 30)
    with pytest.raises(ValueError, match="even rows"):
        webp.write(io.BytesIO(), 40, 30, _bands(rgb, 7), 90)
    with pytest.raises(ValueError, match="32 rows were given.*40 rows tall"):
        webp.write(io.BytesIO(), 40, 30, _bands(rgb[:32], 16), 90)


def test_webp_in_bands_holds_no_whole_rgb_copy():
    """The rows come a band at a time and only libwebp's YUV picture is whole (C memory):
    Python's allocations stay far below one RGB copy, which OpenCV's path makes."""
    rgb = _photo(1024, 512)
    tracemalloc.start()
    try:
        webp.write(io.BytesIO(), 1024, 512, _bands(rgb, 64), 90)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < rgb.nbytes / 8


def test_opencv_encodes_where_libwebp_cannot_be_loaded(monkeypatch):
    rgb = _photo(601, 333)
    monkeypatch.setattr(webp, "LIBWEBP", None)
    out = io.BytesIO()
    webp.write(out, 601, 333, _bands(rgb, 100), 95, SRGB_ICC)
    assert [kind for kind, _ in webp.chunks(out.getvalue())] == [b"VP8X", b"ICCP", b"VP8 "]
    with Image.open(out) as im, Image.open(io.BytesIO(_pillow_webp(rgb, 95))) as pillow:
        np.testing.assert_array_equal(np.asarray(im), np.asarray(pillow))


class _Overflowing:
    """webp._encode that fails ``times`` times the way an overflowing first partition does,
    after writing a header, then encodes for real; it records each configuration."""

    def __init__(self, times: int) -> None:
        self.times, self.configs = times, []
        self.real = webp._encode

    def __call__(self, lib, picture, config, target):
        self.configs.append((config.segments, config.partition_limit))
        if len(self.configs) <= self.times:
            target.write(b"RIFF\0\0\0\0WEBPVP8 junk")
            return 6
        return self.real(lib, picture, config, target)


def test_partition0_overflow_is_retried_with_the_fewest_header_bits(monkeypatch, tmp_path):
    """libwebp gives up intra-4x4 modes on its own; what still overflows is the segment map,
    so the retry takes one segment. The first attempt's bytes are gone from the file."""
    overflowing = _Overflowing(times=1)
    monkeypatch.setattr(webp, "_encode", overflowing)
    rgb = _photo(96, 80)
    info = ImageInfo(icc_profile=SRGB_ICC, exif=b"Exif\x00\x00" + Image.Exif().tobytes())
    write_image(tmp_path / "out.webp", rgb.astype(np.float32) / 255, info)
    assert overflowing.configs == [(4, 0), (1, 100)]
    data = (tmp_path / "out.webp").read_bytes()
    assert [kind for kind, _ in webp.chunks(data)] == [b"VP8X", b"ICCP", b"VP8 ", b"EXIF"]
    assert b"junk" not in data
    with Image.open(tmp_path / "out.webp") as im:
        assert np.abs(np.asarray(im).astype(int) - rgb).mean() < 2


@pytest.mark.parametrize(
    ("width", "height", "first"),
    [(64, 48, (4, 0)), (7680, 4320, (4, 0)), (11520, 6480, (1, 100)), (16383, 12000, (1, 100))],
)
def test_pictures_with_few_header_bits_a_macroblock_start_with_the_fewest(width, height, first):
    """32 bits a macroblock (8K) keep libwebp's defaults; from 14.3 (12K) the defaults spend
    many passes giving up intra-4x4 modes: such pictures start with the fewest header bits,
    and have no retry left to try."""
    configs = webp._configs(webp.LIBWEBP, 95, width, height)
    assert (configs[0].segments, configs[0].partition_limit) == first
    assert (configs[-1].segments, configs[-1].partition_limit) == (1, 100)
    assert len(configs) == (1 if first == (1, 100) else 2)


def test_partition0_overflow_twice_fails_and_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(webp, "_encode", _Overflowing(times=2))
    with pytest.raises(UserError, match="out.webp: cannot write file.*512 KiB first partition"):
        write_image(tmp_path / "out.webp", _photo().astype(np.float32) / 255)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_destination_stops_libwebp_and_is_reported(monkeypatch):
    class Full(io.BytesIO):
        def write(self, data):
            if len(data) > 100:
                raise OSError(28, "No space left on device")
            return super().write(data)

    with pytest.raises(OSError, match="No space left"):
        webp.write(Full(), 300, 200, _bands(_photo(300, 200), 64), 95)


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
