"""Tests for llenhance.io: reading/writing image files. Images are generated in tmp_path."""

from __future__ import annotations

import io
import os
import resource
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

from llenhance.errors import UserError
from llenhance.io import limits, write
from llenhance.io.files import list_images
from llenhance.io.formats import IMAGE_EXTENSIONS
from llenhance.io.metadata import ImageInfo
from llenhance.io.png import PngEncoder
from llenhance.io.read import read_image, read_rgb
from llenhance.io.write import write_image
from llenhance.pixels import to_uint8

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ---------------------------------------------------------------------------------------------
# helpers


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def hand_png(
    width: int,
    height: int,
    bit_depth: int,
    color_type: int,
    rows: bytes,
    extra: bytes = b"",
) -> bytes:
    """A PNG written by hand: IHDR with any declared size, extra chunks, one IDAT of `rows`."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def png16(arr: np.ndarray, color_type: int, extra: bytes = b"") -> bytes:
    """16-bit PNG (grey=0, grey+alpha=4, RGB=2, RGBA=6) from a uint16 HxW[xC] array."""
    h, w = arr.shape[:2]
    rows = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))
    return hand_png(w, h, 16, color_type, rows, extra)


def pattern(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 HxWx3 with distinct, random values (so flips/rotations are detectable)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pattern16(h: int = 6, w: int = 7, channels: int = 3, seed: int = 0) -> np.ndarray:
    """uint16 values that are not multiples of 257, i.e. not representable in 8 bits."""
    a = np.random.default_rng(seed).integers(0, 65536, (h, w, channels), dtype=np.uint16)
    a[a % 257 == 0] += 1
    return a


def save(arr: np.ndarray, path: Path, mode: str | None = None, **kw) -> Path:
    im = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    im.save(path, **kw)
    return path


def as_u8(rgb: np.ndarray) -> np.ndarray:
    return np.round(rgb * 255).astype(np.uint8)


def as_u16(x: np.ndarray) -> np.ndarray:
    return np.round(x.astype(np.float64) * 65535).astype(np.uint16)


def files_in(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# ---------------------------------------------------------------------------------------------
# 8-bit round trips and colour modes


def test_png_8bit_roundtrip_exact(tmp_path):
    src = pattern()
    rgb, info = read_image(save(src, tmp_path / "in.png"))
    assert rgb.dtype == np.float32 and rgb.shape == (12, 16, 3) and rgb.flags.c_contiguous
    assert np.array_equal(as_u8(rgb), src)
    assert np.array_equal(to_uint8(rgb), src)
    assert (info.format, info.bit_depth, info.alpha, info.icc_profile) == ("PNG", 8, None, None)
    assert np.array_equal(read_rgb(tmp_path / "in.png"), rgb)

    write_image(tmp_path / "out.png", rgb, info)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGB"
        assert np.array_equal(np.asarray(im), src)


@pytest.mark.parametrize("ext", [".bmp", ".tif", ".webp"])
def test_lossless_8bit_formats_roundtrip(tmp_path, ext):
    src = pattern()
    kw = {"lossless": True} if ext == ".webp" else {}
    rgb, info = read_image(save(src, tmp_path / f"in{ext}", **kw))
    assert np.array_equal(as_u8(rgb), src)
    if ext == ".webp":  # WebP output is lossy (quality option): checked elsewhere
        return
    write_image(tmp_path / f"out{ext}", rgb, info)
    with Image.open(tmp_path / f"out{ext}") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), src)


def test_to_uint8_rounds_half_up_and_clips():
    x = np.array([[[0.0, 0.5 / 255, 1.49 / 255]], [[-0.3, 1.0, 7.0]]], dtype=np.float32)
    assert to_uint8(x).tolist() == [[[0, 1, 1]], [[0, 255, 255]]]
    assert to_uint8(x).dtype == np.uint8


def test_rgba_alpha_kept_through_read_and_write(tmp_path):
    src = np.dstack([pattern(), np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)])
    rgb, info = read_image(save(src, tmp_path / "in.png"))
    assert np.array_equal(as_u8(rgb), src[..., :3])
    assert info.alpha is not None and info.alpha.dtype == np.float32
    assert np.array_equal(as_u8(info.alpha), src[..., 3])

    for ext in (".png", ".tif"):
        write_image(tmp_path / f"out{ext}", rgb, info)
        with Image.open(tmp_path / f"out{ext}") as im:
            assert im.mode == "RGBA"
            assert np.array_equal(np.asarray(im), src)
    write_image(tmp_path / "out.webp", rgb, info)
    with Image.open(tmp_path / "out.webp") as im:
        assert im.mode == "RGBA"
        assert np.abs(np.asarray(im)[..., 3].astype(int) - src[..., 3]).max() <= 2
    for ext in (".jpg", ".bmp"):  # no alpha in these formats: dropped
        write_image(tmp_path / f"out{ext}", rgb, info)
        with Image.open(tmp_path / f"out{ext}") as im:
            assert im.mode == "RGB"


def test_grayscale_replicated_to_rgb(tmp_path):
    grey = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    rgb, info = read_image(tmp_path / "g.png")
    assert rgb.shape == (12, 16, 3) and info.alpha is None and info.bit_depth == 8
    for c in range(3):
        assert np.array_equal(as_u8(rgb[..., c]), grey)


def test_grey_with_alpha_LA(tmp_path):
    grey = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    alpha = 255 - grey
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    rgb, info = read_image(tmp_path / "la.png")
    assert np.array_equal(as_u8(rgb), np.dstack([grey] * 3))
    assert np.array_equal(as_u8(info.alpha), alpha)


def test_palette_with_transparency(tmp_path):
    idx = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (253 * 3))
    im.save(tmp_path / "p.png", transparency=1)
    rgb, info = read_image(tmp_path / "p.png")
    palette = np.array([[255, 0, 0], [0, 255, 0], [10, 20, 30]], dtype=np.uint8)
    assert np.array_equal(as_u8(rgb), palette[idx])
    assert np.array_equal(info.alpha, (idx != 1).astype(np.float32))

    im.save(tmp_path / "p.gif", transparency=1)  # GIF can be read too (first frame)
    rgb, info = read_image(tmp_path / "p.gif")
    assert info.format == "GIF"
    assert np.array_equal(as_u8(rgb)[idx != 1], palette[idx][idx != 1])
    assert np.array_equal(info.alpha, (idx != 1).astype(np.float32))


def test_palette_without_transparency_has_no_alpha(tmp_path):
    Image.fromarray(pattern()).convert("P").save(tmp_path / "p.png")
    rgb, info = read_image(tmp_path / "p.png")
    assert info.alpha is None and rgb.shape == (12, 16, 3)


def test_bilevel_image(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    rgb, _ = read_image(tmp_path / "b.png")
    assert np.array_equal(rgb[..., 0], bits.astype(np.float32))


def test_cmyk_jpeg_converted_to_rgb(tmp_path):
    colours = (
        np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [200, 180, 40]]], dtype=np.uint8)
        .repeat(8, axis=0)
        .repeat(8, axis=1)
    )
    Image.fromarray(colours).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
    rgb, info = read_image(tmp_path / "c.jpg")
    assert rgb.shape == (16, 16, 3) and info.format == "JPEG" and info.icc_profile is None
    assert np.abs(as_u8(rgb).astype(int) - colours).max() <= 12


# ---------------------------------------------------------------------------------------------
# 16-bit and float


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_roundtrip_exact(tmp_path, ext):
    src = pattern16()
    assert cv2.imwrite(str(tmp_path / f"in{ext}"), src[..., ::-1])  # cv2 wants BGR
    rgb, info = read_image(tmp_path / f"in{ext}")
    assert info.bit_depth == 16 and rgb.dtype == np.float32
    assert np.array_equal(as_u16(rgb), src)

    write_image(tmp_path / f"out{ext}", rgb, info)
    back = cv2.imread(str(tmp_path / f"out{ext}"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    assert np.array_equal(back[..., ::-1], src)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgba_roundtrip_exact(tmp_path, ext):
    src = pattern16(channels=4, seed=1)
    assert cv2.imwrite(str(tmp_path / f"in{ext}"), src[..., [2, 1, 0, 3]])
    rgb, info = read_image(tmp_path / f"in{ext}")
    assert info.bit_depth == 16
    assert np.array_equal(as_u16(rgb), src[..., :3])
    assert np.array_equal(as_u16(info.alpha), src[..., 3])
    write_image(tmp_path / f"out{ext}", rgb, info)
    back = cv2.imread(str(tmp_path / f"out{ext}"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(back[..., [2, 1, 0, 3]], src)


def test_16bit_grey_and_grey_alpha_png(tmp_path):
    g = pattern16(channels=2, seed=2)
    (tmp_path / "g.png").write_bytes(png16(g[..., 0], 0))
    (tmp_path / "ga.png").write_bytes(png16(g, 4))
    rgb, info = read_image(tmp_path / "g.png")
    assert info.bit_depth == 16 and info.alpha is None
    assert np.array_equal(as_u16(rgb), np.dstack([g[..., 0]] * 3))
    rgb, info = read_image(tmp_path / "ga.png")
    assert info.bit_depth == 16
    assert np.array_equal(as_u16(rgb), np.dstack([g[..., 0]] * 3))
    assert np.array_equal(as_u16(info.alpha), g[..., 1])


def test_16bit_grey_tiff_via_pillow(tmp_path):
    g = pattern16(channels=1, seed=3)[..., 0]
    Image.fromarray(g).save(tmp_path / "g.tif")
    with Image.open(tmp_path / "g.tif") as im:
        assert im.mode.startswith("I;16")
    rgb, info = read_image(tmp_path / "g.tif")
    assert info.bit_depth == 16
    assert np.array_equal(as_u16(rgb[..., 1]), g)


def test_float_tiff_clipped(tmp_path):
    f = np.array([[-0.5, 0.25], [0.75, 3.0]], dtype=np.float32)
    Image.fromarray(f, "F").save(tmp_path / "f.tif")
    rgb, info = read_image(tmp_path / "f.tif")
    assert info.bit_depth == 16
    assert np.array_equal(rgb[..., 0], np.array([[0, 0.25], [0.75, 1]], dtype=np.float32))


@pytest.mark.parametrize("out_ext", [".png", ".tif"])
def test_16bit_png_orientation_icc_and_exif(tmp_path, out_ext):
    src = pattern16(h=4, w=6, seed=4)
    exif = Image.Exif()
    exif[274] = 6
    exif[271] = "Canon"
    exif_data = exif.tobytes()[6:]  # eXIf chunk holds the TIFF data without "Exif\0\0"
    extra = _chunk(b"eXIf", exif_data) + _chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(SRGB_ICC))
    (tmp_path / "in.png").write_bytes(png16(src, 2, extra))
    rgb, info = read_image(tmp_path / "in.png")
    upright = np.rot90(src, -1)  # orientation 6: rotate 90 degrees clockwise
    assert info.bit_depth == 16 and rgb.shape == (6, 4, 3)
    assert np.array_equal(as_u16(rgb), upright)
    assert info.icc_profile == SRGB_ICC

    out = tmp_path / f"out{out_ext}"  # 16-bit TIFF too keeps ICC and EXIF
    write_image(out, rgb, info)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back[..., ::-1], upright)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == SRGB_ICC
        out_exif = im.getexif()
        assert out_exif.get(274) == 1 and out_exif.get(271) == "Canon"


def test_8bit_info_writes_8bit_png(tmp_path):
    src = pattern16()
    cv2.imwrite(str(tmp_path / "in.png"), src[..., ::-1])
    rgb, info = read_image(tmp_path / "in.png")
    info.bit_depth = 8
    write_image(tmp_path / "out.png", rgb, info)
    assert cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    write_image(tmp_path / "out2.png", rgb)  # no info: 8-bit
    assert cv2.imread(str(tmp_path / "out2.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


# ---------------------------------------------------------------------------------------------
# EXIF orientation and metadata


def corners_image(h: int = 12, w: int = 20) -> np.ndarray:
    """Flat-coloured quadrants: easy to check orientation even after JPEG compression."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = (255, 255, 0)
    return a


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_matches_exif_transpose(tmp_path, orientation):
    exif = Image.Exif()
    exif[274] = orientation
    save(pattern(h=5, w=7), tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as im:
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    rgb, info = read_image(tmp_path / "o.png")
    assert np.array_equal(as_u8(rgb), reference)
    written = Image.Exif()
    written.load(info.exif)
    assert written.get(274) == 1


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_upright_and_metadata_kept(tmp_path, orientation):
    exif = Image.Exif()
    exif[274] = orientation
    exif[271] = "Canon"
    exif[272] = "EOS R5"
    exif.get_ifd(0x8769)[36867] = "2024:01:02 03:04:05"  # DateTimeOriginal in the Exif IFD
    Image.fromarray(corners_image()).save(tmp_path / "in.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "in.jpg") as im:
        reference = np.asarray(ImageOps.exif_transpose(im))
    rgb, info = read_image(tmp_path / "in.jpg")
    assert rgb.shape == (20, 12, 3)  # portrait now
    assert np.array_equal(as_u8(rgb), reference)
    # top-left corner as a viewer shows it
    expected_top_left = (0, 0, 255) if orientation == 6 else (0, 255, 0)
    assert np.abs(as_u8(rgb)[1, 1].astype(int) - expected_top_left).max() < 40

    write_image(tmp_path / "out.jpg", rgb, info)
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.size == (12, 20)
        out = im.getexif()
        assert out.get(274) == 1
        assert out.get(271) == "Canon" and out.get(272) == "EOS R5"
        assert out.get_ifd(0x8769).get(36867) == "2024:01:02 03:04:05"
        # a viewer applying the orientation shows the same thing
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(im)).shape, (20, 12, 3))


