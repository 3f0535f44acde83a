import numpy as np
import pytest

from llenhance.data import (
    EpochSampler,
    MixedDataset,
    PairDataset,
    SyntheticPairDataset,
    find_pairs,
    find_photos,
    scene_of,
    split_pairs,
)
from llenhance.errors import UserError
from tests.conftest import make_pairs, scene, write_png


def test_find_pairs_matches_by_stem_across_extensions(tmp_path):
    root = make_pairs(tmp_path / "d", 3)
    (root / "high" / "001.png").rename(root / "high" / "001.jpg.png")
    write_png(root / "high" / "001.bmp", scene(48, 64))
    (root / "high" / "001.jpg.png").unlink()
    pairs = find_pairs(root)
    assert [p.name for p in pairs] == ["000", "001", "002"]
    assert pairs[1].high.suffix == ".bmp"


def test_missing_folders_and_partners_are_listed(tmp_path):
    with pytest.raises(UserError, match="missing low/ and high/"):
        find_pairs(tmp_path)
    root = make_pairs(tmp_path / "d", 3)
    (root / "high" / "002.png").unlink()
    write_png(root / "high" / "extra.png", scene(8, 8))
    with pytest.raises(UserError, match=r"1 in low/ without a partner \(002\).*1 in high/.*extra"):
        find_pairs(root)


def test_unreadable_pair_is_reported_before_training(tmp_path):
    root = make_pairs(tmp_path / "d", 3)
    (root / "low" / "001.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="001.png"):
        PairDataset(find_pairs(root), patch=16)


def test_size_mismatch_is_reported(tmp_path):
    root = make_pairs(tmp_path / "d", 2)
    write_png(root / "high" / "001.png", scene(40, 64))
    with pytest.raises(UserError, match="differs from its reference"):
        PairDataset(find_pairs(root), patch=16)


def test_crops_are_aligned_reproducible_and_vary_by_epoch(pairs_dir):
    ds = PairDataset(find_pairs(pairs_dir), patch=32, seed=3)
    a = ds[1]
    assert a["low"].shape == (3, 32, 32) and a["high"].shape == (3, 32, 32)
    # aligned: low is a darkened copy of high, so their correlation is high
    corr = np.corrcoef(a["low"].numpy().ravel(), a["high"].numpy().ravel())[0, 1]
    assert corr > 0.9
    b = PairDataset(find_pairs(pairs_dir), patch=32, seed=3)[1]
    assert np.array_equal(a["low"].numpy(), b["low"].numpy())
    ds.set_epoch(1)
    assert not np.array_equal(a["low"].numpy(), ds[1]["low"].numpy())


def test_small_images_are_padded_to_the_patch(tmp_path):
    root = make_pairs(tmp_path / "d", 2, size=(20, 24))
    item = PairDataset(find_pairs(root), patch=32)[0]
    assert item["low"].shape == (3, 32, 32)


def test_split_is_by_file_and_reproducible(pairs_dir):
    pairs = find_pairs(pairs_dir)
    train, val = split_pairs(pairs, 0.34, seed=1)
    assert len(val) == 2 and len(train) == 4
    assert not {p.name for p in train} & {p.name for p in val}
    assert split_pairs(pairs, 0.34, seed=1) == (train, val)
    with pytest.raises(UserError):
        split_pairs(pairs, 1.5, seed=1)


def test_split_holds_out_whole_scenes(tmp_path):
    root = tmp_path / "sice"
    for scene_id in range(10):
        for frame in range(3):
            image = scene(16, 16, seed=scene_id)
            write_png(root / "low" / f"{scene_id:04d}_{frame:04d}.png", image)
            write_png(root / "high" / f"{scene_id:04d}_{frame:04d}.png", image)
    pairs = find_pairs(root)
    assert scene_of("0012_0034") == "0012" and scene_of("748") == "748"
    train, val = split_pairs(pairs, 0.2, seed=3)
    assert len(val) == 6 and len(train) == 24
    assert not {scene_of(p.name) for p in train} & {scene_of(p.name) for p in val}


def test_mixed_dataset_serves_every_part_and_passes_the_epoch_on(tmp_path):
    real = PairDataset(find_pairs(make_pairs(tmp_path / "d", 3)), patch=16)
    photos = make_pairs(tmp_path / "p", 2) / "high"
    synthetic = SyntheticPairDataset(find_photos(photos), patch=16)
    mixed = MixedDataset([real, synthetic])
    assert len(mixed) == 5 and mixed.names == ["000", "001", "002", "000", "001"]
    assert np.array_equal(mixed[1]["high"].numpy(), real[1]["high"].numpy())
    assert np.array_equal(mixed[4]["low"].numpy(), synthetic[1]["low"].numpy())
    before = mixed[4]["low"].clone()
    mixed.set_epoch(1)
    assert synthetic.epoch == 1 and real.epoch == 1
    assert not np.array_equal(mixed[4]["low"].numpy(), before.numpy())
    with pytest.raises(IndexError):
        mixed[5]
    lows, highs = mixed.float_pairs()
    assert len(lows) == len(highs) == 5


def test_sampler_shards_and_skips():
    full = EpochSampler(10, seed=0)
    full.set_epoch(2)
    order = list(full)
    assert sorted(order) == list(range(10))
    full.set_epoch(2, skip=3)
    assert list(full) == order[3:]
    shards = [EpochSampler(10, seed=0, rank=r, world_size=2) for r in range(2)]
    for s in shards:
        s.set_epoch(2)
    assert sorted(list(shards[0]) + list(shards[1])) == list(range(10))
