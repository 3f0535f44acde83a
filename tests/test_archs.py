"""Contract tests for every registered architecture: shapes and range, trainability, locality
(tiled == untiled), state-dict round trips, plus the HistNet preprocessor and LLID extras."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llenhance.archs import arch_names, count_parameters, create_model, get_arch
from llenhance.archs.blocks import local_mean
from llenhance.archs.llid import LocalSubspaceProjection, rgb_to_ycbcr, ycbcr_to_rgb
from llenhance.errors import UserError

torch.set_num_threads(1)

NAMES = arch_names()
MINE = ("dncnn", "cgnet", "se-resnet", "mirnet", "llid", "histnet")

# Small configs for the quick tests.
SMALL = {
    "dncnn": {"depth": 5, "channels": 8},
    "se-resnet": {"channels": 8, "blocks": 2, "pool": 5},
    "cgnet": {"channels1": 8, "channels2": 16, "channels3": 16, "blocks2": 2, "blocks3": 2},
    "mirnet": {"channels": 8, "blocks": 1, "pool": 3},
    "llid": {
        "gray_channels": 8,
        "gray_depth": 2,
        "basis": 3,
        "window": 5,
        "unet_width": 4,
        "a_pool": 3,
        "sft_channels": 8,
        "sft_blocks": 1,
    },
    "histnet": {"channels": 8, "modules": 2},
    "unet-res": {"width": 4, "depth": 2},
}
# Default structure (depth, blocks, pools, dilations: everything the receptive field depends
# on) with few channels, so the declared receptive_field of the default config is what is tested.
NARROW = {
    "dncnn": {"channels": 4},
    "se-resnet": {"channels": 4},
    "cgnet": {"channels1": 4, "channels2": 8, "channels3": 8},
    "mirnet": {"channels": 4},
    "llid": {"gray_channels": 4, "unet_width": 2, "sft_channels": 4},
    "histnet": {"channels": 4},
    "unet-res": {"width": 2},
}


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _build(name: str, configs: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **configs.get(name, {}))


def _run(name: str, model: torch.nn.Module, x: torch.Tensor, context=None) -> torch.Tensor:
    spec = get_arch(name)
    if spec.context_fn is None:
        return model(x)
    return model(x, spec.context_fn(x) if context is None else context)


@pytest.mark.parametrize("name", NAMES)
def test_padded_odd_input_keeps_shape_and_range(name: str) -> None:
    multiple = get_arch(name).multiple
    torch.manual_seed(1)
    x = torch.rand(2, 3, 17, 23)
    h, w = _round_up(17, multiple), _round_up(23, multiple)
    x = F.pad(x, (0, w - 23, 0, h - 17), mode="replicate")
    model = _build(name, SMALL)
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            y = _run(name, model, x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()
        assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_unpadded_odd_input_does_not_crash(name: str) -> None:
    if get_arch(name).multiple > 1 and name not in MINE:
        pytest.skip("only required of multiple=1 architectures")
    model = _build(name, SMALL).eval()
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        y = _run(name, model, x)
    assert y.shape == x.shape
    assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_training_steps_reduce_loss_with_gradients_everywhere(name: str) -> None:
    multiple = get_arch(name).multiple
    size = _round_up(24, multiple)
    model = _build(name, SMALL).train()
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, size, size, generator=gen)
    target = torch.rand(2, 3, size, size, generator=gen)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert params
    touched = {n: False for n in params}
    optimizer = torch.optim.AdamW(params.values(), lr=3e-3)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = F.l1_loss(_run(name, model, x), target)
        loss.backward()
        for n, p in params.items():
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
            touched[n] = touched[n] or bool((p.grad != 0).any())
        optimizer.step()
        losses.append(loss.item())
    # zero-initialised layers (e.g. FiLM heads) legitimately pass no gradient on the first step
    assert all(touched.values()), [n for n, t in touched.items() if not t]
    assert losses[-1] < losses[0] - 1e-4, losses


def _calibrate_batch_norm(name: str, model: torch.nn.Module, x: torch.Tensor, context) -> None:
    """Set BN running statistics from ``x`` and switch to eval mode.

    With untrained statistics (mean 0, variance 1) and PyTorch's default init, the signal of a
    deep plain net fades to ~1e-7 in eval mode, which would make locality checks vacuous.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        _run(name, model, x, context)
    model.eval()


