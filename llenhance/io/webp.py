"""Lossy WebP written through libwebp's own API: rows become YUV a band at a time.

OpenCV and Pillow hand libwebp one whole RGB(A) picture, which it converts to YUV beside them
(3-8 bytes a pixel in all), and neither lets a caller retry what fails on very large photos:
VP8 keeps every macroblock's modes in a first partition of at most 512 KiB, which a detailed
16383x12000 result at quality 95 overflowed (``VP8_ENC_ERROR_PARTITION0_OVERFLOW``). So here
each band of rows is converted by libwebp's own importer and copied into one YUV(A) picture
(1.5 bytes a pixel, 2.5 with alpha), the only copy of the image while it is encoded. libwebp
already gives up intra-4x4 modes pass by pass when that partition overflows (a whole pass
over the picture each time); if it still does, the segment map is what is left, so the retry,
and the first attempt for pictures with too few bits a macroblock, uses one segment and no
intra-4x4 modes. That is as far as the format goes: 512 KiB leaves 3.98 bits to each of a
16383x16383 picture's macroblocks, and cwebp's documentation puts the minimum at about 4, so a
detailed picture that large can still fail (an enhanced one did); the error then says so.

libwebp is loaded with ctypes from Pillow's wheel, which ships it beside its own extension,
or from the system. Where neither loads (a Pillow build that links libwebp in, for one),
:data:`LIBWEBP` is None and OpenCV encodes the whole picture instead: the same file, but the
whole RGB(A) picture in memory and no retry. Either way, ICC profile and EXIF chunks are added
as the encoder's output streams to the file (extended layout: a VP8X chunk first).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import PIL

_ICC, _ALPHA, _EXIF = 0x20, 0x10, 0x08  # VP8X flags
_ABI = 0x020F  # encoder ABI these structures follow; libwebp checks only the major byte
_YUV420, _YUV420A = 0, 4
_PARTITION0_OVERFLOW = 6
_ERRORS = (
    "ok",
    "out of memory",
    "out of memory while flushing bits",
    "a parameter is missing",
    "invalid configuration",
    "bad picture dimensions",
    "lossy WebP cannot hold this picture's prediction modes (VP8's 512 KiB first partition, "
    "which detailed pictures near the 16383x16383 maximum overflow); write PNG, TIFF or JPEG",
    "a partition is larger than 16 MiB",
    "could not write the output",
    "the file would be larger than 4 GiB",
    "aborted",
)


class _Config(ctypes.Structure):
    """The leading fields of libwebp's WebPConfig; libwebp fills the rest with its defaults."""

    _fields_ = [
        ("lossless", ctypes.c_int),
        ("quality", ctypes.c_float),
        ("method", ctypes.c_int),
        ("image_hint", ctypes.c_int),
        ("target_size", ctypes.c_int),
        ("target_PSNR", ctypes.c_float),
        ("segments", ctypes.c_int),
        ("sns_strength", ctypes.c_int),
        ("filter_strength", ctypes.c_int),
        ("filter_sharpness", ctypes.c_int),
        ("filter_type", ctypes.c_int),
        ("autofilter", ctypes.c_int),
        ("alpha_compression", ctypes.c_int),
        ("alpha_filtering", ctypes.c_int),
        ("alpha_quality", ctypes.c_int),
        ("passes", ctypes.c_int),
        ("show_compressed", ctypes.c_int),
        ("preprocessing", ctypes.c_int),
        ("partitions", ctypes.c_int),
        ("partition_limit", ctypes.c_int),
        ("_rest", ctypes.c_uint8 * 256),  # later fields and padding, larger than libwebp's
    ]


_WRITER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


class _Picture(ctypes.Structure):
    """The leading fields of libwebp's WebPPicture, up to its error code."""

    _fields_ = [
        ("use_argb", ctypes.c_int),
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("y", ctypes.c_void_p),
        ("u", ctypes.c_void_p),
        ("v", ctypes.c_void_p),
        ("y_stride", ctypes.c_int),
        ("uv_stride", ctypes.c_int),
        ("a", ctypes.c_void_p),
        ("a_stride", ctypes.c_int),
        ("_pad1", ctypes.c_uint32 * 2),
        ("argb", ctypes.c_void_p),
        ("argb_stride", ctypes.c_int),
        ("_pad2", ctypes.c_uint32 * 3),
        ("writer", _WRITER),
        ("custom_ptr", ctypes.c_void_p),
        ("extra_info_type", ctypes.c_int),
        ("extra_info", ctypes.c_void_p),
        ("stats", ctypes.c_void_p),
        ("error_code", ctypes.c_int),
        ("_rest", ctypes.c_uint8 * 512),  # later fields and padding, larger than libwebp's
    ]


