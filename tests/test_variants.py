"""Named variants of an architecture (``unet-res-large``) are models of their own."""

import pytest

from llenhance import weights as weights_module
from llenhance.archs import create_model, model_names, resolve_model
from llenhance.catalog import list_models
from llenhance.errors import UserError
from llenhance.inference import load_enhancer
from llenhance.training import train
from llenhance.weights import WeightsInfo, read_info, save_weights
from tests.conftest import TINY_UNET, make_pairs, tiny_train_config


def test_a_variant_is_its_architecture_with_its_own_config():
    spec, config, description = resolve_model("unet-res-large")
    assert spec.name == "unet-res" and config == {"width": 32}
    assert "unet-res-large" in model_names() and "unet-res" in model_names()
    assert resolve_model("unet-res")[1] == {}
    with pytest.raises(UserError, match="did you mean 'unet-res-large'"):
        resolve_model("unet-res-larg")


def test_training_a_variant_stores_its_architecture_and_config(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    tiny = {k: v for k, v in TINY_UNET.items() if k != "width"}
    config = tiny_train_config(data, tmp_path / "run", model="unet-res-large", model_config=tiny)
    result = train(config)
    info = read_info(result.best_path)
    assert info.arch == "unet-res" and info.config["width"] == 32


def test_a_variant_has_its_own_shipped_weights(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    wide = {**TINY_UNET, "width": 8}
    model = create_model("unet-res", **wide).eval()
    save_weights(shipped / "unet-res-large.safetensors", model, WeightsInfo("unet-res", wide))
    dncnn = save_weights(
        tmp_path / "d.safetensors", create_model("dncnn"), WeightsInfo("dncnn", {})
    )
    monkeypatch.setattr(weights_module, "SHIPPED_DIR", shipped)
    entries = {e.name: e for e in list_models()}
    assert entries["unet-res-large"].weights == str(shipped / "unet-res-large.safetensors")
    assert "width 32" in entries["unet-res-large"].description
    assert entries["unet-res"].weights is None
    enhancer = load_enhancer(model="unet-res-large", device="cpu")
    assert enhancer.info.config["width"] == 8
    with pytest.raises(UserError, match="not --model unet-res-large"):
        load_enhancer(model="unet-res-large", weights=str(dncnn), device="cpu")
