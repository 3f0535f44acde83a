"""llenhance: turn dark, noisy photos into clean, well-lit ones.

    from llenhance import load_enhancer, enhance_image, evaluate_dirs, load_model

The names are imported lazily, so ``llenhance --version`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "llenhance.weights",
    "save_weights": "llenhance.weights",
    "WeightsInfo": "llenhance.weights",
    "load_enhancer": "llenhance.inference",
    "enhance_image": "llenhance.inference",
    "enhance_files": "llenhance.inference",
    "enhance_array": "llenhance.tiling",
    "enhance_bands": "llenhance.tiling",
    "evaluate_dirs": "llenhance.evaluation",
    "evaluate_enhancer": "llenhance.evaluation",
    "read_image": "llenhance.io.read",
    "write_image": "llenhance.io.write",
    "spool_image": "llenhance.io.read",
    "ImageWriter": "llenhance.io.write",
    "create_model": "llenhance.archs",
    "arch_names": "llenhance.archs",
    "train": "llenhance.training",
    "TrainConfig": "llenhance.training",
    "synthesize_low_light": "llenhance.synthesis",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llenhance' has no attribute {name!r}")
