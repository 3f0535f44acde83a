"""What ``llenhance models`` lists: every architecture, its size, and its shipped weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenhance.archs import arch_names, count_parameters, create_model, get_arch
from llenhance.defaults import DEFAULT_MODEL
from llenhance.weights import read_info, shipped_path

__all__ = ["DEFAULT_MODEL", "ModelEntry", "list_models"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    parameters: int
    weights: str | None
    metrics: dict[str, Any]
    training: dict[str, Any]


def list_models() -> list[ModelEntry]:
    """One entry per registered architecture, with the metrics stored in its shipped weights."""
    entries = []
    for name in sorted(arch_names(), key=lambda n: (n != DEFAULT_MODEL, n)):
        spec = get_arch(name)
        path = shipped_path(name)
        info = read_info(path) if path.is_file() else None
        config = info.config if info else {}
        entries.append(
            ModelEntry(
                name=name,
                description=spec.description,
                parameters=count_parameters(create_model(name, **config)),
                weights=str(path) if info else None,
                metrics=info.metrics if info else {},
                training=info.training if info else {},
            )
        )
    return entries
