"""The one table of image formats: what each is called, how files are recognised, and what it
can hold. Reading, writing, listing inputs and ``--format`` all read their facts from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    """One image format. ``name`` is Pillow's format name (what :class:`ImageInfo` records)."""

    name: str
    label: str  # how messages name it ("corrupt or truncated WebP file")
    extensions: tuple[
        str, ...
    ] = ()  # written by extension, first one for ``--format``; () = read only
    signatures: tuple[bytes, ...] = ()  # leading bytes that identify a file
    alpha: bool = False  # alpha kept when written
    bit_depths: tuple[int, ...] = (8,)  # bits per channel written
    max_side: int | None = None  # largest width or height the format stores
    icc: bool = False  # ICC profile kept when written
    exif: bool = False  # EXIF kept when written
    max_exif: int | None = None  # largest EXIF block kept (bytes)
    vips_loader: str | None = None  # the libvips loader that decodes it; None: Pillow does
    format_option: bool = False  # offered by ``llenhance enhance --format``


FORMATS: tuple[Format, ...] = (
    Format(
        "PNG",
        "PNG",
        (".png",),
        (b"\x89PNG\r\n\x1a\n",),
        alpha=True,
        bit_depths=(8, 16),
        icc=True,
        exif=True,
        vips_loader="pngload",
        format_option=True,
    ),
    Format(
        "JPEG",
        "JPEG",
        (".jpg", ".jpeg"),
        (b"\xff\xd8\xff",),
        max_side=65535,
        icc=True,
        exif=True,
        max_exif=65533,  # one APP1 segment
        vips_loader="jpegload",
        format_option=True,
    ),
    Format(
        "TIFF",
        "TIFF",
        (".tif", ".tiff"),
        (b"II*\x00", b"MM\x00*"),
        alpha=True,
        bit_depths=(8, 16),
        icc=True,
        exif=True,
        vips_loader="tiffload",
        format_option=True,
    ),
    Format(
        "WEBP",
        "WebP",
        (".webp",),
        alpha=True,
        max_side=16383,  # width and height are stored in 14 bits
        icc=True,
        exif=True,
        vips_loader="webpload",
        format_option=True,
    ),
    Format("BMP", "BMP", (".bmp",), (b"BM",)),  # libvips has no BMP loader
    Format("GIF", "GIF", signatures=(b"GIF8",), vips_loader="gifload"),  # read only (first frame)
)

BY_NAME: dict[str, Format] = {f.name: f for f in FORMATS}

WRITTEN: dict[str, Format] = {ext: f for f in FORMATS for ext in f.extensions}
"""Extension (lower case, with the dot) -> the format written for it."""

IMAGE_EXTENSIONS: tuple[str, ...] = tuple(WRITTEN)
"""Extensions taken as images when listing inputs, and accepted for outputs."""

FORMAT_OPTIONS: dict[str, str] = {
    ext[1:]: f.extensions[0] for f in FORMATS if f.format_option for ext in f.extensions
}
"""``--format`` value -> the extension results get."""

VIPS_LOADED = frozenset(f.name for f in FORMATS if f.vips_loader)
"""Pillow format names of the formats libvips decodes (every file of them, small or large)."""


def identify(head: bytes) -> Format | None:
    """The format whose signature ``head`` (a file's first bytes) starts with."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return BY_NAME["WEBP"]
    for f in FORMATS:
        if any(head.startswith(s) for s in f.signatures):
            return f
    return None


def sniff(head: bytes) -> str | None:
    """The label of the format whose signature ``head`` (a file's first bytes) starts with."""
    found = identify(head)
    return None if found is None else found.label
