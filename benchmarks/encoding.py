"""PNG and TIFF encoding time and size by zlib level, on the default model's output for a 4K
photo: llenhance's streaming encoders (what ``write_image`` and ``enhance`` use) beside Pillow's.

python -m benchmarks.encoding [--photo PATH] [--levels 1,3,6,9]

Pillow's TIFF columns are its Adobe Deflate (libtiff's default level, no predictor) and its LZW
(what llenhance wrote before it had its own TIFF encoder); they do not depend on the level.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from benchmarks._common import REAL_HD
from llenhance.inference import load_enhancer
from llenhance.io.read import read_image
from llenhance.io.write import write_image

DEFLATE = "tiff_adobe_deflate"


def timed(save: Callable[[Path], None], target: Path) -> tuple[str, str]:
    """(seconds, MB) of one encode to ``target``."""
    start = time.perf_counter()
    save(target)
    return f"{time.perf_counter() - start:.2f}", f"{target.stat().st_size / 1e6:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=REAL_HD / "512_0_.png")
    parser.add_argument("--levels", default="1,3,6,9")
    args = parser.parse_args()
    torch.set_num_threads(2)
    image, info = read_image(args.photo, as_float=False)
    result = load_enhancer(device="cpu")(image, out_dtype=np.uint8)
    pillow = Image.fromarray(result)
    height, width = result.shape[:2]
    name = f"the enhanced {args.photo.name} ({width}x{height})"
    png = Table(title=f"PNG encoding of {name}")
    for column in ("level", "seconds", "MB", "Pillow seconds", "Pillow MB"):
        png.add_column(column, justify="right")
    tif = Table(title=f"TIFF encoding of {name}")
    for column in ("level", "seconds", "MB", "Pillow deflate s", "MB", "Pillow LZW s", "MB"):
        tif.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for level in (int(v) for v in args.levels.split(",")):

            def ours(target: Path, level: int = level) -> None:
                write_image(target, result, info, png_compression=level, overwrite=True)

            png.add_row(
                str(level),
                *timed(ours, folder / f"ours{level}.png"),
                *timed(lambda t, lv=level: pillow.save(t, compress_level=lv), folder / "p.png"),
            )
            tif.add_row(
                str(level),
                *timed(ours, folder / f"ours{level}.tif"),
                *timed(lambda t: pillow.save(t, compression=DEFLATE), folder / "deflate.tif"),
                *timed(lambda t: pillow.save(t, compression="tiff_lzw"), folder / "lzw.tif"),
            )
    Console().print(png)
    Console().print(tif)


if __name__ == "__main__":
    main()
