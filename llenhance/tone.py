"""Tone diagnostics: black level, brightness and colourfulness of a prediction next to its
reference, so washed-out (lifted blacks, pale colour) or over-bright output shows in one table.

Each ratio is prediction / reference; the tolerance bands are the ones the quality issue set
for the default model (black level and brightness 0.8-1.25, chroma 0.9-1.1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from llenhance.pixels import LUMA

BLACK_PERCENTILE = 2
TONE_NAMES = ("black", "luma", "chroma")
TOLERANCE = {"black": (0.8, 1.25), "luma": (0.8, 1.25), "chroma": (0.9, 1.1)}
_WORDS = {
    "black": ("crushed blacks", "lifted blacks"),
    "luma": ("too dark", "too bright"),
    "chroma": ("dull colour", "oversaturated"),
}
_FLOOR = 1e-3


@dataclass(frozen=True)
class Tone:
    """``black``: 2nd-percentile luma; ``luma``: mean luma; ``chroma``: mean of max - min RGB."""

    black: float
    luma: float
    chroma: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def measure_tone(image: np.ndarray) -> Tone:
    """Tone statistics of an HxWx3 float image in [0, 1]."""
    pixels = image.reshape(-1, image.shape[-1]).astype(np.float64)
    luma = pixels[:, :3] @ np.array(LUMA)
    chroma = pixels[:, :3].max(axis=1) - pixels[:, :3].min(axis=1)
    return Tone(
        black=float(np.percentile(luma, BLACK_PERCENTILE)),
        luma=float(luma.mean()),
        chroma=float(chroma.mean()),
    )


def mean_tone(tones: list[Tone]) -> Tone:
    return Tone(*(float(np.mean([getattr(t, n) for t in tones])) for n in TONE_NAMES))


def tone_ratios(pred: Tone, ref: Tone) -> dict[str, float]:
    """Prediction / reference for each statistic (references darker than 1/1000 count as that)."""
    return {n: getattr(pred, n) / max(getattr(ref, n), _FLOOR) for n in TONE_NAMES}


def tone_flags(pred: Tone, ref: Tone) -> list[str]:
    """A word for every ratio outside its band, e.g. ``["lifted blacks", "dull colour"]``."""
    flags = []
    for name, ratio in tone_ratios(pred, ref).items():
        low, high = TOLERANCE[name]
        if ratio < low:
            flags.append(_WORDS[name][0])
        elif ratio > high:
            flags.append(_WORDS[name][1])
    return flags
