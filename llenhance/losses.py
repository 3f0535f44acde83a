"""Training losses, selectable by name and summable: ``l1``, ``mse``, ``charbonnier``, ``ssim``,
``tone``, ``color``, ``logl1`` and weighted sums such as ``l1+0.2*ssim+0.5*tone``."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from llenhance.archs.context import luminance
from llenhance.errors import UserError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Smooth L1 of MIRNet and friends: sqrt((x - y)^2 + eps^2)."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def _gaussian_window(
    channels: int, device: torch.device, dtype: torch.dtype, size: int = 11
) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-(coords**2) / (2 * (1.5 * size / 11) ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM with the same 11x11, sigma 1.5 Gaussian window as the evaluation metric (for
    patches under 11 pixels, the largest odd window that fits, as the metric does)."""
    c = pred.shape[1]
    side = min(pred.shape[-2:])
    window = _gaussian_window(c, pred.device, pred.dtype, min(11, side - (1 - side % 2)))

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=c)

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )
    return 1.0 - ssim_map.mean()


TONE_POOL = 4


def _sorted_tone(image: torch.Tensor) -> torch.Tensor:
    """Each image's luminance and chroma (max - min of RGB) values, sorted: (N, 2, K)."""
    small = F.avg_pool2d(image, TONE_POOL) if min(image.shape[-2:]) >= TONE_POOL else image
    luma = luminance(small)
    chroma = small.amax(dim=1) - small.amin(dim=1)
    return torch.stack([luma.flatten(1), chroma.flatten(1)], dim=1).sort(dim=-1).values


def tone_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distance between the luminance and chroma distributions of prediction and reference.

    Sorting makes it blind to where a value sits, so it only asks that black level, brightness,
    contrast and saturation match: the washed-out look (lifted blacks, pale colour, every scene
    at one brightness) costs here even where a per-pixel loss would rather hedge.
    """
    return F.l1_loss(_sorted_tone(pred), _sorted_tone(target))


def color_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine between predicted and reference RGB vectors: hue and colour cast, whatever
    the brightness."""
    return (1.0 - F.cosine_similarity(pred, target, dim=1, eps=1e-4)).mean()


LOG_FLOOR = 1.0 / 64
"""Added before the logarithm of :func:`log_l1_loss`: keeps the gradient in the deepest
shadows bounded, where sensor noise and 8-bit steps dominate."""


def log_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between logarithms: a relative error, so a lift of the blacks costs as much as the
    same ratio in the highlights. Plain L1 charges a shadow lifted from 0.02 to 0.05 as little
    as a highlight moved from 0.80 to 0.83, and a net that hedges in noisy shadows lifts them."""
    return F.l1_loss(torch.log(pred + LOG_FLOOR), torch.log(target + LOG_FLOOR))


LOSSES: dict[str, LossFn] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "charbonnier": charbonnier_loss,
    "ssim": ssim_loss,
    "tone": tone_loss,
    "color": color_loss,
    "logl1": log_l1_loss,
}


def parse_loss(spec: str) -> list[tuple[float, str]]:
    """``"l1+0.2*ssim"`` -> [(1.0, "l1"), (0.2, "ssim")]; unknown names are a user error."""
    terms = []
    for part in spec.replace(" ", "").split("+"):
        weight_text, _, name = part.rpartition("*")
        if name not in LOSSES:
            raise UserError(f"unknown loss '{name}' in '{spec}' (known: {', '.join(LOSSES)})")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise UserError(f"bad loss weight '{weight_text}' in '{spec}'") from None
        terms.append((weight, name))
    return terms


def build_loss(spec: str) -> LossFn:
    """A callable summing the weighted terms named in ``spec``."""
    terms = parse_loss(spec)

    def total(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(weight * LOSSES[name](pred, target) for weight, name in terms)

    return total
