"""Global exposure statistics of a whole image, shared by every tile of it.

A network that sees a 256-pixel tile cannot judge whether the whole scene is dark; these few
numbers, computed once per image from a small thumbnail, give it that judgement while keeping
tiled and untiled output identical.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from llenhance.pixels import LUMA, RowSource, shrink, to_float

THUMBNAIL_SIDE = 64
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
CONTEXT_FEATURES = 3 + 2 + len(QUANTILES)


def luminance(image: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Rec. 601 luma of an (N, 3, H, W) tensor: the one brightness measure, as :data:`LUMA` is
    for numpy arrays."""
    return (image * image.new_tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=keepdim)


def global_context(image: torch.Tensor) -> torch.Tensor:
    """Exposure statistics of ``image`` (N, 3, H, W in [0, 1]) as an (N, CONTEXT_FEATURES) tensor.

    Per-channel means, log-mean and standard deviation of luminance, and luminance quantiles,
    all measured on an area-averaged thumbnail of at most THUMBNAIL_SIDE pixels a side.
    """
    n, _, h, w = image.shape
    thumb = F.adaptive_avg_pool2d(image.float(), (min(h, THUMBNAIL_SIDE), min(w, THUMBNAIL_SIDE)))
    luma = luminance(thumb).flatten(1)
    quantiles = torch.quantile(luma, luma.new_tensor(QUANTILES), dim=1).T
    return torch.cat(
        [
            thumb.mean(dim=(2, 3)),
            torch.log(luma + 1e-3).mean(dim=1, keepdim=True),
            luma.std(dim=1, unbiased=False, keepdim=True),
            quantiles,
        ],
        dim=1,
    )


CONTEXT_INPUT_SIDE = 1024


def whole_image_context(
    image: RowSource, context_fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``context_fn`` of an HxWx3 image (uint8, uint16 or float in [0, 1]; an array or any
    :class:`~llenhance.pixels.RowSource`) as a (1, K) tensor.

    Images larger than CONTEXT_INPUT_SIDE are first box-averaged band by band by a whole factor
    (so a photo of any size is never held as floats, nor whole) and then area-downscaled with
    OpenCV; smaller ones (all training images) are used as they are.
    """
    # never by more than the short side: a 1x2048 photo is shrunk to 1x1024, not to nothing
    factor = min(max(image.shape[:2]) // CONTEXT_INPUT_SIDE, min(image.shape[:2]))
    small = shrink(image, max(1, factor))
    height, width = small.shape[:2]
    scale = CONTEXT_INPUT_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    tensor = torch.from_numpy(np.ascontiguousarray(to_float(small))).permute(2, 0, 1)
    with torch.inference_mode():
        return context_fn(tensor[None])
