"""WebP encoding by photo size: libwebp's defaults against the fewest header bits.

    python -m benchmarks.webp [--sizes 4k,8k,12k,16k] [--quality 95]

Each photo (the 4K one from ``unpaired/real-hd``, or it upscaled: ``benchmarks.speed``'s
sizes, 197mp being 16383x12000) is enhanced by the default model, and its 8-bit result is
encoded by ``llenhance.io.webp`` both ways: libwebp's defaults (retried with the fewest header
bits if VP8's first partition overflows) and the fewest header bits from the start (one
segment, no intra-4x4 modes). Seconds of encoding, attempts, MB, and PSNR against the result;
"bits/MB" is what the 512 KiB first partition leaves each 16x16 macroblock. llenhance starts
with the fewest header bits below ``llenhance.io.webp.HEADER_BITS_PER_MACROBLOCK``.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from benchmarks.speed import GENERATED, SIZES, find_photo, make_large
from llenhance.inference import Job, enhance_files, load_enhancer
from llenhance.io import webp
from llenhance.io.read import read_image


def encode(result: np.ndarray, quality: int, fewest_first: bool) -> tuple[float, int, bytes]:
    """(seconds, attempts, file) of one WebP encode of ``result`` a band at a time."""
    attempts = 0
    real_encode, real_limit = webp._encode, webp.HEADER_BITS_PER_MACROBLOCK

    def counted(*args: object) -> int:
        nonlocal attempts
        attempts += 1
        return real_encode(*args)

    webp._encode = counted
    webp.HEADER_BITS_PER_MACROBLOCK = float("inf") if fewest_first else 0.0
    out = io.BytesIO()
    start = time.perf_counter()
    try:
        height, width = result.shape[:2]
        bands = (result[top : top + 256] for top in range(0, height, 256))
        webp.write(out, height, width, bands, quality)
    finally:
        webp._encode, webp.HEADER_BITS_PER_MACROBLOCK = real_encode, real_limit
    return time.perf_counter() - start, attempts, out.getvalue()


def psnr_of(data: bytes, result: np.ndarray) -> float:
    """PSNR of the WebP file ``data`` against ``result``, summed a band of rows at a time."""
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    squared = sum(
        float(np.sum((back[top : top + 256].astype(np.float64) - result[top : top + 256]) ** 2))
        for top in range(0, len(result), 256)
    )
    return 10 * np.log10(255**2 * result.size / squared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4k,8k,12k,16k")
    parser.add_argument("--quality", type=int, default=95)
    args = parser.parse_args()
    torch.set_num_threads(2)
    Image.MAX_IMAGE_PIXELS = None
    enhancer = load_enhancer(device="cpu")
    table = Table(title=f"WebP encoding of the enhanced photo, quality {args.quality}")
    for column in ("size", "bits/MB", "settings", "seconds", "attempts", "MB", "PSNR dB"):
        table.add_column(column, justify="left" if column in ("size", "settings") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes.split(","):
            height, width = SIZES[size]
            photo = make_large(folder, size) if size in GENERATED else find_photo(height, width)
            enhanced = folder / f"{size}.png"
            enhance_files([Job(photo, enhanced)], enhancer, force=True)
            result = read_image(enhanced, as_float=False)[0]
            bits = f"{webp.header_bits_per_macroblock(width, height):.1f}"
            for settings, fewest_first in (("defaults", False), ("fewest header bits", True)):
                try:
                    seconds, attempts, data = encode(result, args.quality, fewest_first)
                except OSError as e:
                    table.add_row(size, bits, settings, "failed", "", "", str(e)[:40])
                    continue
                psnr = psnr_of(data, result)
                row = (f"{seconds:.1f}", str(attempts), f"{len(data) / 1e6:.2f}", f"{psnr:.2f}")
                table.add_row(size, bits, settings, *row)
                bits = ""
    Console().print(table)


if __name__ == "__main__":
    main()
