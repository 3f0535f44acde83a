"""Several processes under ``torchrun`` (or any launcher that sets RANK, WORLD_SIZE and
LOCAL_RANK): data-parallel training, and ``enhance``/``eval --data`` sharded by file. Gloo on
CPU, NCCL on CUDA, each process on ``cuda:LOCAL_RANK``.

Outside torchrun everything here is a no-op, so each command has one code path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as torch_dist
from torch import nn

from llenhance.data import EpochSampler
from llenhance.devices import resolve_device
from llenhance.evaluation import EvalReport
from llenhance.inference import BatchReport

T = TypeVar("T")


@dataclass
class DistributedContext:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_name: str = "auto") -> DistributedContext:
        """Join the process group torchrun describes in the environment, if any."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls(device=resolve_device(device_name))
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_name)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(device=device, rank=rank, world_size=world_size)

    def sampler(self, size: int, seed: int) -> EpochSampler:
        return EpochSampler(size, seed, rank=self.rank, world_size=self.world_size)

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel when distributed, else ``model``.

        On CUDA BatchNorm is synchronised across processes; PyTorch has no SyncBatchNorm on CPU,
        so there each process normalises over its own share of the batch (BatchNorm-free
        configs, e.g. unet-res with ``norm: none``, give results identical to one process).
        """
        if not self.enabled:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index])
        return nn.parallel.DistributedDataParallel(model)

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar over all ranks."""
        if self.enabled:
            value = value.clone()
            torch_dist.all_reduce(value, op=torch_dist.ReduceOp.SUM)
            value /= self.world_size
        return float(value)

    def broadcast_float(self, value: float) -> float:
        """Rank 0's value on every rank (decisions such as early stopping must agree)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        torch_dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share of ``items`` (every ``world_size``-th from ``rank``): over all
        ranks, each item exactly once. Every rank must list the same items in the same order."""
        return list(items[self.rank :: self.world_size])

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        if not self.enabled:
            return [value]
        values: list = [None] * self.world_size
        torch_dist.all_gather_object(values, value)
        return values

    def gather_batch(self, report: BatchReport) -> BatchReport:
        """One :class:`BatchReport` for the whole run, on every rank (the summary is rank 0's to
        print; every rank knows whether something failed)."""
        if not self.enabled:
            return report
        reports = self.gather(report)
        return BatchReport(
            done=[job for r in reports for job in r.done],
            skipped=[job for r in reports for job in r.skipped],
            failed=[failure for r in reports for failure in r.failed],
            seconds=max(r.seconds for r in reports),
            megapixels=sum(r.megapixels for r in reports),
        )

    def gather_eval(self, report: EvalReport) -> EvalReport:
        """One :class:`EvalReport` for the whole set, images in name order as one process
        scores them."""
        if not self.enabled:
            return report
        reports = self.gather(report)
        return EvalReport(
            results=sorted((r for rep in reports for r in rep.results), key=lambda r: r.name),
            problems=[p for rep in reports for p in rep.problems],
        )

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def close(self) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


@contextlib.contextmanager
def launched(device_name: str = "auto") -> Iterator[DistributedContext]:
    """The process group torchrun describes (if any) for the length of a command."""
    context = DistributedContext.from_env(device_name)
    try:
        yield context
    finally:
        context.close()
