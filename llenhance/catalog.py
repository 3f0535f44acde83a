"""What ``llenhance models`` lists: every architecture, its size, and its shipped weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenhance.archs import arch_names, count_parameters, create_model, get_arch
from llenhance.defaults import DEFAULT_MODEL
from llenhance.errors import UserError
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
    problem: str | None = None
    """Why the shipped weights could not be read (they are then listed as absent)."""


def list_models() -> list[ModelEntry]:
    """One entry per registered architecture, with the metrics stored in its shipped weights."""
    entries = []
    for name in sorted(arch_names(), key=lambda n: (n != DEFAULT_MODEL, n)):
        spec = get_arch(name)
        path = shipped_path(name)
        info, problem = None, None
        try:  # one damaged file is listed as such, and the other models still are
            info = read_info(path) if path.is_file() else None
            parameters = count_parameters(create_model(name, **(info.config if info else {})))
        except (UserError, TypeError, ValueError, RuntimeError) as exc:
            info, problem = None, str(exc)
            parameters = count_parameters(create_model(name))
        entries.append(
            ModelEntry(
                name=name,
                description=spec.description,
                parameters=parameters,
                weights=str(path) if info else None,
                metrics=info.metrics if info else {},
                training=info.training if info else {},
                problem=problem,
            )
        )
    return entries
