"""Tests for the decoding routes: libvips (llenhance.io.decode_vips) decodes every file of a
format it loads, small or large, a band of rows at a time; Pillow only the rest (BMP) and files
whose header libvips cannot read. Bands give the pixels and metadata of the whole read, and bad
files are reported alike either way."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from llenhance.errors import UserError
from llenhance.io import decode_vips, read
from llenhance.io.decode_vips import VipsDecoder, png_exif
from llenhance.io.formats import BY_NAME, VIPS_LOADED
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


def _write(path: Path, kind: str) -> np.ndarray:
    """One file per kind of data libvips decodes; returns the upright pixels (RGB, or RGBA
    where the file has alpha) a correct decoder gives."""
    if kind == "rgb-png":
        data = _noise((40, 33, 3))
        Image.fromarray(data).save(path, exif=_exif(1), icc_profile=SRGB_ICC)
    elif kind == "rgba-png":
        data = _noise((40, 33, 4))
        Image.fromarray(data, "RGBA").save(path)
    elif kind == "grey-png":
        data = _noise((40, 33))
        Image.fromarray(data).save(path)
    elif kind in ("16-bit-png", "16-bit-tif"):
        data = _noise((40, 33, 3), np.uint16)
        assert cv2.imwrite(str(path), data[:, :, ::-1])
    elif kind == "16-bit-rgba-png":
        data = _noise((40, 33, 4), np.uint16)
        assert cv2.imwrite(str(path), data[:, :, [2, 1, 0, 3]])
    elif kind == "16-bit-grey-png":
        data = _noise((40, 33), np.uint16)
        assert cv2.imwrite(str(path), data)
    elif kind in ("jpg", "grey-jpg"):  # 4:2:0 chroma: libvips must upsample as libjpeg does
        shape = (40, 33, 3) if kind == "jpg" else (40, 33)
        Image.fromarray(_noise(shape)).save(path, quality=90, exif=_exif(1))
        with Image.open(path) as im:
            data = np.asarray(im)
    elif kind == "tif":
        data = _noise((40, 33, 3))
        Image.fromarray(data).save(path, compression="tiff_adobe_deflate")
    elif kind == "webp":
        data = _noise((40, 33, 4))
        Image.fromarray(data, "RGBA").save(path, lossless=True, exact=True)
    elif kind == "gif":
        data = _noise((40, 33, 3)) // 64 * 64  # 64 colours: the palette holds them exactly
        Image.fromarray(data).save(path)
    else:
        raise AssertionError(kind)
    return np.dstack([data] * 3) if data.ndim == 2 else data


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
    "gif": ".gif",
}


@pytest.fixture
def counted_bands(monkeypatch) -> list[tuple[int, int]]:
    """Bands of 7 rows when spooling; returns the row ranges libvips was asked for."""
    monkeypatch.setattr(read, "BAND_ROWS", 7)  # many bands, and a short last one
    asked: list[tuple[int, int]] = []
    real_rows = VipsDecoder.rows

    def rows(self, top, bottom):
        asked.append((top, bottom))
        return real_rows(self, top, bottom)

    monkeypatch.setattr(VipsDecoder, "rows", rows)
    return asked


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_small_files_are_decoded_by_libvips_alone_in_bands(tmp_path, counted_bands, kind):
    path = tmp_path / f"in{KINDS[kind]}"
    expected = _write(path, kind)
    with pytest.MonkeyPatch.context() as patch:  # (the reference above was Pillow's)
        patch.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow opened the file"))
        whole, info = read_image(path, as_float=False)
        spooled, spooled_info = spool_image(path, tmp_path)
    assert counted_bands[0] == (0, 40) and counted_bands[1:] == [
        (top, min(top + 7, 40)) for top in range(0, 40, 7)
    ]
    rgb = expected[:, :, :3]
    assert whole.dtype == rgb.dtype and whole.flags.writeable
    np.testing.assert_array_equal(whole, rgb)
    with spooled:
        np.testing.assert_array_equal(spooled[:], rgb)
    names = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF", ".webp": "WEBP", ".gif": "GIF"}
    assert info.format == spooled_info.format == names[KINDS[kind]]
    assert info.bit_depth == spooled_info.bit_depth == (16 if rgb.dtype == np.uint16 else 8)
    assert (spooled_info.icc_profile, spooled_info.exif) == (info.icc_profile, info.exif)
    assert info.icc_profile == (SRGB_ICC if kind == "rgb-png" else None)
    if expected.shape[2] == 4:
        top = np.iinfo(expected.dtype).max
        np.testing.assert_array_equal(info.alpha, expected[:, :, 3] / np.float32(top))
        np.testing.assert_array_equal(spooled_alpha(spooled_info.alpha), info.alpha)
    else:
        assert info.alpha is None and spooled_info.alpha is None


def test_bmp_and_other_formats_without_a_libvips_loader_go_to_pillow(tmp_path, monkeypatch):
    opened: list[str] = []
    real_init = VipsDecoder.__init__

    def init(self, path, *args, **kwargs):
        opened.append(Path(path).name)
        real_init(self, path, *args, **kwargs)

    rgb = _noise((9, 7, 3))
    for name in ("in.bmp", "in.ppm", "in.png"):
        Image.fromarray(rgb).save(tmp_path / name)
    real_open = Image.open

    def pillow_open(path, *args, **kwargs):
        opened.append(f"Pillow {Path(path).name}")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(VipsDecoder, "__init__", init)
    monkeypatch.setattr(Image, "open", pillow_open)
    for name in ("in.bmp", "in.ppm", "in.png"):
        image, info = read_image(tmp_path / name, as_float=False)
        np.testing.assert_array_equal(image, rgb)
    assert opened == ["Pillow in.bmp", "Pillow in.ppm", "in.png"]
    assert "BMP" not in VIPS_LOADED and {"PNG", "JPEG", "TIFF", "WEBP", "GIF"} <= VIPS_LOADED


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
def test_bands_are_oriented_and_placed_like_the_whole_image(tmp_path, counted_bands, orientation):
    path = tmp_path / "in.png"
    exif = _png_with_exif_after_pixels(path, orientation)
    assert png_exif(path) == exif
    with Image.open(path) as im:
        expected = ImageOps.exif_transpose(im)
        rgb, alpha = np.asarray(expected.convert("RGB")), np.asarray(expected.getchannel("A"))
    spooled, spooled_info = spool_image(path, tmp_path)
    assert len(counted_bands) == 4  # stored rows 0-7-14-21-23, each read once, in order
    whole, info = read_image(path, as_float=False)
    np.testing.assert_array_equal(whole, rgb)
    np.testing.assert_array_equal(info.alpha, alpha / np.float32(255))
    with spooled:
        np.testing.assert_array_equal(spooled[:], whole)
    np.testing.assert_array_equal(spooled_alpha(spooled_info.alpha), info.alpha)
    assert spooled_info.exif == info.exif is not None
    written = Image.Exif()
    written.load(info.exif)
    assert written[274] == 1 and written[0x010F] == "llenhance test camera"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".gif"])
def test_a_file_cut_short_is_reported_alike_by_both_reads(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    if suffix == ".tif":  # our own TIFFs keep their directory at the front: the cut is in rows
        write_image(good, _noise((40, 33, 3)).astype(np.float32) / 255)
    else:
        _write(good, {".png": "rgb-png", ".jpg": "jpg", ".gif": "gif"}[suffix])
    data = good.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UserError) as banded:
        spool_image(bad, tmp_path)
    with pytest.raises(UserError) as whole:
        read_image(bad)
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
    (tmp_path / "garbage.png").write_bytes(data[:-12] + b"\xff" * 40)  # garbage for IEND
    with pytest.raises(OSError, match="broken PNG file"):
        png_exif(tmp_path / "garbage.png")
    with pytest.raises(UserError, match=r"garbage\.png: corrupt image data \(broken PNG file"):
        read_image(tmp_path / "garbage.png")


def test_orientation_and_exif_where_libvips_has_no_field_for_them(tmp_path):
    """XMP's tiff:Orientation where EXIF has none, and a PNG's EXIF as ImageMagick's "Raw
    profile type exif" text, are read as Pillow reads them."""
    from PIL import PngImagePlugin

    rgb = _noise((4, 6, 3))
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    Image.fromarray(rgb).save(tmp_path / "xmp.jpg", xmp=xmp, quality=95)
    with Image.open(tmp_path / "xmp.jpg") as im:
        assert "exif" not in im.info and b"Orientation" in im.info["xmp"]
        expected = np.asarray(ImageOps.exif_transpose(im))
    image, _ = read_image(tmp_path / "xmp.jpg", as_float=False)
    assert image.shape == (6, 4, 3)
    np.testing.assert_array_equal(image, expected)
    exif = _exif(8).tobytes()
    text = PngImagePlugin.PngInfo()
    text.add_text("Raw profile type exif", f"\nexif\n{len(exif)}\n{exif.hex()}", zip=True)
    Image.fromarray(rgb).save(tmp_path / "raw.png", pnginfo=text)
    image, info = read_image(tmp_path / "raw.png", as_float=False)
    np.testing.assert_array_equal(image, np.rot90(rgb, 1))
    written = Image.Exif()
    written.load(info.exif)
    assert written[274] == 1 and written[0x010F] == "llenhance test camera"


