"""Shared helpers for the benchmark scripts (not tests: they read ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path(
    os.environ.get("LLENHANCE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
VAL = DATA / "sice-pairs" / "val"
REAL_HD = DATA / "unpaired" / "real-hd"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux ru_maxrss is in KB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
