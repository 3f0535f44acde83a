"""The streamed TIFF encoder: lossless in bands, readable by libtiff and Pillow, metadata kept."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from llenhance.errors import UserError
from llenhance.io import tiff
from llenhance.io.metadata import ImageInfo
from llenhance.io.read import read_image
from llenhance.io.tiff import TiffEncoder
from llenhance.io.write import ImageWriter, write_image

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _image(height: int, width: int, channels: int, depth: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 255 if depth == 8 else 65535
    smooth = cv2.resize(rng.random((3, 4, channels)), (width, height), cv2.INTER_CUBIC)
    image = (np.clip(smooth, 0, 1) * top).astype(np.uint8 if depth == 8 else np.uint16)
    image[-5:] = (rng.random((5, width, channels)) * top).astype(image.dtype)  # wrap-around
    return image


def _tags(data: bytes) -> dict[int, tuple[int, int, int]]:
    """IFD0 of a little-endian TIFF: tag -> (type, count, value or offset)."""
    assert data[:4] == b"II*\x00"
    (first,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, first)
    entries = (struct.unpack_from("<HHII", data, first + 2 + 12 * i) for i in range(count))
    return {tag: (kind, n, value) for tag, kind, n, value in entries}


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels", [3, 4])
def test_tiff_encoder_is_lossless_for_bands_of_any_height(depth, channels):
    image = _image(61, 45, channels, depth, seed=depth + channels)
    out = io.BytesIO()
    # 45 x 4 x 2 bytes a row: a 64 KB strip would hold the whole image, so shrink strips
    encoder = TiffEncoder(out, 45, 61, bit_depth=depth, alpha=channels == 4, level=3)
    for top, bottom in ((0, 1), (1, 17), (17, 60), (60, 61)):
        encoder.write(image[top:bottom])
    encoder.close()
    data = out.getvalue()
    if depth == 16:  # OpenCV (libtiff); its 8-bit RGBA reader premultiplies the alpha
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        decoded = decoded[..., [2, 1, 0, 3][:channels]]
    else:
        with Image.open(io.BytesIO(data)) as im:
            decoded = np.asarray(im)
    assert decoded.dtype == image.dtype
    np.testing.assert_array_equal(decoded, image)
    tags = _tags(data)
    assert tags[259][2] == 8 and tags[317][2] == 2  # deflate, horizontal predictor
    assert (338 in tags) == (channels == 4)


def test_tiff_strips_split_rows_across_bands(monkeypatch):
    monkeypatch.setattr(tiff, "_STRIP_BYTES", 7 * 20 * 3)  # 7 rows a strip
    image = _image(50, 20, 3, 8, seed=3)
    out = io.BytesIO()
    encoder = TiffEncoder(out, 20, 50)
    for top in range(0, 50, 9):  # bands that never line up with strips
        encoder.write(image[top : top + 9])
    encoder.close()
    tags = _tags(out.getvalue())
    assert tags[278][2] == 7 and tags[273][1] == 8 and tags[279][1] == 8  # ceil(50 / 7) strips
    with Image.open(io.BytesIO(out.getvalue())) as im:  # Pillow (libtiff) reads it too
        np.testing.assert_array_equal(np.asarray(im), image)


def test_tiff_keeps_icc_exif_and_its_sub_directories(tmp_path):
    exif = Image.Exif()
    exif[271], exif[272], exif[274] = "Canon", "EOS R5", 1
    exif.get_ifd(0x8769)[36867] = "2024:01:02 03:04:05"
    exif.get_ifd(0x8825)[1] = "N"
    exif[256] = 9999  # a layout tag in the EXIF block must not override the real width
    info = ImageInfo(format="TIFF", bit_depth=16, icc_profile=SRGB_ICC, exif=exif.tobytes())
    rgb = _image(20, 30, 3, 16).astype(np.float32) / 65535
    write_image(tmp_path / "out.tif", rgb, info)
    with Image.open(tmp_path / "out.tif") as im:
        assert im.size == (30, 20)
        assert im.info.get("icc_profile") == SRGB_ICC
        out = im.getexif()
        assert out.get(271) == "Canon" and out.get(272) == "EOS R5"
        assert out.get_ifd(0x8769).get(36867) == "2024:01:02 03:04:05"
        assert out.get_ifd(0x8825).get(1) == "N"
    back, back_info = read_image(tmp_path / "out.tif")
    assert back_info.bit_depth == 16 and back_info.icc_profile == SRGB_ICC
    np.testing.assert_array_equal(back, np.round(rgb * 65535) / 65535)


def test_tiff_beyond_4_gib_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(tiff, "MAX_BYTES", 1000)  # a classic TIFF addresses 4 GiB
    (tmp_path / "out.tif").write_bytes(b"previous")
    noise = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    with pytest.raises(UserError, match="larger than 4 GiB"):
        write_image(tmp_path / "out.tif", noise, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    assert (tmp_path / "out.tif").read_bytes() == b"previous"


def test_webp_rows_wait_on_disk_until_close_and_jpeg_rows_do_not(tmp_path, monkeypatch):
    """libwebp encodes only a whole picture: WebP rows are gathered in a file and converted
    only when the caller closes the writer (after freeing its own memory). JPEG is encoded a
    band at a time as the rows come (:mod:`llenhance.io.jpeg`)."""
    from llenhance.io import jpeg, webp

    encoded: list[tuple[str, tuple[int, ...]]] = []
    real_webp, real_fromarray = webp.write, jpeg.Image.fromarray

    def recording_webp(file, height, width, *args):
        encoded.append(("webp", (height, width)))
        return real_webp(file, height, width, *args)

    def recording_fromarray(array, mode=None):
        encoded.append(("jpeg", array.shape))
        return real_fromarray(array, mode)

    monkeypatch.setattr(webp, "write", recording_webp)
    monkeypatch.setattr(jpeg.Image, "fromarray", recording_fromarray)
    rgb = _image(300, 40, 3, 8).astype(np.float32) / 255
    for suffix in (".webp", ".jpg"):
        writer = ImageWriter(tmp_path / f"out{suffix}", 300, 40)
        for top in range(0, 300, 64):
            writer.write(rgb[top : top + 64])
        before_close = list(encoded)
        writer.close()
        encoded.clear()
        back = read_image(tmp_path / f"out{suffix}")[0]
        assert np.abs(back - rgb).mean() < 0.02
        if suffix == ".webp":
            assert before_close == []
        else:
            assert before_close == [("jpeg", (jpeg.BAND_ROWS, 40, 3))]
