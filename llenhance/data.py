"""Training data: LOL-layout pairs (``low/`` and ``high/``, a pair shares a file name), held in
memory as 8-bit, served as random aligned crops with flips and 90-degree rotations.

Every crop is a pure function of (seed, epoch, index), so a resumed run sees the same batches
an uninterrupted one would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from llenhance.archs import ArchSpec
from llenhance.archs.context import whole_image_context
from llenhance.errors import UserError
from llenhance.io.files import is_image_name
from llenhance.io.read import read_rgb
from llenhance.pixels import to_uint8
from llenhance.synthesis import SynthesisParams, scale_exposure, synthesize_low_light
from llenhance.train_config import TrainConfig

T = TypeVar("T", "Pair", Path)


@dataclass(frozen=True)
class Pair:
    name: str
    low: Path
    high: Path


def images_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_name(p)}


def find_pairs(root: str | Path) -> list[Pair]:
    """Pairs of ``root/low`` and ``root/high`` matched by file stem; unmatched files are errors."""
    root = Path(root)
    missing = [sub for sub in ("low", "high") if not (root / sub).is_dir()]
    if missing:
        raise UserError(
            f"{root}: not a LOL-layout folder (missing {' and '.join(s + '/' for s in missing)}; "
            "expected low/ and high/ with matching file names)"
        )
    lows, highs = images_by_stem(root / "low"), images_by_stem(root / "high")
    only_low = sorted(set(lows) - set(highs))
    only_high = sorted(set(highs) - set(lows))
    if only_low or only_high:
        parts = []
        if only_low:
            parts.append(f"{len(only_low)} in low/ without a partner ({', '.join(only_low[:5])})")
        if only_high:
            parts.append(
                f"{len(only_high)} in high/ without a partner ({', '.join(only_high[:5])})"
            )
        raise UserError(f"{root}: unpaired images: {'; '.join(parts)}")
    if not lows:
        raise UserError(f"{root}: no images in low/ and high/")
    return [Pair(stem, lows[stem], highs[stem]) for stem in sorted(lows)]


def scene_of(name: str) -> str:
    """The scene a pair or photo belongs to: the stem up to its first ``_`` (SICE's
    ``SCENE_FRAME`` names), else the whole stem (LOL: every pair is its own scene)."""
    stem = Path(name).stem
    return stem.split("_", 1)[0] if "_" in stem else stem


def split_pairs(pairs: Sequence[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Hold out about ``fraction`` of the pairs (or photos) for validation, reproducibly.

    Whole scenes are held out (see :func:`scene_of`): frames of one scene on both sides would
    let validation reward memorising the scene.
    """
    if not 0.0 < fraction < 1.0:
        raise UserError(f"--val-split {fraction}: expected a fraction between 0 and 1")
    scenes = sorted({scene_of(p.name) for p in pairs})
    random.Random(seed).shuffle(scenes)
    n_val = max(1, round(len(scenes) * fraction))
    if n_val >= len(scenes):
        raise UserError(f"--val-split {fraction} leaves no training scenes out of {len(scenes)}")
    held_out = set(scenes[:n_val])
    train = sorted((p for p in pairs if scene_of(p.name) not in held_out), key=lambda p: p.name)
    val = sorted((p for p in pairs if scene_of(p.name) in held_out), key=lambda p: p.name)
    return train, val


