"""The training loop: AdamW, warm-up + cosine (or plateau) schedule, per-epoch validation,
best/last weights and a resumable checkpoint that survives being killed at any moment.

Runs the same in one process or under ``torchrun`` (DistributedDataParallel): every rank trains
on its shard, rank 0 validates and writes files.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from llenhance import __version__
from llenhance.archs import count_parameters, get_arch
from llenhance.checkpoint import load_checkpoint, read_checkpoint_record, save_checkpoint
from llenhance.data import (
    MixedDataset,
    PairDataset,
    SyntheticPairDataset,
    find_pairs,
    find_photos,
    split_pairs,
    synthetic_validation,
)
from llenhance.devices import place_model
from llenhance.distributed import DistributedContext
from llenhance.errors import UserError
from llenhance.evaluation import evaluate_enhancer
from llenhance.losses import build_loss
from llenhance.pictures import write_training_log
from llenhance.tiling import enhance_array
from llenhance.weights import WeightsInfo, load_state, read_info, resolve_weights, save_weights

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in the checkpoint so a resume can check it."""

    data: str
    model: str = "unet-res"
    model_config: dict[str, Any] = field(default_factory=dict)
    val: str | None = None
    val_split: float = 0.1
    """Share of ``data`` held out for validation when no ``val`` folder is given (0: none)."""
    synthesize: bool = False
    photos: str | None = None
    """Also train on low-light pairs synthesised from the photos in this folder."""
    identity_fraction: float = 0.1
    exposure_jitter: float = 2.0
    init: str | None = None
    epochs: int = 100
    batch_size: int = 4
    patch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "l1+0.2*ssim"
    schedule: str = "cosine"
    warmup_steps: int = 200
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    patience: int = 0
    val_every: int = 1
    tile: int | None = None
    """Validation tile; None takes the architecture's default."""
    max_bad_steps: int = 10
    command: str = ""


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    lr: float
    seconds: float
    val_psnr: float | None = None
    val_ssim: float | None = None
    val_mae: float | None = None
    best: bool = False


class TrainReporter:
    """Receives progress; the CLI subclasses it with rich output. Methods are no-ops here."""

    def start(self, config: TrainConfig, n_train: int, n_val: int, params: int) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...
    def batch_end(self, loss: float) -> None: ...
    def epoch_end(self, record: EpochRecord) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass
class TrainResult:
    history: list[EpochRecord]
    best_path: Path | None
    last_path: Path
    interrupted: bool = False
    stopped_early: bool = False


class TrainingInterrupted(Exception):
    """Ctrl-C: the checkpoint was saved; ``--resume`` continues from it."""


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return 0.01 + 0.99 * step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: _lr_factor(s, total_steps, config.warmup_steps)
        )
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.5, patience=4
        )
    raise UserError(f"--schedule {config.schedule}: expected cosine or plateau")


class _StopFlag:
    """First Ctrl-C asks the loop to stop after the current step; a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _datasets(config: TrainConfig, spec):
    """The training dataset and the validation source (pairs on disk or synthetic arrays)."""
    val: list = find_pairs(config.val) if config.val else []
    split = 0.0 if config.val else config.val_split  # a --val folder replaces the held-out share
    if config.synthesize:
        photos = find_photos(config.data)
        if split:
            photos, held_out = split_pairs(photos, split, config.seed)
            val = synthetic_validation(held_out, config.seed)
        dataset = SyntheticPairDataset(photos, config.patch, spec.context_fn, seed=config.seed)
    else:
        pairs = find_pairs(config.data)
        if split:
            pairs, val = split_pairs(pairs, split, config.seed)
        dataset = PairDataset(
            pairs,
            config.patch,
            spec.context_fn,
            seed=config.seed,
            identity_fraction=config.identity_fraction,
            exposure_jitter=config.exposure_jitter,
        )
    if config.photos:
        synthetic = SyntheticPairDataset(
            find_photos(config.photos), config.patch, spec.context_fn, seed=config.seed
        )
        dataset = MixedDataset([dataset, synthetic])
    if len(dataset) < config.batch_size:
        raise UserError(
            f"{config.data}: {len(dataset)} training items, "
            f"fewer than --batch-size {config.batch_size}"
        )
    return dataset, val


def init_from(model: torch.nn.Module, path: str, arch: str, config: dict[str, Any]) -> None:
    """Start from trained weights (fine-tuning): same architecture and config required."""
    source = resolve_weights(path)
    info = read_info(source)
    spec = get_arch(arch)
    wanted = spec.full_config(**config)
    if info.arch != arch or spec.full_config(**info.config) != wanted:
        raise UserError(
            f"--init {path}: weights are {info.arch} {info.config}, not {arch} {wanted}"
        )
    load_state(source, model, info)


def _weights_info(
    config: TrainConfig, spec, epoch: int, seconds: float, metrics: dict
) -> WeightsInfo:
    training = {
        "data": config.data,
        "val": config.val or (f"{config.val_split:g} of data" if config.val_split else None),
        "synthesized": config.synthesize,
        "photos": config.photos,
        "command": config.command,
        "epochs": epoch,
        "seconds": round(seconds, 1),
        **{
            k: getattr(config, k)
            for k in (
                "loss",
                "patch",
                "batch_size",
                "lr",
                "seed",
                "schedule",
                "identity_fraction",
                "exposure_jitter",
                "init",
            )
        },
    }
    return WeightsInfo(
        arch=spec.name,
        config=spec.full_config(**config.model_config),
        training=training,
        metrics=metrics,
    )


def _check_finite_weights(model: torch.nn.Module, epoch: int) -> None:
    """Weights with NaN or Inf are never written: the run fails instead."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(
                f"training diverged at epoch {epoch}: weight '{name}' is NaN or Inf, so no "
                "weights were written for it; lower --lr"
            )