def test_tiff_layout_tags_not_copied_into_exif(tmp_path):
    exif = Image.Exif()
    exif[271] = "Nikon"
    Image.fromarray(pattern()).save(tmp_path / "in.tif", exif=exif)
    rgb, info = read_image(tmp_path / "in.tif")
    write_image(tmp_path / "out.jpg", rgb, info)
    with Image.open(tmp_path / "out.jpg") as im:
        out = im.getexif()
        assert out.get(271) == "Nikon"
        assert 273 not in out and 279 not in out and 258 not in out  # strips, bits per sample
    write_image(tmp_path / "out.tif", rgb, info)  # and back into a TIFF
    with Image.open(tmp_path / "out.tif") as im:
        assert im.getexif().get(271) == "Nikon"
        assert np.array_equal(np.asarray(im), as_u8(rgb))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_carried_through(tmp_path, ext):
    save(pattern(), tmp_path / "in.png", icc_profile=SRGB_ICC)
    rgb, info = read_image(tmp_path / "in.png")
    assert info.icc_profile == SRGB_ICC
    write_image(tmp_path / f"out{ext}", rgb, info)
    with Image.open(tmp_path / f"out{ext}") as im:
        assert im.info.get("icc_profile") == SRGB_ICC
    rgb2, info2 = read_image(tmp_path / f"out{ext}")
    assert info2.icc_profile == SRGB_ICC


