"""Shared helpers for the benchmark scripts (not tests: they read ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path(
    os.environ.get("LLENHANCE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
TRAIN = DATA / "sice-pairs" / "train"
VAL = DATA / "sice-pairs" / "val"
REAL_HD = DATA / "unpaired" / "real-hd"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM, which starts afresh at exec (unlike
    getrusage's ru_maxrss, which Linux carries over from the parent across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
