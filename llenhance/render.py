"""Rich presentation of library results: tables, progress bars and the training log.

Kept apart from the CLI so the commands stay a few lines each, and apart from the library so a
Python user never imports rich output by accident.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from llenhance.catalog import ModelEntry
from llenhance.defaults import DEFAULT_MODEL, DEFAULT_VAL_SPLIT
from llenhance.evaluation import EvalReport
from llenhance.inference import BatchCallbacks, BatchReport, Enhancer, Job
from llenhance.io.guard import atomic_path
from llenhance.metrics import Scores
from llenhance.tone import TOLERANCE, Tone, tone_flags, tone_ratios
from llenhance.training import EpochRecord, TrainConfig, TrainReporter

# Markup is off: file names, option values and messages are shown as typed ("[x].png",
# "IMG_0001 [edited].png", "--format '[/]'"), never read as rich markup. Styling is given with
# ``style=`` or Text, never inside a string.
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


def error_line(message: str) -> Text:
    """``error: MESSAGE``, the label in red, the message exactly as given."""
    return Text.assemble(("error:", "red"), " ", message)


def _fmt(scores: Scores) -> list[str]:
    return [f"{scores.psnr:.2f}", f"{scores.ssim:.4f}", f"{scores.mae:.4f}", f"{scores.mse:.5f}"]


def eval_table(report: EvalReport, title: str, per_image: bool = True) -> Table:
    """Per-image rows, then the mean; GT-mean columns when they were computed."""
    with_gt_mean = any(r.gt_mean is not None for r in report.results)
    table = Table(title=title, show_footer=False)
    table.add_column("image")
    for name in ("PSNR", "SSIM", "MAE", "MSE"):
        table.add_column(name, justify="right")
    if with_gt_mean:
        table.add_column("PSNR GT-mean", justify="right")
        table.add_column("SSIM GT-mean", justify="right")
    table.add_column("tone", overflow="fold", min_width=6)
    if per_image:
        for r in report.results:
            extra = [f"{r.gt_mean.psnr:.2f}", f"{r.gt_mean.ssim:.4f}"] if r.gt_mean else []
            tone = [_flag_text(r.tone, r.ref_tone)] if r.tone and r.ref_tone else []
            table.add_row(r.name, *_fmt(r.scores), *extra, *tone)
        table.add_section()
    mean = report.mean()
    if mean is not None:
        gt = report.mean(gt_mean=True)
        extra = [f"{gt.psnr:.2f}", f"{gt.ssim:.4f}"] if with_gt_mean and gt else []
        tones = report.mean_tones()
        tone = [_flag_text(*tones)] if tones else []
        table.add_row(f"mean of {len(report.results)}", *_fmt(mean), *extra, *tone, style="bold")
    return table


def _flag_text(pred: Tone, ref: Tone) -> str:
    return ", ".join(tone_flags(pred, ref)) or "ok"


def tone_table(report: EvalReport) -> Table | None:
    """Mean black level, brightness and chroma of predictions next to the references'."""
    tones = report.mean_tones()
    if tones is None:
        return None
    pred, ref = tones
    ratios = tone_ratios(pred, ref)
    table = Table(title=f"tone over {len(report.results)} images (--json/--csv: per image)")
    for name in ("", "prediction", "reference", "ratio", "band"):
        table.add_column(name, justify="left" if not name else "right")
    labels = {"black": "black level (2nd pct. luma)", "luma": "mean luma", "chroma": "chroma"}
    for name, label in labels.items():
        low, high = TOLERANCE[name]
        style = "" if low <= ratios[name] <= high else "yellow"
        table.add_row(
            label,
            f"{getattr(pred, name):.3f}",
            f"{getattr(ref, name):.3f}",
            f"{ratios[name]:.2f}",
            f"{low:g}-{high:g}",
            style=style,
        )
    return table


