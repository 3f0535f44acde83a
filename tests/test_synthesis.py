import numpy as np
import pytest

from llenhance.data import SyntheticPairDataset, find_photos
from llenhance.synthesis import (
    SynthesisParams,
    linear_to_srgb,
    srgb_to_linear,
    synthesize_low_light,
)
from llenhance.training import TrainConfig, train
from tests.conftest import scene, write_png


def _flat(value: float, size: int = 128) -> np.ndarray:
    return np.full((size, size, 3), value, np.float32)


def test_exposure_scales_linear_light():
    params = SynthesisParams(
        exposure=(0.1, 0.1),
        photons=(1e7, 1e7),
        read_noise=(0, 0),
        color_cast=0.0,
        jpeg_probability=0.0,
    )
    low = synthesize_low_light(_flat(0.8), np.random.default_rng(0), params)
    expected = linear_to_srgb(srgb_to_linear(np.float32(0.8)) * 0.1)
    assert low.mean() == pytest.approx(float(expected), abs=1 / 255)
    assert low.dtype == np.float32
    assert np.allclose(low * 255, np.round(low * 255), atol=1e-4)  # quantised to 8 bits


def test_noise_follows_poisson_gaussian_model():
    """With few photons, the linear-light variance of a flat patch is signal/photons + read^2."""
    photons, read = 300.0, 0.002
    params = SynthesisParams(
        exposure=(0.2, 0.2),
        photons=(photons, photons),
        read_noise=(read, read),
        color_cast=0.0,
        jpeg_probability=0.0,
        gamma=1.0,
    )
    low = synthesize_low_light(_flat(0.5, 256), np.random.default_rng(1), params)
    signal = 0.5 * 0.2
    expected_std = np.sqrt(signal / photons + read**2)
    assert low.mean() == pytest.approx(signal, abs=0.004)
    assert low.std() == pytest.approx(expected_std, rel=0.1)
    brighter = synthesize_low_light(
        _flat(0.5, 256),
        np.random.default_rng(1),
        SynthesisParams(
            exposure=(0.2, 0.2),
            photons=(30 * photons, 30 * photons),
            read_noise=(read, read),
            color_cast=0.0,
            jpeg_probability=0.0,
            gamma=1.0,
        ),
    )
    assert brighter.std() < 0.5 * low.std()


def test_default_params_make_dark_images():
    rng = np.random.default_rng(2)
    image = scene(64, 64)
    means = [synthesize_low_light(image, rng).mean() for _ in range(20)]
    assert max(means) < image.mean()
    assert 0.05 < np.mean(means) < 0.35


def test_synthetic_dataset_and_training(tmp_path):
    for i in range(4):
        write_png(tmp_path / "photos" / "sub" / f"p{i}.png", scene(40, 48, seed=i))
    photos = find_photos(tmp_path / "photos")
    assert len(photos) == 4
    ds = SyntheticPairDataset(photos, patch=32, seed=0)
    a, b = ds[0], ds[0]
    assert np.array_equal(a["low"].numpy(), b["low"].numpy())  # reproducible per (epoch, index)
    assert a["low"].mean() < a["high"].mean()
    ds.set_epoch(1)
    assert not np.array_equal(ds[0]["low"].numpy(), a["low"].numpy())
    result = train(
        TrainConfig(
            data=str(tmp_path / "photos"),
            synthesize=True,
            val_split=0.25,
            epochs=1,
            batch_size=3,
            patch=32,
            model_config={"width": 4, "depth": 2},
            out=str(tmp_path / "run"),
            device="cpu",
        )
    )
    assert result.history[0].val_psnr is not None