def test_non_rgb_icc_profile_dropped(tmp_path):
    lab_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert lab_icc[16:20] != b"RGB "  # would describe the output's RGB values wrongly
    Image.fromarray(pattern()[..., 0], "L").save(tmp_path / "g.png", icc_profile=lab_icc)
    _, info = read_image(tmp_path / "g.png")
    assert info.icc_profile is None


# ---------------------------------------------------------------------------------------------
# JPEG options


def test_jpeg_quality_affects_file_size(tmp_path):
    rgb = pattern(64, 64).astype(np.float32) / 255
    write_image(tmp_path / "lo.jpg", rgb, quality=30)
    write_image(tmp_path / "hi.jpg", rgb, quality=95)
    assert (tmp_path / "lo.jpg").stat().st_size < 0.8 * (tmp_path / "hi.jpg").stat().st_size


@pytest.mark.parametrize(("subsampling", "code"), [("4:4:4", 0), ("4:2:2", 1), ("4:2:0", 2)])
def test_jpeg_subsampling_honoured(tmp_path, subsampling, code):
    rgb = pattern(32, 32).astype(np.float32) / 255
    write_image(tmp_path / "s.jpg", rgb, subsampling=subsampling)
    with Image.open(tmp_path / "s.jpg") as im:
        assert JpegImagePlugin.get_sampling(im) == code