def test_rows_are_decoded_once_top_to_bottom(tmp_path):
    expected = _write(tmp_path / "in.png", "rgb-png")
    decoder = VipsDecoder(tmp_path / "in.png", BY_NAME["PNG"])
    np.testing.assert_array_equal(decoder.rows(0, 10), expected[:10])
    np.testing.assert_array_equal(decoder.rows(15, 40), expected[15:])  # rows may be skipped
    with pytest.raises(ValueError, match="top to bottom"):
        decoder.rows(20, 30)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("colour", ["grey", "rgb"])
def test_a_png_transparent_colour_becomes_alpha(tmp_path, bits, colour):
    """tRNS in a grey or RGB PNG names one colour as fully transparent (PNG specification,
    11.3.2.1): it is read as alpha, at any bit depth (Pillow ignored it at 8 bits)."""
    dtype = np.uint8 if bits == 8 else np.uint16
    data = _noise((6, 5, 3) if colour == "rgb" else (6, 5), dtype, seed=bits)
    key = data[2, 3].copy()
    data[4, 0] = key
    rows = b"".join(b"\x00" + row.astype(f">u{bits // 8}").tobytes() for row in data)
    ihdr = struct.pack(">IIBBBBB", 5, 6, bits, 2 if colour == "rgb" else 0, 0, 0, 0)
    trns = np.atleast_1d(key).astype(">u2").tobytes()  # tRNS samples are 16-bit

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    (tmp_path / "key.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tRNS", trns)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    image, info = read_image(tmp_path / "key.png", as_float=False)
    np.testing.assert_array_equal(image, data if data.ndim == 3 else np.dstack([data] * 3))
    transparent = np.all(data.reshape(6, 5, -1) == np.atleast_1d(key), axis=2)
    assert transparent.sum() >= 2
    np.testing.assert_array_equal(info.alpha, (~transparent).astype(np.float32))