_SIGNATURES = {
    "WebPConfigInitInternal": [ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_int],
    "WebPPictureInitInternal": [ctypes.c_void_p, ctypes.c_int],
    "WebPPictureAlloc": [ctypes.c_void_p],
    "WebPPictureFree": [ctypes.c_void_p],
    "WebPPictureImportRGB": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int],
    "WebPPictureImportRGBA": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int],
    "WebPEncode": [ctypes.c_void_p, ctypes.c_void_p],
}


def _candidates() -> list[str]:
    """Where libwebp may be: Pillow's bundled copy (Linux and macOS wheels), then the system's."""
    pil = Path(PIL.__file__).resolve().parent
    bundled = [*pil.parent.glob("pillow.libs/libwebp-*.so*"), *pil.glob(".dylibs/libwebp.*dylib")]
    system = [ctypes.util.find_library("webp")]
    return [str(path) for path in [*sorted(bundled), *system] if path]


def _load() -> ctypes.CDLL | None:
    """The first libwebp that loads, has the functions used here and accepts their ABI."""
    for candidate in _candidates():
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        if not all(hasattr(lib, name) for name in _SIGNATURES):
            continue
        for name, argtypes in _SIGNATURES.items():
            getattr(lib, name).argtypes, getattr(lib, name).restype = argtypes, ctypes.c_int
        if lib.WebPConfigInitInternal(ctypes.byref(_Config()), 0, 75.0, _ABI):
            return lib
    return None


LIBWEBP: ctypes.CDLL | None = _load()
"""libwebp, when one can be loaded; None means OpenCV encodes WebP (see the module's notes)."""


