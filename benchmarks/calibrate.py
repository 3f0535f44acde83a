"""Fit a model's black point and saturation on the ``fit`` part of train; write the calibrated
weights.

    python -m benchmarks.calibrate --weights weights/unet-res.safetensors \
        --out runs/calibrated.safetensors

Prints, for every candidate saturation, the best black point on ``fit`` with its mean PSNR on
``fit`` (the choice) and on ``select`` (the check); the written file has ``black_point`` and
``saturation`` in its config and the calibration in its training record. Only unet-res takes
them.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.quality import split
from llenhance.calibration import BLACK_POINTS, SATURATIONS, fit_calibration
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
        raise SystemExit(f"{args.weights}: {enhancer.info.arch} takes no calibration")
    config = enhancer.info.config
    if config.get("black_point") or config.get("saturation", 1.0) != 1.0:
        raise SystemExit(f"{args.weights}: already calibrated")
    (black, saturation), on_fit = fit_calibration(outputs(enhancer, "fit"))
    _, on_select = fit_calibration(outputs(enhancer, "select"))
    table = Table(title=f"calibration of {args.weights}: chosen on fit, checked on select")
    for column in ("saturation", "best black point on fit", "fit PSNR", "select PSNR", ""):
        table.add_column(column, justify="right")
    for s in sorted({s for _, s in on_fit}):
        best = max((c for c in on_fit if c[1] == s), key=on_fit.get)
        chosen = "chosen" if best == (black, saturation) else ""
        table.add_row(
            f"{s:.2f}", f"{best[0]:.3f}", f"{on_fit[best]:.3f}", f"{on_select[best]:.3f}", chosen
        )
    Console().print(table)
    print(f"uncalibrated: fit {on_fit[(0.0, 1.0)]:.3f}, select {on_select[(0.0, 1.0)]:.3f}")
    if black == max(BLACK_POINTS) or saturation == max(SATURATIONS):
        print("warning: the choice is at the edge of the candidates; widen them")
    model, info = load_model(args.weights)  # unfused: the enhancer's copy has BN folded in
    config = {**info.config, "black_point": black, "saturation": saturation}
    calibrated = type(model)(**config)
    calibrated.load_state_dict(model.state_dict())
    command = "python -m benchmarks.calibrate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    training = {
        **info.training,
        "calibration": {
            "black_point": black,
            "saturation": saturation,
            "chosen_on": "fit",
            "command": command,
        },
    }
    save_weights(args.out, calibrated, WeightsInfo(info.arch, config, training, info.metrics))
    print(f"wrote {args.out} (black_point {black}, saturation {saturation})")


if __name__ == "__main__":
    main()
