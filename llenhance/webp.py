"""WebP encoded by OpenCV's libwebp, with the ICC profile and EXIF added to its RIFF container.

Pillow hands libwebp an ARGB copy of the picture (4 bytes a pixel) besides its own image (4 more);
OpenCV passes its BGR array to libwebp's WebPEncodeBGR(A), which converts it to YUV as it reads
(1.5 bytes a pixel): a 15360x8640 result peaked at 1.68 GB through Pillow. Both call libwebp with
its default preset at the given quality. OpenCV writes no metadata, so the ICCP and EXIF chunks
are added here, in the extended layout (a VP8X chunk first, with flags saying what follows).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

MAX_SIDE = 16383  # the format stores width and height in 14 bits
_ICC, _ALPHA, _EXIF = 0x20, 0x10, 0x08  # VP8X flags


def encode(
    bgr: np.ndarray, quality: int, icc_profile: bytes | None = None, exif: bytes | None = None
) -> bytes:
    """A lossy WebP file of ``bgr`` (HxWx3 BGR or HxWx4 BGRA, uint8) at ``quality`` 1-100."""
    ok, buf = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise OSError("OpenCV could not encode the WebP image")
    data = buf.tobytes()
    if not icc_profile and not exif:
        return data
    return with_metadata(data, bgr.shape[1], bgr.shape[0], icc_profile, exif)


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


def with_metadata(
    webp: bytes, width: int, height: int, icc_profile: bytes | None, exif: bytes | None
) -> bytes:
    """``webp`` (a still image) rewritten in the extended layout with an ICCP chunk before the
    image data and an EXIF chunk after it (EXIF given with or without its "Exif\\0\\0")."""
    parts = chunks(webp)
    flags = 0
    for kind, payload in parts:
        if kind == b"VP8X":
            flags |= payload[0] & _ALPHA
        elif kind == b"ALPH":
            flags |= _ALPHA
    image = b"".join(_chunk(k, p) for k, p in parts if k not in (b"VP8X", b"ICCP", b"EXIF"))
    header = struct.pack("<B3x", flags | (_ICC if icc_profile else 0) | (_EXIF if exif else 0))
    header += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + _chunk(b"VP8X", header)
    if icc_profile:
        body += _chunk(b"ICCP", icc_profile)
    body += image
    if exif:
        body += _chunk(b"EXIF", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    return b"RIFF" + struct.pack("<I", len(body)) + body
