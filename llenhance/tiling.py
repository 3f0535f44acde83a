"""Run any registered image-to-image model over an image of any size with overlapping tiles.

Tiles sit on the grid of the model's required multiple and edges are padded exactly as the
untiled run pads them, so each tile sees what the whole-image run sees; overlaps are blended
with a raised-cosine window, so tiled and untiled output agree. Memory is bounded by the tile.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs import ArchSpec
from llenhance.errors import UserError

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 64

TileProgress = Callable[[int, int], None]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _starts(padded: int, tile: int, multiple: int, overlap: int) -> list[int]:
    """Tile origins along one axis, all on the ``multiple`` grid, covering [0, padded)."""
    if tile >= padded:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, padded - tile, stride))
    starts.append(padded - tile)
    return starts


def _ramp(length: int, overlap: int, before: bool, after: bool) -> np.ndarray:
    """1-D blending weights: a raised cosine over ``overlap`` pixels on sides with a neighbour."""
    w = np.ones(length, dtype=np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n, dtype=np.float32) + 0.5) / n)
        if before:
            w[:n] = rise
        if after:
            w[length - n :] = rise[::-1]
    return w


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _to_batch(tiles: list[np.ndarray], device: torch.device) -> torch.Tensor:
    batch = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).to(device)
    return batch.contiguous(memory_format=torch.channels_last)


def _tile_windows(
    height: int, width: int, spec: ArchSpec, tile: int, overlap: int
) -> Iterator[tuple[int, int, int, int]]:
    multiple = spec.multiple
    padded_h, padded_w = _round_up(height, multiple), _round_up(width, multiple)
    tile_h = min(padded_h, tile)
    tile_w = min(padded_w, tile)
    for y in _starts(padded_h, tile_h, multiple, overlap):
        for x in _starts(padded_w, tile_w, multiple, overlap):
            yield y, x, tile_h, tile_w


def count_tiles(height: int, width: int, spec: ArchSpec, tile: int, overlap: int) -> int:
    tile = _effective_tile(height, width, spec, tile)
    return sum(1 for _ in _tile_windows(height, width, spec, tile, overlap))


def _effective_tile(height: int, width: int, spec: ArchSpec, tile: int) -> int:
    whole = max(_round_up(height, spec.multiple), _round_up(width, spec.multiple))
    if tile <= 0:
        return whole
    if tile < 2 * spec.multiple:
        raise UserError(f"--tile {tile} is too small for {spec.name} (minimum {2 * spec.multiple})")
    if not spec.tileable and tile < whole:
        raise UserError(f"{spec.name} cannot be tiled: its output depends on the whole image")
    return min(tile // spec.multiple * spec.multiple, whole)


def image_context(image: np.ndarray, spec: ArchSpec, device: torch.device) -> torch.Tensor | None:
    """The architecture's whole-image context, computed once and shared by every tile."""
    if spec.context_fn is None:
        return None
    full = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return spec.context_fn(full).to(device)


@torch.inference_mode()
def enhance_array(
    model: nn.Module,
    image: np.ndarray,
    spec: ArchSpec,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch_tiles: int = 1,
    amp: bool = False,
    progress: TileProgress | None = None,
) -> np.ndarray:
    """Enhance ``image`` (HxWx3 float32 in [0, 1]) with ``model``; ``tile=0`` runs it whole.

    The result has exactly the input's size. ``model`` must already be on its device, in eval mode.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    device = next(model.parameters()).device
    tile = _effective_tile(height, width, spec, tile)
    context = image_context(image, spec, device)
    windows = list(_tile_windows(height, width, spec, tile, overlap))

    out = np.zeros((height, width, 3), dtype=np.float32)
    weight = np.zeros((height, width, 1), dtype=np.float32) if len(windows) > 1 else None
    ys = sorted({y for y, _, _, _ in windows})
    xs = sorted({x for _, x, _, _ in windows})

    def tile_input(y: int, x: int, th: int, tw: int) -> np.ndarray:
        region = image[y : min(y + th, height), x : min(x + tw, width)]
        pad_h, pad_w = th - region.shape[0], tw - region.shape[1]
        if pad_h or pad_w:
            region = np.pad(region, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return region

    def place(result: np.ndarray, y: int, x: int, th: int, tw: int) -> None:
        h, w = min(th, height - y), min(tw, width - x)
        if weight is None:
            out[:h, :w] = result[:h, :w]
            return
        wy = _ramp(th, overlap, before=y > ys[0], after=y < ys[-1])[:h]
        wx = _ramp(tw, overlap, before=x > xs[0], after=x < xs[-1])[:w]
        window = (wy[:, None] * wx[None, :])[..., None]
        out[y : y + h, x : x + w] += result[:h, :w] * window
        weight[y : y + h, x : x + w] += window

    batch_tiles = max(1, batch_tiles)
    done = 0
    for first in range(0, len(windows), batch_tiles):
        group = windows[first : first + batch_tiles]
        batch = _to_batch([tile_input(*w) for w in group], device)
        ctx = None if context is None else context.expand(len(group), -1)
        with _autocast(device, amp):
            result = spec.run(model, batch, ctx)
        result = result.float().clamp_(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        for res, win in zip(result, group, strict=True):
            place(res, *win)
        done += len(group)
        if progress is not None:
            progress(done, len(windows))
    if weight is not None:
        out /= weight
    return out


def suggest_tile(free_bytes: int, spec: ArchSpec, bytes_per_pixel: int = 2048) -> int:
    """The largest tile (multiple of the model's grid) whose activations fit in ``free_bytes``.

    ``bytes_per_pixel`` is a conservative estimate of activation memory per input pixel.
    """
    side = int(math.sqrt(max(free_bytes, 0) / bytes_per_pixel))
    return max(2 * spec.multiple, side // spec.multiple * spec.multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Edge-pad an NCHW tensor at the bottom and right to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = _round_up(h, multiple) - h, _round_up(w, multiple) - w
    if not pad_h and not pad_w:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
