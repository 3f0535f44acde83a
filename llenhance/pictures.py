"""Pictures for people: before/after comparisons and contact sheets (training curves:
:mod:`llenhance.curves`).

Everything is drawn with OpenCV and NumPy (no plotting library). Images go in and come out as
float32 HxWx3 RGB arrays in [0, 1] (uint8 and uint16 inputs are accepted and converted); save
them with :func:`llenhance.io.write.write_image`.

* :func:`side_by_side` -- ``before | after`` with a label on each half.
* :func:`contact_sheet` -- a labelled grid, one row per image, one column per image kind
  (input / prediction / reference); ``llenhance eval --save-grid`` uses it with
  :func:`select_best_and_worst`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "contact_sheet",
    "select_best_and_worst",
    "side_by_side",
]

FONT = cv2.FONT_HERSHEY_SIMPLEX
# Height of a capital letter at font scale 1 (differs between OpenCV versions; measured once).
_CAP_HEIGHT = float(cv2.getTextSize("H", FONT, 1.0, 1)[0][1])

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


def fit_text(
    text: str, px: float, max_width: float | None = None
) -> tuple[float, int, int, int, int]:
    """Font scale and thickness for capitals ``px`` pixels tall, shrunk to fit ``max_width``.

    Returns (scale, thickness, text width, text height, baseline).
    """
    px = max(float(px), 1.0)
    for _ in range(4):
        scale = px / _CAP_HEIGHT
        thickness = max(1, round(scale * 1.6))
        (w, h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
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
    scale, thickness, tw, th, baseline = fit_text(text, px, fit)
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
    cv2.putText(mask, text, origin, FONT, scale, 255, thickness, cv2.LINE_AA)
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
        tw = fit_text(title, px, cell_width - 2)[2]
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
