import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from llenhance import weights as weights_module
from llenhance.archs import create_model
from llenhance.errors import UserError
from llenhance.weights import WeightsInfo, load_model, read_info, resolve_weights, save_weights
from tests.conftest import TINY_UNET


def test_metadata_round_trip(tiny_weights):
    info = read_info(tiny_weights)
    assert info.arch == "unet-res"
    assert info.config == TINY_UNET
    assert info.metrics == {"val_psnr": 12.5}
    model, loaded = load_model(tiny_weights)
    assert loaded.config == TINY_UNET
    assert not model.training
    reference = create_model("unet-res", **TINY_UNET)
    torch.manual_seed(0)
    reference = create_model("unet-res", **TINY_UNET).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_file_from_before_pixel_unshuffle_loads_as_a_full_resolution_unet(tmp_path):
    """unet-res files written before the ``unshuffle`` key existed ran at full resolution; they
    must load as that, not as today's default (half resolution)."""
    old_config = {"width": 4, "depth": 2, "norm": "batch", "use_context": True}
    torch.manual_seed(0)
    old = create_model("unet-res", **old_config, unshuffle=1).eval()
    path = save_weights(tmp_path / "old.safetensors", old, WeightsInfo("unet-res", old_config))
    model, info = load_model(path)
    assert info.config["unshuffle"] == 1
    x = torch.rand(1, 3, 32, 32)
    context = torch.rand(1, 12)
    with torch.no_grad():
        assert torch.equal(model(x, context), old(x, context))


def test_resolution_order(tmp_path, tiny_weights, monkeypatch):
    assert resolve_weights(str(tiny_weights)) == tiny_weights
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "unet-res.safetensors").write_bytes(tiny_weights.read_bytes())
    monkeypatch.setattr(weights_module, "SHIPPED_DIR", shipped)
    assert resolve_weights("unet-res") == shipped / "unet-res.safetensors"
    with pytest.raises(UserError, match="no shipped weights for 'dncnn'"):
        resolve_weights("dncnn")
    with pytest.raises(UserError, match="weights file not found"):
        resolve_weights(str(tmp_path / "missing.safetensors"))


def _raw(path: Path, tensors: dict, arch: str = "unet-res", config: dict | None = None) -> Path:
    meta = WeightsInfo(arch=arch, config=config or TINY_UNET).to_metadata()
    save_file(tensors, str(path), metadata=meta)
    return path


def test_wrong_shapes_are_named(tmp_path):
    model = create_model("unet-res", **{**TINY_UNET, "width": 8})
    path = _raw(
        tmp_path / "w.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()}
    )
    with pytest.raises(UserError, match="has shape .* expects"):
        load_model(path)


def test_missing_tensors_and_wrong_architecture(tmp_path):
    path = _raw(tmp_path / "w.safetensors", {"conv.weight": torch.zeros(3, 3, 3, 3)})
    with pytest.raises(UserError, match="do not match architecture 'unet-res'"):
        load_model(path)
    unknown = _raw(tmp_path / "u.safetensors", {"a": torch.zeros(1)}, arch="unet-rse")
    with pytest.raises(UserError, match="did you mean 'unet-res'"):
        load_model(unknown)


def test_nan_weights_are_refused(tmp_path):
    state = {k: v.clone() for k, v in create_model("unet-res", **TINY_UNET).state_dict().items()}
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key].view(-1)[0] = float("nan")
    path = _raw(tmp_path / "nan.safetensors", state)
    with pytest.raises(UserError, match="NaN or Inf"):
        load_model(path)


def test_truncated_and_foreign_files(tmp_path, tiny_weights):
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(tiny_weights.read_bytes()[:1000])
    with pytest.raises(UserError, match="t.safetensors"):
        load_model(truncated)
    text = tmp_path / "x.safetensors"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a valid safetensors file"):
        load_model(text)
    foreign = tmp_path / "f.safetensors"
    save_file({"a": torch.zeros(2)}, str(foreign))
    with pytest.raises(UserError, match="not llenhance weights"):
        load_model(foreign)


def test_metadata_is_data_not_code(tmp_path):
    """Config values are parsed as JSON and passed as keyword values; nothing is evaluated."""
    path = _raw(
        tmp_path / "evil.safetensors",
        {"a": torch.zeros(1)},
        config={"width": "__import__('os').system('echo pwned')"},
    )
    with pytest.raises(UserError):
        load_model(path)
    bad = tmp_path / "bad.safetensors"
    meta = WeightsInfo(arch="unet-res", config=TINY_UNET).to_metadata()
    meta["llenhance.config"] = "{not json"
    save_file({"a": torch.zeros(1)}, str(bad), metadata=meta)
    with pytest.raises(UserError, match="corrupt metadata"):
        read_info(bad)


def test_save_is_atomic_and_keeps_no_temp(tmp_path):
    model = create_model("unet-res", **TINY_UNET)
    target = tmp_path / "m.safetensors"
    save_weights(target, model, WeightsInfo(arch="unet-res", config=TINY_UNET, training={"k": 1}))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    assert json.loads(read_info(target).to_metadata()["llenhance.training"]) == {"k": 1}


def test_half_precision_export_loads_as_float32(tmp_path, tiny_weights):
    from llenhance.weights import export_weights

    half = export_weights(tiny_weights, tmp_path / "half.safetensors")
    assert half.stat().st_size < 0.6 * tiny_weights.stat().st_size
    full_model, _ = load_model(tiny_weights)
    half_model, info = load_model(half)
    assert info.training["stored_as"] == "float16" and info.metrics == {"val_psnr": 12.5}
    assert all(p.dtype == torch.float32 for p in half_model.parameters())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (half_model(x) - full_model(x)).abs().max() < 5e-3


def test_weights_files_get_the_umask_permissions_like_any_output(tmp_path, tiny_weights):
    import os
    import stat

    from llenhance.weights import load_model

    model, info = load_model(tiny_weights)
    path = save_weights(tmp_path / "w.safetensors", model, info)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
