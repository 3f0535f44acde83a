"""Decoding a large photo: time and peak memory of llenhance's decode to the enhancer's spool
(libvips, a band of rows at a time: what ``enhance`` does) beside a whole-image decode by Pillow
(which reduces 16-bit colour to 8 bits), each in a fresh process.

python -m benchmarks.decoding [--sizes 8k,16k] [--kinds png,png16,tif16,jpg]

The photos are a 4K photo from ../shared/data upscaled, written as 8-bit PNG, 16-bit PNG,
16-bit TIFF (OpenCV's LZW) and JPEG (quality 92).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks._common import peak_rss_mb
from benchmarks.speed import SIZES, find_photo

KINDS = {"png": ".png", "png16": ".png", "tif16": ".tif", "jpg": ".jpg"}


def make_photo(folder: Path, size: str, kind: str) -> Path:
    height, width = SIZES[size]
    source = find_photo(2160, 3840)
    if source is None:
        raise SystemExit("no 3840x2160 photo in ../shared/data/unpaired/real-hd")
    image = cv2.resize(cv2.imread(str(source)), (width, height), interpolation=cv2.INTER_CUBIC)
    if kind in ("png16", "tif16"):
        image = image.astype(np.uint16) * np.uint16(257)
    path = folder / f"{size}_{kind}{KINDS[kind]}"
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if path.suffix == ".png" else []
    if kind == "jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, 92]
    assert cv2.imwrite(str(path), image, params)
    return path


def child(path: str, decoder: str) -> None:
    """Decode one photo in this process (``bands``: spool it as ``enhance`` does; ``pillow``: a
    whole array by Pillow); prints seconds and peak RSS as JSON."""
    from llenhance.io.limits import pillow_limit
    from llenhance.io.read import spool_image

    start = time.perf_counter()
    if decoder == "bands":
        spooled, _ = spool_image(path)
        spooled.close()
    else:
        from PIL import Image

        with pillow_limit(2**40), Image.open(path) as im:
            np.asarray(im)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss": peak_rss_mb()}))


def run_child(path: Path, decoder: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.decoding", "--child", str(path), decoder]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8k,16k")
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    table = Table(title="Decoding a photo (seconds, peak RSS)")
    for column in ("photo", "bands s", "bands MB", "Pillow s", "Pillow MB"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            for kind in args.kinds.split(","):
                path = make_photo(Path(tmp), size, kind)
                cells = [f"{size} {kind}"]
                for decoder in ("bands", "pillow"):
                    result = run_child(path, decoder)
                    cells += [f"{result['seconds']:.2f}", f"{result['rss']:.0f}"]
                table.add_row(*cells)
                path.unlink()
    Console().print(table)


if __name__ == "__main__":
    main()
