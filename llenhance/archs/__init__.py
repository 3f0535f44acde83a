"""Every architecture registers itself here on import; see :mod:`llenhance.archs.registry`."""

from llenhance.archs import unet_res  # noqa: F401
from llenhance.archs.context import global_context
from llenhance.archs.registry import (
    ArchSpec,
    arch_names,
    count_parameters,
    create_model,
    get_arch,
    register_arch,
)

__all__ = [
    "ArchSpec",
    "arch_names",
    "count_parameters",
    "create_model",
    "get_arch",
    "global_context",
    "register_arch",
]
