"""Pictures: side-by-side comparisons, contact sheets, best/worst selection, training curves."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from llenhance import curves
from llenhance.curves import CSV_COLUMNS, training_curves, write_training_log
from llenhance.io.read import read_rgb
from llenhance.pictures import contact_sheet, select_best_and_worst, side_by_side
from tests.conftest import darken, scene

# --------------------------------------------------------------------------------------------
# side_by_side


def _changed_box(out: np.ndarray, original: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the pixels that differ, or None."""
    ys, xs = np.nonzero(np.any(out != original, axis=2))
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_side_by_side_layout_and_labels() -> None:
    height, width = 120, 160
    after = scene(height, width, seed=3)
    before = darken(after, seed=3)
    out = side_by_side(before, after)

    assert out.dtype == np.float32
    assert out.shape[0] == height
    separator = out.shape[1] - 2 * width
    assert 1 <= separator <= 8
    left, right = out[:, :width], out[:, width + separator :]
    assert right.shape == after.shape

    for half, original in ((left, before), (right, after)):
        # Away from the label the halves are the inputs, exactly.
        np.testing.assert_array_equal(half[height // 2 :], original[height // 2 :])
        np.testing.assert_array_equal(half[:, width // 2 :], original[:, width // 2 :])
        # The label is a small box in the top-left corner ...
        box = _changed_box(half, original)
        assert box is not None
        x0, y0, x1, y1 = box
        assert x0 < 10 and y0 < 10 and x1 < width // 2 and y1 < height // 2
        assert (x1 - x0) > 20 and (y1 - y0) > 8
        region, under = half[y0:y1, x0:x1], original[y0:y1, x0:x1]
        # ... with white text on a darkened background.
        assert (region.min(axis=2) > 0.9).sum() > 10
        assert (region < under - 0.01).mean() > 0.3
    # The separator is neither picture.
    sep = out[:, width : width + separator]
    assert not np.array_equal(sep, before[:, :separator])
    assert np.ptp(sep) == 0


def test_side_by_side_label_grows_with_the_picture() -> None:
    small = scene(60, 80, seed=1)
    large = cv2.resize(small, (1600, 1200), interpolation=cv2.INTER_LINEAR)
    box_small = _changed_box(side_by_side(small, small)[:, :80], small)
    box_large = _changed_box(side_by_side(large, large, max_side=None)[:, :1600], large)
    assert box_small is not None and box_large is not None
    assert (box_large[3] - box_large[1]) > 2 * (box_small[3] - box_small[1])


def test_side_by_side_downscales_over_max_side() -> None:
    after = scene(200, 300, seed=4)
    before = darken(after, seed=4)
    out = side_by_side(before, after, labels=("", None), max_side=256)
    assert max(out.shape[:2]) <= 256
    assert out.shape[1] >= 240  # shrunk to fit, not far below
    half = (out.shape[1] - 2) // 2
    separator = out.shape[1] - 2 * half
    expected = cv2.resize(after, (half, out.shape[0]), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(out[:, half + separator :], expected, atol=1e-5)
    # Under max_side nothing is resized.
    assert side_by_side(before, after, max_side=1000).shape == (200, 600 + separator, 3)


def test_side_by_side_rejects_different_sizes() -> None:
    with pytest.raises(ValueError, match="same size"):
        side_by_side(scene(32, 48), scene(32, 40))


# --------------------------------------------------------------------------------------------
# contact_sheet


def _find_row(sheet: np.ndarray, cell: np.ndarray, x: int) -> tuple[int, float]:
    """Vertical offset where ``cell`` best matches the sheet at column ``x``, and the error."""
    h, w = cell.shape[:2]
    centre = cell[h // 4 : h - h // 4, w // 4 : w - w // 4]
    errors = [
        float(
            np.abs(sheet[y + h // 4 : y + h - h // 4, x + w // 4 : x + w - w // 4] - centre).max()
        )
        for y in range(sheet.shape[0] - h + 1)
    ]
    y = int(np.argmin(errors))
    return y, errors[y]


def test_contact_sheet_layout_and_cells() -> None:
    cell_width = 64
    shapes = [(96, 128), (128, 128)]  # a landscape row and a square row
    rows = [
        (
            f"worst: {r:04d}.png PSNR {10 + r:.2f} dB",
            [scene(h, w, seed=10 * r + c) for c in range(3)],
        )
        for r, (h, w) in enumerate(shapes)
    ]
    sheet = contact_sheet(rows, cell_width=cell_width)

    gap = max(2, cell_width // 64)
    assert sheet.dtype == np.float32 and sheet.ndim == 3 and sheet.shape[2] == 3
    assert sheet.shape[1] == 3 * cell_width + 4 * gap
    cell_heights = [48, 64]
    assert sheet.shape[0] > sum(cell_heights) + 2 * 10  # rows plus label strips and titles
    assert sheet.shape[0] < sum(cell_heights) + 3 * 60

    found = []
    for (_, images), cell_h in zip(rows, cell_heights, strict=True):
        for c, image in enumerate(images):
            expected = cv2.resize(image, (cell_width, cell_h), interpolation=cv2.INTER_AREA)
            y, error = _find_row(sheet, expected, gap + c * (cell_width + gap))
            assert error < 2e-3, (c, error)
            found.append(y)
    assert found[0] == found[1] == found[2] < found[3] == found[4] == found[5]
    # Titles and row labels are drawn: bright text pixels above the first row.
    assert sheet[: found[0]].max() > 0.9


def test_contact_sheet_pads_short_rows_and_missing_cells() -> None:
    rows = [("a", [scene(64, 64, seed=1)]), ("b", [scene(32, 64, seed=2), None, scene(64, 32)])]
    sheet = contact_sheet(rows, column_titles=("x", "y", "z", "w"), cell_width=32)
    assert sheet.shape[1] == 4 * 32 + 5 * 2
    with pytest.raises(ValueError):
        contact_sheet([])


# --------------------------------------------------------------------------------------------
# select_best_and_worst


def test_select_best_and_worst_ten() -> None:
    psnr = [21.0, 14.5, 30.2, 18.0, 25.5, 12.1, 27.7, 16.3, 22.2, 29.0]
    items = [(f"{i:04d}.png", value) for i, value in enumerate(psnr)]
    assert select_best_and_worst(items, n=3) == [
        ("worst", "0005.png"),
        ("worst", "0001.png"),
        ("worst", "0007.png"),
        ("best", "0002.png"),
        ("best", "0009.png"),
        ("best", "0006.png"),
    ]


def test_select_best_and_worst_few_images_no_duplicates() -> None:
    items = [("a", 20.0), ("b", 10.0), ("c", 30.0), ("d", 15.0)]
    chosen = select_best_and_worst(items, n=3)
    names = [name for _, name in chosen]
    assert sorted(names) == ["a", "b", "c", "d"]
    assert chosen == [("worst", "b"), ("worst", "d"), ("best", "c"), ("best", "a")]
    assert select_best_and_worst([("only", 5.0)], n=3) == [("worst", "only")]
    assert select_best_and_worst([], n=3) == []


# --------------------------------------------------------------------------------------------
# training_curves


def _colour_pixels(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Per-third-of-the-height count of pixels within 12 levels of ``colour``."""
    u8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.int16)
    match = np.all(np.abs(u8 - np.array(colour)) <= 12, axis=2)
    thirds = np.array_split(match, 3, axis=0)
    return np.array([t.sum() for t in thirds])


COLOURS = [panel[2] for panel in curves._PANELS]


def _history(epochs: int) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 0.3 * math.exp(-e / 5) + 0.02,
            "val_psnr": 15 + math.log(e) if e % 2 == 0 else None,
            "val_ssim": 0.6 + 0.01 * e if e % 2 == 0 else None,
        }
        for e in range(1, epochs + 1)
    ]


def test_training_curves_draws_three_panels() -> None:
    image = training_curves(_history(10), width=450, height=300)
    assert image.shape == (300, 450, 3)
    assert image.min() >= 0 and image.max() <= 1
    for panel, colour in enumerate(COLOURS):
        counts = _colour_pixels(image, colour)
        assert counts[panel] > 50, (panel, counts)
        assert counts.sum() == counts[panel]  # each curve stays in its own panel
    # Dark axes, ticks and labels in every panel.
    for band in np.array_split(image, 3, axis=0):
        assert (band.max(axis=2) < 0.3).sum() > 100


def test_training_curves_single_epoch_and_no_validation() -> None:
    image = training_curves([{"epoch": 1, "train_loss": 0.2, "val_psnr": None}], 450, 300)
    assert image.shape == (300, 450, 3) and np.isfinite(image).all()
    assert _colour_pixels(image, COLOURS[0])[0] > 5  # the single point
    assert _colour_pixels(image, COLOURS[1]).sum() == 0  # "no data"
    assert _colour_pixels(image, COLOURS[2]).sum() == 0
    # An empty history is three "no data" panels, not a crash.
    assert training_curves([], 450, 300).shape == (300, 450, 3)


def test_training_curves_constant_values() -> None:
    flat = [{"epoch": e, "train_loss": 0.1, "val_psnr": 20.0, "val_ssim": 0.0} for e in range(4)]
    image = training_curves(flat, 450, 300)
    assert np.isfinite(image).all()
    for panel, colour in enumerate(COLOURS):
        assert _colour_pixels(image, colour)[panel] > 50


def test_training_curves_skips_none() -> None:
    with_none = _history(6)
    without_key = [{k: v for k, v in item.items() if v is not None} for item in with_none]
    as_zero = [{k: (0.0 if v is None else v) for k, v in item.items()} for item in with_none]
    image = training_curves(with_none, 450, 300)
    np.testing.assert_array_equal(image, training_curves(without_key, 450, 300))
    assert not np.array_equal(image, training_curves(as_zero, 450, 300))


def test_nice_axis_ticks_are_round() -> None:
    lo, hi, ticks, decimals = curves._nice_axis(0.0213, 0.287, 5)
    assert lo <= 0.0213 and hi >= 0.287 and 3 <= len(ticks) <= 9
    step = ticks[1] - ticks[0]
    assert any(math.isclose(step, s) for s in (0.02, 0.05, 0.1))
    assert all(abs(t / step - round(t / step)) < 1e-9 for t in ticks)
    labels = [curves._tick_label(t, decimals) for t in ticks]
    assert len(set(labels)) == len(labels)
    assert all(abs(float(label) - t) < step / 100 for label, t in zip(labels, ticks, strict=True))
    assert curves._tick_label(-1e-17, 2) == "0"
    lo, hi, ticks, _ = curves._nice_axis(1, 1, 8, integer=True)
    assert lo < 1 < hi and all(float(t).is_integer() for t in ticks)


# --------------------------------------------------------------------------------------------
# write_training_log


@dataclasses.dataclass
class _Record:
    epoch: int
    train_loss: float
    lr: float
    seconds: float
    val_psnr: float | None = None


def test_write_training_log(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "train_loss": 0.2, "lr": 1e-3, "seconds": 12.5, "val_psnr": None},
        {
            "epoch": 2,
            "train_loss": np.float64(0.1234567890123),
            "lr": 5e-4,
            "val_psnr": 21.25,
            "val_ssim": 0.7712,
            "val_mae": 0.05,
            "seconds": 11.0,
        },
    ]
    folder = tmp_path / "run"
    write_training_log(folder, history)
    assert sorted(p.name for p in folder.iterdir()) == ["curves.png", "metrics.csv"]

    with open(folder / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 3
    for row, record in zip(rows[1:], history, strict=True):
        for column, cell in zip(CSV_COLUMNS, row, strict=True):
            value = record.get(column)
            if value is None:
                assert cell == ""
            else:
                assert float(cell) == float(value), column
    assert rows[1][0] == "1"
    assert read_rgb(folder / "curves.png").shape == (600, 900, 3)

    # Dataclass records (like training.EpochRecord) work too; the files are replaced.
    write_training_log(folder, [_Record(3, 0.5, 1e-4, 2.0, 19.5)])
    with open(folder / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {
            "epoch": "3",
            "train_loss": "0.5",
            "lr": "0.0001",
            "val_psnr": "19.5",
            "val_ssim": "",
            "val_mae": "",
            "seconds": "2.0",
        }
    ]