def test_bad_jpeg_options_are_user_errors(tmp_path):
    rgb = np.zeros((2, 2, 3), np.float32)
    with pytest.raises(UserError, match="quality"):
        write_image(tmp_path / "q.jpg", rgb, quality=0)
    with pytest.raises(UserError, match="subsampling"):
        write_image(tmp_path / "q.jpg", rgb, subsampling="4:1:1")
    assert files_in(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Bad input files


@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 120])
def test_truncated_file_is_user_error(tmp_path, ext, keep):
    good = save(pattern(32, 32), tmp_path / f"good{ext}")
    data = good.read_bytes()
    cut = int(len(data) * keep) if keep < 1 else keep
    bad = tmp_path / f"cut{ext}"
    bad.write_bytes(data[:cut])
    with pytest.raises(UserError) as e:
        read_image(bad)
    assert str(e.value) == f"{bad}: file is truncated"


def test_png_cut_inside_header_named_as_truncated(tmp_path):
    data = save(pattern(), tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:30])
    with pytest.raises(UserError, match="cut.png: corrupt or truncated PNG file"):
        read_image(tmp_path / "cut.png")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError, match=r"empty\.jpg: file is empty"):
        read_image(tmp_path / "empty.jpg")


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("hello, this is not a picture\n")
    with pytest.raises(UserError, match=r"notes\.png: not an image file"):
        read_image(tmp_path / "notes.png")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UserError, match=r"nope\.png: file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(UserError, match="is a directory"):
        read_image(tmp_path)