def json_text(value: object) -> str:
    """Strict JSON (RFC 8259): NaN and infinities, which JSON has no words for, become null."""
    return json.dumps(_finite(value), indent=2, allow_nan=False)


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_eval_files(
    report: EvalReport, json_path: Path | None, csv_path: Path | None, force: bool = False
) -> None:
    """The same numbers as the table, for machines (an existing file only with ``force``)."""
    rows = report.as_rows()
    if json_path is not None:
        mean = report.mean()
        gt = report.mean(gt_mean=True)
        payload = {
            "images": rows,
            "mean": mean.as_dict() if mean else None,
            "mean_gt_mean": gt.as_dict() if gt and any(r.gt_mean for r in report.results) else None,
            "tone": report.tone_summary(),
            "problems": report.problems,
        }
        with atomic_path(json_path, overwrite=force) as tmp:
            tmp.write_text(json_text(payload))
    if csv_path is not None and rows:
        with atomic_path(csv_path, overwrite=force) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def progress_bar(**columns) -> Progress:
    return Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=columns.get("transient", False),
        disable=columns.get("quiet", False),
    )


class RichBatchCallbacks(BatchCallbacks):
    """An images bar, plus a tiles bar showing megapixels per second for the current image."""

    def __init__(self, progress: Progress, total: int, verbose: bool = False) -> None:
        self.progress = progress
        self.verbose = verbose
        self.images: TaskID = progress.add_task("images", total=total, rate="")
        self.tiles: TaskID | None = None
        self.started = time.perf_counter()
        self.image_started = self.started
        self.megapixels = 0.0

    def image_start(self, job: Job, tiles: int) -> None:
        if self.tiles is not None:
            self.progress.remove_task(self.tiles)
        self.image_started = time.perf_counter()
        self.tiles = self.progress.add_task(f"  {job.source.name}", total=tiles, rate="")

    def tile_done(self, done: int, total: int, megapixels: float) -> None:
        if self.tiles is None:
            return
        elapsed = time.perf_counter() - self.image_started
        rate = f"{megapixels * done / total / elapsed:.2f} MP/s" if elapsed > 0 else ""
        self.progress.update(self.tiles, completed=done, rate=rate)

    def image_end(self, job: Job, status: str, megapixels: float) -> None:
        if self.verbose:
            seconds = time.perf_counter() - self.image_started
            detail = f"{megapixels:.1f} MP in {seconds:.1f} s" if status == "done" else status
            self.progress.console.print(f"{job.source} -> {job.target}: {detail}")
        self.megapixels += megapixels
        elapsed = time.perf_counter() - self.started
        rate = f"{self.megapixels / elapsed:.2f} MP/s" if elapsed > 0 and self.megapixels else ""
        self.progress.update(self.images, advance=1, rate=rate)


class EvalProgress:
    """The bars of ``enhance`` (images, and the tiles of the current one with MP/s) for
    ``eval --data``: call it in place of the enhancer, and ``done(name)`` after each image."""

    def __init__(self, progress: Progress, enhancer: Enhancer, names: Sequence[str]) -> None:
        self.bars = RichBatchCallbacks(progress, len(names))
        self.enhancer = enhancer
        self.names = list(names)
        self.megapixels = 0.0
        self.count = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        self.megapixels = height * width / 1e6
        label = Path(self.names[min(self.count, len(self.names) - 1)])
        self.count += 1
        self.bars.image_start(Job(label, label), self.enhancer.tiles_for(height, width))
        return self.enhancer(
            image, lambda done, total: self.bars.tile_done(done, total, self.megapixels)
        )

    def done(self, name: str) -> None:
        self.bars.image_end(Job(Path(name), Path(name)), "done", self.megapixels)


def batch_summary(report: BatchReport) -> None:
    rate = report.megapixels / report.seconds if report.seconds > 0 else 0.0
    console.print(
        f"enhanced {len(report.done)}, skipped {len(report.skipped)} (already exist; --force "
        f"redoes them), failed {len(report.failed)} in {report.seconds:.1f} s ({rate:.2f} MP/s)"
    )
    if report.failed:
        err_console.print(
            problems_table([problem for _, problem in report.failed], "failed images")
        )


def problems_table(problems: Sequence[str], title: str) -> Table:
    table = Table(title=title)
    table.add_column("problem")
    for p in problems:
        table.add_row(p)
    return table


def _held_out(val: object) -> str:
    """Where the metrics were measured: the folder's last two parts, or the held-out share of
    the training data as the weights say it."""
    if not isinstance(val, str):
        return "-"
    return val if " " in val else "/".join(Path(val).parts[-2:])


