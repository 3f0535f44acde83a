"""Score predictions against references: folder against folder, or a model on a LOL-layout set.

Predictions are measured as the 8-bit images a user would save, which is how published numbers
on LOL are computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llenhance.data import Pair, find_pairs, images_by_stem, pair_arrays
from llenhance.errors import UserError, failure_text
from llenhance.io.guard import check_outputs
from llenhance.io.read import read_rgb
from llenhance.io.write import write_image
from llenhance.metrics import METRIC_NAMES, Scores, match_gt_mean, score
from llenhance.pictures import contact_sheet, select_best_and_worst
from llenhance.pixels import to_uint8
from llenhance.tone import Tone, mean_tone, measure_tone, tone_flags, tone_ratios

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageResult:
    name: str
    scores: Scores
    gt_mean: Scores | None = None
    tone: Tone | None = None
    ref_tone: Tone | None = None


@dataclass
class EvalReport:
    """Per-image scores, their means, and the files that could not be scored."""

    results: list[ImageResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def mean(self, gt_mean: bool = False) -> Scores | None:
        rows = [r.gt_mean if gt_mean else r.scores for r in self.results]
        rows = [r for r in rows if r is not None]
        if not rows:
            return None
        return Scores(**{m: float(np.mean([getattr(r, m) for r in rows])) for m in METRIC_NAMES})

    def mean_tones(self) -> tuple[Tone, Tone] | None:
        """Mean tone of the predictions and of the references."""
        pairs = [(r.tone, r.ref_tone) for r in self.results if r.tone and r.ref_tone]
        if not pairs:
            return None
        return mean_tone([p for p, _ in pairs]), mean_tone([r for _, r in pairs])

    def tone_summary(self) -> dict[str, object] | None:
        """Mean tone of predictions and references, their ratios and the flags they raise."""
        tones = self.mean_tones()
        if tones is None:
            return None
        pred, ref = tones
        return {
            "prediction": pred.as_dict(),
            "reference": ref.as_dict(),
            "ratio": tone_ratios(pred, ref),
            "flags": tone_flags(pred, ref),
        }

    def as_rows(self) -> list[dict[str, object]]:
        """One flat dict per image (for JSON and CSV)."""
        rows = []
        for r in self.results:
            row: dict[str, object] = {"image": r.name, **r.scores.as_dict()}
            if r.gt_mean is not None:
                row.update({f"{k}_gt_mean": v for k, v in r.gt_mean.as_dict().items()})
            if r.tone is not None and r.ref_tone is not None:
                row.update({f"{k}_pred": v for k, v in r.tone.as_dict().items()})
                row.update({f"{k}_ref": v for k, v in r.ref_tone.as_dict().items()})
                row.update({f"{k}_ratio": v for k, v in tone_ratios(r.tone, r.ref_tone).items()})
                row["tone_flags"] = "; ".join(tone_flags(r.tone, r.ref_tone))
            rows.append(row)
        return rows


def quantize(image: np.ndarray) -> np.ndarray:
    """The float image a saved 8-bit file would give back."""
    return to_uint8(image).astype(np.float32) / 255.0


def score_image(name: str, pred: np.ndarray, ref: np.ndarray, gt_mean: bool) -> ImageResult:
    pred = quantize(pred)
    return ImageResult(
        name=name,
        scores=score(pred, ref),
        gt_mean=score(quantize(match_gt_mean(pred, ref)), ref) if gt_mean else None,
        tone=measure_tone(pred),
        ref_tone=measure_tone(ref),
    )


def evaluate_dirs(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    gt_mean: bool = False,
    progress: Progress | None = None,
) -> EvalReport:
    """Pair files of two folders by stem (any image extension) and score each pair."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for folder in (pred_dir, gt_dir):
        if not folder.is_dir():
            raise UserError(f"{folder}: not a directory")
    preds, gts = images_by_stem(pred_dir), images_by_stem(gt_dir)
    if not preds:
        raise UserError(f"{pred_dir}: no images found")
    report = EvalReport()
    report.problems += [
        f"{preds[s].name}: no reference in {gt_dir}" for s in sorted(set(preds) - set(gts))
    ]
    report.problems += [
        f"{gts[s].name}: no prediction in {pred_dir}" for s in sorted(set(gts) - set(preds))
    ]
    for stem in sorted(set(preds) & set(gts)):
        try:  # one unreadable file is listed, and the others are still scored
            pred, ref = read_rgb(preds[stem]), read_rgb(gts[stem])
        except Exception as exc:  # noqa: BLE001
            report.problems.append(failure_text(preds[stem].name, exc))
            continue
        if pred.shape != ref.shape:
            report.problems.append(
                f"{preds[stem].name}: size {pred.shape[1]}x{pred.shape[0]} differs from reference "
                f"{ref.shape[1]}x{ref.shape[0]}"
            )
        else:
            report.results.append(score_image(stem, pred, ref, gt_mean))
        if progress is not None:
            progress(stem)
    return report