def write(
    file: BinaryIO,
    height: int,
    width: int,
    bands: Iterable[np.ndarray],
    quality: int,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> None:
    """Write a lossy WebP of ``bands`` to ``file`` at ``quality`` 1-100.

    ``bands`` are the picture's rows top to bottom (RGB or RGBA uint8, each band but the last
    an even number of rows); alpha is stored only where some pixel is not opaque."""
    start = file.tell()
    target = _Extended(file, width, height, icc_profile, exif) if icc_profile or exif else file
    if LIBWEBP is None:
        target.write(_encode_with_opencv(height, width, bands, quality))
    else:
        _encode_with_libwebp(LIBWEBP, file, start, target, height, width, bands, quality)
    if isinstance(target, _Extended):
        target.finish()


def _encode_with_opencv(
    height: int, width: int, bands: Iterable[np.ndarray], quality: int
) -> memoryview:
    picture: np.ndarray | None = None
    top = 0
    for band in bands:
        if picture is None:
            picture = np.empty((height, width, band.shape[2]), np.uint8)
        picture[top : top + len(band)] = cv2.cvtColor(
            band, cv2.COLOR_RGBA2BGRA if band.shape[2] == 4 else cv2.COLOR_RGB2BGR
        )
        top += len(band)
    _check_rows(top, height)
    ok, buf = cv2.imencode(".webp", picture, [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise OSError("OpenCV could not encode the WebP image")
    return memoryview(buf).cast("B")


def _check_rows(given: int, height: int) -> None:
    if given != height:
        raise ValueError(f"{given} rows were given for a WebP picture {height} rows tall")


def _encode_with_libwebp(
    lib: ctypes.CDLL,
    file: BinaryIO,
    start: int,
    target: BinaryIO | _Extended,
    height: int,
    width: int,
    bands: Iterable[np.ndarray],
    quality: int,
) -> None:
    picture = _new_picture(lib, width, height)
    try:
        top = 0
        for band in bands:
            if top % 2:
                raise ValueError("every band of a WebP picture but the last needs even rows")
            _import_band(lib, picture, band, top)
            top += len(band)
        _check_rows(top, height)
        for attempt, config in enumerate(_configs(lib, quality, width, height)):
            if attempt:
                file.seek(start)
                file.truncate()
                if isinstance(target, _Extended):
                    target.restart()
            error = _encode(lib, picture, config, target)
            if error != _PARTITION0_OVERFLOW:
                break
        if error:
            reason = _ERRORS[error] if error < len(_ERRORS) else f"error {error}"
            raise OSError(f"libwebp could not encode the picture: {reason}")
    finally:
        lib.WebPPictureFree(ctypes.byref(picture))


def _new_picture(lib: ctypes.CDLL, width: int, height: int) -> _Picture:
    """An empty YUV picture; :func:`_import_band` allocates its planes (with alpha or not)."""
    picture = _Picture()
    if not lib.WebPPictureInitInternal(ctypes.byref(picture), _ABI):
        raise OSError("libwebp refused to set up a picture")
    picture.width, picture.height, picture.colorspace = width, height, _YUV420
    return picture


HEADER_BITS_PER_MACROBLOCK = 16.0
"""Below this many bits of VP8's 512 KiB first partition per 16x16 macroblock (pictures from
about 65 MP), encoding starts with one segment and no intra-4x4 modes: below it libwebp's
defaults take many times longer for no better picture, or overflow the partition and need the
retry anyway (measured in docs/performance.md, "WebP's limits")."""


def header_bits_per_macroblock(width: int, height: int) -> float:
    """Bits of the first partition (libwebp's limit, just under 512 KiB) each 16x16 macroblock
    of a ``width`` x ``height`` picture has for its modes on average."""
    macroblocks = ((width + 15) // 16) * ((height + 15) // 16)
    return 510 * 1024 * 8 / macroblocks


def _configs(lib: ctypes.CDLL, quality: int, width: int, height: int) -> list[_Config]:
    """libwebp's defaults at ``quality`` (what Pillow and OpenCV use), then the retry with the
    fewest header bits a macroblock can take: one segment, no intra-4x4 modes. Pictures that
    leave too few bits a macroblock (:data:`HEADER_BITS_PER_MACROBLOCK`) start there."""
    tight = header_bits_per_macroblock(width, height) < HEADER_BITS_PER_MACROBLOCK
    configs = []
    for fewest_bits in (False, True)[tight:]:
        config = _Config()
        if not lib.WebPConfigInitInternal(ctypes.byref(config), 0, float(quality), _ABI):
            raise OSError("libwebp refused its own default configuration")
        if fewest_bits:
            config.segments, config.partition_limit = 1, 100
        configs.append(config)
    return configs


def _encode(lib: ctypes.CDLL, picture: _Picture, config: _Config, target: object) -> int:
    """Encode ``picture`` to ``target`` (anything with ``write``); libwebp's error code."""
    failures: list[BaseException] = []

    def write(data: int, size: int, _picture: int) -> int:
        try:
            target.write(memoryview((ctypes.c_char * size).from_address(data)).cast("B"))
        except BaseException as e:  # noqa: BLE001 - re-raised below, after libwebp returns
            failures.append(e)
            return 0
        return 1

    picture.writer = _WRITER(write)
    try:
        ok = lib.WebPEncode(ctypes.byref(config), ctypes.byref(picture))
    finally:
        picture.writer = _WRITER()
    if failures:
        raise failures[0]
    return 0 if ok else picture.error_code or 1


def _import_band(lib: ctypes.CDLL, picture: _Picture, band: np.ndarray, top: int) -> None:
    """Convert ``band`` with libwebp's importer and copy its planes into ``picture`` from row
    ``top`` (even, so no 2x2 chroma block spans two bands: the planes equal a whole import)."""
    rows, channels = band.shape[0], band.shape[2]
    if channels == 4 and not picture.a:  # the first band says whether there is alpha
        if top:
            raise ValueError("every band of a WebP picture needs the same channels")
        picture.colorspace = _YUV420A
    if not picture.y and not lib.WebPPictureAlloc(ctypes.byref(picture)):
        raise MemoryError("libwebp could not allocate the WebP picture")
    part = _new_picture(lib, picture.width, rows)
    band = np.ascontiguousarray(band, dtype=np.uint8)
    importer = lib.WebPPictureImportRGBA if channels == 4 else lib.WebPPictureImportRGB
    try:
        if not importer(ctypes.byref(part), band.ctypes.data, band.strides[0]):
            raise MemoryError("libwebp could not convert a band of the WebP picture")
        _plane(picture, "y")[top : top + rows] = _plane(part, "y")
        for name in ("u", "v"):
            _plane(picture, name)[top // 2 : (top + rows + 1) // 2] = _plane(part, name)
        if picture.a:  # an opaque band has no alpha plane of its own
            _plane(picture, "a")[top : top + rows] = _plane(part, "a") if part.a else 255
    finally:
        lib.WebPPictureFree(ctypes.byref(part))


def _plane(picture: _Picture, name: str) -> np.ndarray:
    """A numpy view of one of ``picture``'s planes (libwebp's memory, rows x columns)."""
    full = name in ("y", "a")
    rows = picture.height if full else (picture.height + 1) // 2
    columns = picture.width if full else (picture.width + 1) // 2
    stride = {"y": picture.y_stride, "a": picture.a_stride}.get(name, picture.uv_stride)
    memory = (ctypes.c_uint8 * (rows * stride)).from_address(getattr(picture, name))
    return np.ctypeslib.as_array(memory).reshape(rows, stride)[:, :columns]


def chunks(riff: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) of every chunk of a WebP file."""
    if riff[:4] != b"RIFF" or riff[8:12] != b"WEBP":
        raise OSError("not a WebP file")
    found, pos = [], 12
    while pos + 8 <= len(riff):
        kind, (size,) = riff[pos : pos + 4], struct.unpack_from("<I", riff, pos + 4)
        found.append((kind, riff[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return found


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


class _Extended:
    """A file-like target that rewrites an encoder's still WebP, as it streams, into the
    extended layout: VP8X, ICCP, the image's own chunks (ALPH, VP8), then EXIF.

    Encoders write a simple file (RIFF header, then "VP8 ") or, with alpha, a VP8X chunk
    first; both headers are dropped here and written anew, with sizes and the alpha flag
    patched in by :meth:`finish`."""

    _RIFF, _VP8X = 12, 18  # bytes of the RIFF header and of a VP8X chunk

    def __init__(
        self, file: BinaryIO, width: int, height: int, icc: bytes | None, exif: bytes | None
    ) -> None:
        self._file, self._icc = file, icc
        self._exif = exif[6:] if exif and exif.startswith(b"Exif\x00\x00") else exif
        self._size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        self._start = file.tell()
        self.restart()

    def restart(self) -> None:
        """Begin (again) at the start position, where the caller has truncated the file."""
        self._head, self._passing, self._alpha = b"", False, False
        self._file.write(b"RIFF\0\0\0\0WEBP" + _chunk(b"VP8X", bytes(10)))
        if self._icc:
            self._file.write(_chunk(b"ICCP", self._icc))

    def write(self, data: bytes | memoryview) -> None:
        if self._passing:
            self._file.write(data)
            return
        self._head += bytes(data)
        if len(self._head) < self._RIFF + 8:
            return
        skip = self._RIFF
        if self._head[skip : skip + 4] == b"VP8X":
            if len(self._head) < skip + self._VP8X:
                return
            self._alpha = bool(self._head[skip + 8] & _ALPHA)
            skip += self._VP8X
        self._file.write(self._head[skip:])
        self._head, self._passing = b"", True

    def finish(self) -> None:
        """Append EXIF, then patch the RIFF size and the VP8X flags."""
        if not self._passing:
            raise OSError("the WebP encoder wrote no image")
        if self._exif:
            self._file.write(_chunk(b"EXIF", self._exif))
        end = self._file.tell()
        flags = (_ICC if self._icc else 0) | (_EXIF if self._exif else 0)
        flags |= _ALPHA if self._alpha else 0
        self._file.seek(self._start + 4)
        self._file.write(struct.pack("<I", end - self._start - 8))
        self._file.seek(self._start + self._RIFF + 8)
        self._file.write(struct.pack("<B3x", flags) + self._size)
        self._file.seek(end)
