"""Black-point calibration of a trained model's output.

A network ending in a sigmoid leaves its blacks lifted: the darkest outputs sit above the
references' (``llenhance eval`` shows it as the black-level ratio). One number fixes most of it:
``y = (x - b) / (1 - b)``, clipped, with ``b`` chosen to maximise PSNR on pairs the choice may
use (the ``fit`` part of train, never the split that reports the model). unet-res applies it as
its ``black_point`` config.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llenhance.evaluation import quantize
from llenhance.metrics import psnr

CANDIDATES = tuple(round(0.005 * i, 3) for i in range(21))  # 0 to 0.1


def apply_black_point(image: np.ndarray, black: float) -> np.ndarray:
    """``image`` with ``black`` mapped to 0 and 1 kept at 1."""
    return np.clip((image - black) / (1.0 - black), 0.0, 1.0)


def fit_black_point(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], candidates: Sequence[float] = CANDIDATES
) -> tuple[float, dict[float, float]]:
    """The candidate black point with the best mean PSNR over (output, reference) pairs, and
    the mean PSNR of every candidate (outputs scored as saved 8-bit files)."""
    if not pairs:
        raise ValueError("no pairs to calibrate on")
    scores = {
        b: float(np.mean([psnr(quantize(apply_black_point(out, b)), ref) for out, ref in pairs]))
        for b in candidates
    }
    return max(scores, key=scores.get), scores
