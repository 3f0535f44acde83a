"""Photos handled a band of rows at a time: spooled input, band-wise tiling, streamed PNG output."""

from __future__ import annotations

import io
import struct
import threading
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from llenhance.archs import create_model, get_arch
from llenhance.errors import UserError
from llenhance.inference import BatchCallbacks
from llenhance.io import read
from llenhance.io.jpeg import JpegEncoder
from llenhance.io.metadata import ImageInfo
from llenhance.io.png import PngEncoder
from llenhance.io.read import read_image, spool_image
from llenhance.io.spool import SpooledImage
from llenhance.io.tiff import TiffEncoder
from llenhance.io.write import ImageWriter, write_image
from llenhance.pixels import Shrinker, shrink, to_float, to_uint8
from llenhance.tiling import enhance_array, enhance_bands
from tests.conftest import TINY_UNET, darken, scene, spooled_alpha, write_png


class _Events(BatchCallbacks):
    """Batch callbacks that note, in order and from any thread, each photo's start (and, with
    ``ends``, its end) and whatever else is :meth:`add`-ed; :meth:`release` stands in for
    ``release_freed_memory``."""

    def __init__(self, ends: bool = False) -> None:
        self.seen: list[str] = []
        self._lock = threading.Lock()
        self._ends = ends

    def add(self, event: str) -> None:
        with self._lock:
            self.seen.append(event)

    def image_start(self, job, tiles):
        self.add(f"start {job.source.stem}")

    def image_end(self, job, status, megapixels):
        if self._ends:
            self.add(f"end {job.source.stem}")

    def release(self) -> bool:
        self.add("release")
        return True


