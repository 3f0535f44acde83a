import numpy as np
import pytest
import torch

from llenhance.archs import create_model, get_arch
from llenhance.archs.registry import ArchSpec
from llenhance.errors import UserError
from llenhance.pixels import to_uint8
from llenhance.tiling import (
    DEFAULT_TILE,
    SEAM_FRACTION,
    _even_tile,
    _ramp,
    _tile_windows,
    count_tiles,
    default_overlap,
    enhance_array,
)
from tests.conftest import TINY_UNET, darken, scene


def _trained_like_model(**config):
    """A model with non-trivial BatchNorm statistics, as after training."""
    torch.manual_seed(1)
    model = create_model("unet-res", **config)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(2, 3, 64, 64))
    return model.eval()


def test_tiled_equals_untiled_on_1600x1088_with_default_tile():
    model = _trained_like_model()
    spec = get_arch("unet-res")
    image = darken(scene(1088, 1600, seed=5), factor=0.3)
    whole = enhance_array(model, image, spec, tile=0)
    tiled = enhance_array(model, image, spec, tile=DEFAULT_TILE)  # default overlap
    assert count_tiles(1088, 1600, spec, DEFAULT_TILE) == 4
    diff = np.abs(to_uint8(whole).astype(int) - to_uint8(tiled).astype(int))
    assert diff.max() <= 1


def test_small_tiles_still_agree_and_blend_everywhere():
    model = _trained_like_model(**TINY_UNET)
    spec = get_arch("unet-res").for_config(TINY_UNET)
    assert spec.multiple == 8  # 2 poolings after a 2x pixel unshuffle
    image = scene(100, 130, seed=2)
    whole = enhance_array(model, image, spec, tile=0)
    tiled = enhance_array(model, image, spec, tile=48, overlap=16)
    assert count_tiles(100, 130, spec, 48, 16) >= 9
    assert np.abs(whole - tiled).max() < 2 / 255


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (17, 23), (33, 5)])
def test_any_size_returns_the_input_size(shape):
    model = _trained_like_model(**TINY_UNET)
    image = scene(*shape, seed=0) if min(shape) > 1 else np.full((*shape, 3), 0.2, np.float32)
    out = enhance_array(model, image, get_arch("unet-res"), tile=32, overlap=8)
    assert out.shape == (*shape, 3)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_tiles_share_the_whole_image_context():
    """Each tile gets the context of the whole image, not of itself: a tile of a bright
    region inside a dark image is treated as part of a dark image."""
    seen = []
    spec = get_arch("unet-res")

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, context):
            seen.append(context.clone())
            return x

    image = scene(64, 128, seed=4)
    image[:, :64] *= 0.1
    enhance_array(Recorder(), image, spec, tile=64, overlap=16)
    assert len(seen) >= 2
    assert all(torch.equal(seen[0], c) for c in seen[1:])


def test_untileable_spec_refuses_clearly():
    spec = ArchSpec(name="global-thing", builder=lambda: None, description="", tileable=False)
    model = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(UserError, match="cannot be tiled"):
        enhance_array(model, scene(64, 64), spec, tile=32)
    assert enhance_array(model, scene(64, 64), spec, tile=0).shape == (64, 64, 3)


def test_tile_too_small_is_a_user_error():
    with pytest.raises(UserError, match="too small"):
        enhance_array(_trained_like_model(**TINY_UNET), scene(64, 64), get_arch("unet-res"), tile=4)


def test_default_overlap_covers_half_the_receptive_field_or_the_declared_overlap():
    for name in ("unet-res", "cgnet", "dncnn"):
        spec = get_arch(name)
        overlap = default_overlap(spec)
        assert overlap >= spec.receptive_field / 2 and overlap % spec.multiple == 0
        assert spec.overlap is None or overlap >= spec.overlap
    assert default_overlap(get_arch("cgnet")) == 192


def test_tiles_share_the_length_evenly_and_never_exceed_the_tile():
    spec = get_arch("unet-res")
    windows = list(_tile_windows(2160, 3840, spec, 1024, 112))
    heights = {w[2] for w in windows}
    widths = {w[3] for w in windows}
    assert heights == {800} and widths == {864}  # not 1024: 3 x 5 tiles share 2160 x 3840
    assert len(windows) == 15
    assert _even_tile(3840, 1024, 16, 112) <= 1024 and _even_tile(500, 1024, 16, 112) == 500


