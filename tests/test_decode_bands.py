"""Tests for llenhance.io.decode_bands: large photos decoded in bands by libvips give the same
pixels and metadata as the whole-image decoders, and report bad files the same way. The size
threshold is lowered so that small generated images take the band path."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from llenhance.errors import UserError
from llenhance.io import decode, read
from llenhance.io.decode_bands import BandDecoder, png_exif
from llenhance.io.formats import BAND_DECODED
from llenhance.io.read import read_image, spool_image
from llenhance.io.write import write_image
from tests.conftest import spooled_alpha

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _noise(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    top = np.iinfo(dtype).max
    return (np.random.default_rng(seed).random(shape) * top).astype(dtype)


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[274] = orientation
    exif[0x010F] = "llenhance test camera"  # Make
    return exif


def _write(path: Path, kind: str) -> Path:
    """One file per kind of data the band path takes."""
    if kind == "rgb-png":
        Image.fromarray(_noise((40, 33, 3))).save(path, exif=_exif(1), icc_profile=SRGB_ICC)
    elif kind == "rgba-png":
        Image.fromarray(_noise((40, 33, 4)), "RGBA").save(path)
    elif kind == "grey-png":
        Image.fromarray(_noise((40, 33))).save(path)
    elif kind in ("16-bit-png", "16-bit-tif"):
        assert cv2.imwrite(str(path), _noise((40, 33, 3), np.uint16))
    elif kind == "16-bit-rgba-png":
        assert cv2.imwrite(str(path), _noise((40, 33, 4), np.uint16))
    elif kind == "16-bit-grey-png":
        assert cv2.imwrite(str(path), _noise((40, 33), np.uint16))
    elif kind == "jpg":  # 4:2:0 chroma: the decoders' upsampling must agree
        Image.fromarray(_noise((40, 33, 3))).save(path, quality=90, exif=_exif(1))
    elif kind == "grey-jpg":
        Image.fromarray(_noise((40, 33))).save(path, quality=90)
    elif kind == "tif":
        Image.fromarray(_noise((40, 33, 3))).save(path, compression="tiff_adobe_deflate")
    elif kind == "webp":
        Image.fromarray(_noise((40, 33, 4)), "RGBA").save(path, lossless=True)
    else:
        raise AssertionError(kind)
    return path


KINDS = {
    "rgb-png": ".png",
    "rgba-png": ".png",
    "grey-png": ".png",
    "16-bit-png": ".png",
    "16-bit-rgba-png": ".png",
    "16-bit-grey-png": ".png",
    "jpg": ".jpg",
    "grey-jpg": ".jpg",
    "tif": ".tif",
    "16-bit-tif": ".tif",
    "webp": ".webp",
}


@pytest.fixture
def counted_bands(monkeypatch) -> list[tuple[int, int]]:
    """Every photo takes the band path; returns the row ranges the decoders were asked for."""
    monkeypatch.setattr(decode, "BAND_DECODE_MEGAPIXELS", 0)
    monkeypatch.setattr(read, "BAND_ROWS", 7)  # many bands, and a short last one
    asked: list[tuple[int, int]] = []
    real_rows = BandDecoder.rows

    def rows(self, top, bottom):
        asked.append((top, bottom))
        return real_rows(self, top, bottom)

    monkeypatch.setattr(BandDecoder, "rows", rows)
    return asked


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bands_give_the_pixels_and_metadata_of_the_whole_decoders(
    tmp_path, monkeypatch, counted_bands, kind
):
    path = _write(tmp_path / f"in{KINDS[kind]}", kind)
    bands, bands_info = read_image(path, as_float=False)
    spooled, spooled_info = spool_image(path, tmp_path)
    assert counted_bands[0] == (0, 40) and counted_bands[1:] == [
        (top, min(top + 7, 40)) for top in range(0, 40, 7)
    ]
    monkeypatch.setattr(decode, "BAND_DECODE_MEGAPIXELS", 1e9)
    whole, whole_info = read_image(path, as_float=False)
    assert len(counted_bands) == 7  # the whole decode did not use libvips
    np.testing.assert_array_equal(bands, whole)
    with spooled:
        np.testing.assert_array_equal(spooled[:], whole)
    assert bands.dtype == whole.dtype and bands.flags.writeable
    for info in (bands_info, spooled_info):
        assert (info.format, info.bit_depth) == (whole_info.format, whole_info.bit_depth)
        assert (info.icc_profile, info.exif) == (whole_info.icc_profile, whole_info.exif)
        if whole_info.alpha is None:
            assert info.alpha is None
        else:
            alpha = spooled_alpha(info.alpha) if info is spooled_info else info.alpha
            np.testing.assert_array_equal(alpha, whole_info.alpha)


def _png_with_exif_after_pixels(path: Path, orientation: int) -> bytes:
    """A PNG (RGBA, so alpha takes the oriented path too) whose eXIf chunk follows IDAT, as
    some tools write it; returns the EXIF bytes."""
    Image.fromarray(_noise((23, 31, 4), seed=orientation), "RGBA").save(path)
    exif = _exif(orientation).tobytes()
    data = path.read_bytes()
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    path.write_bytes(data[:-12] + chunk + data[-12:])  # before IEND
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_bands_are_oriented_and_placed_like_the_whole_image(
    tmp_path, monkeypatch, counted_bands, orientation
):
    path = tmp_path / "in.png"
    exif = _png_with_exif_after_pixels(path, orientation)
    assert png_exif(path) == exif

    def no_pillow_decode(self):
        raise AssertionError("Pillow decoded the pixels")

    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", no_pillow_decode)
        spooled, spooled_info = spool_image(path, tmp_path)
    assert len(counted_bands) == 4  # stored rows 0-7-14-21-23, each read once, in order
    monkeypatch.setattr(decode, "BAND_DECODE_MEGAPIXELS", 1e9)
    whole, info = read_image(path, as_float=False)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(whole, expected)
    with spooled:
        np.testing.assert_array_equal(spooled[:], whole)
    np.testing.assert_array_equal(spooled_alpha(spooled_info.alpha), info.alpha)
    assert spooled_info.exif == info.exif is not None


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_a_file_cut_short_is_reported_like_the_whole_decoders_do(
    tmp_path, monkeypatch, counted_bands, suffix
):
    good = tmp_path / f"good{suffix}"
    if suffix == ".tif":  # our own TIFFs keep their directory at the front: the cut is in rows
        write_image(good, _noise((40, 33, 3)).astype(np.float32) / 255)
    else:
        _write(good, "rgb-png" if suffix == ".png" else "jpg")
    data = good.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UserError) as banded:
        spool_image(bad, tmp_path)
    monkeypatch.setattr(decode, "BAND_DECODE_MEGAPIXELS", 1e9)
    with pytest.raises(UserError) as whole:
        read_image(bad)
    assert str(banded.value).startswith(f"{bad}: ")
    if suffix != ".tif":  # (libtiff and Pillow word a cut TIFF differently)
        assert str(banded.value) == str(whole.value) == f"{bad}: file is truncated"
    assert sorted(tmp_path.iterdir()) == sorted([good, bad])  # no spool file left behind


def test_png_chunk_walk_finds_exif_and_tells_cut_from_garbage(tmp_path):
    path = tmp_path / "in.png"
    exif = _png_with_exif_after_pixels(path, 6)
    assert png_exif(path) == exif
    Image.fromarray(_noise((5, 5, 3))).save(tmp_path / "plain.png")
    assert png_exif(tmp_path / "plain.png") == b""
    data = path.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-5])  # IEND cut
    with pytest.raises(EOFError):
        png_exif(tmp_path / "cut.png")
    (tmp_path / "garbage.png").write_bytes(data[:33] + b"\xff" * 40)
    with pytest.raises(OSError, match="broken PNG file"):
        png_exif(tmp_path / "garbage.png")


def test_rows_are_decoded_once_top_to_bottom(tmp_path):
    decoder = BandDecoder(_write(tmp_path / "in.png", "rgb-png"))
    expected = np.asarray(Image.open(tmp_path / "in.png"))
    np.testing.assert_array_equal(decoder.rows(0, 10), expected[:10])
    np.testing.assert_array_equal(decoder.rows(15, 40), expected[15:])  # rows may be skipped
    with pytest.raises(ValueError, match="top to bottom"):
        decoder.rows(20, 30)


def test_a_file_libvips_sees_otherwise_is_decoded_whole(tmp_path, counted_bands):
    """tRNS transparency: libvips adds an alpha channel Pillow does not; the result must not
    depend on which decoder ran, so such a file goes to Pillow."""
    path = tmp_path / "trns.png"
    rgb = _noise((20, 12, 3))
    Image.fromarray(rgb).save(path, transparency=(1, 2, 3))
    image, info = read_image(path, as_float=False)
    np.testing.assert_array_equal(image, rgb)
    assert info.alpha is None and counted_bands == []


def test_small_photos_and_other_formats_are_decoded_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "BAND_DECODE_MEGAPIXELS", 0.001)  # 1000 pixels
    opened: list[str] = []
    real_init = BandDecoder.__init__

    def init(self, path):
        opened.append(Path(path).name)
        real_init(self, path)

    monkeypatch.setattr(BandDecoder, "__init__", init)
    Image.fromarray(_noise((20, 40, 3))).save(tmp_path / "small.png")  # 800 pixels
    Image.fromarray(_noise((40, 40, 3))).save(tmp_path / "large.png")
    Image.fromarray(_noise((40, 40, 3))).save(tmp_path / "large.bmp")
    Image.fromarray(_noise((40, 40, 3))).convert("P").save(tmp_path / "palette.png")
    for name in ("small.png", "large.png", "large.bmp", "palette.png"):
        read_image(tmp_path / name)
    assert opened == ["large.png"]
    assert "BMP" not in BAND_DECODED