# Every default config, plus the full-resolution U-Net (no pixel unshuffle) of older weights.
LOCALITY_CASES = [(name, NARROW[name]) for name in NAMES] + [
    ("unet-res", {"width": 2, "depth": 4, "unshuffle": 1})
]


@pytest.mark.parametrize(("name", "config"), LOCALITY_CASES)
def test_crop_of_output_equals_output_of_crop(name: str, config: dict) -> None:
    """The model is local: with margin >= receptive_field / 2, a crop's output is exact."""
    spec = get_arch(name).for_config(config)
    multiple = spec.multiple
    margin = _round_up((spec.receptive_field + 1) // 2, multiple)
    central = _round_up(16, multiple)
    crop = central + 2 * margin
    offset = _round_up(12, multiple)  # the crop has real pixels beyond each of its edges
    size = crop + 2 * offset
    model = _build(name, {name: config}, seed=3)
    gen = torch.Generator().manual_seed(4)
    full = torch.rand(1, 3, size, size, generator=gen)
    context = spec.context_fn(full) if spec.context_fn is not None else None
    _calibrate_batch_norm(name, model, full, context)
    top, left = offset, offset + multiple  # a different offset per axis
    part = full[:, :, top : top + crop, left : left + crop]
    with torch.no_grad():
        out_full = _run(name, model, full, context)
        out_part = _run(name, model, part, context)
    same_place = out_full[:, :, top : top + crop, left : left + crop]
    inner = (slice(None), slice(None), slice(margin, margin + central))
    inner = (*inner, slice(margin, margin + central))
    assert same_place[inner].std() > 1e-4, "degenerate output: the comparison would prove nothing"
    assert (out_part[inner] - same_place[inner]).abs().max().item() < 1e-4
    # while at the crop's edge, where it lacks context, the outputs do differ
    assert (out_part[:, :, :2] - same_place[:, :, :2]).abs().max().item() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name: str) -> None:
    size = _round_up(16, get_arch(name).multiple)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    source = _build(name, SMALL, seed=6).train()
    with torch.no_grad():
        _run(name, source, x)  # moves the BN running statistics off their defaults
    source.eval()
    copy = _build(name, SMALL, seed=7).eval()
    with torch.no_grad():
        expected = _run(name, source, x)
        assert not torch.equal(_run(name, copy, x), expected)
        copy.load_state_dict(source.state_dict())
        assert torch.equal(_run(name, copy, x), expected)


@pytest.mark.parametrize("name", MINE)
def test_default_config_size(name: str) -> None:
    spec = get_arch(name)
    assert all(isinstance(v, (int, float, bool, str)) for v in spec.defaults.values())
    n = count_parameters(create_model(name))
    assert 50_000 < n < 1_500_000, n


@pytest.mark.parametrize("name", NAMES)
def test_registered_class_is_the_builder(name: str) -> None:
    """The class's keyword defaults are the config, and building it directly validates the same."""
    spec = get_arch(name)
    assert isinstance(spec.builder, type)
    model = create_model(name, **SMALL[name])
    assert type(model) is spec.builder
    assert set(inspect.signature(spec.builder).parameters) == set(spec.defaults)


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("cgnet", {"pool": 2}, "pool must be a positive odd number of pixels, got 2"),
        ("mirnet", {"pool": 4}, "pool must be a positive odd number of pixels, got 4"),
        ("se-resnet", {"pool": 0}, "pool must be a positive odd number of pixels, got 0"),
        ("llid", {"window": 2}, "window must be a positive odd number of pixels, got 2"),
        ("llid", {"a_pool": 4}, "a_pool must be a positive odd number of pixels, got 4"),
    ],
)
def test_pool_widths_are_checked_by_the_class(name: str, config: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        get_arch(name).builder(**config)
    with pytest.raises(UserError, match=message):
        create_model(name, **config)


def test_local_mean_matches_avg_pool_without_padding_counts() -> None:
    x = torch.rand(2, 3, 13, 29)
    for k in (1, 3, 5, 15, 31):
        ref = x if k == 1 else F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)
        assert torch.allclose(local_mean(x, k), ref, atol=1e-6)