@pytest.mark.parametrize("overlap", [1, 7, 20, 96, 160])
def test_neighbouring_ramps_cross_fade_only_in_the_middle_of_the_overlap(overlap):
    left = _ramp(400, overlap, before=False, after=True)[-overlap:]
    right = _ramp(400, overlap, before=True, after=False)[:overlap]
    np.testing.assert_allclose(left + right, 1.0, atol=1e-6)
    drop = int((overlap - max(1, round(overlap * SEAM_FRACTION))) // 2)
    assert (right[:drop] == 0).all() and (left[overlap - drop :] == 0).all()
    assert (right[drop:] > 0).all() and (left[: overlap - drop] > 0).all()


def test_each_architecture_brings_its_default_tile(tmp_path):
    """Memory-hungry architectures declare a smaller default tile; load_enhancer and ``auto`` on
    CPU take it unless a tile is given."""
    from llenhance.inference import load_enhancer
    from llenhance.tiling import default_tile
    from llenhance.weights import WeightsInfo, save_weights

    assert default_tile(get_arch("unet-res")) == DEFAULT_TILE
    assert default_tile(get_arch("llid")) < DEFAULT_TILE
    config = {"gray_channels": 4, "unet_width": 2, "sft_channels": 4}
    path = save_weights(
        tmp_path / "llid.safetensors", create_model("llid", **config), WeightsInfo("llid", config)
    )
    assert load_enhancer(weights=path, device="cpu").tile == get_arch("llid").tile
    assert load_enhancer(weights=path, device="cpu", tile="auto").tile == get_arch("llid").tile
    assert load_enhancer(weights=path, device="cpu", tile=256).tile == 256
    # enhance_array itself (as training's validation calls it) takes the same default
    spec = get_arch("llid")
    totals = []
    model = create_model("llid", **config).eval()
    enhance_array(model, scene(700, 900), spec, progress=lambda done, total: totals.append(total))
    assert totals[-1] == count_tiles(700, 900, spec, spec.tile) > 1


def test_wide_photos_get_shorter_tiles_and_still_agree(monkeypatch):
    """Past BAND_MEGAPIXELS per row of tiles, tiles lose height (not width): the image-wide
    band the tiler holds stays within the budget, and the output is the same."""
    from llenhance import tiling
    from llenhance.tiling import enhance_bands

    model = _trained_like_model(**TINY_UNET)
    spec = get_arch("unet-res").for_config(TINY_UNET)
    image = scene(200, 400, seed=4)
    whole = enhance_array(model, image, spec, tile=0)
    monkeypatch.setattr(tiling, "BAND_MEGAPIXELS", 400 * 48 / 1e6)  # 48 rows of this width
    windows = list(_tile_windows(200, 400, spec, 96, 16))
    assert {(h, w) for _, _, h, w in windows} == {(48, 96)}
    bands = list(enhance_bands(model, image, spec, tile=96, overlap=16))
    assert max(len(rows) for _, rows in bands) <= 48
    tiled = np.concatenate([rows for _, rows in bands])
    assert np.abs(whole - tiled).max() < 2 / 255
    # Untiled stays untiled, and tiles never get shorter than twice the overlap.
    assert count_tiles(200, 400, spec, 0) == 1
    monkeypatch.setattr(tiling, "BAND_MEGAPIXELS", 1e-6)
    assert {h for _, _, h, _ in _tile_windows(200, 400, spec, 96, 16)} == {40}


def test_a_wider_photo_past_the_band_budget_takes_no_more_tiler_memory(monkeypatch):
    import tracemalloc

    from llenhance import tiling
    from llenhance.tiling import enhance_bands

    # dncnn: no whole-image context, whose float copy of a small photo would dominate here.
    model = create_model("dncnn", depth=3, channels=4).eval()
    spec = get_arch("dncnn").for_config({"depth": 3, "channels": 4})
    monkeypatch.setattr(tiling, "BAND_MEGAPIXELS", 96 * 300 / 1e6)  # 96 rows at 300 px wide
    peaks = []
    for width in (300, 1200):
        image = to_uint8(scene(240, width, seed=1))
        tracemalloc.start()
        for _ in enhance_bands(model, image, spec, tile=96, overlap=8, out_dtype=np.uint8):
            pass
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # Rows of tiles 96 high at 300 px and 24 high at 1200 px: the same band of 28800 pixels
    # (without the budget, the 4x wider band would take 4x the memory).
    assert peaks[1] < 1.5 * peaks[0]