def evaluate_enhancer(
    enhance: Callable[[np.ndarray], np.ndarray],
    data: str | Path | Sequence[Pair] | Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    gt_mean: bool = False,
    save_dir: str | Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> EvalReport:
    """Enhance every ``low`` image of a LOL-layout set in memory and score it against ``high``.

    ``data`` is a LOL-layout folder, a list of :class:`Pair`, or (name, low, high) arrays.
    With ``save_dir`` the predictions are also written there as lossless PNG: never over an
    input, nor over an existing file unless ``force`` (checked before the first is written).
    """
    if isinstance(data, (str, Path)):
        data = find_pairs(data)
    items = list(data)
    triples = pair_arrays(items) if items and isinstance(items[0], Pair) else items
    if save_dir is not None:
        save_dir = Path(save_dir)
        if items and isinstance(items[0], Pair):
            check_outputs(
                saved_outputs(save_dir, [p.name for p in items]),
                [f for p in items for f in (p.low, p.high)],
                force=force,
            )
        if save_dir.exists() and not save_dir.is_dir():
            raise UserError(f"--save {save_dir}: exists and is not a directory")
        save_dir.mkdir(parents=True, exist_ok=True)
    report = EvalReport()
    for name, low, high in triples:
        pred = enhance(low)
        report.results.append(score_image(name, pred, high, gt_mean))
        if save_dir is not None:
            write_image(save_dir / f"{name}.png", pred, overwrite=force)
        if progress is not None:
            progress(name)
    return report


def save_worst_best_grid(
    report: EvalReport,
    fetch: Callable[[str], list[np.ndarray]],
    path: str | Path,
    column_titles: Sequence[str],
    n: int = 3,
    force: bool = False,
) -> None:
    """A contact sheet of the ``n`` worst and ``n`` best images by PSNR; ``fetch(name)`` gives
    the images of one row (e.g. input, prediction, reference)."""
    psnrs = [(r.name, r.scores.psnr) for r in report.results]
    if not psnrs:
        raise UserError("--save-grid: no scored images to show")
    by_name = dict(psnrs)
    rows = [
        (f"{kind}: {name}  PSNR {by_name[name]:.2f} dB", fetch(name))
        for kind, name in select_best_and_worst(psnrs, n)
    ]
    write_image(path, contact_sheet(rows, column_titles=tuple(column_titles)), overwrite=force)


def fetch_from_model(
    enhance: Callable[[np.ndarray], np.ndarray], data: str | Path
) -> Callable[[str], list[np.ndarray]]:
    """Row images (input, prediction, reference) of one pair of a LOL-layout set, by name."""
    pairs = {p.name: p for p in find_pairs(data)}

    def fetch(name: str) -> list[np.ndarray]:
        _, low, high = next(pair_arrays([pairs[name]]))
        return [low, quantize(enhance(low)), high]

    return fetch


def fetch_from_dirs(pred_dir: str | Path, gt_dir: str | Path) -> Callable[[str], list[np.ndarray]]:
    """Row images (prediction, reference) of one scored pair of folders, by stem."""
    preds, gts = images_by_stem(Path(pred_dir)), images_by_stem(Path(gt_dir))
    return lambda name: [read_rgb(preds[name]), read_rgb(gts[name])]


def saved_outputs(save_dir: str | Path, names: Iterable[str]) -> list[tuple[Path, str]]:
    """The files ``--save`` writes for these image names, with what writes them."""
    return [(Path(save_dir) / f"{name}.png", f"--save of {name}") for name in names]


def check_eval_outputs(
    *,
    data: str | Path | None = None,
    pred: str | Path | None = None,
    gt: str | Path | None = None,
    save_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    grid_path: str | Path | None = None,
    force: bool = False,
) -> None:
    """Every file an ``eval`` run writes, checked before scoring starts: none is an input (the
    images of ``data``, ``pred`` or ``gt``), none shares a name, none exists unless ``force``
    (:func:`~llenhance.io.guard.check_outputs`); ``save_dir`` must be a folder if it exists."""
    folders = [Path(d) / sub for d in [data] if d is not None for sub in ("low", "high")]
    folders += [Path(d) for d in (pred, gt) if d is not None]
    inputs = [f for d in folders if d.is_dir() for f in d.iterdir() if f.is_file()]
    outputs: list[tuple[Path, str]] = []
    if save_dir is not None:
        save_dir = Path(save_dir)
        if save_dir.exists() and not save_dir.is_dir():
            raise UserError(f"--save {save_dir}: exists and is not a directory")
        if data is not None:
            outputs += saved_outputs(save_dir, [p.name for p in find_pairs(data)])
    for path, option in ((json_path, "--json"), (csv_path, "--csv"), (grid_path, "--save-grid")):
        if path is not None:
            outputs.append((Path(path), option))
            parent = Path(path).parent
            if not parent.is_dir():
                what = "is not a directory" if parent.exists() else "does not exist"
                raise UserError(f"{option} {path}: folder {parent} {what}")
    check_outputs(outputs, inputs, force=force)