def test_decompression_bomb_refused_quickly(tmp_path):
    # Header declares 100000x100000 RGB (10 gigapixels, 30 GB decoded); real data is tiny.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(hand_png(100_000, 100_000, 8, 2, b"\x00" * 64))
    assert bomb.stat().st_size < 200
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        read_image(bomb)
    assert time.perf_counter() - t0 < 2
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kb < 100_000
    msg = str(e.value)
    assert "bomb.png" in msg and "100000x100000" in msg and "megapixels" in msg


def test_megapixel_limit_is_ours_not_pillows(tmp_path, monkeypatch):
    path = save(pattern(40, 50), tmp_path / "a.png")  # 2000 pixels
    monkeypatch.setattr(limits, "MAX_MEGAPIXELS", 1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse
    rgb, _ = read_image(path)
    assert rgb.shape == (40, 50, 3)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored afterwards

    big = tmp_path / "big.png"
    big.write_bytes(hand_png(1200, 1000, 8, 0, b"\x00"))  # 1.2 MP declared
    with pytest.raises(UserError, match="1200x1000 pixels exceeds the limit of 1 megapixels"):
        read_image(big)


def test_megapixel_limit_from_environment(monkeypatch):
    monkeypatch.setenv("LLENHANCE_MAX_MEGAPIXELS", "12")
    assert limits._megapixels_from_env() == 12
    monkeypatch.setenv("LLENHANCE_MAX_MEGAPIXELS", "lots")
    with pytest.warns(UserWarning, match="LLENHANCE_MAX_MEGAPIXELS"):
        assert limits._megapixels_from_env(default=7) == 7


# Mutated files found by fuzzing on which Pillow raises something other than OSError
# (SyntaxError, ValueError): they must still come out as one-line UserErrors.
REGRESSION_CORPUS = {
    "png_syntax_error": (
        "89504e470d0a1a0a0000000d49484452000000050000000608020000008499c31c00000026494441"
        "54789c0160009fff005f82c2d9cfeb0fa388d7d982f8bd1002e63626f47fbe2edae94617c01bf917"
        "013b043b16daf1279c0658d4ea70585d0159aae926080401bf8ecc2aca4ee7b3005f49c0babf7fdc"
        "a1e7012b8bedbf56018f07e8d1e864d711fb16c79483e9b5ccbb2fb2dbd3b4290000000049454e44"
        "ae426082"
    ),
    "gif_value_error": (
        "47494638376105000600840000d9cfebd7d982d0b090edbf56f8bd1060ef4cbabf7f7fb2ed59aae9"
        "51de2c1df0424dc7db45b8e840a67913b6270fa321dca1e79a82f85f37c24c9b453d7d0acd4ea9d0"
        "4e1c80717b787a325f49c08f07e8012b8b3b043b374c89a66417ce00470000000000002c00000000"
        "0000082400250078108000830a141438e09000838506080e5c9810218301081b066828d06181bf80"
        "003b"
    ),
}


@pytest.mark.parametrize("name", sorted(REGRESSION_CORPUS))
def test_decoder_errors_other_than_oserror_are_user_errors(tmp_path, name):
    path = tmp_path / f"{name}.img"
    path.write_bytes(bytes.fromhex(REGRESSION_CORPUS[name]))
    with pytest.raises(UserError, match=rf"{name}\.img: corrupt image"):
        read_image(path)


def test_bomb_refused_before_pillow_sees_the_size(tmp_path):
    # BMP header declaring 70000x70000 (4.9 gigapixels): Pillow's own check fires inside
    # Image.open, before our check can see the size; it must still be a clear UserError.
    header = struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54)
    header += struct.pack("<IiiHHIIiiII", 40, 70_000, 70_000, 1, 24, 0, 0, 0, 0, 0, 0)
    (tmp_path / "huge.bmp").write_bytes(header + b"\x00" * 16)
    with pytest.raises(UserError) as e:
        read_image(tmp_path / "huge.bmp")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'huge.bmp'}: image of 4900 megapixels exceeds the limit")
    assert "decompression bomb" in msg


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1)])
@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_tiny_images(tmp_path, shape, ext):
    src = pattern(*shape)
    rgb, _ = read_image(save(src, tmp_path / f"in{ext}"))
    assert rgb.shape == (*shape, 3)
    write_image(tmp_path / f"out{ext}", rgb)
    back = read_rgb(tmp_path / f"out{ext}")
    assert back.shape == (*shape, 3)
    if ext in (".png", ".tif", ".bmp"):
        assert np.array_equal(as_u8(back), src)


