"""What ``llenhance models`` lists: every architecture, its size, and its shipped weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenhance.archs import count_parameters, model_names, resolve_model
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
    """One entry per model name (architectures and their variants), with the metrics stored in
    its shipped weights."""
    entries = []
    for name in sorted(model_names(), key=lambda n: (n != DEFAULT_MODEL, n)):
        spec, config, description = resolve_model(name)
        path = shipped_path(name)
        info, problem = None, None
        try:  # one damaged file is listed as such, and the other models still are
            info = read_info(path) if path.is_file() else None
            parameters = count_parameters(spec.build(**(info.config if info else config)))
        except (UserError, TypeError, ValueError, RuntimeError) as exc:
            info, problem = None, str(exc)
            parameters = count_parameters(spec.build(**config))
        entries.append(
            ModelEntry(
                name=name,
                description=description,
                parameters=parameters,
                weights=str(path) if info else None,
                metrics=info.metrics if info else {},
                training=info.training if info else {},
                problem=problem,
            )
        )
    return entries
