"""Small building blocks shared by several architectures."""

from __future__ import annotations

import torch
from torch import nn

from llenhance.archs.context import CONTEXT_FEATURES


class FiLM(nn.Module):
    """Feature-wise scale and shift predicted from the global context vector.

    Starts as the identity (last layer zero-initialised), so a net learns local detail first and
    leans on the global exposure estimate only as far as it helps.
    """

    def __init__(self, channels: list[int], hidden: int = 64) -> None:
        super().__init__()
        self.channels = list(channels)
        self.mlp = nn.Sequential(
            nn.Linear(CONTEXT_FEATURES, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 2 * sum(self.channels)),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One (scale, shift) pair per channel group, shaped (N, C, 1, 1)."""
        params = self.mlp(context)
        pairs = []
        start = 0
        for c in self.channels:
            scale = params[:, start : start + c, None, None]
            shift = params[:, start + c : start + 2 * c, None, None]
            pairs.append((1.0 + scale, shift))
            start += 2 * c
        return pairs


def conv3x3(c_in: int, c_out: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=bias)
