"""Shared fixtures: small synthetic photos, LOL-layout pair folders and tiny weights files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from llenhance import weights as weights_module
from llenhance.archs import create_model
from llenhance.train_config import TrainConfig
from llenhance.weights import WeightsInfo, save_weights

torch.set_num_threads(2)

TINY_UNET = {"width": 4, "depth": 2, "unshuffle": 2}
#: CLI options for a training run of seconds: two epochs of a tiny unet-res on small crops.
TINY_TRAIN_ARGS = [
    "--epochs",
    "2",
    "--batch-size",
    "2",
    "--patch",
    "32",
    "--model-config",
    '{"width": 4, "depth": 2, "unshuffle": 2}',
]


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured, well-exposed RGB image in [0, 1] (float32)."""
    rng = np.random.default_rng(seed)
    base = rng.random((max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
    img = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    img += 0.05 * rng.standard_normal((height, width, 3)).astype(np.float32)
    return np.clip(0.15 + 0.7 * img, 0, 1).astype(np.float32)


def darken(image: np.ndarray, seed: int = 0, factor: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    noisy = image * factor + 0.01 * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(noisy, 0, 1).astype(np.float32)


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), bgr)
    return path


def make_pairs(root: Path, count: int, size: tuple[int, int] = (48, 64), seed: int = 0) -> Path:
    """A LOL-layout folder of ``count`` synthetic pairs (low = darkened, noisy high)."""
    for i in range(count):
        high = scene(*size, seed=seed + i)
        write_png(root / "high" / f"{i:03d}.png", high)
        write_png(root / "low" / f"{i:03d}.png", darken(high, seed=seed + i))
    return root


@pytest.fixture
def pairs_dir(tmp_path: Path) -> Path:
    return make_pairs(tmp_path / "pairs", 6)


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A tiny unet-res weights file with self-describing metadata."""
    torch.manual_seed(0)
    model = create_model("unet-res", **TINY_UNET).eval()
    info = WeightsInfo(arch="unet-res", config=dict(TINY_UNET), metrics={"val_psnr": 12.5})
    return save_weights(tmp_path / "tiny.safetensors", model, info)


@pytest.fixture
def shipped(tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pretend the tiny weights are the shipped unet-res weights."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "unet-res.safetensors").write_bytes(tiny_weights.read_bytes())
    monkeypatch.setattr(weights_module, "SHIPPED_DIR", folder)
    return folder


def spooled_alpha(alpha) -> np.ndarray:
    """The alpha plane :func:`llenhance.io.read.spool_image` left on disk, as float32 HxW."""
    from llenhance.pixels import to_float

    return to_float(alpha[:][:, :, 0])


def tiny_train_config(data, out, **overrides) -> TrainConfig:
    """A quick CPU training run of the tiny U-Net (augmentations off: they have their own test)."""
    base = dict(
        data=str(data),
        model="unet-res",
        model_config=dict(TINY_UNET),
        epochs=2,
        batch_size=2,
        patch=32,
        lr=3e-3,
        warmup_steps=2,
        out=str(out),
        device="cpu",
        seed=7,
        command="test",
        identity_fraction=0.0,
        exposure_jitter=1.0,
    )
    return TrainConfig(**{**base, **overrides})
