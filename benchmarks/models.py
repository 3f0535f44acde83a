"""The comparison table at the end of weights/README.md: every shipped model's size, CPU time for
a 512x512 image, validation quality and file size.

    python -m benchmarks.models [--threads 2] [--markdown]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks._common import VAL
from llenhance.catalog import list_models
from llenhance.evaluation import evaluate_enhancer
from llenhance.inference import load_enhancer


def time_512(enhancer, repeats: int = 5) -> float:
    """Median ms of the model call on a 512x512 image held in memory, after one warm-up."""
    image = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32) * 0.2
    enhancer(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        enhancer(image)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for entry in list_models():  # parameters as trained (the enhancer's copy has BN folded in)
        if entry.weights is None:
            continue
        name, path = entry.name, Path(entry.weights)
        enhancer = load_enhancer(name, device="cpu")
        report = evaluate_enhancer(enhancer, VAL)
        mean = report.mean()
        rows.append(
            (
                name,
                entry.parameters,
                time_512(enhancer),
                mean.psnr,
                mean.ssim,
                mean.mae,
                path.stat().st_size / 1e6,
            )
        )
    headers = ("model", "params", "CPU ms / 512²", "val PSNR", "val SSIM", "val MAE", "file MB")
    formatted = [
        (n, f"{p / 1e6:.2f} M", f"{ms:.0f}", f"{ps:.2f}", f"{ss:.3f}", f"{ma:.3f}", f"{mb:.1f}")
        for n, p, ms, ps, ss, ma, mb in rows
    ]
    if args.markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in formatted:
            print("| " + " | ".join(row) + " |")
        return
    table = Table(title=f"shipped models on {VAL} ({args.threads} threads)")
    for h in headers:
        table.add_column(h, justify="left" if h == "model" else "right")
    for row in formatted:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
