"""Global exposure statistics of a whole image, shared by every tile of it.

A network that sees a 256-pixel tile cannot judge whether the whole scene is dark; these few
numbers, computed once per image from a small thumbnail, give it that judgement while keeping
tiled and untiled output identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

THUMBNAIL_SIDE = 64
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
CONTEXT_FEATURES = 3 + 2 + len(QUANTILES)
_LUMA = (0.299, 0.587, 0.114)


def global_context(image: torch.Tensor) -> torch.Tensor:
    """Exposure statistics of ``image`` (N, 3, H, W in [0, 1]) as an (N, CONTEXT_FEATURES) tensor.

    Per-channel means, log-mean and standard deviation of luminance, and luminance quantiles,
    all measured on an area-averaged thumbnail of at most THUMBNAIL_SIDE pixels a side.
    """
    n, _, h, w = image.shape
    thumb = F.adaptive_avg_pool2d(image.float(), (min(h, THUMBNAIL_SIDE), min(w, THUMBNAIL_SIDE)))
    weights = thumb.new_tensor(_LUMA).view(1, 3, 1, 1)
    luma = (thumb * weights).sum(dim=1).flatten(1)
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