def _idat_filter_types(png: bytes, row_bytes: int) -> set[int]:
    """The filter type byte of every row of a PNG (by walking its chunks)."""
    data, pos = b"", 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(data)
    return {raw[i] for i in range(0, len(raw), row_bytes + 1)}


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels", [3, 4])
def test_png_encoder_is_lossless_for_bands_of_any_height(depth, channels):
    rng = np.random.default_rng(depth + channels)
    top = 255 if depth == 8 else 65535
    dtype = np.uint8 if depth == 8 else np.uint16
    smooth = cv2.resize(rng.random((4, 5, channels)), (53, 41), interpolation=cv2.INTER_CUBIC)
    image = (np.clip(smooth, 0, 1) * top).astype(dtype)
    image[30:] = (rng.random((11, 53, channels)) * top).astype(dtype)  # noise
    out = io.BytesIO()
    encoder = PngEncoder(out, 53, 41, bit_depth=depth, alpha=channels == 4, level=3)
    for top_row, bottom in ((0, 1), (1, 17), (17, 40), (40, 41)):
        encoder.write(image[top_row:bottom])
    encoder.close()
    decoded = cv2.imdecode(np.frombuffer(out.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded[..., [2, 1, 0, 3][:channels]], image)
    # every row took the Up filter (the first against a row of zeros)
    assert _idat_filter_types(out.getvalue(), 53 * channels * depth // 8) == {2}


@pytest.mark.parametrize(
    ("encoder_class", "name"), [(PngEncoder, "PNG"), (TiffEncoder, "TIFF"), (JpegEncoder, "JPEG")]
)
def test_streaming_encoders_refuse_too_many_or_too_few_rows(encoder_class, name):
    encoder = encoder_class(io.BytesIO(), 4, 3)
    with pytest.raises(ValueError, match=f"more rows than the {name}'s height"):
        encoder.write(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="rows of shape"):
        encoder.write(np.zeros((1, 5, 3), np.uint8))
    encoder.write(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=f"1 rows of the {name} were never written"):
        encoder.close()


def _spooled(bands: list[np.ndarray], directory) -> SpooledImage:
    spooled = SpooledImage(bands[0].shape[1], bands[0].shape[2], bands[0].dtype, directory)
    for band in bands:
        spooled.append(band)
    return spooled


def test_spooled_image_reads_row_slices_and_nothing_else(tmp_path):
    image = np.arange(7 * 5 * 3, dtype=np.uint16).reshape(7, 5, 3)
    with _spooled([image[:3], image[3:4], image[4:]], tmp_path) as spooled:
        assert spooled.shape == (7, 5, 3) and spooled.dtype == np.uint16
        np.testing.assert_array_equal(spooled[2:6], image[2:6])
        np.testing.assert_array_equal(spooled[:], image)
        np.testing.assert_array_equal(spooled[5:99], image[5:])
        with pytest.raises(TypeError):
            spooled[::2]
    assert list(tmp_path.iterdir()) == []  # unlinked from the start


def test_blank_spooled_image_takes_blocks_in_any_order_and_refuses_overruns(tmp_path):
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    with SpooledImage.blank(6, 8, 3, np.uint8, tmp_path) as spooled:
        spooled.place(4, 0, image[4:])  # whole rows, bottom first
        spooled.place(0, 5, image[:4, 5:])  # narrow blocks, a row at a time
        spooled.place(0, 0, image[:4, :5])
        np.testing.assert_array_equal(spooled[:], image)
        with pytest.raises(ValueError, match="overruns"):
            spooled.place(5, 0, image[:2])
        with pytest.raises(ValueError, match="overruns"):
            spooled.place(0, 7, image[:1, :2])
        with pytest.raises(ValueError, match="does not fit"):
            spooled.place(0, 0, image[:1].astype(np.uint16))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_spool_image_equals_read_image_in_every_orientation(tmp_path, monkeypatch, orientation):
    monkeypatch.setattr(read, "BAND_ROWS", 7)  # many bands, and a short last one
    rng = np.random.default_rng(orientation)
    rgba = (rng.random((23, 31, 4)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[274] = orientation
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png", exif=exif)
    whole, info = read_image(tmp_path / "in.png", as_float=False)
    spooled, spooled_info = spool_image(tmp_path / "in.png", tmp_path)
    with spooled:
        np.testing.assert_array_equal(spooled[:], whole)
    assert whole.shape == ((31, 23, 3) if orientation >= 5 else (23, 31, 3))
    with spooled_info.alpha as alpha:  # spooled in the file's own levels
        assert alpha.shape == (*whole.shape[:2], 1) and alpha.dtype == np.uint8
        np.testing.assert_array_equal(spooled_alpha(alpha), info.alpha)
    assert spooled_info.exif == info.exif and spooled_info.bit_depth == 8


@pytest.mark.parametrize("kind", ["grey", "16-bit"])
def test_spool_image_keeps_grey_and_16_bit_like_read_image(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(read, "BAND_ROWS", 5)
    rng = np.random.default_rng(0)
    if kind == "grey":
        data = (rng.random((12, 9)) * 255).astype(np.uint8)
    else:
        data = (rng.random((12, 9, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "in.png"), data)
    whole, info = read_image(tmp_path / "in.png", as_float=False)
    spooled, spooled_info = spool_image(tmp_path / "in.png")
    with spooled:
        assert spooled.dtype == whole.dtype
        np.testing.assert_array_equal(spooled[:], whole)
    assert spooled_info.bit_depth == info.bit_depth == (8 if kind == "grey" else 16)


def test_spool_image_reports_a_bad_file_as_read_image_does(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(UserError) as spooled:
        spool_image(tmp_path / "bad.png")
    with pytest.raises(UserError) as whole:
        read_image(tmp_path / "bad.png")
    assert str(spooled.value) == str(whole.value)


def test_shrinking_in_bands_of_any_height_equals_one_box_average():
    rng = np.random.default_rng(1)
    image = (rng.random((50, 38, 3)) * 255).astype(np.uint8)
    expected = cv2.resize(image[:48, :36], (12, 16), interpolation=cv2.INTER_AREA)
    shrinker = Shrinker(3)
    for top, bottom in ((0, 1), (1, 8), (8, 30), (30, 50)):
        shrinker.add(image[top:bottom])
    np.testing.assert_array_equal(shrinker.result(), expected)
    np.testing.assert_array_equal(shrink(image, 3), expected)
    np.testing.assert_array_equal(shrink(image, 1), image)


def _tiny_model():
    import torch

    torch.manual_seed(0)
    return create_model("unet-res", **TINY_UNET).eval()


def test_bands_from_a_spool_equal_the_whole_array_result(tmp_path):
    model, spec = _tiny_model(), get_arch("unet-res").for_config(TINY_UNET)
    image = (darken(scene(150, 97)) * 255 + 0.5).astype(np.uint8)
    whole = enhance_array(model, image, spec, tile=48, overlap=16, out_dtype=np.uint8)
    tops, rows = [], []
    with _spooled([image[:70], image[70:]], tmp_path) as spooled:
        for top, band in enhance_bands(
            model, spooled, spec, tile=48, overlap=16, out_dtype=np.uint8
        ):
            tops.append(top)
            rows.append(band)
    assert len(tops) > 2 and tops == sorted(tops) and tops[0] == 0
    assert [t + len(b) for t, b in zip(tops, rows, strict=True)][:-1] == tops[1:]
    np.testing.assert_array_equal(np.concatenate(rows), whole)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_image_writer_in_bands_equals_write_image(tmp_path, suffix):
    rgb = scene(37, 29)
    info = ImageInfo(
        format="PNG", alpha=np.linspace(0, 1, 37 * 29, dtype=np.float32).reshape(37, 29)
    )
    write_image(tmp_path / f"whole{suffix}", rgb, info)
    with ImageWriter(tmp_path / f"bands{suffix}", 37, 29, info) as writer:
        for top in range(0, 37, 10):
            writer.write(rgb[top : top + 10])
    whole, whole_info = read_image(tmp_path / f"whole{suffix}")
    bands, bands_info = read_image(tmp_path / f"bands{suffix}")
    np.testing.assert_array_equal(bands, whole)
    assert (bands_info.alpha is None) == (suffix in (".jpg", ".bmp"))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_image_writer_reads_a_spooled_alpha_a_band_at_a_time(tmp_path, suffix):
    rgb = scene(37, 29)
    levels = np.arange(37 * 29, dtype=np.uint8).reshape(37, 29)
    write_image(tmp_path / f"whole{suffix}", rgb, ImageInfo(alpha=to_float(levels)))
    with SpooledImage.blank(37, 29, 1, np.dtype(np.uint8), tmp_path) as alpha:
        alpha.place(0, 0, levels[:, :, None])
        with ImageWriter(tmp_path / f"bands{suffix}", 37, 29, ImageInfo(alpha=alpha)) as writer:
            for top in range(0, 37, 10):
                writer.write(rgb[top : top + 10])
        with pytest.raises(ValueError, match="alpha shape"):
            ImageWriter(tmp_path / f"wrong{suffix}", 29, 37, ImageInfo(alpha=alpha))
    whole, whole_info = read_image(tmp_path / f"whole{suffix}", as_float=False)
    bands, bands_info = read_image(tmp_path / f"bands{suffix}", as_float=False)
    np.testing.assert_array_equal(bands, whole)
    np.testing.assert_array_equal(to_uint8(bands_info.alpha), levels)


def test_image_writer_left_unfinished_leaves_nothing(tmp_path):
    (tmp_path / "out.png").write_bytes(b"previous")
    writer = ImageWriter(tmp_path / "out.png", 10, 4, overwrite=True)
    writer.write(np.zeros((6, 4, 3), np.float32))
    with pytest.raises(ValueError, match="only 6 of 10 rows"):
        writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"previous"


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
def test_enhancing_a_taller_photo_takes_no_more_memory(tmp_path, tiny_weights, alpha):
    """Peak traced allocation (numpy included) for a photo 4x as tall is about the same: the
    input and its alpha wait on disk and the PNG output is encoded as its rows come. (Both are
    taller than 2048 px, so both whole-image thumbnails are box-shrunk to about 1024 rows.)"""
    from llenhance.inference import Job, enhance_files, load_enhancer

    enhancer = load_enhancer(weights=tiny_weights, device="cpu", tile=96)
    peaks = []
    for height in (2100, 8400):
        source = tmp_path / f"in{height}.png"
        dark = np.clip(darken(scene(height, 48)) * 255 + 0.5, 0, 255).astype(np.uint8)
        if alpha:
            levels = np.arange(height * 48, dtype=np.uint8).reshape(height, 48, 1)
            dark = np.dstack([dark, levels])
        Image.fromarray(dark).save(source)
        tracemalloc.start()
        report = enhance_files([Job(source, tmp_path / f"out{height}.png")], enhancer)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(report.done) == 1
        result, info = read_image(tmp_path / f"out{height}.png", as_float=False)
        assert result.shape == (height, 48, 3)
        if alpha:  # carried over exactly
            np.testing.assert_array_equal(to_uint8(info.alpha), dark[:, :, 3])
    # Holding the taller photo's input or output would add at least 1.2 MB, its 8-bit alpha
    # 0.3 MB more than the shorter one's; what does grow with height (tile lists, buffers)
    # measured 0.23-0.31 MB, on this release's code and the one before.
    assert peaks[1] - peaks[0] < 8400 * 48


def test_large_photos_are_not_decoded_while_another_computes(tmp_path, tiny_weights, monkeypatch):
    from llenhance import inference
    from llenhance.inference import enhance_files, load_enhancer, plan_jobs

    for i in range(3):
        write_png(tmp_path / "in" / f"{i}.png", darken(scene(64, 80, seed=i)))
    events = _Events(ends=True)
    real_spool = inference.spool_image

    def recording_spool(path, directory):
        events.add(f"read {path.stem}")
        return real_spool(path, directory)

    monkeypatch.setattr(inference, "spool_image", recording_spool)
    monkeypatch.setattr(inference, "OVERLAP_MAX_MEGAPIXELS", 0.001)  # every photo is "large"
    enhancer = load_enhancer(weights=tiny_weights, device="cpu")
    report = enhance_files(
        plan_jobs([tmp_path / "in"], tmp_path / "out"), enhancer, callbacks=events
    )
    assert len(report.done) == 3
    assert events.seen == [
        "read 0",
        "start 0",
        "end 0",
        "read 1",
        "start 1",
        "end 1",
        "read 2",
        "start 2",
        "end 2",
    ]


def test_a_spooled_input_is_not_kept_beside_the_output(tmp_path, tiny_weights):
    from llenhance.inference import enhance_files, load_enhancer, plan_jobs

    write_png(tmp_path / "in" / "a.png", darken(scene(40, 50)))
    enhancer = load_enhancer(weights=tiny_weights, device="cpu")
    report = enhance_files(plan_jobs([tmp_path / "in"], tmp_path / "out"), enhancer)
    assert len(report.done) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


def test_a_large_photo_is_encoded_alone_after_its_memory_is_released(
    tmp_path, tiny_weights, monkeypatch
):
    """A JPEG result is put together whole: before that the tiles' memory is handed back, and
    the next photo (small, so read ahead) computes only once the large one is written."""
    from llenhance import inference
    from llenhance.inference import enhance_files, load_enhancer, plan_jobs

    write_png(tmp_path / "in" / "0.png", darken(scene(64, 80)))  # 5120 px: "large" below
    write_png(tmp_path / "in" / "1.png", darken(scene(16, 16, seed=1)))  # 256 px: small
    events = _Events()
    real_close = ImageWriter.close

    def recording_close(self):
        events.add(f"encode {self.path.stem}")
        real_close(self)

    monkeypatch.setattr(ImageWriter, "close", recording_close)
    monkeypatch.setattr(inference, "release_freed_memory", events.release)
    monkeypatch.setattr(inference, "OVERLAP_MAX_MEGAPIXELS", 0.001)
    enhancer = load_enhancer(weights=tiny_weights, device="cpu")
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", fmt="jpg")
    report = enhance_files(jobs, enhancer, callbacks=events)
    assert len(report.done) == 2
    assert events.seen == [
        "release",  # the decoder's copy of the large photo
        "start 0",
        "release",  # the tiles' activations
        "encode 0",
        "release",  # the whole JPEG image
        "start 1",
        "encode 1",
    ]


def test_the_decoders_copy_is_handed_back_only_while_nothing_computes(
    tmp_path, tiny_weights, monkeypatch
):
    """The first photo is decoded alone, so its decoder's buffer is returned to the OS; the next
    one is read ahead while the first computes, where a trim would also return the model's
    reusable activations."""
    from llenhance import inference
    from llenhance.inference import enhance_files, load_enhancer, plan_jobs

    for i in range(2):
        write_png(tmp_path / "in" / f"{i}.png", darken(scene(24, 32, seed=i)))
    events = _Events()
    monkeypatch.setattr(inference, "release_freed_memory", events.release)
    enhancer = load_enhancer(weights=tiny_weights, device="cpu")
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out")
    assert len(enhance_files(jobs, enhancer, callbacks=events).done) == 2
    assert events.seen == ["release", "start 0", "start 1"]
