import numpy as np
import pytest
from skimage.metrics import structural_similarity

from llenhance.metrics import mae, match_gt_mean, mse, psnr, score, ssim
from tests.conftest import darken, scene


def test_psnr_mse_mae_known_values():
    ref = np.full((16, 16, 3), 0.5, np.float32)
    pred = ref + 0.1
    assert mse(pred, ref) == pytest.approx(0.01, rel=1e-5)
    assert mae(pred, ref) == pytest.approx(0.1, rel=1e-5)
    assert psnr(pred, ref) == pytest.approx(20.0, abs=1e-3)
    assert psnr(ref, ref) == float("inf")


@pytest.mark.parametrize("shape", [(64, 80, 3), (37, 53, 3), (40, 40)])
def test_ssim_matches_scikit_image(shape):
    ref = scene(*shape[:2], seed=3)
    if len(shape) == 2:
        ref = ref[..., 0]
    pred = np.clip(darken(ref, factor=0.7) + 0.02, 0, 1)
    expected = structural_similarity(
        pred,
        ref,
        channel_axis=-1 if len(shape) == 3 else None,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert ssim(pred, ref) == pytest.approx(expected, abs=1e-4)
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 2048, 3), (2048, 1, 3), (5, 5, 3), (10, 3)])
def test_ssim_of_images_smaller_than_the_window(shape):
    rng = np.random.default_rng(0)
    ref = rng.random(shape)
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert 0 < ssim(ref * 0.5, ref) < 1
    assert np.isfinite(score(ref * 0.5, ref).ssim)


def test_ssim_rejects_mismatched():
    with pytest.raises(ValueError):
        score(np.zeros((16, 16, 3)), np.zeros((16, 17, 3)))


def test_gt_mean_fixes_global_brightness():
    ref = scene(32, 32, seed=1)
    pred = ref * 0.5
    fixed = match_gt_mean(pred, ref)
    luma = np.array([0.299, 0.587, 0.114])
    assert (fixed @ luma).mean() == pytest.approx((ref @ luma).mean(), rel=1e-3)
    assert psnr(fixed, ref) > psnr(pred, ref) + 10


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_mse_and_mae_match_the_float64_formula(dtype):
    rng = np.random.default_rng(3)
    a = (rng.random((37, 23, 3)) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    b = (rng.random((37, 23, 3)) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    d = a.astype(np.float64) - b.astype(np.float64)
    assert mse(a, b) == pytest.approx(np.mean(d**2), rel=1e-12)
    assert mae(a, b) == pytest.approx(np.mean(np.abs(d)), rel=1e-8)
    assert mse(a[:, :, 0], b[:, :, 0]) == pytest.approx(np.mean(d[:, :, 0] ** 2), rel=1e-12)
