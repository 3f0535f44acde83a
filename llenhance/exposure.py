"""A user's brightness control on top of the model's automatic exposure.

``exposure`` is in stops (EV). The curve acts in linear light, per channel:
``y = g x / (1 + (g - 1) x)`` with ``g = 2 ** ev``. Shadows move by ``ev`` stops, black stays
black and white stays white, so no highlight clips and no black lifts; the output rises with
``ev`` at every pixel, and ``ev = 0`` is the identity (the model's own judgement).
"""

from __future__ import annotations

import numpy as np

from llenhance.synthesis import linear_to_srgb, srgb_to_linear

MAX_STOPS = 4.0


def check_exposure(ev: float) -> float:
    """``ev`` if it is a finite number of stops within +/- MAX_STOPS, else ValueError."""
    if not np.isfinite(ev) or abs(ev) > MAX_STOPS:
        raise ValueError(f"exposure must be between -{MAX_STOPS:g} and +{MAX_STOPS:g} EV, not {ev}")
    return float(ev)


def apply_exposure(image: np.ndarray, ev: float) -> np.ndarray:
    """``image`` (float in [0, 1], sRGB-like) moved by ``ev`` stops; in place where possible."""
    if ev == 0:
        return image
    gain = np.float32(2.0**ev)
    linear = srgb_to_linear(image)
    linear = gain * linear / (1 + (gain - 1) * linear)
    result = linear_to_srgb(linear)
    image[...] = result
    return image
