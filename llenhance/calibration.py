"""Tone calibration of a trained model's output: black point and saturation.

A network ending in a sigmoid and trained with L1 leaves its output washed out: the darkest
outputs sit above the references' and colours are paler (``llenhance eval`` shows both as the
black-level and chroma ratios). Two numbers fix most of it, applied in this order:

* black point ``b``: ``y = (x - b) / (1 - b)``, clipped (black to 0, white kept at 1);
* saturation ``s``: each pixel's distance from its own luma scaled by ``s``, clipped (grey and
  luma kept).

Both are chosen together to maximise PSNR on pairs the choice may use (the ``fit`` part of
train, never the split that reports the model). unet-res applies them as its ``black_point``
and ``saturation`` config.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llenhance.evaluation import quantize
from llenhance.metrics import psnr
from llenhance.pixels import LUMA

BLACK_POINTS = tuple(round(0.005 * i, 3) for i in range(17))  # 0 to 0.08
SATURATIONS = tuple(round(1.0 + 0.05 * i, 2) for i in range(7))  # 1 to 1.3


def apply_black_point(image: np.ndarray, black: float) -> np.ndarray:
    """``image`` with ``black`` mapped to 0 and 1 kept at 1."""
    return np.clip((image - black) / (1.0 - black), 0.0, 1.0)


def apply_saturation(image: np.ndarray, saturation: float) -> np.ndarray:
    """HxWx3 ``image`` with every pixel's chroma around its luma scaled by ``saturation``."""
    luma = (image @ np.asarray(LUMA, image.dtype))[..., None]
    return np.clip(luma + saturation * (image - luma), 0.0, 1.0)


def apply_calibration(image: np.ndarray, black: float = 0.0, saturation: float = 1.0) -> np.ndarray:
    """The black point, then the saturation, as unet-res applies them."""
    out = apply_black_point(image, black) if black else image
    return apply_saturation(out, saturation) if saturation != 1.0 else out


def fit_calibration(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    black_points: Sequence[float] = BLACK_POINTS,
    saturations: Sequence[float] = SATURATIONS,
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """The (black point, saturation) with the best mean PSNR over (output, reference) pairs,
    and the mean PSNR of every candidate (outputs scored as saved 8-bit files)."""
    if not pairs:
        raise ValueError("no pairs to calibrate on")
    scores = {}
    for black in black_points:
        blacked = [(apply_calibration(out, black), ref) for out, ref in pairs]
        for saturation in saturations:
            scores[(black, saturation)] = float(
                np.mean(
                    [
                        psnr(quantize(apply_calibration(out, 0.0, saturation)), ref)
                        for out, ref in blacked
                    ]
                )
            )
    return max(scores, key=scores.get), scores
