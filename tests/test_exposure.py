import numpy as np
import pytest

from llenhance.exposure import apply_exposure, check_exposure
from llenhance.inference import load_enhancer
from llenhance.metrics import mean_luminance
from tests.conftest import darken, scene, write_png
from tests.test_cli import run


def test_curve_is_identity_at_zero_and_keeps_black_and_white():
    ramp = np.linspace(0, 1, 256, dtype=np.float32)[None, :, None].repeat(3, axis=2)
    assert np.array_equal(apply_exposure(ramp.copy(), 0.0), ramp)
    for ev in (-2.0, 1.0, 3.0):
        out = apply_exposure(ramp.copy(), ev)
        assert out[0, 0, 0] == pytest.approx(0.0) and out[0, -1, 0] == pytest.approx(1.0)
        assert np.all(np.diff(out[0, :, 0]) >= 0)  # no pixel order flips


def test_exposure_moves_mean_brightness_monotonically(tiny_weights):
    image = darken(scene(40, 48, seed=4))
    means = [
        mean_luminance(load_enhancer(weights=tiny_weights, exposure=ev)(image))
        for ev in (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
    ]
    assert all(a < b for a, b in zip(means, means[1:], strict=False)), means
    automatic = load_enhancer(weights=tiny_weights)(image)
    assert np.array_equal(load_enhancer(weights=tiny_weights, exposure=0.0)(image), automatic)


def test_tiled_output_gets_the_same_exposure_as_untiled(tiny_weights):
    image = darken(scene(64, 80, seed=5))
    whole = load_enhancer(weights=tiny_weights, tile=0, exposure=1.0)(image)
    tiled = load_enhancer(weights=tiny_weights, tile=32, overlap=8, exposure=1.0)(image)
    assert np.abs(whole - tiled).max() < 2 / 255


@pytest.mark.parametrize("ev", [float("nan"), float("inf"), 4.5, -9.0])
def test_out_of_range_exposure_is_refused(ev):
    with pytest.raises(ValueError):
        check_exposure(ev)


def test_cli_exposure_brightens_and_refuses_nonsense(tmp_path, tiny_weights):
    write_png(tmp_path / "a.png", darken(scene(32, 32, seed=6)))
    for ev, name in (("0", "auto.png"), ("1.5", "bright.png")):
        result = run(
            "enhance",
            tmp_path / "a.png",
            "-o",
            tmp_path / name,
            "--weights",
            tiny_weights,
            "--exposure",
            ev,
        )
        assert result.exit_code == 0, result.output
    from llenhance.io.read import read_rgb

    assert mean_luminance(read_rgb(tmp_path / "bright.png")) > mean_luminance(
        read_rgb(tmp_path / "auto.png")
    )
    bad = run(
        "enhance",
        tmp_path / "a.png",
        "-o",
        tmp_path / "x.png",
        "--weights",
        tiny_weights,
        "--exposure",
        "9",
    )
    assert bad.exit_code == 2 and "--exposure" in bad.output
    assert not (tmp_path / "x.png").exists()
