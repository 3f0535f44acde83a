"""Run any registered image-to-image model over an image of any size with overlapping tiles.

Tiles sit on the grid of the model's required multiple and edges are padded exactly as the
untiled run pads them, so each tile sees what the whole-image run sees. In each overlap, the
pixels nearest a tile's edge (which lack context there) are dropped, and the two tiles are
cross-faded over the middle of the overlap only, so tiled and untiled output agree. The input
is read and the output produced one band of rows at a time (:func:`enhance_bands`), so working
memory is bounded by the tile and the image's width, never by its height.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from llenhance.archs import ArchSpec
from llenhance.archs.context import whole_image_context
from llenhance.defaults import DEFAULT_TILE
from llenhance.errors import UserError
from llenhance.exposure import apply_exposure, check_exposure
from llenhance.pixels import RowSource, to_float, to_uint8, to_uint16

DEFAULT_OVERLAP = 96
SEAM_FRACTION = 0.2
"""Share of the overlap (its middle) over which neighbouring tiles are cross-faded."""
BAND_MEGAPIXELS = 16.0
"""Most pixels in one image-wide row of tiles. The input band, the float accumulator and the
finished rows cost about 20 (8-bit) to 30 (16-bit) bytes per pixel of that band, so on photos
wider than BAND_MEGAPIXELS / tile (15625 px for 1024-px tiles) the tiles get shorter, never
narrower, and memory stays bounded whatever the width."""

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


def _tile_grid(
    height: int, width: int, spec: ArchSpec, tile: int, overlap: int
) -> tuple[list[int], list[int], int, int]:
    """(row origins, column origins, tile height, tile width): tile (y, x) for every pair.
    Tiles are shorter than ``tile`` where a row of them would pass BAND_MEGAPIXELS (never
    under twice the overlap, so a row of tiles still moves on by more than it overlaps)."""
    multiple = spec.multiple
    padded_h, padded_w = _round_up(height, multiple), _round_up(width, multiple)
    tall = tile
    if tile < padded_w:  # tiled across: a whole-image run (tile 0) is left as asked
        band_rows = int(BAND_MEGAPIXELS * 1e6 / padded_w) // multiple * multiple
        tall = min(tile, max(band_rows, _round_up(2 * overlap + multiple, multiple)))
    tile_h = _even_tile(padded_h, tall, multiple, overlap)
    tile_w = _even_tile(padded_w, tile, multiple, overlap)
    ys = _starts(padded_h, tile_h, multiple, overlap)
    return ys, _starts(padded_w, tile_w, multiple, overlap), tile_h, tile_w


def _tile_windows(
    height: int, width: int, spec: ArchSpec, tile: int, overlap: int
) -> Iterator[tuple[int, int, int, int]]:
    ys, xs, tile_h, tile_w = _tile_grid(height, width, spec, tile, overlap)
    for y in ys:
        for x in xs:
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
    ys, xs, _, _ = _tile_grid(height, width, spec, tile, overlap)
    return len(ys) * len(xs)


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
        return functools.partial(to_uint8, in_place=True)  # the accumulator is scratch by then
    if out_dtype == np.uint16:
        return functools.partial(to_uint16, in_place=True)
    if out_dtype == np.float32:
        return np.copy  # the accumulator it comes from is reused
    raise ValueError(f"out_dtype must be float32, uint8 or uint16, not {out_dtype}")


@torch.inference_mode()
def enhance_bands(
    model: nn.Module,
    image: RowSource,
    spec: ArchSpec,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_tiles: int = 1,
    amp: bool = False,
    out_dtype: type[np.generic] = np.float32,
    progress: TileProgress | None = None,
    exposure: float = 0.0,
) -> Iterator[tuple[int, np.ndarray]]:
    """Enhance ``image`` tile row by tile row, yielding ``(top, band)``: finished output rows in
    order, so a streaming encoder can write them at once.

    ``image`` is HxWx3 (float32 in [0, 1], uint8 or uint16) and is read one band of rows per tile
    row. Besides that band, memory holds one tile-high, image-wide float accumulator, whatever
    the image's height. ``exposure`` (stops) moves the result's brightness
    (:func:`~llenhance.exposure.apply_exposure`). Other options as in :func:`enhance_array`.
    """
    exposure = check_exposure(exposure)
    if len(image.shape) != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    height, width = image.shape[:2]
    device = next(model.parameters()).device
    tile = _effective_tile(height, width, spec, default_tile(spec) if tile is None else tile)
    overlap = default_overlap(spec) if overlap is None else overlap
    context = None
    if spec.context_fn is not None:
        context = whole_image_context(image, spec.context_fn).to(device)
    ys, xs, tile_h, tile_w = _tile_grid(height, width, spec, tile, overlap)
    quantize = _quantizer(np.dtype(out_dtype))

    # A tile's blend weight is wy(row) * wx(column), so the total over all tiles is
    # row_total(y) * col_total(x): two vectors instead of an image-sized weight array.
    col_ramps = {
        x: _ramp(tile_w, overlap, before=x > xs[0], after=x < xs[-1])[: min(x + tile_w, width) - x]
        for x in xs
    }
    col_total = np.zeros(width, np.float32)
    for x, ramp in col_ramps.items():
        col_total[x : x + len(ramp)] += ramp

    def tile_input(band: np.ndarray, x: int) -> np.ndarray:
        region = to_float(band[:, x : min(x + tile_w, width)])
        pad_h, pad_w = tile_h - region.shape[0], tile_w - region.shape[1]
        if pad_h or pad_w:
            region = np.pad(region, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        return region

    band_top = 0  # first output row not yet final; acc[i] accumulates row band_top + i
    acc = np.zeros((min(tile_h, height), width, 3), np.float32)
    row_total = np.zeros(len(acc), np.float32)  # row_total[i] is that of row band_top + i
    done = 0
    for row, y in enumerate(ys):
        bottom = min(y + tile_h, height)
        band = np.asarray(image[y:bottom])
        wy = _ramp(tile_h, overlap, before=row > 0, after=row < len(ys) - 1)[: bottom - y]
        row_total[y - band_top : bottom - band_top] += wy
        lines = acc[y - band_top : bottom - band_top]
        for first in range(0, len(xs), max(1, batch_tiles)):
            group = xs[first : first + max(1, batch_tiles)]
            batch = _to_batch([tile_input(band, x) for x in group], device)
            ctx = None if context is None else context.expand(len(group), -1)
            with _autocast(device, amp):
                result = spec.run(model, batch, ctx)
            result = result.float().clamp_(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            for res, x in zip(result, group, strict=True):
                wx = col_ramps[x]
                right = x + len(wx)
                lines[:, x:right] += (
                    res[: bottom - y, : right - x] * wy[:, None, None] * wx[None, :, None]
                )
            done += len(group)
            if progress is not None:
                progress(done, len(ys) * len(xs))
        del band
        final = (ys[row + 1] if row + 1 < len(ys) else height) - band_top
        finished = acc[:final]
        finished /= row_total[:final, None, None]
        finished /= col_total[None, :, None]
        yield band_top, quantize(apply_exposure(finished, exposure))
        carry = bottom - band_top - final  # rows the next tile row still blends into
        acc[:carry] = acc[final : final + carry]
        acc[carry:] = 0
        row_total[:carry] = row_total[final : final + carry]
        row_total[carry:] = 0
        band_top += final


def enhance_array(
    model: nn.Module,
    image: RowSource,
    spec: ArchSpec,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_tiles: int = 1,
    amp: bool = False,
    out_dtype: type[np.generic] = np.float32,
    progress: TileProgress | None = None,
    exposure: float = 0.0,
) -> np.ndarray:
    """Enhance ``image`` (HxWx3: float32 in [0, 1], uint8 or uint16) with ``model``.

    ``tile=0`` runs the whole image at once, ``tile=None`` takes :func:`default_tile`;
    ``overlap=None`` takes :func:`default_overlap`.
    The result has exactly the input's size and ``out_dtype`` (float32 in [0, 1], or quantised
    uint8/uint16); it is assembled from :func:`enhance_bands`. ``model`` must already be on its
    device, in eval mode.
    """
    return assemble(
        enhance_bands(
            model,
            image,
            spec,
            tile=tile,
            overlap=overlap,
            batch_tiles=batch_tiles,
            amp=amp,
            out_dtype=out_dtype,
            progress=progress,
            exposure=exposure,
        ),
        image.shape,
    )


def assemble(bands: Iterable[tuple[int, np.ndarray]], shape: tuple[int, ...]) -> np.ndarray:
    """One array of ``shape`` (HxWx3) from ``(top, rows)`` bands that cover it."""
    out: np.ndarray | None = None
    for top, rows in bands:
        if out is None:
            out = np.empty((shape[0], shape[1], 3), dtype=rows.dtype)
        out[top : top + len(rows)] = rows
    if out is None:
        raise ValueError("no bands to assemble")
    return out


def suggest_tile(free_bytes: int, spec: ArchSpec, bytes_per_pixel: int = 2048) -> int:
    """The largest tile (multiple of the model's grid) whose activations fit in ``free_bytes``.

    ``bytes_per_pixel`` is a conservative estimate of activation memory per input pixel.
    """
    side = int(math.sqrt(max(free_bytes, 0) / bytes_per_pixel))
    return max(2 * spec.multiple, side // spec.multiple * spec.multiple)
