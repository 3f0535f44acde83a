"""PNG encoding time and size by zlib level, on the default model's output for a 4K photo:
llenhance's streaming encoder (what ``write_image`` and ``enhance`` use) beside Pillow's.

python -m benchmarks.png [--photo PATH] [--levels 1,3,6,9]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from benchmarks._common import REAL_HD
from llenhance.images import read_image, write_image
from llenhance.inference import load_enhancer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=REAL_HD / "512_0_.png")
    parser.add_argument("--levels", default="1,3,6,9")
    args = parser.parse_args()
    torch.set_num_threads(2)
    image, info = read_image(args.photo, as_float=False)
    result = load_enhancer(device="cpu")(image, out_dtype=np.uint8)
    height, width = result.shape[:2]
    table = Table(title=f"PNG encoding of the enhanced {args.photo.name} ({width}x{height})")
    for column in ("level", "seconds", "MB", "Pillow seconds", "Pillow MB"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for level in (int(v) for v in args.levels.split(",")):
            target = Path(tmp) / f"level{level}.png"
            start = time.perf_counter()
            write_image(target, result, info, png_compression=level)
            seconds = time.perf_counter() - start
            pillow = Path(tmp) / f"pillow{level}.png"
            start = time.perf_counter()
            Image.fromarray(result).save(pillow, compress_level=level)
            pillow_seconds = time.perf_counter() - start
            table.add_row(
                str(level),
                f"{seconds:.2f}",
                f"{target.stat().st_size / 1e6:.1f}",
                f"{pillow_seconds:.2f}",
                f"{pillow.stat().st_size / 1e6:.1f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
