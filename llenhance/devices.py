"""Device choice and model placement: CUDA when asked or available, channels-last everywhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from llenhance.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one is a user error."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return device
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device {name}: expected auto, cpu, cuda or cuda:N")


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def release_freed_memory() -> bool:
    """Hand the memory freed so far back to the OS (glibc's malloc_trim, over every thread's
    arena). :func:`reuse_freed_memory` keeps freed blocks for the next tile; a decoded photo's
    buffer, freed once it is spooled, would otherwise stay resident (in the reading thread's
    arena, where the model never reuses it). Returns False where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@functools.cache
def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse instead of handing them back to the OS.

    Every tile allocates and frees the same activations; above glibc's mmap threshold each one
    is a fresh mapping whose pages fault in again, which cost a third of the CPU time of a 4K
    photo. Freed memory is reused, not added to. Returns False (and changes nothing) where the
    C library is not glibc or refuses the setting.
    """
    libc = _glibc()
    if libc is None:
        return False
    for threshold in (_KEEP_BYTES, 32 << 20):  # older glibc caps the mmap threshold at 32 MiB
        if libc.mallopt(_M_MMAP_THRESHOLD, threshold):
            return bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * threshold))
    return False


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in channels-last layout (faster convolutions on CPU);
    on CPU, also let the allocator reuse freed activations (:func:`reuse_freed_memory`)."""
    if device.type == "cpu":
        reuse_freed_memory()
    return model.to(device=device, memory_format=torch.channels_last)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that directly follows a convolution into that convolution.

    Inference only: the result computes the same function with one memory pass fewer per layer.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and bn.track_running_stats
                and not bn.training
            ):
                setattr(module, name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return model
