"""Small building blocks shared by several architectures."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs.context import CONTEXT_FEATURES
from llenhance.errors import UserError


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
