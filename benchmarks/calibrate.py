"""Fit a model's black point on the ``fit`` part of train and write the calibrated weights.

    python -m benchmarks.calibrate --weights weights/unet-res.safetensors \
        --out runs/calibrated.safetensors

Prints mean PSNR for every candidate black point on ``fit`` (the choice) and on ``select``
(the check); the written file has ``black_point`` in its config and the calibration in its
training record. Only unet-res takes a black point.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.quality import split
from llenhance.calibration import fit_black_point
from llenhance.data import pair_arrays
from llenhance.evaluation import quantize
from llenhance.inference import load_enhancer
from llenhance.weights import WeightsInfo, load_model, save_weights


def outputs(enhancer, name: str) -> list:
    return [(quantize(enhancer(low)), high) for _, low, high in pair_arrays(split(name))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True, help="calibrated weights file (must not exist)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    enhancer = load_enhancer(weights=args.weights, device="cpu")
    if enhancer.info.arch != "unet-res":
        raise SystemExit(f"{args.weights}: {enhancer.info.arch} takes no black point")
    if enhancer.info.config.get("black_point"):
        raise SystemExit(f"{args.weights}: already calibrated")
    best, on_fit = fit_black_point(outputs(enhancer, "fit"))
    _, on_select = fit_black_point(outputs(enhancer, "select"))
    table = Table(title=f"black point of {args.weights}: chosen on fit, checked on select")
    for column in ("black point", "fit PSNR", "select PSNR", ""):
        table.add_column(column, justify="right")
    for b, score in on_fit.items():
        table.add_row(
            f"{b:.3f}", f"{score:.3f}", f"{on_select[b]:.3f}", "chosen" if b == best else ""
        )
    Console().print(table)
    model, info = load_model(args.weights)
    config = {**info.config, "black_point": best}
    calibrated = type(model)(**config)
    calibrated.load_state_dict(model.state_dict())
    command = "python -m benchmarks.calibrate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    training = {
        **info.training,
        "calibration": {"black_point": best, "chosen_on": "fit", "command": command},
    }
    save_weights(args.out, calibrated, WeightsInfo(info.arch, config, training, info.metrics))
    print(f"wrote {args.out} (black_point {best})")


if __name__ == "__main__":
    main()