# ---------------------------------------------------------------------------------------------
# Writing: validation, atomicity, destinations


def test_write_validates_array(tmp_path):
    with pytest.raises(ValueError, match="HxWx3"):
        write_image(tmp_path / "a.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="float"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.int32))
    nan = np.zeros((4, 4, 3), np.float32)
    nan[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "a.png", nan)
    assert files_in(tmp_path) == []


def test_write_clips_out_of_range(tmp_path):
    rgb = np.array([[[-0.5, 0.5, 1.5]]], dtype=np.float64)
    write_image(tmp_path / "c.png", rgb)
    with Image.open(tmp_path / "c.png") as im:
        assert np.asarray(im).tolist() == [[[0, 128, 255]]]


def test_unknown_output_extension(tmp_path):
    with pytest.raises(UserError) as e:
        write_image(tmp_path / "out.gif", np.zeros((2, 2, 3), np.float32))
    assert "out.gif" in str(e.value) and ".png" in str(e.value) and ".webp" in str(e.value)
    with pytest.raises(UserError, match="no extension"):
        write_image(tmp_path / "out", np.zeros((2, 2, 3), np.float32))


def test_missing_output_directory(tmp_path):
    target = tmp_path / "nope" / "out.png"
    with pytest.raises(UserError, match=r"out\.png: output directory does not exist"):
        write_image(target, np.zeros((2, 2, 3), np.float32))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"out\.png: output directory is not a directory"):
        write_image(tmp_path / "file" / "out.png", np.zeros((2, 2, 3), np.float32))
    assert files_in(tmp_path) == ["file"]


def test_permission_denied_is_user_error(tmp_path, monkeypatch):
    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(write, "_create_temp", refuse)
    with pytest.raises(UserError, match=r"out\.png: permission denied"):
        write_image(tmp_path / "out.png", np.zeros((2, 2, 3), np.float32))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(UserError, match="permission denied"):
            write_image(d / "out.png", np.zeros((2, 2, 3), np.float32))
    finally:
        d.chmod(0o755)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_atomic_write_leaves_only_the_output(tmp_path, ext):
    info = ImageInfo(bit_depth=16)  # .png/.tif go through the 16-bit path
    write_image(tmp_path / f"out{ext}", pattern().astype(np.float32) / 255, info)
    assert files_in(tmp_path) == [f"out{ext}"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / f"out{ext}").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("suffix", [".png", ".jpg"])  # streamed PNG encoder; Pillow's save
