"""Device and tile choices, including the CUDA paths that this CPU machine can only reason about."""

import pytest
import torch

from llenhance.archs import get_arch
from llenhance.devices import resolve_device
from llenhance.errors import UserError
from llenhance.inference import resolve_tile
from llenhance.tiling import DEFAULT_TILE, suggest_tile


def test_auto_device_and_cuda_requests():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(UserError, match="expected auto, cpu, cuda"):
        resolve_device("tpu")


def test_tile_option_values(monkeypatch):
    spec = get_arch("unet-res")
    cpu = torch.device("cpu")
    assert resolve_tile("auto", cpu, spec) == DEFAULT_TILE
    assert resolve_tile("0", cpu, spec) == 0
    assert resolve_tile(384, cpu, spec) == 384
    with pytest.raises(UserError, match="expected a number of pixels"):
        resolve_tile("big", cpu, spec)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (8 * 2**30, 16 * 2**30))
    tile = resolve_tile("auto", torch.device("cuda", 0), spec)
    assert tile == suggest_tile(4 * 2**30, spec)
    assert tile % spec.multiple == 0 and tile > DEFAULT_TILE


def test_suggest_tile_is_on_the_grid_and_has_a_floor():
    spec = get_arch("unet-res")
    assert suggest_tile(0, spec) == 2 * spec.multiple
    assert suggest_tile(2048 * 1000 * 1000, spec) % spec.multiple == 0


def test_fused_batchnorm_computes_the_same_function():
    from llenhance.archs import create_model
    from llenhance.devices import fuse_batchnorm

    torch.manual_seed(0)
    model = create_model("unet-res", width=4, depth=2)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 32, 32))  # non-trivial running statistics
    model.eval()
    x = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        before = model(x)
        fused = fuse_batchnorm(model)
        after = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


def test_cpu_allocator_keeps_freed_blocks_on_glibc():
    """On glibc the mmap threshold is raised (activations reused, not re-faulted); elsewhere
    nothing is changed and the function says so."""
    import platform

    from llenhance.devices import reuse_freed_memory

    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is on_glibc
