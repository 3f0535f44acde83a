"""The ``llenhance`` command: a thin Typer shell over the library. No logic lives here."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import shlex
import sys
import typing
from pathlib import Path
from typing import Annotated

import typer

from llenhance import __version__
from llenhance.defaults import (
    DEFAULT_MODEL,
    DEFAULT_TILE,
    MODEL_NAMES,
    PNG_COMPRESSION,
)
from llenhance.errors import UserError
from llenhance.train_config import TrainConfig

app = typer.Typer(
    help="Turn dark, noisy photos into clean, well-lit ones.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # Plain click help: typer's rich help imports rich.markdown, pygments and markdown-it
    # (0.2 s of a 0.3 s budget for --help).
    rich_markup_mode=None,
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


Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="One line per image; training notes.")
]


def _global_options(command):
    """--debug, --quiet and --verbose after the subcommand too (as before it)."""

    @functools.wraps(command)
    def wrapper(*args, debug: bool = False, quiet: bool = False, verbose: bool = False, **kwargs):
        _state.update(
            debug=_state["debug"] or debug,
            quiet=_state["quiet"] or quiet,
            verbose=_state["verbose"] or verbose,
        )
        return command(*args, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=kind)
        for name, kind in (("quiet", Quiet), ("verbose", Verbose), ("debug", Debug))
    ]
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])
    wrapper.__annotations__ = {
        **command.__annotations__,
        "quiet": Quiet,
        "verbose": Verbose,
        "debug": Debug,
    }
    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llenhance {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Debug = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
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
Model = Annotated[
    str | None,
    typer.Option(
        help=f"Model (with shipped weights): {', '.join(MODEL_NAMES)}. "
        f"Default: {DEFAULT_MODEL}; 'llenhance models' compares them.",
        show_default=False,
    ),
]
Offline = Annotated[
    bool,
    typer.Option("--offline", help="Use only the local Hugging Face cache (as HF_HUB_OFFLINE=1)."),
]


@app.command()
@_global_options
@_guarded
def enhance(
    inputs: Annotated[list[str], typer.Argument(help="Image files, directories or glob patterns.")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Output file (one input) or directory (a trailing / says so)."
        ),
    ] = None,
    model: Model = None,
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
    exposure: Annotated[
        float,
        typer.Option(
            help="Stops brighter (+) or darker (-) than the model's automatic exposure, -4 to 4."
        ),
    ] = 0.0,
    offline: Offline = False,
) -> None:
    """Enhance dark photos at full resolution (under torchrun, each process its share)."""
    from llenhance.distributed import launched
    from llenhance.inference import enhance_files, load_enhancer, plan_jobs
    from llenhance.render import RichBatchCallbacks, batch_summary, progress_bar

    jobs = plan_jobs(inputs, output, fmt=fmt, compare=compare)
    if len(jobs) == 1 and jobs[0].target.exists() and not force:
        raise UserError(f"{jobs[0].target}: already exists (use --force to overwrite)")
    with launched(device) as dist:
        enhancer = load_enhancer(
            model,
            weights,
            device=str(dist.device),
            tile=tile,
            overlap=tile_overlap,
            offline=offline or None,
            exposure=exposure,
        )
        mine = dist.shard(jobs)
        with progress_bar(quiet=_state["quiet"] or not dist.is_main) as progress:
            report = enhance_files(
                mine,
                enhancer,
                force=force,
                quality=quality,
                subsampling=subsampling,
                png_compression=png_compression,
                compare=compare,
                callbacks=RichBatchCallbacks(progress, len(mine), verbose=_state["verbose"]),
            )
        report = dist.gather_batch(report)
    if not dist.is_main:  # rank 0 speaks for the run
        raise typer.Exit(EXIT_PARTIAL if report.failed else 0)
    if len(jobs) == 1 and report.failed:
        raise UserError(report.failed[0][1])
    batch_summary(report)
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("eval")
@_global_options
@_guarded
def evaluate(
    pred: Annotated[Path | None, typer.Option(help="Folder of enhanced images.")] = None,
    gt: Annotated[
        Path | None, typer.Option(help="Folder of references (paired by file stem).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Enhance --data/low with this model: {', '.join(MODEL_NAMES)}.",
            show_default=False,
        ),
    ] = None,
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
    from llenhance.data import find_pairs
    from llenhance.distributed import launched
    from llenhance.evaluation import (
        check_eval_outputs,
        evaluate_dirs,
        evaluate_enhancer,
        fetch_from_dirs,
        fetch_from_model,
        save_worst_best_grid,
    )
    from llenhance.inference import load_enhancer
    from llenhance.render import (
        EvalProgress,
        console,
        err_console,
        eval_table,
        problems_table,
        progress_bar,
        tone_table,
        write_eval_files,
    )

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
        with launched(device) as dist:
            enhancer = load_enhancer(
                model,
                weights,
                device=str(dist.device),
                tile=tile,
                overlap=tile_overlap,
                offline=offline or None,
            )
            pairs = dist.shard(find_pairs(data))
            with progress_bar(quiet=_state["quiet"] or not dist.is_main) as progress:
                tracked = EvalProgress(progress, enhancer, [p.name for p in pairs])
                report = evaluate_enhancer(
                    tracked,
                    pairs,
                    gt_mean=gt_mean,
                    save_dir=save,
                    progress=tracked.done,
                    force=force,
                )
            report = dist.gather_eval(report)
        if not dist.is_main:  # rank 0 speaks for the run
            raise typer.Exit(EXIT_PARTIAL if report.problems and not allow_missing else 0)
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
    tones = tone_table(report)
    if tones is not None:
        console.print(tones)
    write_eval_files(report, json_out, csv_out, force=force)
    if report.problems:
        err_console.print(problems_table(report.problems, "not scored"))
        if not allow_missing:
            raise typer.Exit(EXIT_PARTIAL)


def _train(resume: bool = False, **options) -> None:
    """Train a model on low/normal-light pairs (LOL layout)."""
    from llenhance.render import RichTrainReporter, console
    from llenhance.training import TrainingInterrupted
    from llenhance.training import train as run_training

    command = "llenhance " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    config = TrainConfig.from_options(command=command, **options)
    try:
        result = run_training(config, RichTrainReporter(quiet=_state["quiet"]), resume=resume)
    except TrainingInterrupted as exc:
        console.print(str(exc), style="yellow")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    console.print(f"best weights: {result.best_path or '-'}; last weights: {result.last_path}")


def _with_config_options(command):
    """``command`` taking one option per :class:`TrainConfig` field that declares one (its
    type, default, help and bounds), plus its own parameters."""
    hints = typing.get_type_hints(TrainConfig)
    parameters = []
    for spec in dataclasses.fields(TrainConfig):
        meta = dict(spec.metadata)
        if "help" not in meta:
            continue
        kind = hints[spec.name]
        default = spec.default
        if meta.pop("json", False):
            kind, default = str | None, None
        elif meta.pop("unset", False):  # None: "not given", resolved by TrainConfig
            kind, default = kind | None, None
            meta["show_default"] = False
        if default is dataclasses.MISSING:
            default = inspect.Parameter.empty
        parameters.append(
            inspect.Parameter(
                spec.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[kind, typer.Option(**meta)],
            )
        )
    own = inspect.signature(command, eval_str=True).parameters.values()
    resume = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.name == "resume"]
    command.__signature__ = inspect.Signature([*parameters, *resume])
    command.__annotations__ = {p.name: p.annotation for p in [*parameters, *resume]}
    return command


ResumeOption = Annotated[bool, typer.Option(help="Continue the run in --out.")]
_train.__annotations__["resume"] = ResumeOption
train = app.command("train")(_global_options(_guarded(_with_config_options(_train))))


@app.command()
@_global_options
@_guarded
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List architectures, their size and their shipped weights' validation metrics."""
    from dataclasses import asdict

    from llenhance.catalog import list_models
    from llenhance.render import console, err_console, json_text, models_table

    entries = list_models()
    if as_json:
        typer.echo(json_text([asdict(e) for e in entries]))
        return
    console.print(models_table(entries))
    for e in entries:
        if e.problem:
            err_console.print(f"{e.name}: {e.problem}", style="yellow")


@app.command()
@_global_options
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
    from llenhance.publish import push_weights
    from llenhance.render import console

    ref = push_weights(weights, repo, token=token, private=private)
    console.print(f"uploaded: use it with --weights {ref}")


@app.command()
@_global_options
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
