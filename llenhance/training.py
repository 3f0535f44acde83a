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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from llenhance import __version__
from llenhance.archs import count_parameters, get_arch, resolve_model
from llenhance.checkpoint import load_checkpoint, read_checkpoint_record, save_checkpoint
from llenhance.curves import write_training_log
from llenhance.data import build_datasets
from llenhance.devices import place_model
from llenhance.distributed import DistributedContext
from llenhance.errors import UserError
from llenhance.evaluation import evaluate_enhancer
from llenhance.losses import build_loss
from llenhance.tiling import enhance_array
from llenhance.train_config import TrainConfig
from llenhance.weights import WeightsInfo, load_state, read_info, resolve_weights, save_weights

CHECKPOINT_NAME = "checkpoint.safetensors"


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
        "val": config.val
        or (f"{config.val_split:g} of data, by scene" if config.val_split else None),
        "synthesized": config.synthesize,
        "photos": config.photos,
        "unpaired": config.unpaired,
        "teacher": config.teacher,
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
                "darken",
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


RUN_FILES = ("best.safetensors", "last.safetensors", "metrics.csv", "curves.png")
_RESUME_KEYS = ("model", "model_config", "batch_size", "patch", "seed", "data")


class Trainer:
    """One training run: :meth:`step` on a batch, :meth:`validate`, :meth:`checkpoint`, and
    :meth:`run` for the whole loop; a resumed run continues bit-exactly where it stopped.

    Under ``torchrun`` every rank steps on its shard; rank 0 validates and writes files.
    """

    def __init__(
        self, config: TrainConfig, reporter: TrainReporter | None = None, resume: bool = False
    ) -> None:
        spec, variant_config, _ = resolve_model(config.model)  # a variant trains as its arch
        config = replace(
            config, model=spec.name, model_config={**variant_config, **config.model_config}
        )
        self.config = config
        self.dist = DistributedContext.from_env(config.device)
        self.reporter = reporter if reporter is not None and self.dist.is_main else TrainReporter()
        self.spec = spec.for_config(config.model_config)
        self.out = Path(config.out)
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        self.best_path = self.out / "best.safetensors"
        self.last_path = self.out / "last.safetensors"
        self._prepare_out(resume)
        self.device = self.dist.device
        torch.manual_seed(config.seed)

        self.loss_fn = build_loss(config.loss)
        self.model = place_model(self.spec.build(**config.model_config), self.device)
        self.dataset, self.val_pairs = build_datasets(config, self.spec)
        if config.init and not resume:
            init_from(self.model, config.init, self.spec.name, config.model_config)
        fit = getattr(self.model, "fit_preprocessor", None)
        if fit is not None and not resume and not config.init:
            fit(*self.dataset.float_pairs())
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        world = self.dist.world_size
        self.sampler = self.dist.sampler(len(self.dataset), config.seed)
        self.per_rank_batch = config.batch_size // world
        if self.per_rank_batch < 1 or config.batch_size % world:
            raise UserError(
                f"--batch-size {config.batch_size} must be a multiple of {world} processes"
            )
        self.loader = DataLoader(
            self.dataset,
            batch_size=self.per_rank_batch,
            sampler=self.sampler,
            num_workers=config.workers,
            drop_last=True,
        )
        self.steps_per_epoch = len(self.dataset) // world // self.per_rank_batch
        self.scheduler = _scheduler(self.optimizer, config, self.steps_per_epoch * config.epochs)
        self.amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.state: dict[str, Any] = {
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
            self._restore()
        self.train_model = self.dist.wrap(self.model)
        self.history = [EpochRecord(**r) for r in self.state["history"]]
        self.bad_steps = 0

    def _prepare_out(self, resume: bool) -> None:
        """Refuse to start over an earlier run, or to resume nothing; make ``out``."""
        if not self.dist.is_main:
            return
        out = self.out
        if not resume and self.checkpoint_path.exists():
            raise UserError(
                f"{out} already holds a training run: pass --resume, or choose another --out"
            )
        if resume and not self.checkpoint_path.exists():
            raise UserError(f"--resume: no checkpoint at {self.checkpoint_path}")
        if not resume:  # a new run never replaces files it did not write
            for name in RUN_FILES:
                if (out / name).exists():
                    raise UserError(f"{out / name}: already exists; choose another --out")
        out.mkdir(parents=True, exist_ok=True)

    def _restore(self) -> None:
        """Load the checkpoint, after checking it belongs to this run."""
        config, path = self.config, self.checkpoint_path
        try:
            saved = read_checkpoint_record(path)["config"]
            saved["model_config"] = self.spec.full_config(**saved["model_config"])
            for key in _RESUME_KEYS:
                current = getattr(config, key)
                if key == "model_config":
                    current = self.spec.full_config(**current)
                if key == "data":  # the same folder, however it is spelled
                    same = Path(saved[key]).resolve() == Path(current).resolve()
                else:
                    same = saved[key] == current
                if not same:
                    raise UserError(
                        f"--resume: --{key.replace('_', '-')} {current!r} "
                        f"differs from the run's {saved[key]!r}"
                    )
            state = load_checkpoint(path, self.model, self.optimizer)
            state.pop("config")
            self.scheduler.load_state_dict(state.pop("scheduler"))
            if state["epoch"] >= config.epochs:
                raise UserError(
                    f"--resume: the run in {self.out} has done {state['epoch']} epochs, so "
                    f"--epochs {config.epochs} leaves nothing to do; give more epochs to "
                    "continue it"
                )
            [EpochRecord(**r) for r in state["history"]]  # a damaged history fails here
            if saved["epochs"] != config.epochs:
                self.reporter.note(
                    f"--epochs {config.epochs}: the run's {saved['epochs']} epochs changed; "
                    "the learning-rate schedule follows the new length"
                )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise UserError(
                f"{path}: damaged checkpoint record ({type(exc).__name__}: {exc}); "
                "start a new --out"
            ) from None
        self.state = state
        self.reporter.note(f"resuming at epoch {state['epoch'] + 1}, batch {state['batch']}")

    def checkpoint(self) -> None:
        """Save everything a resume needs (rank 0)."""
        if not self.dist.is_main:
            return
        record = {
            **self.state,
            "history": [asdict(r) for r in self.history],
            "config": asdict(self.config),
            "scheduler": self.scheduler.state_dict(),
            "version": __version__,
        }
        save_checkpoint(
            self.checkpoint_path,
            self.model,
            self.optimizer,
            json.loads(json.dumps(record, default=str)),
        )

    def step(self, batch: dict[str, torch.Tensor]) -> float | None:
        """One optimiser step; the batch's mean loss over ranks, or None when the loss was not
        finite and the batch was skipped (too many in a row end the run as diverged)."""
        device, state = self.device, self.state
        low = batch["low"].to(device).contiguous(memory_format=torch.channels_last)
        high = batch["high"].to(device).contiguous(memory_format=torch.channels_last)
        context = batch["context"].to(device) if "context" in batch else None
        with torch.autocast(device.type, enabled=self.amp):
            pred = self.spec.run(self.train_model, low, context)
            loss = self.loss_fn(pred.float(), high)
            aux = getattr(self.model, "auxiliary_loss", None)
            if aux is not None:
                loss = loss + aux(high)
        if not torch.isfinite(loss):
            self.bad_steps += 1
            self.reporter.note(f"non-finite loss at step {state['step']}: batch skipped")
            if self.bad_steps >= self.config.max_bad_steps:
                self.checkpoint()
                raise UserError(
                    f"training diverged: {self.bad_steps} non-finite losses in a row at epoch "
                    f"{state['epoch'] + 1}; lower --lr (checkpoint kept at "
                    f"{self.checkpoint_path})"
                )
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.bad_steps = 0
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.config.schedule == "cosine":
            self.scheduler.step()
        value = self.dist.mean(loss.detach())
        state["loss_sum"] += value
        state["batch"] += 1
        state["step"] += 1
        return value

    def validate(self, record: EpochRecord) -> dict[str, Any]:
        """Score the model on the validation pairs into ``record``; the metrics for the weights'
        metadata (empty where this epoch does not validate or this rank is not rank 0)."""
        config, epoch = self.config, record.epoch
        due = epoch % config.val_every == 0 or epoch == config.epochs
        if not (self.dist.is_main and self.val_pairs and due):
            return {}
        self.model.eval()
        report = evaluate_enhancer(
            lambda image: enhance_array(self.model, image, self.spec, tile=config.tile),
            self.val_pairs,
        )
        mean = report.mean()
        record.val_psnr, record.val_ssim, record.val_mae = mean.psnr, mean.ssim, mean.mae
        state = self.state
        if state["best_psnr"] is None or mean.psnr > state["best_psnr"]:
            state["best_psnr"] = mean.psnr
            state["bad_epochs"] = 0
            record.best = True
        else:
            state["bad_epochs"] += 1
        return {
            "val_psnr": round(mean.psnr, 3),
            "val_ssim": round(mean.ssim, 4),
            "val_mae": round(mean.mae, 4),
            "val_images": len(self.val_pairs),
            "epoch": epoch,
        }

    def _train_epoch(self, stop: _StopFlag) -> None:
        state = self.state
        epoch = state["epoch"]
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch, skip=state["batch"] * self.per_rank_batch)
        self.reporter.epoch_start(epoch, self.config.epochs, self.steps_per_epoch - state["batch"])
        self.train_model.train()
        started = time.perf_counter()
        for batch in self.loader:
            value = self.step(batch)
            if value is None:
                continue
            self.reporter.batch_end(value)
            if stop.requested:
                state["seconds"] += time.perf_counter() - started
                self.checkpoint()
                raise TrainingInterrupted(
                    f"interrupted at epoch {epoch + 1}, batch {state['batch']}: "
                    f"checkpoint saved to {self.checkpoint_path}; continue with --resume"
                )
        state["seconds"] += time.perf_counter() - started
        if state["batch"] == 0 and self.steps_per_epoch > 0:  # every batch skipped: no step
            self.checkpoint()  # the weights did not move: as finite as they were
            raise UserError(
                f"training failed: every batch of epoch {epoch + 1} had non-finite losses, "
                "so nothing was learned and no weights were written; lower --lr or check "
                "the data"
            )
        _check_finite_weights(self.model, epoch + 1)

    def _end_epoch(self) -> EpochRecord:
        """Validate, step a plateau schedule, write weights, checkpoint and log."""
        state, config = self.state, self.config
        record = EpochRecord(
            epoch=state["epoch"] + 1,
            train_loss=state["loss_sum"] / max(1, state["batch"]),
            lr=self.optimizer.param_groups[0]["lr"],
            seconds=state["seconds"],
        )
        metrics = self.validate(record)
        val_psnr = self.dist.broadcast_float(
            record.val_psnr if record.val_psnr is not None else float("nan")
        )
        if config.schedule == "plateau" and val_psnr == val_psnr:  # every rank, same value
            self.scheduler.step(val_psnr)
        self.history.append(record)
        state.update(epoch=record.epoch, batch=0, loss_sum=0.0)
        if self.dist.is_main:
            info = _weights_info(config, self.spec, record.epoch, state["seconds"], metrics)
            if record.best:
                save_weights(self.best_path, self.model, info, overwrite=True)
            save_weights(self.last_path, self.model, info, overwrite=True)
            self.checkpoint()
            write_training_log(self.out, [asdict(r) for r in self.history])
        return record

    def run(self) -> TrainResult:
        """Train until ``epochs`` (or ``patience`` validations without gain)."""
        config = self.config
        self.reporter.start(
            config, len(self.dataset), len(self.val_pairs), count_parameters(self.model)
        )
        stopped_early = False
        with _StopFlag() as stop:
            while self.state["epoch"] < config.epochs:
                self._train_epoch(stop)
                self.reporter.epoch_end(self._end_epoch())
                bad = self.dist.broadcast_float(float(self.state["bad_epochs"]))
                if config.patience and bad >= config.patience:
                    self.reporter.note(
                        f"early stop: no val PSNR gain for {config.patience} validations"
                    )
                    stopped_early = True
                    break
        self.dist.barrier()
        self.dist.close()
        return TrainResult(
            history=self.history,
            best_path=self.best_path if self.best_path.exists() else None,
            last_path=self.last_path,
            stopped_early=stopped_early,
        )


def train(
    config: TrainConfig, reporter: TrainReporter | None = None, resume: bool = False
) -> TrainResult:
    """Train ``config.model`` on ``config.data``; see :class:`TrainConfig` for the knobs."""
    return Trainer(config, reporter, resume).run()
