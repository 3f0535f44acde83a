"""Pictures for people: before/after comparisons, contact sheets and training curves.

Everything is drawn with OpenCV and NumPy (no plotting library). Images go in and come out as
float32 HxWx3 RGB arrays in [0, 1] (uint8 and uint16 inputs are accepted and converted); save
them with :func:`llenhance.io.write.write_image`.

* :func:`side_by_side` -- ``before | after`` with a label on each half.
* :func:`contact_sheet` -- a labelled grid, one row per image, one column per image kind
  (input / prediction / reference); ``llenhance eval --save-grid`` uses it with
  :func:`select_best_and_worst`.
* :func:`training_curves` and :func:`write_training_log` -- ``metrics.csv`` and ``curves.png``
  for a training run.
"""

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

__all__ = [
    "CSV_COLUMNS",
    "contact_sheet",
    "select_best_and_worst",
    "side_by_side",
    "training_curves",
    "write_training_log",
]

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

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Height of a capital letter at font scale 1 (differs between OpenCV versions; measured once).
_CAP_HEIGHT = float(cv2.getTextSize("H", _FONT, 1.0, 1)[0][1])

_SEPARATOR_COLOUR = np.float32(0.85)
_SHEET_BACKGROUND = np.float32(0.12)
_LABEL_BOX_OPACITY = 0.6  # how much the label box darkens the picture under it


# --------------------------------------------------------------------------------------------
# Helpers


def _as_rgb(image: np.ndarray, what: str) -> np.ndarray:
    """uint8 / uint16 / float HxWx3 -> float32 in [0, 1] (a copy, safe to draw on)."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what} must be an HxWx3 array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    if arr.dtype.kind != "f":
        raise ValueError(f"{what} must be uint8, uint16 or float, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return np.clip(arr, 0, 1).astype(np.float32)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """INTER_AREA when shrinking (no aliasing), INTER_LINEAR when enlarging."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrinking = width <= w and height <= h
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=interpolation)
    return np.clip(out, 0, 1).astype(np.float32)