def load_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float32 RGB; a size mismatch is an error naming the pair."""
    low, high = read_rgb(pair.low), read_rgb(pair.high)
    if low.shape != high.shape:
        raise UserError(
            f"{pair.low}: size {low.shape[1]}x{low.shape[0]} differs from its reference "
            f"{pair.high} ({high.shape[1]}x{high.shape[0]})"
        )
    return low, high


def augment(arrays: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flip and 90-degree rotation applied to every array (HWC)."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        if flip:
            a = a[:, ::-1]
        out.append(np.ascontiguousarray(a))
    return out


class PairDataset(Dataset):
    """Aligned random crops of in-memory pairs; ``set_epoch`` changes the crops reproducibly.

    All pairs are read when the dataset is built, so a missing or unreadable file stops training
    before it starts.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        patch: int,
        context_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        augment: bool = True,
        identity_fraction: float = 0.0,
        exposure_jitter: float = 1.0,
        darken: float = 1.0,
    ) -> None:
        self._sampling(
            patch, context_fn, seed, augment, identity_fraction, (exposure_jitter, darken)
        )
        self.names = [p.name for p in pairs]
        self.lows: list[np.ndarray] = []
        self.highs: list[np.ndarray] = []
        self.contexts: list[torch.Tensor | None] = []
        for pair in pairs:
            low, high = load_pair(pair)
            self.lows.append(to_uint8(low))
            self.highs.append(to_uint8(high))
            self.contexts.append(
                None if context_fn is None else whole_image_context(low, context_fn)[0].clone()
            )

    def _sampling(
        self,
        patch: int,
        context_fn: Callable[[torch.Tensor], torch.Tensor] | None,
        seed: int,
        augment: bool,
        identity_fraction: float,
        jitter: tuple[float, float],
    ) -> None:
        """The settings that decide what each (epoch, index) item looks like. ``jitter`` is
        (exposure jitter k, extra darkening d): low exposures are scaled by [1/(k d), k]."""
        self.patch = patch
        self.context_fn = context_fn
        self.seed = seed
        self.augment = augment
        self.identity_fraction = identity_fraction
        self.exposure_jitter, self.darken = jitter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lows)

    def _crop(self, low: np.ndarray, high: np.ndarray, rng: np.random.Generator):
        p = self.patch
        h, w = low.shape[:2]
        if h < p or w < p:
            pad = ((0, max(0, p - h)), (0, max(0, p - w)), (0, 0))
            low, high = np.pad(low, pad, mode="edge"), np.pad(high, pad, mode="edge")
            h, w = low.shape[:2]
        y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        return low[y : y + p, x : x + p], high[y : y + p, x : x + p]

    def full_pair(
        self, index: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None]:
        """The whole 8-bit (low, high) pair and the low image's context for one item.

        With ``identity_fraction`` some items are (high, high): the net learns to leave a
        well-exposed photo alone. With ``exposure_jitter`` k > 1 the low image's exposure is
        scaled in linear light by a log-uniform factor in [1/k, k]: the same scene, brighter or
        darker, must map to the same reference. ``darken`` d > 1 moves the dark end to 1/(k d),
        so the net also sees inputs darker than any in the data (whose deep shadows are 8-bit
        zeros) instead of extrapolating to them.
        """
        low, high, context = self.lows[index], self.highs[index], self.contexts[index]
        if self.identity_fraction and rng.random() < self.identity_fraction:
            low = high
        elif self.exposure_jitter > 1.0 or self.darken > 1.0:
            brightest = np.log(self.exposure_jitter)
            low = scale_exposure(
                low, float(np.exp(rng.uniform(-brightest - np.log(self.darken), brightest)))
            )
        else:
            return low, high, context
        if self.context_fn is not None:
            context = whole_image_context(low, self.context_fn)[0].clone()
        return low, high, context

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        # The pair's own randomness has its own stream, so crops do not depend on it.
        low, high, context = self.full_pair(
            index, np.random.default_rng([self.seed, self.epoch, index, 1])
        )
        low, high = self._crop(low, high, rng)
        if self.augment:
            low, high = augment([low, high], rng)
        item = {
            "low": torch.from_numpy(low).permute(2, 0, 1).float().div_(255.0),
            "high": torch.from_numpy(high).permute(2, 0, 1).float().div_(255.0),
        }
        if context is not None:
            item["context"] = context
        return item

    def float_pairs(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """All pairs as float32 arrays (for models that fit a preprocessor before training)."""
        lows = [a.astype(np.float32) / 255.0 for a in self.lows]
        highs = [a.astype(np.float32) / 255.0 for a in self.highs]
        return lows, highs


def find_photos(root: str | Path) -> list[Path]:
    """Every image below ``root`` (recursively), for synthesising pairs."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory of photos")
    photos = sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p))
    if not photos:
        raise UserError(f"{root}: no photos found to synthesise low-light pairs from")
    return photos


class SyntheticPairDataset(PairDataset):
    """Pairs made on the fly from well-exposed photos: each (epoch, index) draws new low-light
    conditions (see :mod:`llenhance.synthesis`), reproducibly."""

    def __init__(
        self,
        photos: Sequence[Path],
        patch: int,
        context_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        augment: bool = True,
        params: SynthesisParams | None = None,
    ) -> None:
        self._sampling(patch, context_fn, seed, augment, 0.0, (1.0, 1.0))
        self.names = [p.stem for p in photos]
        self.highs = [to_uint8(read_rgb(p)) for p in photos]
        self.lows = self.highs
        self.params = params

    def full_pair(
        self, index: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None]:
        high = self.highs[index]
        low = synthesize_low_light(high.astype(np.float32) / 255.0, rng, self.params)
        context = None
        if self.context_fn is not None:
            context = whole_image_context(low, self.context_fn)[0].clone()
        return to_uint8(low), high, context

    def float_pairs(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        lows, highs = [], []
        for index, high in enumerate(self.highs):
            low, _, _ = self.full_pair(index, np.random.default_rng([self.seed, 10**6 + 1, index]))
            lows.append(low.astype(np.float32) / 255.0)
            highs.append(high.astype(np.float32) / 255.0)
        return lows, highs


def synthetic_validation(
    photos: Sequence[Path], seed: int, params: SynthesisParams | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Fixed synthetic (name, low, high) triples: the same conditions every epoch."""
    triples = []
    for index, path in enumerate(photos):
        high = to_uint8(read_rgb(path)).astype(np.float32) / 255.0
        low = synthesize_low_light(high, np.random.default_rng([seed, 10**6, index]), params)
        triples.append((path.stem, low, high))
    return triples


def pair_arrays(pairs: Sequence[Pair]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, low, high) float arrays read from disk one pair at a time."""
    for pair in pairs:
        low, high = load_pair(pair)
        yield pair.name, low, high


class EpochSampler(Sampler[int]):
    """A permutation that depends only on (seed, epoch), optionally skipping the first indices
    already consumed before an interruption, and sharded across data-parallel ranks."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size = size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        usable = len(order) // self.world_size * self.world_size
        return order[self.rank : usable : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.skip :])

    def __len__(self) -> int:
        return max(0, self.size // self.world_size - self.skip)


class MixedDataset(Dataset):
    """Several training datasets served as one (e.g. real pairs plus pairs synthesised from
    photos); ``set_epoch`` reaches every part, so crops stay a function of (seed, epoch, index)."""

    def __init__(self, parts: Sequence[PairDataset]) -> None:
        self.parts = list(parts)
        self.names = [name for part in self.parts for name in part.names]

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        for part in self.parts:
            if index < len(part):
                return part[index]
            index -= len(part)
        raise IndexError(index)

    def float_pairs(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        lows: list[np.ndarray] = []
        highs: list[np.ndarray] = []
        for part in self.parts:
            part_lows, part_highs = part.float_pairs()
            lows += part_lows
            highs += part_highs
        return lows, highs


DISTILL_MAX_SIDE = 768
"""Unpaired photos are area-downscaled to at most this side before the teacher sees them: a
training crop needs no more, and a 4K photo's teacher pass would cost a dozen 512-px ones."""


class DistilledDataset(PairDataset):
    """Real dark photos without references, each paired with a teacher model's enhancement of it
    (distillation): more scenes and more real sensor noise than the pairs alone. The teacher
    runs once per photo, when the dataset is built; crops, flips and exposure jitter then work
    as for real pairs."""

    def __init__(
        self,
        photos: Sequence[Path],
        teacher: Callable[[np.ndarray], np.ndarray],
        patch: int,
        context_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        exposure_jitter: float = 1.0,
        darken: float = 1.0,
        max_side: int = DISTILL_MAX_SIDE,
    ) -> None:
        self._sampling(patch, context_fn, seed, True, 0.0, (exposure_jitter, darken))
        self.names = [p.stem for p in photos]
        self.lows, self.highs, self.contexts = [], [], []
        for path in photos:
            low = to_uint8(read_rgb(path))
            scale = max_side / max(low.shape[:2])
            if scale < 1:
                size = (max(1, round(low.shape[1] * scale)), max(1, round(low.shape[0] * scale)))
                low = cv2.resize(low, size, interpolation=cv2.INTER_AREA)
            self.lows.append(low)
            self.highs.append(to_uint8(teacher(low)))
            self.contexts.append(
                None if context_fn is None else whole_image_context(low, context_fn)[0].clone()
            )


def build_datasets(config: TrainConfig, spec: ArchSpec) -> tuple[Dataset, list]:
    """The training dataset and the validation source (pairs on disk or synthetic arrays)."""
    val: list = find_pairs(config.val) if config.val else []
    split = 0.0 if config.val else config.val_split  # a --val folder replaces the held-out share
    if config.synthesize:
        photos = find_photos(config.data)
        if split:
            photos, held_out = split_pairs(photos, split, config.seed)
            val = synthetic_validation(held_out, config.seed)
        dataset = SyntheticPairDataset(photos, config.patch, spec.context_fn, seed=config.seed)
    else:
        pairs = find_pairs(config.data)
        if split:
            pairs, val = split_pairs(pairs, split, config.seed)
        dataset = PairDataset(
            pairs,
            config.patch,
            spec.context_fn,
            seed=config.seed,
            identity_fraction=config.identity_fraction,
            exposure_jitter=config.exposure_jitter,
            darken=config.darken,
        )
    parts = [dataset]
    if config.photos:
        parts.append(
            SyntheticPairDataset(
                find_photos(config.photos), config.patch, spec.context_fn, seed=config.seed
            )
        )
    if config.unpaired:
        if not config.teacher:
            raise UserError("--unpaired needs --teacher: the weights whose output is the target")
        from llenhance.inference import load_enhancer

        teacher = load_enhancer(weights=config.teacher, device=config.device)
        parts.append(
            DistilledDataset(
                find_photos(config.unpaired),
                teacher,
                config.patch,
                spec.context_fn,
                seed=config.seed,
                exposure_jitter=config.exposure_jitter,
                darken=config.darken,
            )
        )
    elif config.teacher:
        raise UserError("--teacher needs --unpaired: the photos it makes targets for")
    if len(parts) > 1:
        dataset = MixedDataset(parts)
    if len(dataset) < config.batch_size:
        raise UserError(
            f"{config.data}: {len(dataset)} training items, "
            f"fewer than --batch-size {config.batch_size}"
        )
    return dataset, val
