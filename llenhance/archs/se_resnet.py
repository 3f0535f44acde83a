"""SE-ResNet ("Low-Light Image Denoising with Residual Learning" write-up).

A constant-resolution residual network: a 3x3 head, a chain of squeeze-and-excitation residual
blocks (3x3 conv, LeakyReLU, 3x3 conv, SE reweighting, identity shortcut), a long skip over the
chain, and a 3x3 tail that predicts the low-to-reference difference; the output is
``clamp(input + residual, 0, 1)``.

Squeeze-and-excitation normally squeezes with a global average pool, which would make every
output pixel depend on the whole image and break tiled inference. Here the squeeze is a LOCAL
mean: a stride-1 ``pool``-wide box average (``count_include_pad=False``), so a pixel's channel
weights come from its ``pool``-pixel neighbourhood only. :func:`local_mean` and
:class:`LocalChannelAttention` are reused by the CGNet and MIRNet modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs.blocks import conv3x3
from llenhance.archs.registry import register_arch
from llenhance.errors import UserError


def check_pool(pool: int, key: str = "pool") -> int:
    """A local pool window must be a positive odd width (so the output keeps its size)."""
    if pool < 1 or pool % 2 == 0:
        raise UserError(f"{key} must be a positive odd number of pixels, got {pool}")
    return pool


def _window_sums(padded: torch.Tensor, dim: int, kernel: int, size: int) -> torch.Tensor:
    """``out[i] = padded[i] + ... + padded[i + kernel - 1]`` along ``dim``, for i < ``size``.

    Built from power-of-two partial sums (about 2 log2(kernel) tensor additions). Every output
    is summed in the same order wherever it sits, so a crop of the image gives bit-identical
    interior values (needed for tiled inference to match untiled).
    """
    result = None
    offset = 0
    block, width = padded, 1  # block[i] = padded[i] + ... + padded[i + width - 1]
    while kernel:
        if kernel & 1:
            part = block.narrow(dim, offset, size)
            result = part if result is None else result + part
            offset += width
        kernel >>= 1
        if kernel:
            length = block.shape[dim] - width
            block = block.narrow(dim, 0, length) + block.narrow(dim, width, length)
            width *= 2
    assert result is not None
    return result


def _window_counts(size: int, kernel: int, like: torch.Tensor) -> torch.Tensor:
    i = torch.arange(size, device=like.device)
    half = kernel // 2
    return ((i + half).clamp(max=size - 1) - (i - half).clamp(min=0) + 1).to(like.dtype)


def local_mean(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Mean over a ``kernel`` x ``kernel`` window centred on each pixel, same size as ``x``.

    Equal to ``avg_pool2d(x, kernel, stride=1, padding=kernel // 2, count_include_pad=False)``:
    windows are clipped at the image border and averaged over the pixels actually inside. It is
    computed separably with shifted additions, several times faster on CPU than avg_pool2d.
    """
    if kernel <= 1:
        return x
    half = kernel // 2
    h, w = x.shape[-2:]
    sums = _window_sums(F.pad(x, (half, half, 0, 0)), 3, kernel, w)
    sums = _window_sums(F.pad(sums, (0, 0, half, half)), 2, kernel, h)
    counts = _window_counts(h, kernel, x)[:, None] * _window_counts(w, kernel, x)[None, :]
    return sums / counts


class LocalChannelAttention(nn.Module):
    """Squeeze-and-excitation / channel attention with a local instead of a global squeeze.

    ``x * sigmoid(W2 act(W1 local_mean(x)))``. Since ``W1`` is a 1x1 convolution it commutes
    with the box mean, so the mean is taken on the reduced ``channels // reduction`` maps
    (cheaper, mathematically identical).
    """

    def __init__(
        self, channels: int, reduction: int = 4, pool: int = 15, act: nn.Module | None = None
    ) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.pool = check_pool(pool)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.act = act if act is not None else nn.ReLU(inplace=True)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.excite(self.act(local_mean(self.squeeze(x), self.pool))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class SEResBlock(nn.Module):
    def __init__(
        self, channels: int, reduction: int, pool: int, slope: float, batch_norm: bool
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv3x3(channels, channels, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers += [nn.LeakyReLU(slope, inplace=True), conv3x3(channels, channels)]
        self.body = nn.Sequential(*layers)
        self.se = LocalChannelAttention(
            channels, reduction, pool, act=nn.LeakyReLU(slope, inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se(self.body(x))


class SEResNet(nn.Module):
    def __init__(
        self,
        channels: int,
        blocks: int,
        reduction: int,
        pool: int,
        slope: float,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        self.head = nn.Sequential(conv3x3(3, channels), nn.LeakyReLU(slope, inplace=True))
        self.body = nn.Sequential(
            *(SEResBlock(channels, reduction, pool, slope, batch_norm) for _ in range(blocks)),
            conv3x3(channels, channels),
        )
        self.tail = conv3x3(channels, 3)
        # 3x3 head, two 3x3 convs + a pool-wide mean per block, 3x3 body end, 3x3 tail.
        self.receptive_field = 1 + 2 + blocks * (4 + pool - 1) + 2 + 2

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.head(x)
        h = h + self.body(h)
        return (x + self.tail(h)).clamp(0.0, 1.0)


@register_arch(
    "se-resnet",
    description="residual learning with local squeeze-excitation blocks, LeakyReLU, full res",
    multiple=1,
    receptive_field=115,
)
def se_resnet(
    channels: int = 32,
    blocks: int = 6,
    reduction: int = 4,
    pool: int = 15,
    slope: float = 0.2,
    batch_norm: bool = False,
) -> nn.Module:
    return SEResNet(channels, blocks, reduction, check_pool(pool), slope, batch_norm)