def _font(text: str, px: float, max_width: float | None = None) -> tuple[float, int, int, int, int]:
    """Font scale and thickness for capitals ``px`` pixels tall, shrunk to fit ``max_width``.

    Returns (scale, thickness, text width, text height, baseline).
    """
    px = max(float(px), 1.0)
    for _ in range(4):
        scale = px / _CAP_HEIGHT
        thickness = max(1, round(scale * 1.6))
        (w, h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
        if max_width is None or w <= max_width or px <= 4:
            break
        px = max(4.0, px * max_width / max(w, 1) * 0.97)
    return scale, thickness, w, h, baseline


def _draw_text(
    image: np.ndarray,
    text: str,
    x: int,
    y: int,
    px: float,
    colour: Sequence[float] = (1.0, 1.0, 1.0),
    max_width: float | None = None,
    box_opacity: float = 0.0,
    pad: int | None = None,
) -> tuple[int, int, int, int]:
    """Anti-aliased text with its box's top-left corner at (x, y), onto a float image in place.

    With ``box_opacity`` > 0 the box under the text is darkened first (a semi-transparent dark
    label). Only pixels inside the returned box (x0, y0, x1, y1) are changed.
    """
    if pad is None:
        pad = max(2, round(px * 0.35))
    fit = None if max_width is None else max_width - 2 * pad
    scale, thickness, tw, th, baseline = _font(text, px, fit)
    height, width = image.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1 = min(width, x + tw + 2 * pad + thickness)
    y1 = min(height, y + th + baseline + 2 * pad)
    if x1 <= x0 or y1 <= y0:
        return x0, y0, x0, y0
    region = image[y0:y1, x0:x1]
    if box_opacity > 0:
        region *= np.float32(1 - box_opacity)
    mask = np.zeros(region.shape[:2], np.uint8)
    origin = (x + pad - x0, y + pad + th - y0)
    cv2.putText(mask, text, origin, _FONT, scale, 255, thickness, cv2.LINE_AA)
    alpha = (mask.astype(np.float32) / np.float32(255))[:, :, None]
    region *= 1 - alpha
    region += alpha * np.asarray(colour, np.float32)
    return x0, y0, x1, y1


def _label_px(width: int, height: int) -> float:
    """Text height for a label on a ``width`` x ``height`` picture: readable at 300 and 4000 px."""
    return float(min(max(13.0, width * 0.028), max(6.0, height * 0.3)))


def _separator_width(half_width: int) -> int:
    return max(2, half_width // 128)


# --------------------------------------------------------------------------------------------
# Before / after


def side_by_side(
    before: np.ndarray,
    after: np.ndarray,
    labels: Sequence[str | None] = ("input", "llenhance"),
    max_side: int | None = 2048,
) -> np.ndarray:
    """``before | separator | after`` as one float32 image, each half labelled in its corner.

    The labels are white text on a dark semi-transparent box in the top-left corner of each
    half, sized to the picture's width and never wider than half of it, so a label cannot hide
    the picture on a small preview (pass ``None`` or ``""`` for no label). Outside the two
    label boxes the halves are the inputs' pixels, unchanged. If the result would be wider or
    taller than ``max_side`` (``None``: no limit), both halves are first shrunk (INTER_AREA).
    ``before`` and ``after`` must have the same size; ValueError otherwise.
    """
    left = _as_rgb(before, "before")
    right = _as_rgb(after, "after")
    if left.shape != right.shape:
        raise ValueError(
            f"before and after must have the same size, got {left.shape[1]}x{left.shape[0]} "
            f"and {right.shape[1]}x{right.shape[0]}"
        )
    if len(labels) != 2:
        raise ValueError(f"labels must be two strings, got {labels!r}")
    if max_side is not None and max_side < 5:
        raise ValueError(f"max_side must be at least 5, got {max_side}")

    h, w = left.shape[:2]
    if max_side is not None and (2 * w + _separator_width(w) > max_side or h > max_side):
        new_w = min(w, max(1, int(w * max_side / h)), max(1, (max_side - 2) // 2))
        while new_w > 1 and 2 * new_w + _separator_width(new_w) > max_side:
            new_w -= 1
        new_h = min(max_side, max(1, round(h * new_w / w)))
        left, right = _resize(left, new_w, new_h), _resize(right, new_w, new_h)
        h, w = new_h, new_w

    sep = _separator_width(w)
    px = _label_px(w, h)
    margin = max(2, round(px * 0.5))
    for half, label in ((left, labels[0]), (right, labels[1])):
        if label:
            text = " ".join(str(label).split())
            _draw_text(
                half,
                text,
                margin,
                margin,
                px,
                max_width=w // 2 - 2 * margin,
                box_opacity=_LABEL_BOX_OPACITY,
            )
    out = np.empty((h, 2 * w + sep, 3), np.float32)
    out[:, :w] = left
    out[:, w : w + sep] = _SEPARATOR_COLOUR
    out[:, w + sep :] = right
    return out


# --------------------------------------------------------------------------------------------
# Contact sheet


def _row_label_colour(label: str) -> tuple[float, float, float]:
    word = label.lstrip().lower()
    if word.startswith("worst"):
        return (1.0, 0.55, 0.5)
    if word.startswith("best"):
        return (0.55, 1.0, 0.55)
    return (1.0, 1.0, 1.0)


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[np.ndarray | None]]],
    column_titles: Sequence[str] = ("input", "prediction", "reference"),
    cell_width: int = 256,
) -> np.ndarray:
    """A labelled grid: one row per entry of ``rows``, one column per image kind.

    ``rows`` holds ``(label, [image, ...])`` pairs, e.g.
    ``("worst: 0123.png PSNR 14.21 dB", [low, prediction, reference])``; the label is drawn on a
    strip above the row (reddish for labels starting with "worst", greenish for "best"). Every
    image is resized to ``cell_width`` pixels wide, keeping its aspect ratio, and centred
    vertically in its row, which is as tall as its tallest image. ``None`` leaves a cell empty.
    ``column_titles`` go on a strip at the top. Layout, with ``gap = max(2, cell_width // 64)``:
    width ``columns * cell_width + (columns + 1) * gap``, where ``columns`` is the larger of the
    number of titles and the longest row. Returns float32 HxWx3 in [0, 1].
    """
    if cell_width < 8:
        raise ValueError(f"cell_width must be at least 8, got {cell_width}")
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    titles = [str(t) for t in column_titles]
    columns = max([len(titles)] + [len(images) for _, images in rows])
    if columns == 0:
        raise ValueError("contact_sheet needs at least one image or column title")

    cells: list[list[np.ndarray | None]] = []
    heights: list[int] = []
    for r, (_, images) in enumerate(rows):
        row: list[np.ndarray | None] = []
        for c, image in enumerate(images):
            if image is None:
                row.append(None)
                continue
            rgb = _as_rgb(image, f"contact_sheet row {r} column {c}")
            h, w = rgb.shape[:2]
            row.append(_resize(rgb, cell_width, max(1, round(h * cell_width / w))))
        cells.append(row)
        filled = [cell.shape[0] for cell in row if cell is not None]
        heights.append(max(filled, default=max(1, cell_width * 2 // 3)))

    gap = max(2, cell_width // 64)
    sheet_width = columns * cell_width + (columns + 1) * gap
    px = float(np.clip(cell_width * 0.055, 10, 48))
    strip = round(px * 2.2)
    title_strip = strip if any(titles) else 0
    sheet_height = gap + title_strip + sum(strip + h + gap for h in heights)
    sheet = np.full((sheet_height, sheet_width, 3), _SHEET_BACKGROUND, np.float32)

    text_top = (strip - round(px * 1.75)) // 2  # the text box is about 1.75 px tall
    for c, title in enumerate(titles):
        if not title:
            continue
        x = gap + c * (cell_width + gap)
        tw = _font(title, px, cell_width - 2)[2]
        _draw_text(
            sheet,
            title,
            x + max(0, (cell_width - tw) // 2 - 2),
            gap + text_top,
            px,
            max_width=cell_width,
            pad=round(px * 0.35),
        )

    y = gap + title_strip
    for (label, _), row, row_height in zip(rows, cells, heights, strict=True):
        text = " ".join(str(label).split())
        if text:
            _draw_text(
                sheet,
                text,
                gap,
                y + text_top,
                px,
                _row_label_colour(text),
                max_width=sheet_width - 2 * gap,
            )
        y += strip
        for c, cell in enumerate(row):
            if cell is None:
                continue
            x = gap + c * (cell_width + gap)
            top = y + (row_height - cell.shape[0]) // 2
            sheet[top : top + cell.shape[0], x : x + cell_width] = cell
        y += row_height + gap
    return sheet


def select_best_and_worst(
    names_and_psnr: Sequence[tuple[str, float]], n: int = 3
) -> list[tuple[str, str]]:
    """The ``n`` worst images by PSNR (ascending), then the ``n`` best (descending).

    Returns ``[("worst", name), ..., ("best", name), ...]``. No image appears twice: with fewer
    than ``2 * n`` images, the lower half (rounded up, at most ``n``) is "worst" and the rest,
    up to ``n``, "best". Ties are broken by name; a NaN PSNR counts as the lowest.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")

    def key(item: tuple[str, float]) -> tuple[float, str]:
        value = float(item[1])
        return (-math.inf if math.isnan(value) else value, str(item[0]))

    ordered = sorted(names_and_psnr, key=key)
    n_worst = min(n, (len(ordered) + 1) // 2)
    n_best = min(n, len(ordered) - n_worst)
    worst = [("worst", name) for name, _ in ordered[:n_worst]]
    best = [("best", name) for name, _ in ordered[len(ordered) - n_best :][::-1]]
    return worst + best


# --------------------------------------------------------------------------------------------
# Training curves


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
    widest = max([_font(t, tick_px)[2] for labels in y_labels for t in labels], default=0)
    tick_h = _font("0", tick_px)[3]
    title_h = _font("H", title_px)[3]

    canvas = np.full((height, width, 3), 255, np.uint8)
    footer = round(tick_h * 2.2)  # room for the "epoch" axis title
    panel_h = (height - footer) // len(_PANELS)
    left = round(10 * u) + widest + tick_len + round(6 * u)
    right = width - round(20 * u)

    def text(img: np.ndarray, s: str, x: int, y: int, px: float, colour, anchor: str) -> None:
        scale, thickness, w, h, _ = _font(s, px)
        if anchor == "center":
            x -= w // 2
        elif anchor == "right":
            x -= w
        cv2.putText(img, s, (x, y), _FONT, scale, colour, thickness, cv2.LINE_AA)

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