def test_cmyk_jpeg_is_converted_through_its_icc_profile(tmp_path):
    """A CMYK JPEG with a profile gives the colours its profile says (Pillow's LittleCMS
    conversion agrees), not the naive inversion used for CMYK without one."""
    pyvips = decode_vips._pyvips()
    colours = np.array([[[255, 0, 0], [0, 160, 0]], [[20, 40, 200], [200, 180, 40]]], np.uint8)
    srgb = pyvips.Image.new_from_array(colours.repeat(8, 0).repeat(8, 1), interpretation="srgb")
    srgb.icc_export(output_profile="cmyk").jpegsave(str(tmp_path / "c.jpg"), Q=100)
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK" and im.info.get("icc_profile")
        source = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        managed = ImageCms.profileToProfile(
            im, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
        naive = np.asarray(im.convert("RGB")).astype(int)
    rgb, info = read_image(tmp_path / "c.jpg", as_float=False)
    assert info.icc_profile is None  # the CMYK profile does not describe the RGB result
    assert np.abs(rgb.astype(int) - np.asarray(managed)).max() <= 3
    assert np.abs(rgb.astype(int) - naive).max() > 20


def test_signed_and_float_tiffs_keep_their_exif_and_orientation(tmp_path):
    """TIFFs Pillow could not open: EXIF from their first directory, orientation applied; grey
    signed data is scaled like colour data."""
    tifffile = pytest.importorskip("tifffile")
    unit = np.random.default_rng(0).random((4, 6, 3))
    tags = [(271, "s", 0, "Nikon", True), (274, "H", 1, 6, True)]
    tifffile.imwrite(tmp_path / "f.tif", unit.astype(np.float32), photometric="rgb", extratags=tags)
    signed = (unit * 32767).astype(np.int16)
    tifffile.imwrite(tmp_path / "s.tif", signed, photometric="rgb")
    tifffile.imwrite(tmp_path / "g.tif", signed[:, :, 0], photometric="minisblack")
    rgb, info = read_image(tmp_path / "f.tif", as_float=False)
    np.testing.assert_array_equal(rgb, np.rot90(unit.astype(np.float32), -1))
    exif = Image.Exif()
    exif.load(info.exif)
    assert exif[271] == "Nikon" and exif[274] == 1 and 273 not in exif  # no strip offsets
    colour, _ = read_image(tmp_path / "s.tif", as_float=False)
    grey, info = read_image(tmp_path / "g.tif", as_float=False)
    assert colour.dtype == grey.dtype == np.uint16 and info.bit_depth == 16
    np.testing.assert_array_equal(grey[:, :, 0], colour[:, :, 0])
    np.testing.assert_array_equal(colour, signed.astype(np.uint16) * 2)


def test_a_libvips_error_names_the_failure_not_earlier_warnings(tmp_path):
    """libtiff logs what it reads past into libvips's error buffer: a message names what failed
    in this file (the last line), never a leftover from another."""
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "a.tif", _noise((8, 6, 3)), photometric="rgb")
    data = bytearray((tmp_path / "a.tif").read_bytes())
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        assert tif.byteorder == "<" and not tif.is_bigtiff
        entry = tif.pages[0].tags["StripOffsets"].offset
    data[entry + 7] = 78  # StripOffsets claims 1.3 billion strips: libtiff errs on, then fails
    (tmp_path / "b.tif").write_bytes(bytes(data))
    Image.fromarray(_noise((8, 6, 3))).save(tmp_path / "c.png")
    png = bytearray((tmp_path / "c.png").read_bytes())
    png[-20] ^= 0xFF  # in IDAT: its checksum fails
    (tmp_path / "d.png").write_bytes(bytes(png))
    with pytest.raises(UserError) as tiff_error:
        read_image(tmp_path / "b.tif")
    assert str(tiff_error.value) == (
        f"{tmp_path / 'b.tif'}: corrupt image data (Invalid strip byte count 0, strip 0)"
    )
    assert read.image_size(tmp_path / "b.tif") == (6, 8)  # (its header logs errors again)
    with pytest.raises(UserError) as png_error:
        read_image(tmp_path / "d.png")
    assert str(png_error.value) == f"{tmp_path / 'd.png'}: corrupt image data (libpng read error)"