def models_table(entries: Sequence[ModelEntry]) -> Table:
    """``llenhance models``: the default model starred, PSNR to 2 decimals, SSIM and MAE to 4."""

    def number(value: object, digits: int) -> str:
        return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"

    table = Table(
        title="llenhance models (metrics stored in the shipped weights)",
        caption=f"* the default: {DEFAULT_MODEL} enhances when no --model is given; "
        "held out: where the metrics were measured",
    )
    columns = ("model", "params", "weights", "PSNR", "SSIM", "MAE", "held out")
    for name in (*columns, "description"):
        table.add_column(name, justify="right" if name in columns[1:6] else "left")
    for e in entries:
        m = e.metrics
        table.add_row(
            f"{e.name}*" if e.name == DEFAULT_MODEL else e.name,
            f"{e.parameters / 1e6:.2f} M",
            "shipped" if e.weights else ("unreadable" if e.problem else "-"),
            number(m.get("val_psnr"), 2),
            number(m.get("val_ssim"), 4),
            number(m.get("val_mae"), 4),
            _held_out(m.get("measured_on", e.training.get("val"))),
            e.description,
        )
    return table


_EPOCH_COLUMNS = (
    ("epoch", 5),
    ("loss", 8),
    ("lr", 9),
    ("val PSNR", 9),
    ("val SSIM", 9),
    ("val MAE", 8),
    ("time", 7),
    ("", 4),
)


def _epoch_line(cells: Sequence[str]) -> str:
    return " ".join(
        cell.rjust(width) for cell, (_, width) in zip(cells, _EPOCH_COLUMNS, strict=True)
    )


def validation_note(config: TrainConfig, n_val: int) -> str:
    """What the run validates on, said in the header (a held-out share is easy to miss)."""
    if config.val:
        return f"validating on {n_val} pairs from {config.val}"
    if not n_val:
        return "validating on nothing (--val-split 0: no best weights, no val curves)"
    share = f"{config.val_split:.0%} of --data by scene"
    if config.val_split == DEFAULT_VAL_SPLIT:
        share += ", the default: --val DIR or --val-split to change"
    return f"validating on {n_val} held out ({share})"


class RichTrainReporter(TrainReporter):
    """A transient progress bar per epoch above one table that grows a row per epoch."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.losses: list[float] = []
        self.header_printed = False

    def start(self, config: TrainConfig, n_train: int, n_val: int, params: int) -> None:
        console.print(
            f"training {config.model} ({params / 1e6:.2f} M parameters) "
            f"on {n_train} pairs, {validation_note(config, n_val)}; {config.epochs} epochs, "
            f"batch {config.batch_size}, patch {config.patch}, loss {config.loss}, "
            f"out {config.out}"
        )

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.losses = []
        # a terminal shows the bar and then erases it; a log gets only the table's rows
        quiet = self.quiet or not err_console.is_terminal
        self.progress = progress_bar(quiet=quiet, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=batches, rate="")

    def batch_end(self, loss: float) -> None:
        self.losses.append(loss)
        if self.progress is not None and self.task is not None:
            mean = sum(self.losses[-20:]) / len(self.losses[-20:])
            self.progress.update(self.task, advance=1, rate=f"loss {mean:.4f}")

    def epoch_end(self, record: EpochRecord) -> None:
        if self.progress is not None:
            self.progress.stop()
        if not self.header_printed:
            header = _epoch_line([name for name, _ in _EPOCH_COLUMNS])
            console.print(header, style="bold")
            console.print("-" * len(header))
            self.header_printed = True

        def opt(value: float | None, fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        line = _epoch_line(
            [
                str(record.epoch),
                f"{record.train_loss:.4f}",
                f"{record.lr:.2e}",
                opt(record.val_psnr, ".2f"),
                opt(record.val_ssim, ".4f"),
                opt(record.val_mae, ".4f"),
                f"{record.seconds:.0f} s",
                "best" if record.best else "",
            ]
        )
        console.print(line, soft_wrap=True)

    def note(self, text: str) -> None:
        err_console.print(text, style="yellow")
