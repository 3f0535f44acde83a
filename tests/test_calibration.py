import numpy as np
import pytest
import torch

from llenhance.archs import create_model
from llenhance.calibration import (
    apply_black_point,
    apply_calibration,
    apply_saturation,
    fit_calibration,
)
from llenhance.pixels import LUMA
from tests.conftest import TINY_UNET, scene


def test_fit_finds_the_lift_that_was_added():
    refs = [scene(32, 32, seed=s) for s in range(3)]
    lifted = [0.03 + 0.97 * r for r in refs]  # what a black point of 0.03 undoes
    best, scores = fit_calibration(list(zip(lifted, refs, strict=True)), saturations=(1.0,))
    assert best == (pytest.approx(0.03), 1.0)
    assert (
        scores[(0.03, 1.0)] > scores[(0.0, 1.0)] + 5 and scores[(0.03, 1.0)] > scores[(0.06, 1.0)]
    )
    with pytest.raises(ValueError):
        fit_calibration([])


def test_fit_finds_the_saturation_that_was_lost_with_the_lift():
    refs = [scene(32, 32, seed=s) for s in range(3)]
    pale = []
    for r in refs:  # the inverse of black point 0.02 then saturation 1.25
        luma = (r @ np.asarray(LUMA, r.dtype))[..., None]
        pale.append(0.02 + 0.98 * (luma + (r - luma) / 1.25))
    best, scores = fit_calibration(list(zip(pale, refs, strict=True)))
    assert best == (pytest.approx(0.02), pytest.approx(1.25))
    assert scores[best] > scores[(0.02, 1.0)] + 3


def test_saturation_keeps_grey_and_luma_and_scales_chroma():
    grey = np.full((2, 2, 3), 0.4, np.float32)
    assert np.allclose(apply_saturation(grey, 1.3), grey)
    colour = np.array([[[0.5, 0.3, 0.2]]], np.float32)
    more = apply_saturation(colour, 1.2)
    assert np.allclose(more @ np.asarray(LUMA, np.float32), colour @ np.asarray(LUMA, np.float32))
    assert np.ptp(more) == pytest.approx(1.2 * np.ptp(colour), rel=1e-5)
    assert np.array_equal(apply_calibration(colour), colour)


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


def test_unet_calibration_is_the_same_curve_inside_the_model():
    torch.manual_seed(0)
    plain = create_model("unet-res", **TINY_UNET).eval()
    calibrated = create_model("unet-res", **TINY_UNET, black_point=0.03, saturation=1.2).eval()
    calibrated.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 32, 32) * 0.3
    with torch.no_grad():
        hwc = plain(x).numpy()[0].transpose(1, 2, 0)
        expected = apply_calibration(hwc, 0.03, 1.2)
        got = calibrated(x).numpy()[0].transpose(1, 2, 0)
    assert np.allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, apply_calibration(hwc, 0.03), atol=1e-3)
    with pytest.raises(ValueError):
        create_model("unet-res", **TINY_UNET, saturation=3.0)
