"""Full-resolution speed and memory of the shipped models, end to end (decode, enhance, encode).

Each run is a fresh subprocess, so its peak resident memory is that of one photo. Sizes: a 512²,
a 1080p and a 4K photo from ``unpaired/real-hd`` and generated 7680x4320, 15360x8640,
19000x10500 and 20000x15000 images (the last beyond the default decode limit, which its
subprocess raises with ``LLENHANCE_MAX_MEGAPIXELS``). Also measures the plain untiled forward
on 1024x1024 against the tiled model call on 3840x2160 (tiling overhead as a throughput
ratio) and the max abs difference between tiled and untiled output where untiled fits.

    python -m benchmarks.speed [--models unet-res,dncnn] [--format png|jpg|tif|webp|bmp]
                               [--sizes 512,1080p,4k,8k,12k,16k,200mp,300mp,pano,197mp,webpmax]
                               [--bits 8|16]

The generated sizes (8k, 12k, 16k, 200mp, 300mp, pano, 197mp, webpmax) are a 4K photo
upscaled, 8-bit or (``--bits 16``) 16-bit; the output is written in ``--format`` (PNG by
default; 16-bit as PNG or TIFF).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks._common import REAL_HD, peak_rss_mb

SIZES = {
    "512": (512, 512),
    "1080p": (1080, 1920),
    "4k": (2160, 3840),
    "8k": (4320, 7680),
    "12k": (6480, 11520),
    "16k": (8640, 15360),
    "200mp": (10500, 19000),  # about llenhance's default decode limit (LLENHANCE_MAX_MEGAPIXELS)
    "300mp": (15000, 20000),  # beyond it: the children raise the limit
    "pano": (6000, 40000),  # 240 MP, wider than a row of 1024-px tiles holds (shorter tiles)
    "197mp": (12000, 16383),  # as wide as WebP holds
    "webpmax": (16383, 16383),  # 268 MP, the largest photo WebP holds
}
GENERATED = ("8k", "12k", "16k", "200mp", "300mp", "pano", "197mp", "webpmax")


def find_photo(height: int, width: int) -> Path | None:
    from PIL import Image

    for path in sorted(REAL_HD.iterdir()):
        with Image.open(path) as im:
            if im.size == (width, height):
                return path
    return None


def make_large(folder: Path, size: str, bits: int = 8) -> Path:
    """A dark photo of a generated size: a 4K one upscaled (or noise when none is there), as an
    8- or 16-bit PNG."""
    import cv2

    height, width = SIZES[size]
    source = find_photo(2160, 3840)
    if source is not None:
        image = cv2.resize(cv2.imread(str(source)), (width, height), interpolation=cv2.INTER_CUBIC)
    else:
        image = (np.random.default_rng(0).random((height, width, 3)) * 60).astype(np.uint8)
    if bits == 16:
        image = image.astype(np.uint16) * np.uint16(257)
    path = folder / f"generated_{size}{'_16bit' if bits == 16 else ''}.png"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def child(model: str, source: str, target: str, tile: int | None) -> None:
    """One end-to-end enhancement in this process; prints seconds and peak RSS as JSON."""
    import torch

    from llenhance.inference import Job, enhance_files, load_enhancer

    torch.set_num_threads(2)
    enhancer = load_enhancer(model, device="cpu", tile=tile)
    start = time.perf_counter()
    report = enhance_files([Job(Path(source), Path(target))], enhancer, force=True)
    seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(report.failed[0][1])
    print(json.dumps({"seconds": seconds, "megapixels": report.megapixels, "rss": peak_rss_mb()}))


def run_child(model: str, source: Path, target: Path, tile: int | None) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.speed",
            "--child",
            model,
            str(source),
            str(target),
            "default" if tile is None else str(tile),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LLENHANCE_MAX_MEGAPIXELS": "400"},  # for 300mp
    )
    if out.returncode:  # shown in the table, so one failing size does not hide the others
        lines = (out.stderr or out.stdout).strip().splitlines() or [f"exit {out.returncode}"]
        return {"error": lines[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def tiling_overhead(model: str, repeat: int = 3) -> tuple[float, float]:
    """(MP/s of the plain untiled forward on 1024x1024, MP/s of the tiled model call on a
    3840x2160 image), both in memory: the ratio is what tiling costs on a photo that needs it.
    Each is the fastest of ``repeat`` calls, so a moment of noise on the machine does not
    decide the ratio."""
    import torch

    from llenhance.inference import load_enhancer

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rates = []
    for tile, (h, w) in ((0, (1024, 1024)), (None, SIZES["4k"])):
        image = rng.random((h, w, 3), dtype=np.float32) * np.float32(0.2)
        enhancer = load_enhancer(model, device="cpu", **({} if tile is None else {"tile": tile}))
        enhancer(image[:1024, :1024])
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            enhancer(image)
            seconds.append(time.perf_counter() - start)
        rates.append(h * w / 1e6 / min(seconds))
    return rates[0], rates[1]


def max_tiled_difference(model: str, path: Path) -> float:
    from llenhance.inference import load_enhancer
    from llenhance.io.read import read_rgb
    from llenhance.pixels import to_uint8

    image = read_rgb(path)
    whole = load_enhancer(model, device="cpu", tile=0)(image)
    tiled = load_enhancer(model, device="cpu")(image)
    return float(np.abs(to_uint8(whole).astype(int) - to_uint8(tiled).astype(int)).max()) / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated names or .safetensors paths (default: all shipped)",
    )
    parser.add_argument("--sizes", default="512,1080p,4k,8k,16k")
    parser.add_argument("--tile", type=int, default=None, help="tile size (default: llenhance's)")
    parser.add_argument("--format", default="png", help="output format: png, jpg, tif, webp, bmp")
    parser.add_argument(
        "--bits", type=int, choices=(8, 16), default=8, help="bit depth of the generated photos"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, source, target, tile = args.child
        child(model, source, target, None if tile == "default" else int(tile))
        return

    from llenhance.archs import get_arch, model_names, resolve_model
    from llenhance.tiling import default_tile
    from llenhance.weights import read_info, shipped_path

    models = (
        args.models.split(",")
        if args.models
        else [n for n in model_names() if shipped_path(n).is_file()]
    )
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = {}
        for size in args.sizes.split(","):
            h, w = SIZES[size]
            photos[size] = (
                make_large(folder, size, args.bits) if size in GENERATED else find_photo(h, w)
            )
        for model in models:
            arch = (
                read_info(model).arch
                if model.endswith(".safetensors")
                else resolve_model(model)[0].name
            )
            tile = args.tile or default_tile(get_arch(arch))
            title = f"{model}: end to end, fresh process, 2 threads, tile {tile}"
            table = Table(title=f"{title}, {args.format.upper()} output")
            failures: list[str] = []
            for col in ("size", "photo", "seconds", "MP/s", "peak RSS MB", "tiled vs untiled"):
                table.add_column(col, justify="left" if col in ("size", "photo") else "right")
            for size, photo in photos.items():
                if photo is None:
                    continue
                result = run_child(model, photo, folder / f"out.{args.format}", tile)
                if "error" in result:
                    table.add_row(size, photo.name, "failed", "", "", "")
                    failures.append(f"{model} {size}: {result['error']}")
                    continue
                untiled_fits = size in ("512", "1080p")  # whole-image runs above need GBs
                diff = (
                    f"{max_tiled_difference(model, photo) * 255:.0f}/255" if untiled_fits else "-"
                )
                table.add_row(
                    size,
                    photo.name,
                    f"{result['seconds']:.2f}",
                    f"{result['megapixels'] / result['seconds']:.2f}",
                    f"{result['rss']:.0f}",
                    diff,
                )
            console.print(table)
            for failure in failures:
                console.print(failure, markup=False)
            untiled, tiled = tiling_overhead(model)
            console.print(
                f"{model}: model call in memory, best of 3: untiled 1024x1024 {untiled:.2f} MP/s, "
                f"tiled 3840x2160 {tiled:.2f} MP/s, ratio {tiled / untiled:.2f}"
            )


if __name__ == "__main__":
    main()
