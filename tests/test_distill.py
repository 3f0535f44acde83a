"""Distillation: unpaired real photos with a teacher's output as their target."""

import numpy as np
import pytest

from llenhance.data import DistilledDataset, MixedDataset, build_datasets, find_photos
from llenhance.errors import UserError
from llenhance.inference import load_enhancer
from llenhance.io.read import read_rgb
from llenhance.pixels import to_uint8
from llenhance.train_config import TrainConfig
from llenhance.training import train
from tests.conftest import TINY_UNET, darken, make_pairs, scene, write_png


def _unpaired(folder, count=3, size=(40, 56)):
    for i in range(count):
        write_png(folder / f"dark{i}.png", darken(scene(*size, seed=20 + i), seed=i))
    return folder


def test_targets_are_the_teachers_output_of_each_photo(tmp_path, tiny_weights):
    folder = _unpaired(tmp_path / "dicm")
    teacher = load_enhancer(weights=tiny_weights, device="cpu")
    dataset = DistilledDataset(find_photos(folder), teacher, patch=16)
    assert dataset.names == ["dark0", "dark1", "dark2"]
    low = to_uint8(read_rgb(folder / "dark1.png"))
    assert np.array_equal(dataset.lows[1], low)
    assert np.array_equal(dataset.highs[1], to_uint8(teacher(low)))
    assert dataset[0]["high"].shape == (3, 16, 16)


def test_large_photos_are_downscaled_before_the_teacher(tmp_path, tiny_weights):
    folder = _unpaired(tmp_path / "hd", count=1, size=(60, 100))
    teacher = load_enhancer(weights=tiny_weights, device="cpu")
    dataset = DistilledDataset(find_photos(folder), teacher, patch=16, max_side=50)
    assert dataset.lows[0].shape == (30, 50, 3) == dataset.highs[0].shape


def _config(tmp_path, **overrides):
    base = dict(
        data=str(make_pairs(tmp_path / "pairs", 4)),
        model="unet-res",
        model_config=dict(TINY_UNET),
        epochs=1,
        batch_size=2,
        patch=16,
        val_split=0.0,
        out=str(tmp_path / "run"),
        device="cpu",
    )
    return TrainConfig(**{**base, **overrides})


def test_unpaired_photos_join_the_pairs_and_need_a_teacher(tmp_path, tiny_weights):
    from llenhance.archs import get_arch

    spec = get_arch("unet-res")
    folder = _unpaired(tmp_path / "dicm")
    config = _config(tmp_path, unpaired=str(folder), teacher=str(tiny_weights))
    dataset, _ = build_datasets(config, spec)
    assert isinstance(dataset, MixedDataset) and len(dataset) == 4 + 3
    with pytest.raises(UserError, match="--unpaired needs --teacher"):
        build_datasets(_config(tmp_path, unpaired=str(folder)), spec)
    with pytest.raises(UserError, match="--teacher needs --unpaired"):
        build_datasets(_config(tmp_path, teacher=str(tiny_weights)), spec)


def test_a_distilled_run_records_its_teacher(tmp_path, tiny_weights):
    from llenhance.weights import read_info

    folder = _unpaired(tmp_path / "dicm")
    result = train(_config(tmp_path, unpaired=str(folder), teacher=str(tiny_weights)))
    training = read_info(result.last_path).training
    assert training["unpaired"] == str(folder) and training["teacher"] == str(tiny_weights)