def train(
    config: TrainConfig, reporter: TrainReporter | None = None, resume: bool = False
) -> TrainResult:
    """Train ``config.model`` on ``config.data``; see :class:`TrainConfig` for the knobs."""
    dist = DistributedContext.from_env(config.device)
    reporter = reporter if reporter is not None and dist.is_main else TrainReporter()
    spec = get_arch(config.model).for_config(config.model_config)
    out = Path(config.out)
    checkpoint_path = out / CHECKPOINT_NAME
    if dist.is_main:
        if not resume and checkpoint_path.exists():
            raise UserError(
                f"{out} already holds a training run: pass --resume, or choose another --out"
            )
        if resume and not checkpoint_path.exists():
            raise UserError(f"--resume: no checkpoint at {checkpoint_path}")
        if not resume:  # a new run never replaces files it did not write
            run_files = ("best.safetensors", "last.safetensors", "metrics.csv", "curves.png")
            for name in run_files:
                if (out / name).exists():
                    raise UserError(f"{out / name}: already exists; choose another --out")
        out.mkdir(parents=True, exist_ok=True)
    device = dist.device
    torch.manual_seed(config.seed)

    loss_fn = build_loss(config.loss)
    model = place_model(spec.build(**config.model_config), device)
    dataset, val_pairs = _datasets(config, spec)
    if config.init and not resume:
        init_from(model, config.init, spec.name, config.model_config)
    fit = getattr(model, "fit_preprocessor", None)
    if fit is not None and not resume and not config.init:
        fit(*dataset.float_pairs())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    sampler = dist.sampler(len(dataset), config.seed)
    per_rank_batch = config.batch_size // dist.world_size
    if per_rank_batch < 1 or config.batch_size % dist.world_size:
        raise UserError(
            f"--batch-size {config.batch_size} must be a multiple of {dist.world_size} processes"
        )
    loader = DataLoader(
        dataset,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=config.workers,
        drop_last=True,
    )
    steps_per_epoch = len(dataset) // dist.world_size // per_rank_batch
    scheduler = _scheduler(optimizer, config, steps_per_epoch * config.epochs)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    state: dict[str, Any] = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "best_psnr": None,
        "bad_epochs": 0,
        "seconds": 0.0,
        "history": [],
        "loss_sum": 0.0,
    }
    if resume:
        try:
            saved = read_checkpoint_record(checkpoint_path)["config"]
            saved["model_config"] = spec.full_config(**saved["model_config"])
            for key in ("model", "model_config", "batch_size", "patch", "seed", "data"):
                current = getattr(config, key)
                if key == "model_config":
                    current = spec.full_config(**current)
                if key == "data":  # the same folder, however it is spelled
                    same = Path(saved[key]).resolve() == Path(current).resolve()
                else:
                    same = saved[key] == current
                if not same:
                    raise UserError(
                        f"--resume: --{key.replace('_', '-')} {current!r} "
                        f"differs from the run's {saved[key]!r}"
                    )
            state = load_checkpoint(checkpoint_path, model, optimizer)
            state.pop("config")
            scheduler.load_state_dict(state.pop("scheduler"))
            if state["epoch"] >= config.epochs:
                raise UserError(
                    f"--resume: the run in {out} has done {state['epoch']} epochs, so --epochs "
                    f"{config.epochs} leaves nothing to do; give more epochs to continue it"
                )
            [EpochRecord(**r) for r in state["history"]]  # a damaged history fails here
            if saved["epochs"] != config.epochs:
                reporter.note(
                    f"--epochs {config.epochs}: the run's {saved['epochs']} epochs extended"
                )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise UserError(
                f"{checkpoint_path}: damaged checkpoint record ({type(exc).__name__}: {exc}); "
                "start a new --out"
            ) from None
        reporter.note(f"resuming at epoch {state['epoch'] + 1}, batch {state['batch']}")
    train_model = dist.wrap(model)
    history = [EpochRecord(**r) for r in state["history"]]
    reporter.start(config, len(dataset), len(val_pairs), count_parameters(model))

    def write_checkpoint() -> None:
        if not dist.is_main:
            return
        record = {
            **state,
            "history": [asdict(r) for r in history],
            "config": asdict(config),
            "scheduler": scheduler.state_dict(),
            "version": __version__,
        }
        save_checkpoint(
            checkpoint_path, model, optimizer, json.loads(json.dumps(record, default=str))
        )

    best_path = out / "best.safetensors"
    last_path = out / "last.safetensors"
    stopped_early = False
    bad_steps = 0
    with _StopFlag() as stop:
        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch, skip=state["batch"] * per_rank_batch)
            reporter.epoch_start(epoch, config.epochs, steps_per_epoch - state["batch"])
            train_model.train()
            started = time.perf_counter()
            for batch in loader:
                low = batch["low"].to(device).contiguous(memory_format=torch.channels_last)
                high = batch["high"].to(device).contiguous(memory_format=torch.channels_last)
                context = batch["context"].to(device) if "context" in batch else None
                with torch.autocast(device.type, enabled=amp):
                    pred = spec.run(train_model, low, context)
                    loss = loss_fn(pred.float(), high)
                    aux = getattr(model, "auxiliary_loss", None)
                    if aux is not None:
                        loss = loss + aux(high)
                if not torch.isfinite(loss):
                    bad_steps += 1
                    reporter.note(f"non-finite loss at step {state['step']}: batch skipped")
                    if bad_steps >= config.max_bad_steps:
                        write_checkpoint()
                        raise UserError(
                            f"training diverged: {bad_steps} non-finite losses in a row at epoch "
                            f"{epoch + 1}; lower --lr (checkpoint kept at {checkpoint_path})"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    continue
                bad_steps = 0
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                if config.schedule == "cosine":
                    scheduler.step()
                value = dist.mean(loss.detach())
                state["loss_sum"] += value
                state["batch"] += 1
                state["step"] += 1
                reporter.batch_end(value)
                if stop.requested:
                    state["seconds"] += time.perf_counter() - started
                    write_checkpoint()
                    raise TrainingInterrupted(
                        f"interrupted at epoch {epoch + 1}, batch {state['batch']}: "
                        "checkpoint saved "
                        f"to {checkpoint_path}; continue with --resume"
                    )
            state["seconds"] += time.perf_counter() - started
            if state["batch"] == 0 and steps_per_epoch > 0:  # every batch skipped: no step
                write_checkpoint()  # the weights did not move: as finite as they were
                raise UserError(
                    f"training failed: every batch of epoch {epoch + 1} had non-finite losses, "
                    "so nothing was learned and no weights were written; lower --lr or check "
                    "the data"
                )
            _check_finite_weights(model, epoch + 1)
            record = EpochRecord(
                epoch=epoch + 1,
                train_loss=state["loss_sum"] / max(1, state["batch"]),
                lr=optimizer.param_groups[0]["lr"],
                seconds=state["seconds"],
            )
            metrics: dict[str, Any] = {}
            if (
                dist.is_main
                and val_pairs
                and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs)
            ):
                model.eval()
                report = evaluate_enhancer(
                    lambda image: enhance_array(model, image, spec, tile=config.tile),
                    val_pairs,
                )
                mean = report.mean()
                record.val_psnr, record.val_ssim, record.val_mae = mean.psnr, mean.ssim, mean.mae
                metrics = {
                    "val_psnr": round(mean.psnr, 3),
                    "val_ssim": round(mean.ssim, 4),
                    "val_mae": round(mean.mae, 4),
                    "val_images": len(val_pairs),
                    "epoch": epoch + 1,
                }
                if state["best_psnr"] is None or mean.psnr > state["best_psnr"]:
                    state["best_psnr"] = mean.psnr
                    state["bad_epochs"] = 0
                    record.best = True
                else:
                    state["bad_epochs"] += 1
            val_psnr = dist.broadcast_float(
                record.val_psnr if record.val_psnr is not None else float("nan")
            )
            if config.schedule == "plateau" and val_psnr == val_psnr:  # every rank, same value
                scheduler.step(val_psnr)
            history.append(record)
            state.update(epoch=epoch + 1, batch=0, loss_sum=0.0)
            if dist.is_main:
                info = _weights_info(config, spec, epoch + 1, state["seconds"], metrics)
                if record.best:
                    save_weights(best_path, model, info, overwrite=True)
                save_weights(last_path, model, info, overwrite=True)
                write_checkpoint()
                write_training_log(out, [asdict(r) for r in history])
            reporter.epoch_end(record)
            if (
                config.patience
                and dist.broadcast_float(float(state["bad_epochs"])) >= config.patience
            ):
                reporter.note(f"early stop: no val PSNR gain for {config.patience} validations")
                stopped_early = True
                break
    dist.barrier()
    dist.close()
    return TrainResult(
        history=history,
        best_path=best_path if best_path.exists() else None,
        last_path=last_path,
        stopped_early=stopped_early,
    )
