"""Held-out checks that were never used for training or model selection:

- synthetic: low-light versions of ``photos/`` (llenhance.synthesis, fixed seed) scored against
  the original photos (PSNR, SSIM);
- identity: the well-exposed ``photos/`` themselves: a good enhancer leaves them nearly alone
  (PSNR of output vs input; a low value means it over-brightens or shifts colours);
- DICM: real dark photos without references: mean luminance of input and output;
- real-hd (its photos up to 1080p), real dark photos without references, for two defects the
  quality issue names: "black out" is the output's 2nd-percentile luma (the input's is about
  0: a night scene should keep its blacks), "dark speckle" the RMS of the output's high-pass
  chroma (Cr, Cb minus their Gaussian blur, sigma 2) over the input's darkest quarter (colour
  noise in the shadows).

    python -m benchmarks.robustness [--models unet-res,dncnn] [--limit 40]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks._common import DATA
from llenhance.archs import model_names
from llenhance.data import find_photos
from llenhance.evaluation import quantize
from llenhance.inference import load_enhancer
from llenhance.io.read import image_size, read_rgb
from llenhance.metrics import mean_luminance, psnr, ssim
from llenhance.pixels import LUMA, to_float
from llenhance.synthesis import synthesize_low_light
from llenhance.tone import measure_tone
from llenhance.weights import shipped_path


def dark_speckle(low: np.ndarray, out: np.ndarray) -> float:
    """RMS of the high-pass chroma of ``out`` where ``low`` is in its darkest quarter."""
    luma = to_float(low) @ np.asarray(LUMA, np.float32)
    shadows = luma <= np.percentile(luma, 25)
    chroma = cv2.cvtColor(to_float(out), cv2.COLOR_RGB2YCrCb)[..., 1:]
    detail = chroma - cv2.GaussianBlur(chroma, (0, 0), 2)
    return float(np.sqrt(np.mean(detail[shadows] ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default=None, help="shipped names or weights paths (default: all shipped)"
    )
    parser.add_argument("--limit", type=int, default=40, help="photos per set")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = [read_rgb(p) for p in find_photos(DATA / "photos")[: args.limit]]
    dark = [synthesize_low_light(p, np.random.default_rng([2026, i])) for i, p in enumerate(photos)]
    dicm = [read_rgb(p) for p in find_photos(DATA / "unpaired" / "dicm")[: args.limit]]
    up_to_1080p = [
        p for p in find_photos(DATA / "unpaired" / "real-hd") if max(image_size(p) or (0,)) <= 1920
    ]
    real = [read_rgb(p) for p in up_to_1080p[: args.limit]]
    names = (
        args.models.split(",")
        if args.models
        else [n for n in model_names() if shipped_path(n).is_file()]
    )
    table = Table(
        title=f"held-out robustness ({len(photos)} photos, {len(dicm)} DICM, {len(real)} real-hd)"
    )
    for col in (
        "model",
        "synthetic PSNR",
        "synthetic SSIM",
        "identity PSNR",
        "DICM luma in",
        "DICM luma out",
        "real-hd black in",
        "real-hd black out",
        "real-hd dark speckle",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    dicm_luma = np.mean([mean_luminance(d) for d in dicm])
    real_black = np.mean([measure_tone(to_float(r)).black for r in real])
    for name in names:
        enhance = load_enhancer(weights=name, device="cpu")
        outs = [quantize(enhance(d)) for d in dark]
        same = [quantize(enhance(p)) for p in photos]
        lit = [enhance(d) for d in dicm]
        night = [enhance(r) for r in real]
        table.add_row(
            name,
            f"{np.mean([psnr(o, p) for o, p in zip(outs, photos, strict=True)]):.2f}",
            f"{np.mean([ssim(o, p) for o, p in zip(outs, photos, strict=True)]):.3f}",
            f"{np.mean([psnr(s, p) for s, p in zip(same, photos, strict=True)]):.2f}",
            f"{dicm_luma:.3f}",
            f"{np.mean([mean_luminance(o) for o in lit]):.3f}",
            f"{real_black:.3f}",
            f"{np.mean([measure_tone(o).black for o in night]):.3f}",
            f"{np.mean([dark_speckle(r, o) for r, o in zip(real, night, strict=True)]):.4f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
