"""SE-ResNet ("Low-Light Image Denoising with Residual Learning" write-up).

A constant-resolution residual network: a 3x3 head, a chain of squeeze-and-excitation residual
blocks (3x3 conv, LeakyReLU, 3x3 conv, SE reweighting, identity shortcut), a long skip over the
chain, and a 3x3 tail that predicts the low-to-reference difference; the output is
``clamp(input + residual, 0, 1)``.

Squeeze-and-excitation normally squeezes with a global average pool, which would make every
output pixel depend on the whole image and break tiled inference. Here the squeeze is a LOCAL
mean: a stride-1 ``pool``-wide box average (``count_include_pad=False``), so a pixel's channel
weights come from its ``pool``-pixel neighbourhood only. :func:`local_mean` and
:class:`LocalChannelAttention` live in :mod:`llenhance.archs.blocks`, shared with CGNet and MIRNet.
"""

from __future__ import annotations

import torch
from torch import nn

from llenhance.archs.blocks import LocalChannelAttention, check_pool, conv3x3
from llenhance.archs.registry import register_arch


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


@register_arch(
    "se-resnet",
    description="residual learning with local squeeze-excitation blocks, LeakyReLU, full res",
    multiple=1,
    receptive_field=115,
    tile=768,  # peak memory: benchmarks.speed
)
class SEResNet(nn.Module):
    def __init__(
        self,
        channels: int = 32,
        blocks: int = 6,
        reduction: int = 4,
        pool: int = 15,
        slope: float = 0.2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        check_pool(pool)
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
