"""Architecture registry: a model class per CLI name, with a descriptor the tiler and trainer read.

Modelled on timm's ``register_model``/``create_model`` and spandrel's size requirements: a model
is built from its name and a config dict, and the descriptor says what inputs it can take. The
registered class's ``__init__`` keyword defaults are the default config, so there is one place to
change a default and no builder function repeating the constructor.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch
from torch import nn

from llenhance.errors import UserError


@dataclass(frozen=True)
class ArchSpec:
    """What the rest of llenhance needs to know about an architecture, besides its weights."""

    name: str
    builder: Callable[..., nn.Module]
    """The registered model class (anything called with the config as keywords)."""
    description: str
    multiple: int = 1
    """Input height and width must be a multiple of this (the tiler pads, then crops back)."""
    receptive_field: int = 64
    """Pixels of context each output pixel depends on; the tile overlap should cover half of it."""
    overlap: int | None = None
    """Tile overlap found necessary for tiled output to match untiled within 1/255 with the
    shipped weights (``benchmarks.tiling``), where half the receptive field is not enough."""
    tile: int | None = None
    """Default tile where llenhance's usual one would hold too much memory (measured peak RSS
    with ``benchmarks.speed``); None takes the usual one."""
    tileable: bool = True
    """False when the output depends on the whole image in a way tiles cannot reproduce."""
    context_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    """When set, forward(x, context) wants ``context_fn`` of the whole image (N, 3, H, W), so the
    tiles of one image share one global estimate (exposure, histogram) and agree with untiled."""
    defaults: dict[str, Any] = field(default_factory=dict)
    legacy_config: dict[str, Any] = field(default_factory=dict)
    """Values implied by weights files written before a config key existed (a later default may
    differ): a file without the key gets this value, not today's default."""
    size_fn: Callable[[dict[str, Any]], tuple[int, int]] | None = None
    """Computes (``multiple``, ``receptive_field``) from a config where they depend on it (e.g. a
    U-Net's depth)."""

    def build(self, **config: Any) -> nn.Module:
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise UserError(f"unknown config key(s) for {self.name}: {', '.join(unknown)}")
        return self.builder(**{**self.defaults, **config})

    def stored_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config a weights file meant, for a file that may predate some keys."""
        return {**self.legacy_config, **config}

    def full_config(self, **config: Any) -> dict[str, Any]:
        return {**self.defaults, **config}

    def for_config(self, config: dict[str, Any]) -> ArchSpec:
        """This spec with size requirements of the given config rather than the default one."""
        if self.size_fn is None:
            return self
        multiple, receptive_field = self.size_fn(self.full_config(**config))
        return replace(self, multiple=multiple, receptive_field=receptive_field)

    def run(self, model: nn.Module, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Call ``model`` on a batch, passing the whole-image context where the arch takes one."""
        return model(x, context) if self.context_fn is not None else model(x)


_REGISTRY: dict[str, ArchSpec] = {}


@dataclass(frozen=True)
class ModelVariant:
    """A named config of an architecture (timm's ``resnet50`` beside ``resnet18``): a model of its
    own to users, with its own shipped weights, built by its architecture."""

    name: str
    arch: str
    config: dict[str, Any]
    description: str


_VARIANTS: dict[str, ModelVariant] = {}

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])


def register_arch(
    name: str,
    *,
    description: str,
    multiple: int = 1,
    receptive_field: int = 64,
    overlap: int | None = None,
    tile: int | None = None,
    tileable: bool = True,
    context_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    size_fn: Callable[[dict[str, Any]], tuple[int, int]] | None = None,
    legacy_config: dict[str, Any] | None = None,
) -> Callable[[ModelClass], ModelClass]:
    """Register a model class whose ``__init__`` keyword defaults are the default config.

    Every constructor parameter is a config key, so each needs a default (a weights file stores
    the full config, and ``create_model(name)`` must build the default model).
    """

    def decorate(cls: ModelClass) -> ModelClass:
        params = inspect.signature(cls).parameters
        missing = [key for key, param in params.items() if param.default is param.empty]
        if missing:
            raise TypeError(f"{cls.__name__}: config parameter(s) without default: {missing}")
        defaults = {key: param.default for key, param in params.items()}
        _REGISTRY[name] = ArchSpec(
            name=name,
            builder=cls,
            description=description,
            multiple=multiple,
            receptive_field=receptive_field,
            overlap=overlap,
            tile=tile,
            tileable=tileable,
            context_fn=context_fn,
            size_fn=size_fn,
            legacy_config=dict(legacy_config or {}),
            defaults=defaults,
        )
        if size_fn is not None:
            _REGISTRY[name] = _REGISTRY[name].for_config({})
        return cls

    return decorate


def register_variant(name: str, arch: str, *, description: str, **config: Any) -> None:
    """Register ``name`` as architecture ``arch`` with ``config`` over its defaults."""
    spec = _REGISTRY[arch]
    unknown = sorted(set(config) - set(spec.defaults))
    if unknown or name in _REGISTRY or name in _VARIANTS:
        raise TypeError(f"variant {name}: name taken or unknown config key(s) {unknown}")
    _VARIANTS[name] = ModelVariant(name, arch, dict(config), description)


def arch_names() -> list[str]:
    """Registered architecture names, in registration order."""
    return list(_REGISTRY)


def model_names() -> list[str]:
    """Every name ``--model`` takes: the architectures, then their named variants."""
    return [*_REGISTRY, *_VARIANTS]


def _unknown(name: str, known: list[str]) -> UserError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return UserError(f"unknown model '{name}'{hint} (known: {', '.join(known)})")


def get_arch(name: str) -> ArchSpec:
    """The spec for ``name``; an unknown name is a user error that suggests the closest one."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown(name, list(_REGISTRY)) from None


def resolve_model(name: str) -> tuple[ArchSpec, dict[str, Any], str]:
    """(architecture spec, config over its defaults, description) of a model name: an
    architecture (its default config) or a variant; unknown names as in :func:`get_arch`."""
    if name in _VARIANTS:
        variant = _VARIANTS[name]
        return _REGISTRY[variant.arch], dict(variant.config), variant.description
    if name in _REGISTRY:
        return _REGISTRY[name], {}, _REGISTRY[name].description
    raise _unknown(name, model_names())


def create_model(name: str, **config: Any) -> nn.Module:
    """Build a freshly initialised model of architecture ``name``."""
    return get_arch(name).build(**config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
