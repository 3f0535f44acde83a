import numpy as np
import pytest
import torch

from llenhance.archs import create_model
from llenhance.calibration import apply_black_point, fit_black_point
from tests.conftest import TINY_UNET, scene


def test_fit_finds_the_lift_that_was_added():
    refs = [scene(32, 32, seed=s) for s in range(3)]
    lifted = [0.03 + 0.97 * r for r in refs]  # what a black point of 0.03 undoes
    best, scores = fit_black_point(list(zip(lifted, refs, strict=True)))
    assert best == pytest.approx(0.03)
    assert scores[0.03] > scores[0.0] + 5 and scores[0.03] > scores[0.06]
    with pytest.raises(ValueError):
        fit_black_point([])


def test_apply_keeps_white_and_maps_the_black_point_to_zero():
    image = np.array([[[0.0, 0.02, 1.0]]], np.float32)
    assert np.allclose(apply_black_point(image, 0.02), [[[0.0, 0.0, 1.0]]])


def test_unet_black_point_is_the_same_curve_inside_the_model():
    torch.manual_seed(0)
    plain = create_model("unet-res", **TINY_UNET).eval()
    calibrated = create_model("unet-res", **TINY_UNET, black_point=0.05).eval()
    calibrated.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 32, 32) * 0.3
    with torch.no_grad():
        expected = apply_black_point(plain(x).numpy(), 0.05)
        assert np.allclose(calibrated(x).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError):
        create_model("unet-res", **TINY_UNET, black_point=0.7)