@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("boom")])
def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, error, suffix):
    out = tmp_path / f"out{suffix}"
    out.write_bytes(b"previous result")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial data")
        raise error

    def broken_rows(self, rows):
        self._file.write(b"partial data")
        raise error

    monkeypatch.setattr(Image.Image, "save", broken_save)
    monkeypatch.setattr(PngEncoder, "write", broken_rows)
    expected = UserError if isinstance(error, OSError) else RuntimeError
    with pytest.raises(expected) as e:
        write_image(out, np.zeros((4, 4, 3), np.float32), overwrite=True)
    if expected is UserError:
        assert out.name in str(e.value) and "No space left" in str(e.value)
    assert files_in(tmp_path) == [out.name]
    assert out.read_bytes() == b"previous result"


def test_write_refuses_existing_file_unless_overwrite(tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    with pytest.raises(UserError, match="already exists"):
        write_image(out, np.ones((2, 3, 3), np.float32))
    assert out.read_bytes() == b"old"
    assert files_in(tmp_path) == ["out.png"]
    write_image(out, np.ones((2, 3, 3), np.float32), overwrite=True)
    assert read_rgb(out).shape == (2, 3, 3)
    assert files_in(tmp_path) == ["out.png"]


def test_alpha_shape_mismatch_is_a_programming_error(tmp_path):
    info = ImageInfo(alpha=np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.float32), info)


# ---------------------------------------------------------------------------------------------
# list_images


def _touch(d: Path, *names: str) -> None:
    for n in names:
        (d / n).write_bytes(b"x")


def test_list_images_directory(tmp_path):
    _touch(tmp_path, "b.PNG", "a.jpg", "c.JpEg", "d.txt", "e.tiff", ".hidden.png", "z.webp")
    (tmp_path / "sub").mkdir()
    _touch(tmp_path / "sub", "inner.png")
    (tmp_path / "dir.png").mkdir()  # a directory with an image-like name is not an image
    names = [p.name for p in list_images([tmp_path])]
    assert names == ["a.jpg", "b.PNG", "c.JpEg", "e.tiff", "z.webp"]


def test_list_images_files_globs_and_dedup(tmp_path):
    _touch(tmp_path, "x1.png", "x2.png", "y.jpg", "notes.txt")
    got = list_images([tmp_path / "y.jpg", str(tmp_path / "x*.png"), tmp_path / "x1.png"])
    assert [p.name for p in got] == ["y.jpg", "x1.png", "x2.png"]
    assert all(isinstance(p, Path) for p in got)
    assert [p.name for p in list_images([str(tmp_path / "*")])] == ["x1.png", "x2.png", "y.jpg"]
    assert set(IMAGE_EXTENSIONS) >= {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}


def test_list_images_errors(tmp_path):
    with pytest.raises(UserError, match=r"missing\.png: no such file or directory"):
        list_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty", "readme.txt")
    with pytest.raises(UserError, match="no image files"):
        list_images([tmp_path / "empty"])
    with pytest.raises(UserError, match="pattern matches nothing"):
        list_images([str(tmp_path / "*.nef")])
    with pytest.raises(UserError, match="pattern matches no image files"):
        list_images([str(tmp_path / "empty" / "*")])


# ---------------------------------------------------------------------------------------------
# Fuzzing: any bytes -> a valid image or a UserError, nothing else


def _valid_small_files() -> list[bytes]:
    out = []
    for fmt, kw in (("PNG", {}), ("JPEG", {"quality": 80})):
        buf = io.BytesIO()
        Image.fromarray(pattern(6, 5)).save(buf, format=fmt, **kw)
        out.append(buf.getvalue())
    out.append(png16(pattern16(3, 4), 2))
    return out


_VALID = _valid_small_files()


@st.composite
def mutated_file(draw):
    data = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.one_of(st.binary(max_size=256), mutated_file()))
