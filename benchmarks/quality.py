"""Quality of models on one split, with the tone diagnostics and the GT-mean gain.

    python -m benchmarks.quality --split select --models unet-res,runs/x/best.safetensors

``fit`` (the rest of train) measures how much a model gains on scenes it trained on.
``--darken F`` exposes every low image F times shorter first (in linear light, quantised to 8
bits again): how a model copes with photos darker than any in the data.

``select`` is the part of ``sice-pairs/train`` that ``llenhance train --val-split 0.15``
(seed 0) holds out by scene: every model choice is made on it. ``val`` reports a model that
ships, once (see weights/README.md, "Protocol").
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from benchmarks._common import TRAIN, VAL
from llenhance.data import find_pairs, pair_arrays, split_pairs
from llenhance.evaluation import evaluate_enhancer
from llenhance.inference import load_enhancer
from llenhance.pixels import to_uint8
from llenhance.synthesis import scale_exposure
from llenhance.tone import tone_ratios
from llenhance.weights import WeightsInfo, load_model, save_weights

SELECT_FRACTION = 0.15
SELECT_SEED = 0


def split(name: str) -> list:
    """The pairs of ``select``, ``fit`` (the rest of train, what a ``select`` run trains on) or
    ``val``."""
    if name in ("select", "fit"):
        fit, select = split_pairs(find_pairs(TRAIN), SELECT_FRACTION, SELECT_SEED)
        return select if name == "select" else fit
    if name == "val":
        return find_pairs(VAL)
    raise SystemExit(f"--split {name}: expected select, fit or val")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="select")
    parser.add_argument("--models", default="unet-res", help="comma-separated names or paths")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--darken", type=float, default=1.0, help="expose lows F times shorter")
    parser.add_argument(
        "--record",
        default=None,
        help="with one model: write a copy of its weights whose stored metrics are these",
    )
    args = parser.parse_args()
    if args.record and ("," in args.models or args.darken != 1.0):
        raise SystemExit("--record takes one model and no --darken")
    torch.set_num_threads(args.threads)
    pairs = split(args.split)
    if args.darken != 1.0:
        pairs = [
            (name, scale_exposure(to_uint8(low), 1.0 / args.darken), high)
            for name, low, high in pair_arrays(pairs)
        ]
    headers = ("model", "PSNR", "SSIM", "MAE", "GT-mean gain", "black", "luma", "chroma")
    darker = f", lows {args.darken:g}x darker" if args.darken != 1.0 else ""
    table = Table(
        title=f"{args.split}{darker}: {len(pairs)} pairs (black/luma/chroma: pred / reference)"
    )
    for h in headers:
        table.add_column(h, justify="left" if h == "model" else "right")
    for model in args.models.split(","):
        enhancer = load_enhancer(weights=model, device="cpu")
        report = evaluate_enhancer(enhancer, pairs, gt_mean=True)
        mean, gt = report.mean(), report.mean(gt_mean=True)
        ratios = tone_ratios(*report.mean_tones())
        table.add_row(
            model,
            f"{mean.psnr:.2f}",
            f"{mean.ssim:.4f}",
            f"{mean.mae:.4f}",
            f"{gt.psnr - mean.psnr:+.2f} dB",
            *(f"{ratios[n]:.2f}" for n in ("black", "luma", "chroma")),
        )
    Console().print(table)
    if args.record:
        record(args.models, args.record, args.split, report, len(pairs))


def record(weights: str, out: str, split_name: str, report, count: int) -> None:
    """A copy of ``weights`` whose stored metrics are this split's (the number a shipped model
    reports: measured once, on the split it names)."""
    model, info = load_model(weights)
    mean = report.mean()
    metrics = {
        "val_psnr": round(mean.psnr, 3),
        "val_ssim": round(mean.ssim, 4),
        "val_mae": round(mean.mae, 4),
        "val_images": count,
        "measured_on": f"sice-pairs/{split_name}",
    }
    save_weights(out, model, WeightsInfo(info.arch, info.config, info.training, metrics))
    print(f"wrote {out} with its {split_name} metrics")


if __name__ == "__main__":
    main()
