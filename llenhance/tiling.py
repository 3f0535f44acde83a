"""Run any registered image-to-image model over an image of any size with overlapping tiles.

Tiles sit on the grid of the model's required multiple and edges are padded exactly as the
untiled run pads them, so each tile sees what the whole-image run sees. In each overlap, the
pixels nearest a tile's edge (which lack context there) are dropped, and the two tiles are
cross-faded over the middle of the overlap only, so tiled and untiled output agree. Working
memory is bounded by the tile (the input and output arrays are held whole).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from llenhance.archs import ArchSpec
from llenhance.archs.context import whole_image_context
from llenhance.errors import UserError
from llenhance.images import to_float, to_uint8, to_uint16

DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 96
SEAM_FRACTION = 0.2
"""Share of the overlap (its middle) over which neighbouring tiles are cross-faded."""

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
    """1-D blending weights on sides with a neighbour: zero over the outer part of the
    ``overlap``, a raised cosine over its middle SEAM_FRACTION, one beyond. Mirrored ramps of two
    neighbours sum to one, and every kept pixel is at least 40 % of the overlap from an edge."""
    w = np.ones(length, dtype=np.float32)
    n = min(overlap, length // 2)
    drop = (n - max(1, round(n * SEAM_FRACTION))) // 2
    seam = n - 2 * drop  # centred in the overlap, so a neighbour's mirrored ramp complements it
    if n > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(seam, dtype=np.float32) + 0.5) / seam)
        ramp = np.concatenate([np.zeros(drop, np.float32), rise, np.ones(drop, np.float32)])
        if before:
            w[:n] = ramp
        if after:
            w[length - n :] = ramp[::-1]
    return w


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _to_batch(tiles: list[np.ndarray], device: torch.device) -> torch.Tensor:
    batch = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).to(device)
    return batch.contiguous(memory_format=torch.channels_last)


def _even_tile(padded: int, tile: int, multiple: int, overlap: int) -> int:
    """The smallest tile (at most ``tile``) that covers ``padded`` with as few tiles as ``tile``
    needs: the tiles share the length evenly instead of the last one overlapping most."""
    if tile >= padded:
        return padded
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    count = -(-(padded - overlap) // stride)
    return min(tile, _round_up(-(-(padded - overlap) // count) + overlap, multiple))


def _tile_windows(
    height: int, width: int, spec: ArchSpec, tile: int, overlap: int
) -> Iterator[tuple[int, int, int, int]]:
    multiple = spec.multiple
    padded_h, padded_w = _round_up(height, multiple), _round_up(width, multiple)
    tile_h = _even_tile(padded_h, tile, multiple, overlap)
    tile_w = _even_tile(padded_w, tile, multiple, overlap)
    for y in _starts(padded_h, tile_h, multiple, overlap):
        for x in _starts(padded_w, tile_w, multiple, overlap):
            yield y, x, tile_h, tile_w


def default_tile(spec: ArchSpec) -> int:
    """The architecture's own default tile if it declares one (to bound memory), else
    DEFAULT_TILE."""
    return spec.tile if spec.tile is not None else DEFAULT_TILE


def default_overlap(spec: ArchSpec) -> int:
    """The architecture's measured overlap if it declares one, else half its receptive field;
    on its size grid, and at least DEFAULT_OVERLAP."""
    wanted = spec.overlap if spec.overlap is not None else -(-spec.receptive_field // 2)
    return max(DEFAULT_OVERLAP, _round_up(wanted, spec.multiple))


def count_tiles(
    height: int, width: int, spec: ArchSpec, tile: int, overlap: int | None = None
) -> int:
    overlap = default_overlap(spec) if overlap is None else overlap
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


def _quantizer(out_dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    if out_dtype == np.uint8:
        return to_uint8
    if out_dtype == np.uint16:
        return to_uint16
    if out_dtype == np.float32:
        return lambda x: x
    raise ValueError(f"out_dtype must be float32, uint8 or uint16, not {out_dtype}")


@torch.inference_mode()
def enhance_array(
    model: nn.Module,
    image: np.ndarray,
    spec: ArchSpec,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_tiles: int = 1,
    amp: bool = False,
    out_dtype: type[np.generic] = np.float32,
    progress: TileProgress | None = None,
) -> np.ndarray:
    """Enhance ``image`` (HxWx3: float32 in [0, 1], uint8 or uint16) with ``model``.

    ``tile=0`` runs the whole image at once, ``tile=None`` takes :func:`default_tile`;
    ``overlap=None`` takes :func:`default_overlap`.
    The result has exactly the input's size and ``out_dtype`` (float32 in [0, 1], or quantised
    uint8/uint16). Tiles are processed row by row
    and each finished band of rows is quantised into the output at once, so besides input and
    output only one band of float accumulators is held. ``model`` must already be on its
    device, in eval mode.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    height, width = image.shape[:2]
    device = next(model.parameters()).device
    tile = _effective_tile(height, width, spec, default_tile(spec) if tile is None else tile)
    overlap = default_overlap(spec) if overlap is None else overlap
    context = None
    if spec.context_fn is not None:
        context = whole_image_context(image, spec.context_fn).to(device)
    windows = list(_tile_windows(height, width, spec, tile, overlap))
    ys = sorted({y for y, _, _, _ in windows})
    xs = sorted({x for _, x, _, _ in windows})
    quantize = _quantizer(np.dtype(out_dtype))
    out = np.empty((height, width, 3), dtype=out_dtype)

    def tile_input(y: int, x: int, th: int, tw: int) -> np.ndarray:
        region = to_float(image[y : min(y + th, height), x : min(x + tw, width)])
        pad_h, pad_w = th - region.shape[0], tw - region.shape[1]
        if pad_h or pad_w:
            region = np.pad(region, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return region

    band_top = 0  # first output row not yet final
    acc = np.zeros((0, width, 3), np.float32)
    weight = np.zeros((0, width, 1), np.float32)
    done = 0
    for row, y in enumerate(ys):
        row_windows = [w for w in windows if w[0] == y]
        th = row_windows[0][2]
        bottom = min(y + th, height)
        if bottom - band_top > acc.shape[0]:
            grow = bottom - band_top - acc.shape[0]
            acc = np.concatenate([acc, np.zeros((grow, width, 3), np.float32)])
            weight = np.concatenate([weight, np.zeros((grow, width, 1), np.float32)])
        wy = _ramp(th, overlap, before=row > 0, after=row < len(ys) - 1)[: bottom - y]
        for first in range(0, len(row_windows), max(1, batch_tiles)):
            group = row_windows[first : first + max(1, batch_tiles)]
            batch = _to_batch([tile_input(*w) for w in group], device)
            ctx = None if context is None else context.expand(len(group), -1)
            with _autocast(device, amp):
                result = spec.run(model, batch, ctx)
            result = result.float().clamp_(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            for res, (_, x, _, tw) in zip(result, group, strict=True):
                right = min(x + tw, width)
                wx = _ramp(tw, overlap, before=x > xs[0], after=x < xs[-1])[: right - x]
                window = (wy[:, None] * wx[None, :])[..., None]
                acc[y - band_top : bottom - band_top, x:right] += (
                    res[: bottom - y, : right - x] * window
                )
                weight[y - band_top : bottom - band_top, x:right] += window
            done += len(group)
            if progress is not None:
                progress(done, len(windows))
        final = (ys[row + 1] if row + 1 < len(ys) else height) - band_top
        out[band_top : band_top + final] = quantize(acc[:final] / weight[:final])
        acc, weight = acc[final:].copy(), weight[final:].copy()
        band_top += final
    return out


def suggest_tile(free_bytes: int, spec: ArchSpec, bytes_per_pixel: int = 2048) -> int:
    """The largest tile (multiple of the model's grid) whose activations fit in ``free_bytes``.

    ``bytes_per_pixel`` is a conservative estimate of activation memory per input pixel.
    """
    side = int(math.sqrt(max(free_bytes, 0) / bytes_per_pixel))
    return max(2 * spec.multiple, side // spec.multiple * spec.multiple)