def test_fuzz_read_image_returns_image_or_user_error(tmp_path, monkeypatch, data):
    monkeypatch.setattr(limits, "MAX_MEGAPIXELS", 1)  # mutated headers must not eat memory
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    try:
        rgb, info = read_image(path)
    except UserError as e:
        assert "fuzz.png" in str(e) and "\n" not in str(e)
        return
    assert rgb.dtype == np.float32 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[0] >= 1 and rgb.shape[1] >= 1
    assert np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert info.bit_depth in (8, 16)


def test_native_read_and_integer_write_round_trip(tmp_path):
    """8-bit stays uint8 (a quarter of the memory), 16-bit stays uint16, and both write back
    exactly; integer arrays convert between depths by exact scaling."""
    rng = np.random.default_rng(0)
    data8 = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(data8).save(tmp_path / "a.png")
    native, info = read_image(tmp_path / "a.png", as_float=False)
    assert native.dtype == np.uint8 and np.array_equal(native, data8)
    assert np.array_equal(read_image(tmp_path / "a.png")[0], data8 / np.float32(255))
    write_image(tmp_path / "b.png", native, info)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), data8)
    write_image(tmp_path / "c.png", native, ImageInfo(bit_depth=16))
    assert np.array_equal(
        cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_UNCHANGED)[..., ::-1],
        data8.astype(np.uint16) * 257,
    )
    data16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), data16[..., ::-1])
    native16, info16 = read_image(tmp_path / "d.png", as_float=False)
    assert native16.dtype == np.uint16 and np.array_equal(native16, data16)
    write_image(tmp_path / "e.png", native16, info16)
    assert np.array_equal(
        cv2.imread(str(tmp_path / "e.png"), cv2.IMREAD_UNCHANGED)[..., ::-1], data16
    )
    assert np.array_equal(to_uint8(native16), to_uint8(data16 / 65535.0))


@pytest.mark.parametrize("bits", [8, 16])
def test_png_compression_level_trades_size_and_never_changes_pixels(tmp_path, bits):
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 1, 128, dtype=np.float32)[None, :, None]
    rgb = np.clip(ramp + 0.02 * rng.standard_normal((96, 128, 3)), 0, 1).astype(np.float32)
    info = ImageInfo(format="PNG", bit_depth=bits)
    sizes, pixels = {}, {}
    for level in (0, 1, 9):
        path = tmp_path / f"l{level}.png"
        write_image(path, rgb, info, png_compression=level)
        sizes[level] = path.stat().st_size
        pixels[level] = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert sizes[0] > sizes[9] and sizes[1] > sizes[9]
    assert np.array_equal(pixels[0], pixels[1]) and np.array_equal(pixels[1], pixels[9])
    for bad in (-1, 10, 2.5, True):
        with pytest.raises(UserError, match="PNG compression"):
            write_image(tmp_path / "bad.png", rgb, png_compression=bad)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_colour_is_decoded_by_libvips_alone(tmp_path, ext, monkeypatch):
    """Pillow would reduce 16-bit colour to 8 bits: it never opens the file (libvips reads the
    pixels and the metadata, a TIFF's EXIF by Pillow's parser alone)."""
    from PIL import ImageFile

    src = pattern16(h=9, w=11, seed=5)
    assert cv2.imwrite(str(tmp_path / f"in{ext}"), src[..., ::-1])

    def no_pillow(*args, **kwargs):
        raise AssertionError("Pillow opened or decoded the file")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_pillow)
    monkeypatch.setattr(Image, "open", no_pillow)
    rgb, info = read_image(tmp_path / f"in{ext}")
    assert info.bit_depth == 16 and np.array_equal(as_u16(rgb), src)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")  # Pillow, opening the cut TIFF's directory
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_corrupt_16bit_colour_file_is_reported(tmp_path, ext):
    src = pattern16(h=40, w=50, seed=6)
    assert cv2.imwrite(str(tmp_path / f"in{ext}"), src[..., ::-1])
    data = (tmp_path / f"in{ext}").read_bytes()
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated|corrupt"):
        read_image(tmp_path / f"cut{ext}")
