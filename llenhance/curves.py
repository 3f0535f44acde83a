"""Training curves: ``metrics.csv`` and ``curves.png`` for a training run, drawn with OpenCV and
NumPy (no plotting library), with the same lettering as the comparison pictures."""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from llenhance.io.guard import atomic_path
from llenhance.io.write import write_image
from llenhance.pictures import FONT, fit_text

#: Columns of ``metrics.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "lr",
    "val_psnr",
    "val_ssim",
    "val_mae",
    "seconds",
)


def _records(history: Sequence[object]) -> list[Mapping[str, object]]:
    """History entries as mappings: dicts, or dataclasses such as training.EpochRecord."""
    out: list[Mapping[str, object]] = []
    for item in history:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            out.append(dataclasses.asdict(item))
        elif isinstance(item, Mapping):
            out.append(item)
        else:
            raise ValueError(f"history entries must be dicts, got {type(item).__name__}")
    return out


def _number(value: object) -> float | None:
    """A finite float, or None for missing, None, NaN, infinite or non-numeric values."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _nice_axis(
    lo: float, hi: float, target: int, integer: bool = False
) -> tuple[float, float, list[float], int]:
    """Axis limits on round numbers and ~``target`` ticks: (lo, hi, ticks, decimals)."""
    if hi - lo <= max(abs(lo), abs(hi), 1.0) * 1e-9:  # constant data: invent a range
        pad = 1.0 if integer else max(abs(lo) * 0.05, 1e-3)
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(target, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    if integer:
        step = max(1.0, round(step))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = [k * step for k in range(first, last + 1)]
    decimals = 0 if integer else max(0, -math.floor(math.log10(step) + 1e-9))
    return first * step, last * step, ticks, decimals


def _tick_label(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text  # no "-0.00"


def _short(value: float) -> str:
    return f"{value:.4g}"


_PANELS = (
    # key, title, colour (RGB 0-255), which value is best
    ("train_loss", "train loss", (31, 100, 180), min),
    ("val_psnr", "val PSNR (dB)", (200, 40, 40), max),
    ("val_ssim", "val SSIM", (30, 140, 50), max),
)


def training_curves(
    history: Sequence[Mapping[str, object]], width: int = 900, height: int = 600
) -> np.ndarray:
    """Three stacked line plots -- train loss, val PSNR, val SSIM -- against the epoch.

    ``history`` items look like ``{"epoch": 1, "train_loss": 0.2, "val_psnr": 20.1,
    "val_ssim": 0.77}`` (dataclasses such as :class:`llenhance.training.EpochRecord` work too).
    Missing, ``None`` and non-finite values are skipped (validation may run every N epochs); a
    panel without any value says "no data". All panels share the epoch axis. Each panel title
    also gives the last and the best value. Returns float32 ``height`` x ``width`` x 3.
    """
    if width < 200 or height < 150:
        raise ValueError(f"training_curves needs at least 200x150 pixels, got {width}x{height}")
    records = _records(history)
    u = min(width / 900, height / 600)  # layout unit: 1 at the default size
    tick_px = max(7.0, 10.0 * u)
    title_px = max(8.0, 12.0 * u)
    line = max(2, round(2 * u))  # 1-px anti-aliased lines never reach full colour
    tick_len = max(3, round(5 * u))
    inset = max(4, round(8 * u))  # data never sits on the frame

    series: list[list[tuple[float, float]]] = []
    epochs: list[float] = []
    for record in records:
        epoch = _number(record.get("epoch"))
        if epoch is not None:
            epochs.append(epoch)
    for key, *_ in _PANELS:
        points = []
        for index, record in enumerate(records):
            epoch = _number(record.get("epoch"))
            value = _number(record.get(key))
            if value is not None:
                points.append((float(index + 1) if epoch is None else epoch, value))
        series.append(points)
        epochs.extend(x for x, _ in points)

    if epochs:
        x_lo, x_hi, x_ticks, _ = _nice_axis(min(epochs), max(epochs), 8, integer=True)
    else:
        x_lo, x_hi, x_ticks = 0.0, 1.0, []
    y_axes = [
        _nice_axis(min(v for _, v in pts), max(v for _, v in pts), 5) if pts else None
        for pts in series
    ]

    y_labels = [
        [_tick_label(t, axis[3]) for t in axis[2]] if axis is not None else [] for axis in y_axes
    ]
    widest = max([fit_text(t, tick_px)[2] for labels in y_labels for t in labels], default=0)
    tick_h = fit_text("0", tick_px)[3]
    title_h = fit_text("H", title_px)[3]

    canvas = np.full((height, width, 3), 255, np.uint8)
    footer = round(tick_h * 2.2)  # room for the "epoch" axis title
    panel_h = (height - footer) // len(_PANELS)
    left = round(10 * u) + widest + tick_len + round(6 * u)
    right = width - round(20 * u)

    def text(img: np.ndarray, s: str, x: int, y: int, px: float, colour, anchor: str) -> None:
        scale, thickness, w, h, _ = fit_text(s, px)
        if anchor == "center":
            x -= w // 2
        elif anchor == "right":
            x -= w
        cv2.putText(img, s, (x, y), FONT, scale, colour, thickness, cv2.LINE_AA)

    dark, grey, grid = (30, 30, 30), (90, 90, 90), (228, 228, 228)
    for p, ((_key, title, colour, best_of), points, axis, labels) in enumerate(
        zip(_PANELS, series, y_axes, y_labels, strict=True)
    ):
        top = p * panel_h
        frame_top = top + round(title_h * 2.2)
        frame_bottom = top + panel_h - round(tick_h * 2.4)
        if points:
            best = best_of(points, key=lambda point: point[1])
            title += f"   last {_short(points[-1][1])}, "
            title += f"{'min' if best_of is min else 'max'} {_short(best[1])} @ epoch {best[0]:g}"
        text(canvas, title, left, top + round(title_h * 1.6), title_px, dark, "left")

        def to_x(e: float, lo: float = x_lo, hi: float = x_hi) -> float:
            return left + inset + (e - lo) / (hi - lo) * (right - left - 2 * inset)

        if axis is None:
            cv2.rectangle(canvas, (left, frame_top), (right, frame_bottom), grey, 1)
            text(
                canvas,
                "no data",
                (left + right) // 2,
                (frame_top + frame_bottom + tick_h) // 2,
                title_px,
                grey,
                "center",
            )
            continue
        y_lo, y_hi, y_ticks, _ = axis

        def to_y(
            v: float, lo: float = y_lo, hi: float = y_hi, b: int = frame_bottom, t: int = frame_top
        ) -> float:
            return b - inset - (v - lo) / (hi - lo) * (b - t - 2 * inset)

        for tick, label in zip(y_ticks, labels, strict=True):
            ty = round(to_y(tick))
            cv2.line(canvas, (left + 1, ty), (right - 1, ty), grid, 1)
            cv2.line(canvas, (left - tick_len, ty), (left, ty), dark, 1)
            text(
                canvas,
                label,
                left - tick_len - round(4 * u),
                ty + tick_h // 2,
                tick_px,
                dark,
                "right",
            )
        for tick in x_ticks:
            tx = round(to_x(tick))
            cv2.line(canvas, (tx, frame_top + 1), (tx, frame_bottom - 1), grid, 1)
            cv2.line(canvas, (tx, frame_bottom), (tx, frame_bottom + tick_len), dark, 1)
            text(
                canvas,
                f"{tick:g}",
                tx,
                frame_bottom + tick_len + round(3 * u) + tick_h,
                tick_px,
                dark,
                "center",
            )
        cv2.rectangle(canvas, (left, frame_top), (right, frame_bottom), dark, 1)

        shift = 4  # sub-pixel precision for anti-aliased drawing
        pts = np.array(
            [[round(to_x(e) * (1 << shift)), round(to_y(v) * (1 << shift))] for e, v in points],
            np.int32,
        )
        if len(pts) > 1:
            cv2.polylines(canvas, [pts], False, colour, line, cv2.LINE_AA, shift)
        radius = float(np.clip((right - left) / len(pts) / 4, 1.5, 3 * u + 0.5))
        for point in pts:
            cv2.circle(
                canvas,
                tuple(int(c) for c in point),
                round(radius * (1 << shift)),
                colour,
                -1,
                cv2.LINE_AA,
                shift,
            )

    text(
        canvas, "epoch", (left + right) // 2, height - round(tick_h * 0.6), tick_px, dark, "center"
    )
    return canvas.astype(np.float32) / np.float32(255)


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    try:
        return repr(float(value))  # type: ignore[arg-type]  # round-trips exactly
    except (TypeError, ValueError):
        return str(value)


def write_training_log(folder: str | Path, history: Sequence[Mapping[str, object]]) -> None:
    """Write ``folder/metrics.csv`` and ``folder/curves.png`` for a training history, atomically.

    The CSV has the columns :data:`CSV_COLUMNS`; missing keys and ``None`` are empty cells,
    numbers are written so they parse back exactly. ``curves.png`` is :func:`training_curves`.
    ``folder`` is created if needed. Each file is the run's own and is replaced (only once
    completely written).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = _records(history)
    with (
        atomic_path(folder / "metrics.csv", overwrite=True) as tmp,
        open(tmp, "w", newline="", encoding="utf-8") as f,
    ):
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for record in records:
            writer.writerow([_csv_value(record.get(column)) for column in CSV_COLUMNS])
    write_image(folder / "curves.png", training_curves(records), overwrite=True)
