"""DnCNN (Zhang et al. 2017, "Beyond a Gaussian Denoiser").

``depth`` 3x3 convolutions at one resolution: conv + ReLU, then ``depth - 2`` conv + BN + ReLU,
then a conv back to 3 channels. Residual learning: the network predicts a correction that is
added to the input (the original subtracts a noise estimate; for low light the correction must
also brighten, so it is added), and the result is clamped to [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from llenhance.archs.blocks import conv3x3
from llenhance.archs.registry import register_arch
from llenhance.errors import UserError


@register_arch(
    "dncnn",
    description="DnCNN: 17 conv+BN+ReLU layers predicting a residual added to the input",
    multiple=1,
    receptive_field=35,
)
class DnCNN(nn.Module):
    def __init__(self, depth: int = 17, channels: int = 32) -> None:
        super().__init__()
        if depth < 2:
            raise UserError(f"dncnn depth must be at least 2, got {depth}")
        layers: list[nn.Module] = [conv3x3(3, channels), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                conv3x3(channels, channels, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        layers.append(conv3x3(channels, 3))
        self.body = nn.Sequential(*layers)
        self.receptive_field = 2 * depth + 1

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return (x + self.body(x)).clamp(0.0, 1.0)
