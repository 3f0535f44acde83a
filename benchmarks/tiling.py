"""Tile size and overlap: model-call time on a 4K photo and the worst 8-bit difference from the
untiled output on 1080p photos, for a model's shipped (or given) weights.

    python -m benchmarks.tiling [--weights unet-res] [--grid 512:64,512:96,640:96]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from benchmarks._common import REAL_HD
from llenhance.inference import load_enhancer
from llenhance.io.read import read_image


def photos(size: tuple[int, int], count: int) -> list:
    found = [p for p in sorted(REAL_HD.iterdir()) if Image.open(p).size == size]
    return found[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="unet-res")
    parser.add_argument("--grid", default="512:64,512:96,640:96,768:96")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    four_k = read_image(photos((3840, 2160), 1)[0], as_float=False)[0]
    hd = [read_image(p, as_float=False)[0] for p in photos((1920, 1080), 2)]
    whole = load_enhancer(weights=args.weights, device="cpu", tile=0)
    references = [whole(image, out_dtype=np.uint8).astype(int) for image in hd]
    table = Table(title=f"{args.weights}: tiling on this CPU ({args.threads} threads)")
    for col in ("tile", "overlap", "4K model call s", "MP/s", "max |tiled - untiled| (1080p)"):
        table.add_column(col, justify="right")
    for cell in args.grid.split(","):
        tile, overlap = (int(v) for v in cell.split(":"))
        enhancer = load_enhancer(weights=args.weights, device="cpu", tile=tile, overlap=overlap)
        start = time.perf_counter()
        enhancer(four_k, out_dtype=np.uint8)
        seconds = time.perf_counter() - start
        worst = max(
            int(np.abs(enhancer(image, out_dtype=np.uint8).astype(int) - ref).max())
            for image, ref in zip(hd, references, strict=True)
        )
        table.add_row(
            str(tile),
            str(overlap),
            f"{seconds:.2f}",
            f"{four_k.shape[0] * four_k.shape[1] / 1e6 / seconds:.2f}",
            f"{worst}/255",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
