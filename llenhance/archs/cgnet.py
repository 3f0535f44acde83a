"""CGNet (Wu et al. 2018, "CGNet: A Light-weight Context Guided Network") as an image-to-image net.

Encoder as in the paper: stage 1 is three 3x3 conv + BN + PReLU layers (the first with stride 2);
stages 2 and 3 each start with a stride-2 context-guided (CG) block followed by ``blocks2`` - 1
and ``blocks3`` - 1 CG blocks with surrounding-context dilation ``dilation2`` and ``dilation3``;
the down-sampled input image is injected (concatenated) after stages 1 and 2, and the first and
last block outputs of a stage are concatenated, each concatenation followed by BN + PReLU.

A CG block computes a local feature (3x3 depthwise conv) and a surrounding-context feature
(dilated 3x3 depthwise conv) from a reduced input, concatenates them, applies a joint BN +
PReLU, and reweights the channels with a "global context" squeeze-excitation; the non-down
blocks add an identity shortcut. The paper's global context is a global average pool; to keep
the network local (tiling-exact) it is a LOCAL mean over ``pool`` x ``pool`` feature pixels here
(see :class:`~llenhance.archs.se_resnet.LocalChannelAttention`).

Decoder (added for image-to-image): bilinear up-sampling by 2, concatenation with the encoder
features of that scale (the input image at full resolution), 3x3 conv + BN + PReLU, three times,
then a 3x3 conv and a sigmoid. Three down-samplings, so inputs must be multiples of 8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs.blocks import LocalChannelAttention, check_pool
from llenhance.archs.registry import register_arch
from llenhance.errors import UserError


class ConvBNPReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
        )


class BNPReLU(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.PReLU(channels))


class CGBlock(nn.Module):
    """Context-guided block; ``down`` halves the resolution (no shortcut then)."""

    def __init__(
        self, c_in: int, c_out: int, dilation: int, down: bool, reduction: int, pool: int
    ) -> None:
        super().__init__()
        self.down = down
        if down:
            inner = c_out
            self.reduce = ConvBNPReLU(c_in, inner, 3, stride=2)
        else:
            if c_in != c_out or c_out % 2:
                raise UserError(f"a CG block needs equal, even channels, got {c_in}->{c_out}")
            inner = c_out // 2
            self.reduce = ConvBNPReLU(c_in, inner, 1)
        self.f_loc = nn.Conv2d(inner, inner, 3, padding=1, groups=inner, bias=False)
        self.f_sur = nn.Conv2d(
            inner, inner, 3, padding=dilation, dilation=dilation, groups=inner, bias=False
        )
        self.joint = BNPReLU(2 * inner)
        self.fuse = nn.Conv2d(2 * inner, c_out, 1, bias=False) if down else nn.Identity()
        self.f_glo = LocalChannelAttention(c_out, reduction, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(x)
        h = self.joint(torch.cat([self.f_loc(h), self.f_sur(h)], dim=1))
        h = self.f_glo(self.fuse(h))
        return h if self.down else x + h


def _down_image(x: torch.Tensor) -> torch.Tensor:
    """Halve an image by 2x2 averaging (ceil size, matching a stride-2 padded 3x3 conv)."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


@register_arch(
    "cgnet",
    description="CGNet context-guided encoder (local context pooling) with a bilinear decoder",
    multiple=8,
    receptive_field=299,
    tile=768,  # peak memory: benchmarks.speed
    overlap=192,
)
class CGNetI2I(nn.Module):
    def __init__(
        self,
        channels1: int = 32,
        channels2: int = 64,
        channels3: int = 128,
        blocks2: int = 3,
        blocks3: int = 2,
        dilation2: int = 2,
        dilation3: int = 4,
        reduction: int = 8,
        pool: int = 3,
    ) -> None:
        super().__init__()
        check_pool(pool)
        if blocks2 < 1 or blocks3 < 1:
            raise UserError("cgnet blocks2 and blocks3 must be at least 1")
        c1, c2, c3 = channels1, channels2, channels3
        self.stage1 = nn.Sequential(
            ConvBNPReLU(3, c1, 3, stride=2), ConvBNPReLU(c1, c1), ConvBNPReLU(c1, c1)
        )
        self.inject1 = BNPReLU(c1 + 3)
        self.down2 = CGBlock(c1 + 3, c2, dilation2, True, reduction, pool)
        self.stage2 = nn.Sequential(
            *(CGBlock(c2, c2, dilation2, False, reduction, pool) for _ in range(blocks2 - 1))
        )
        self.inject2 = BNPReLU(2 * c2 + 3)
        self.down3 = CGBlock(2 * c2 + 3, c3, dilation3, True, reduction, pool)
        self.stage3 = nn.Sequential(
            *(CGBlock(c3, c3, dilation3, False, reduction, pool) for _ in range(blocks3 - 1))
        )
        self.join3 = BNPReLU(2 * c3)
        self.dec2 = ConvBNPReLU(2 * c3 + 2 * c2 + 3, c2)
        self.dec1 = ConvBNPReLU(c2 + c1 + 3, c1)
        self.dec0 = ConvBNPReLU(c1 + 3, c1)
        self.head = nn.Conv2d(c1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x2 = _down_image(x)
        x4 = _down_image(x2)
        s1 = self.inject1(torch.cat([self.stage1(x), x2], dim=1))  # 1/2
        first2 = self.down2(s1)
        s2 = self.inject2(torch.cat([first2, self.stage2(first2), x4], dim=1))  # 1/4
        first3 = self.down3(s2)
        s3 = self.join3(torch.cat([first3, self.stage3(first3)], dim=1))  # 1/8
        d = self.dec2(torch.cat([_up(s3, s2), s2], dim=1))
        d = self.dec1(torch.cat([_up(d, s1), s1], dim=1))
        d = self.dec0(torch.cat([_up(d, x), x], dim=1))
        return torch.sigmoid(self.head(d))
