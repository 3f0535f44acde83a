"""MIRNet (Zamir et al. 2020, "Learning Enriched Features for Real Image Restoration and
Enhancement"), small configuration.

3x3 conv in, ``groups`` recursive residual groups (each: ``blocks`` multi-scale residual blocks,
a 3x3 conv, and a shortcut over the group), 3x3 conv out; the output is
``clamp(input + predicted residual, 0, 1)``.

A multi-scale residual block (MRB) keeps three parallel streams at full, 1/2 and 1/4 resolution
(``channels``, ``channels * factor``, ``channels * factor^2`` feature maps). Each stream passes a
dual attention unit (DAU); every stream then receives the three streams resampled to its scale
and fused by selective kernel feature fusion (SKFF); a second DAU per stream follows; finally the
three streams are brought to full resolution, fused by one more SKFF, passed through a 1x1 conv
and added to the block input.

- DAU: 3x3 conv, PReLU, 3x3 conv, then channel attention and spatial attention (max and mean
  over channels, 5x5 conv, sigmoid) in parallel, concatenated, 1x1 conv, plus a shortcut.
- SKFF: the summed streams are squeezed, a 1x1 conv + PReLU gives a compact descriptor, one 1x1
  conv per stream gives attention logits, a softmax across streams weights their sum.

The paper's channel attention and SKFF squeeze with a global average pool; here both squeeze
with a LOCAL mean over ``pool`` x ``pool`` feature pixels (at every scale), which keeps the model
local so tiled inference equals untiled.

Resampling: down = 2x2 average pool then 1x1 conv (the paper uses an anti-aliased strided
residual unit), up = 1x1 conv then bilinear x2. Two down-samplings: inputs must be multiples of 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs.blocks import LocalChannelAttention, check_pool, conv3x3, local_mean
from llenhance.archs.registry import register_arch


class SpatialAttention(nn.Module):
    def __init__(self, kernel: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class DAU(nn.Module):
    """Dual attention unit: channel attention (local squeeze) and spatial attention."""

    def __init__(self, channels: int, reduction: int, pool: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(channels, channels), nn.PReLU(channels), conv3x3(channels, channels)
        )
        self.channel = LocalChannelAttention(channels, reduction, pool)
        self.spatial = SpatialAttention()
        # the paper's 1x1 conv over [channel, spatial] concatenated, split into its two halves
        self.fuse_channel = nn.Conv2d(channels, channels, 1)
        self.fuse_spatial = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return x + self.fuse_channel(self.channel(h)) + self.fuse_spatial(self.spatial(h))


class SKFF(nn.Module):
    """Selective kernel feature fusion of equally shaped inputs, with a local squeeze."""

    def __init__(self, channels: int, n_inputs: int, reduction: int, pool: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.pool = pool
        self.n_inputs = n_inputs
        # a 1x1 conv commutes with the box mean, so squeeze first and average the fewer maps
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.act = nn.PReLU(hidden)
        # the per-stream 1x1 convs of the paper, computed as one conv with n_inputs * C outputs
        self.select = nn.Conv2d(hidden, n_inputs * channels, 1)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        z = self.act(local_mean(self.squeeze(total), self.pool))
        logits = self.select(z)
        n, _, h, w = logits.shape
        if logits.is_contiguous(memory_format=torch.channels_last) and not logits.is_contiguous():
            # channels-last memory: softmax over the stream axis of an (N, H, W, streams, C) view
            nhwc = logits.permute(0, 2, 3, 1).view(n, h, w, self.n_inputs, -1)
            weights = torch.softmax(nhwc, dim=3).permute(0, 3, 4, 1, 2).unbind(dim=1)
        else:
            weights = torch.softmax(logits.view(n, self.n_inputs, -1, h, w), dim=1).unbind(dim=1)
        fused = inputs[0] * weights[0]
        for x, weight in zip(inputs[1:], weights[1:], strict=True):
            fused = torch.addcmul(fused, x, weight)
        return fused


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2, ceil_mode=True)


class Resample(nn.Module):
    """Move features from one scale to another (``steps`` > 0 down, < 0 up) and re-channel."""

    def __init__(self, c_in: int, c_out: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.proj = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.steps > 0:
            for _ in range(self.steps):
                x = _down(x)
            return self.proj(x)
        x = self.proj(x)
        if self.steps < 0:
            x = F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
        return x


class MRB(nn.Module):
    """Multi-scale residual block with three streams."""

    def __init__(self, widths: list[int], reduction: int, pool: int) -> None:
        super().__init__()
        n = len(widths)
        self.enter = nn.ModuleList(Resample(widths[i - 1], widths[i], 1) for i in range(1, n))
        self.dau1 = nn.ModuleList(DAU(c, reduction, pool) for c in widths)
        self.exchange = nn.ModuleList(
            nn.ModuleList(
                Resample(widths[src], widths[dst], dst - src) if src != dst else nn.Identity()
                for src in range(n)
            )
            for dst in range(n)
        )
        self.skff = nn.ModuleList(SKFF(c, n, reduction, pool) for c in widths)
        self.dau2 = nn.ModuleList(DAU(c, reduction, pool) for c in widths)
        self.leave = nn.ModuleList(
            Resample(widths[i], widths[0], -i) if i else nn.Identity() for i in range(n)
        )
        self.final = SKFF(widths[0], n, reduction, pool)
        self.out = nn.Conv2d(widths[0], widths[0], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # each scale is entered from the one above it (x -> 1/2 -> 1/4)
        streams = [x]
        for enter in self.enter:
            streams.append(enter(streams[-1], x))
        streams = [dau(s) for dau, s in zip(self.dau1, streams, strict=True)]
        mixed = []
        for dst, (row, skff) in enumerate(zip(self.exchange, self.skff, strict=True)):
            inputs = [
                s if src == dst else row[src](s, streams[dst]) for src, s in enumerate(streams)
            ]
            mixed.append(skff(inputs))
        streams = [dau(s) for dau, s in zip(self.dau2, mixed, strict=True)]
        full = [s if i == 0 else self.leave[i](s, x) for i, s in enumerate(streams)]
        return x + self.out(self.final(full))


class RRG(nn.Module):
    def __init__(self, widths: list[int], blocks: int, reduction: int, pool: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *(MRB(widths, reduction, pool) for _ in range(blocks)), conv3x3(widths[0], widths[0])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_arch(
    "mirnet",
    description="MIRNet: multi-scale residual blocks, dual attention, SKFF (local pooling)",
    multiple=4,
    receptive_field=247,
    tile=768,  # peak memory: benchmarks.speed
)
class MIRNet(nn.Module):
    def __init__(
        self,
        channels: int = 16,
        factor: float = 1.5,
        groups: int = 1,
        blocks: int = 2,
        reduction: int = 4,
        pool: int = 7,
    ) -> None:
        super().__init__()
        check_pool(pool)
        widths = [int(round(channels * factor**i)) for i in range(3)]
        self.head = conv3x3(3, channels)
        self.body = nn.Sequential(*(RRG(widths, blocks, reduction, pool) for _ in range(groups)))
        self.tail = conv3x3(channels, 3)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return (x + self.tail(self.body(self.head(x)))).clamp(0.0, 1.0)
