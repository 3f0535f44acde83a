"""Resumable training state in one safetensors file: model and optimizer tensors, plus a JSON
record of everything else (epoch, position in the epoch, scheduler, history). No pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from llenhance.errors import UserError
from llenhance.io.guard import atomic_path

_STATE_KEY = "llenhance.train_state"


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, record: dict[str, Any]
) -> None:
    """Write model + optimizer tensors and ``record`` (JSON-able) atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {**record, "param_groups": opt_state["param_groups"]}
    with atomic_path(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={_STATE_KEY: json.dumps(meta)})


def _read(path: Path, with_tensors: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON record of a checkpoint and, if asked, its tensors; a user error if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[_STATE_KEY])
            keys = handle.keys() if with_tensors else []
            tensors = {key: handle.get_tensor(key) for key in keys}
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a usable training checkpoint ({exc})") from None
    return meta, tensors


def read_checkpoint_record(path: Path) -> dict[str, Any]:
    """The JSON record of a checkpoint (its run's config among it), without its tensors."""
    return _read(path, with_tensors=False)[0]


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model, optimizer and RNG from ``path``; return the JSON record."""
    meta, tensors = _read(path, with_tensors=True)
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: checkpoint does not match the model ({first})") from None
    opt_state: dict[str, Any] = {"state": {}, "param_groups": meta.pop("param_groups")}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(opt_state)
    torch.set_rng_state(tensors["rng.torch"])
    return meta