def _beta_images(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    images = []
    for _ in range(n):
        a, b = rng.uniform(0.5, 4.0, size=2)
        tint = rng.uniform(0.7, 1.0, size=3).astype(np.float32)
        images.append((rng.beta(a, b, size=(40, 48, 3)) * tint).astype(np.float32))
    return images


def test_histnet_preprocessor_fit_maps_low_percentiles_to_high() -> None:
    from llenhance.archs.histnet import histogram_percentiles

    rng = np.random.default_rng(0)
    highs = _beta_images(rng, 16)
    lows = [0.2 * h for h in highs]
    model = create_model("histnet", **SMALL["histnet"]).eval()
    new_high = torch.from_numpy(_beta_images(rng, 1)[0]).permute(2, 0, 1)[None]
    new_low = 0.2 * new_high
    with torch.no_grad():
        before = model.preprocess(new_low)
    assert (before - new_low).abs().max() < 1e-5  # unfitted: the identity
    model.fit_preprocessor(lows, highs)
    with torch.no_grad():
        after = model.preprocess(new_low)
    target = histogram_percentiles(new_high)
    assert (histogram_percentiles(before) - target).abs().mean() > 0.1
    assert (histogram_percentiles(after) - target).abs().mean() < 0.05
    state = model.state_dict()
    assert {"hist_weight", "hist_bias"} <= set(state)
    fresh = create_model("histnet", **SMALL["histnet"]).eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(fresh.preprocess(new_low), after)


def test_histnet_mapping_is_monotone_and_differentiable() -> None:
    model = create_model("histnet", **SMALL["histnet"])
    rng = np.random.default_rng(1)
    highs = _beta_images(rng, 6)
    model.fit_preprocessor([0.3 * h for h in highs], highs)
    x = torch.rand(1, 3, 20, 20)
    ramp = torch.linspace(0, 1, 400).view(1, 1, 20, 20).expand(1, 3, 20, 20).clone()
    ramp.requires_grad_(True)
    mapped = model.preprocess(ramp, get_arch("histnet").context_fn(x))
    assert (mapped.flatten(2).diff(dim=2) >= -1e-6).all()
    mapped.sum().backward()
    assert torch.isfinite(ramp.grad).all() and (ramp.grad > 0).any()


def test_llid_exposes_gray_prediction_for_auxiliary_loss() -> None:
    model = create_model("llid", **SMALL["llid"]).train()
    x = torch.rand(2, 3, 20, 28)
    assert model(x).shape == x.shape
    gray = model.last_gray
    assert gray is not None and gray.shape == (2, 1, 20, 28)
    assert gray.min() >= 0 and gray.max() <= 1
    high = torch.rand(2, 3, 20, 28)
    aux = model.auxiliary_loss(high)
    expected = 0.5 * F.l1_loss(gray, rgb_to_ycbcr(high)[:, :1])
    assert aux.shape == () and torch.allclose(aux, expected)
    aux.backward()
    assert model.gray_head.weight.grad is not None
    assert model.gray_head.weight.grad.abs().sum() > 0
    assert model.refine_out.weight.grad is None  # the auxiliary loss trains the gray branch only


def test_ycbcr_round_trip() -> None:
    x = torch.rand(2, 3, 5, 7)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)
    gray = torch.full((1, 3, 2, 2), 0.4)
    assert torch.allclose(rgb_to_ycbcr(gray)[:, 1:], torch.full((1, 2, 2, 2), 0.5), atol=1e-6)


def test_subspace_projection_keeps_features_inside_the_subspace() -> None:
    torch.manual_seed(8)
    block = LocalSubspaceProjection(channels=6, basis=3, window=5, ridge=0.0)
    f = torch.randn(1, 6, 16, 16)
    basis = block.basis(f).detach()
    inside = torch.einsum("ck,nkhw->nchw", torch.randn(6, 3), basis)
    block.basis = _Const(basis)  # type: ignore[assignment]
    assert torch.allclose(block(inside), inside, atol=1e-3)
    outside = torch.randn(1, 6, 16, 16)
    assert (block(outside) - outside).abs().mean() > 0.1


class _Const(torch.nn.Module):
    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, _: torch.Tensor) -> torch.Tensor:
        return self.value


def test_importing_archs_loads_no_image_io() -> None:
    """Models compute on tensors: importing them must not pull in the codecs and spooling."""
    code = (
        "import sys, llenhance.archs\n"
        "print(' '.join(m for m in sys.modules if m.startswith('llenhance')))\n"
    )
    root = Path(__file__).resolve().parents[1]  # "-c" imports from the working directory first
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    out = done.stdout.split()
    assert "llenhance.archs" in out
    assert not [m for m in out if m == "llenhance.io" or m.startswith("llenhance.io.")]
