"""Every architecture registers itself here on import; see :mod:`llenhance.archs.registry`."""

from llenhance.archs import (
    cgnet,  # noqa: F401
    dncnn,  # noqa: F401
    histnet,  # noqa: F401
    llid,  # noqa: F401
    mirnet,  # noqa: F401
    se_resnet,  # noqa: F401
    unet_res,  # noqa: F401
)
from llenhance.archs.context import global_context
from llenhance.archs.registry import (
    ArchSpec,
    arch_names,
    count_parameters,
    create_model,
    get_arch,
    model_names,
    register_arch,
    register_variant,
    resolve_model,
)

__all__ = [
    "ArchSpec",
    "arch_names",
    "count_parameters",
    "create_model",
    "get_arch",
    "global_context",
    "model_names",
    "register_arch",
    "register_variant",
    "resolve_model",
]
