"""The ``llenhance`` command: a thin Typer shell over the library. No logic lives here."""

from __future__ import annotations

import functools
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llenhance import __version__
from llenhance.errors import UserError
from llenhance.images import PNG_COMPRESSION
from llenhance.tiling import DEFAULT_TILE

app = typer.Typer(
    help="Turn dark, noisy photos into clean, well-lit ones.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
_state = {"debug": False, "quiet": False, "verbose": False}

EXIT_PARTIAL = 1
EXIT_USER_ERROR = 2
EXIT_UNEXPECTED = 3
EXIT_INTERRUPTED = 130


def _guarded(command):
    """One clear line and a non-zero exit for errors; the traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from llenhance.errors import terminate_as_interrupt
        from llenhance.render import err_console, error_line

        try:
            with terminate_as_interrupt():
                return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except UserError as exc:
            if _state["debug"]:
                raise
            err_console.print(error_line(str(exc)), soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", style="yellow")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - last line of defence for the user
            if _state["debug"]:
                raise
            err_console.print(
                error_line(
                    f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"
                ),
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_UNEXPECTED) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llenhance {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One line per image; training notes.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state.update(debug=debug, quiet=quiet, verbose=verbose)


Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Tile = Annotated[
    str | None,
    typer.Option(
        help="Tile size in pixels; 0 runs the whole image at once; auto sizes it to GPU memory. "
        f"Default: {DEFAULT_TILE}, less for models that need more memory.",
        show_default=False,
    ),
]
Overlap = Annotated[
    int | None,
    typer.Option("--tile-overlap", help="Tile overlap in pixels. Default: half the model's reach."),
]
Offline = Annotated[
    bool,
    typer.Option("--offline", help="Use only the local Hugging Face cache (as HF_HUB_OFFLINE=1)."),
]


@app.command()
@_guarded
def enhance(
    inputs: Annotated[list[str], typer.Argument(help="Image files, directories or glob patterns.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file (one input) or directory.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Architecture with shipped weights.")] = None,
    weights: Annotated[
        str | None, typer.Option(help="Weights file, shipped name or hf:// id.")
    ] = None,
    device: Device = "auto",
    tile: Tile = None,
    tile_overlap: Overlap = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="png, jpg, tif or webp for directory output.")
    ] = None,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")] = 95,
    subsampling: Annotated[
        str | None, typer.Option(help="JPEG chroma subsampling: 4:4:4, 4:2:2 or 4:2:0.")
    ] = None,
    png_compression: Annotated[
        int, typer.Option(min=0, max=9, help="PNG and TIFF zlib level: 1 fastest, 9 smallest.")
    ] = PNG_COMPRESSION,
    force: Annotated[bool, typer.Option(help="Overwrite existing outputs.")] = False,
    compare: Annotated[
        bool, typer.Option(help="Also write NAME_compare.EXT: input | output, labelled.")
    ] = False,
    offline: Offline = False,
) -> None:
    """Enhance dark photos at full resolution."""
    from llenhance.inference import enhance_files, load_enhancer, plan_jobs
    from llenhance.render import RichBatchCallbacks, batch_summary, progress_bar

    jobs = plan_jobs(inputs, output, fmt=fmt, compare=compare)
    if len(jobs) == 1 and jobs[0].target.exists() and not force:
        raise UserError(f"{jobs[0].target}: already exists (use --force to overwrite)")
    enhancer = load_enhancer(
        model, weights, device=device, tile=tile, overlap=tile_overlap, offline=offline or None
    )
    with progress_bar(quiet=_state["quiet"]) as progress:
        report = enhance_files(
            jobs,
            enhancer,
            force=force,
            quality=quality,
            subsampling=subsampling,
            png_compression=png_compression,
            compare=compare,
            callbacks=RichBatchCallbacks(progress, len(jobs), verbose=_state["verbose"]),
        )
    if len(jobs) == 1 and report.failed:
        raise UserError(report.failed[0][1])
    batch_summary(report)
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("eval")
@_guarded
def evaluate(
    pred: Annotated[Path | None, typer.Option(help="Folder of enhanced images.")] = None,
    gt: Annotated[
        Path | None, typer.Option(help="Folder of references (paired by file stem).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Enhance --data/low with this model.")] = None,
    weights: Annotated[str | None, typer.Option(help="Weights file for --data runs.")] = None,
    data: Annotated[Path | None, typer.Option(help="LOL-layout folder (low/, high/).")] = None,
    save: Annotated[
        Path | None, typer.Option(help="With --data: also save outputs as PNG here.")
    ] = None,
    gt_mean: Annotated[bool, typer.Option("--gt-mean", help="Add GT-mean scores.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write scores as JSON.")] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write per-image scores as CSV.")
    ] = None,
    allow_missing: Annotated[
        bool, typer.Option(help="Unpaired files do not fail the run.")
    ] = False,
    save_grid: Annotated[
        Path | None,
        typer.Option(help="Write a contact sheet of the 3 worst and 3 best images by PSNR."),
    ] = None,
    device: Device = "auto",
    tile: Tile = None,
    tile_overlap: Overlap = None,
    offline: Offline = False,
    force: Annotated[bool, typer.Option(help="Overwrite existing output files.")] = False,
) -> None:
    """Score predictions against references (PSNR, SSIM, MAE, MSE), or a model on a LOL set."""
    from llenhance.evaluation import (
        check_eval_outputs,
        evaluate_dirs,
        evaluate_enhancer,
        fetch_from_dirs,
        fetch_from_model,
        save_worst_best_grid,
    )
    from llenhance.inference import load_enhancer
    from llenhance.render import console, err_console, eval_table, problems_table, write_eval_files

    if data is not None and (pred is not None or gt is not None):
        raise UserError("give either --data (with --model/--weights) or --pred and --gt")
    check_eval_outputs(
        data=data,
        pred=pred,
        gt=gt,
        save_dir=save,
        json_path=json_out,
        csv_path=csv_out,
        grid_path=save_grid,
        force=force,
    )
    if data is not None:
        enhancer = load_enhancer(
            model, weights, device=device, tile=tile, overlap=tile_overlap, offline=offline or None
        )
        report = evaluate_enhancer(enhancer, data, gt_mean=gt_mean, save_dir=save, force=force)
        title = f"{enhancer.info.arch} on {data}"
        fetch, columns = fetch_from_model(enhancer, data), ("input", "prediction", "reference")
    elif pred is not None and gt is not None:
        report = evaluate_dirs(pred, gt, gt_mean=gt_mean)
        title = f"{pred} vs {gt}"
        fetch, columns = fetch_from_dirs(pred, gt), ("prediction", "reference")
    else:
        raise UserError("give --pred and --gt folders, or --data with --model/--weights")
    if save_grid is not None:
        save_worst_best_grid(report, fetch, save_grid, columns, force=force)
    console.print(eval_table(report, title))
    write_eval_files(report, json_out, csv_out, force=force)
    if report.problems:
        err_console.print(problems_table(report.problems, "not scored"))
        if not allow_missing:
            raise typer.Exit(EXIT_PARTIAL)


@app.command()
@_guarded
def train(
    data: Annotated[Path, typer.Option(help="LOL-layout training folder (low/, high/).")],
    model: Annotated[str, typer.Option(help="Architecture to train.")] = "unet-res",
    model_config: Annotated[
        str | None, typer.Option(help="Architecture config as JSON, e.g. '{\"width\": 24}'.")
    ] = None,
    val: Annotated[Path | None, typer.Option(help="LOL-layout validation folder.")] = None,
    val_split: Annotated[
        float, typer.Option(help="Hold out this fraction of --data instead.")
    ] = 0.0,
    synthesize: Annotated[
        bool,
        typer.Option(help="--data is a folder of normal photos: synthesise low-light pairs."),
    ] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    patch: Annotated[int, typer.Option(min=8, help="Random crop size.")] = 256,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    loss: Annotated[
        str, typer.Option(help="l1, mse, charbonnier, ssim or sums: l1+0.2*ssim.")
    ] = "l1+0.2*ssim",
    schedule: Annotated[str, typer.Option(help="cosine (with warm-up) or plateau.")] = "cosine",
    warmup_steps: Annotated[int, typer.Option(min=0, help="Linear warm-up steps (cosine).")] = 200,
    identity_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of (reference, reference) pairs.")
    ] = 0.1,
    exposure_jitter: Annotated[
        float, typer.Option(min=1.0, help="Scale low exposure by up to this factor either way.")
    ] = 2.0,
    init: Annotated[
        str | None, typer.Option(help="Start from these weights (fine-tune; same config).")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for best/last weights and the checkpoint.")
    ] = Path("runs/train"),
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    seed: int = 0,
    device: Device = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 0,
    patience: Annotated[
        int, typer.Option(min=0, help="Stop after N validations without gain; 0 = never.")
    ] = 0,
    val_every: Annotated[int, typer.Option(min=1, help="Validate every N epochs.")] = 1,
) -> None:
    """Train a model on low/normal-light pairs (LOL layout)."""
    from llenhance.render import RichTrainReporter, console
    from llenhance.training import TrainConfig, TrainingInterrupted
    from llenhance.training import train as run_training

    try:
        config_dict = json.loads(model_config) if model_config else {}
    except json.JSONDecodeError as exc:
        raise UserError(f"--model-config is not valid JSON ({exc})") from None
    if not isinstance(config_dict, dict):
        raise UserError("--model-config must be a JSON object")
    config = TrainConfig(
        data=str(data),
        model=model,
        model_config=config_dict,
        val=str(val) if val else None,
        val_split=val_split,
        synthesize=synthesize,
        epochs=epochs,
        batch_size=batch_size,
        patch=patch,
        lr=lr,
        loss=loss,
        schedule=schedule,
        warmup_steps=warmup_steps,
        identity_fraction=identity_fraction,
        exposure_jitter=exposure_jitter,
        init=init,
        out=str(out),
        seed=seed,
        device=device,
        workers=workers,
        patience=patience,
        val_every=val_every,
        command="llenhance " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    try:
        result = run_training(config, RichTrainReporter(quiet=_state["quiet"]), resume=resume)
    except TrainingInterrupted as exc:
        console.print(str(exc), style="yellow")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    console.print(f"best weights: {result.best_path or '-'}; last weights: {result.last_path}")


@app.command()
@_guarded
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List architectures, their size and their shipped weights' validation metrics."""
    from dataclasses import asdict

    from llenhance.catalog import list_models
    from llenhance.render import console, err_console, json_text

    entries = list_models()
    if as_json:
        typer.echo(json_text([asdict(e) for e in entries]))
        return
    table = Table(title="llenhance models (val metrics stored in the shipped weights)")
    for name in ("model", "params", "weights", "val PSNR", "val SSIM", "val MAE", "description"):
        table.add_column(name, justify="left" if name in ("model", "description") else "right")
    for e in entries:
        m = e.metrics
        table.add_row(
            e.name,
            f"{e.parameters / 1e6:.2f} M",
            "shipped" if e.weights else ("unreadable" if e.problem else "-"),
            *(str(m.get(k, "-")) for k in ("val_psnr", "val_ssim", "val_mae")),
            e.description,
        )
    console.print(table)
    for e in entries:
        if e.problem:
            err_console.print(f"{e.name}: {e.problem}", style="yellow")


@app.command()
@_guarded
def push(
    weights: Annotated[Path, typer.Argument(help="A llenhance weights file.")],
    repo: Annotated[str, typer.Argument(help="Hugging Face Hub repo id: owner/name.")],
    private: Annotated[bool, typer.Option(help="Create the repo as private.")] = False,
    token: Annotated[
        str | None, typer.Option(help="Hub token (default: HF_TOKEN or the saved login).")
    ] = None,
) -> None:
    """Upload weights to the Hugging Face Hub with a generated model card."""
    from llenhance.hub import push_weights
    from llenhance.render import console

    ref = push_weights(weights, repo, token=token, private=private)
    console.print(f"uploaded: use it with --weights {ref}")


@app.command()
@_guarded
def export(
    source: Annotated[str, typer.Argument(help="Weights file or shipped name.")],
    target: Annotated[Path, typer.Argument(help="Where to write the copy.")],
    half: Annotated[
        bool, typer.Option(help="Store float tensors as float16 (half the size).")
    ] = True,
    force: Annotated[bool, typer.Option(help="Overwrite an existing target.")] = False,
) -> None:
    """Copy weights after validating them, by default as float16 to share or ship."""
    from llenhance.render import console
    from llenhance.weights import export_weights

    path = export_weights(source, target, half=half, force=force)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    app()
