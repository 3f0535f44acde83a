"""Residual U-Net (VLG denoiser write-up), with an optional global exposure context.

Encoder-decoder with skip concatenations; every stage is a residual block of two 3x3 conv +
BN/ReLU with a 1x1 projection shortcut; max-pool down, bilinear upsample up, sigmoid output.

``unshuffle=2`` runs the whole U-Net at half resolution on a reversibly down-sampled input
(pixel unshuffle: each 2x2 block becomes 12 channels, as in FFDNet) and shuffles the output back:
a quarter of the arithmetic per pixel, with no information thrown away on the way in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs.blocks import FiLM, conv3x3
from llenhance.archs.context import global_context, luminance
from llenhance.archs.registry import register_arch, register_variant


def make_norm(kind: str, channels: int) -> nn.Module:
    """``batch`` as in the write-up; ``none`` does not depend on the batch, so data-parallel
    training on CPU (where SyncBatchNorm is unavailable) matches one process. (GroupNorm is not
    offered: its statistics span the whole tile, so tiled output would differ from untiled.)"""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be batch or none, not {kind!r}")


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(c_in, c_out, bias=norm == "none"),
            make_norm(norm, c_out),
            nn.ReLU(inplace=True),
            conv3x3(c_out, c_out, bias=norm == "none"),
            make_norm(norm, c_out),
        )
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x), inplace=True)


def receptive_field(depth: int, unshuffle: int = 1) -> int:
    """Input pixels (per side) one output pixel can depend on, walking the layers in order.

    Each 3x3 conv adds 2 steps of the current stride, each 2x2 pool and each bilinear 2x
    upsampling adds one; pixel (un)shuffle scales the stride by ``unshuffle``.
    """
    size, step = unshuffle, unshuffle
    size += 4 * step  # first encoder block: two 3x3 convs
    for _ in range(depth):
        size += step  # max-pool
        step *= 2
        size += 4 * step
    for _ in range(depth):
        size += step  # bilinear upsampling reads two neighbours
        step //= 2
        size += 4 * step
    return size + unshuffle - 1  # pixel shuffle: the output pixel's place in its block


def _size_requirements(config: dict) -> tuple[int, int]:
    """(multiple, receptive_field) of a unet-res config."""
    depth, unshuffle = config["depth"], config["unshuffle"]
    return unshuffle * 2**depth, receptive_field(depth, unshuffle)


@register_arch(
    "unet-res",
    description="residual U-Net (VLG write-up) at half resolution with global exposure context",
    context_fn=global_context,
    size_fn=_size_requirements,
    legacy_config={"unshuffle": 1},  # files from before 0.2 ran the U-Net at full resolution
)
class ResUNet(nn.Module):
    def __init__(
        self,
        width: int = 20,
        depth: int = 3,
        use_context: bool = True,
        norm: str = "batch",
        unshuffle: int = 2,
        black_point: float = 0.0,
        saturation: float = 1.0,
    ) -> None:
        super().__init__()
        if unshuffle < 1:
            raise ValueError(f"unshuffle must be >= 1, not {unshuffle}")
        if not 0.0 <= black_point < 0.5:
            raise ValueError(f"black_point must be in [0, 0.5), not {black_point}")
        self.unshuffle = unshuffle
        if not 0.5 <= saturation <= 2.0:
            raise ValueError(f"saturation must be in [0.5, 2], not {saturation}")
        self.black_point = black_point
        self.saturation = saturation
        widths = [width * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList()
        c_prev = 3 * unshuffle**2
        for c in widths:
            self.encoders.append(ResidualBlock(c_prev, c, norm))
            c_prev = c
        self.decoders = nn.ModuleList(
            ResidualBlock(widths[i + 1] + widths[i], widths[i], norm)
            for i in reversed(range(depth))
        )
        self.film = FiLM([widths[-1], *reversed(widths[:-1])]) if use_context else None
        self.head = nn.Conv2d(widths[0], 3 * unshuffle**2, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        modulation = None
        if self.film is not None:
            modulation = self.film(global_context(x) if context is None else context)
        skips = []
        h = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        for i, encoder in enumerate(self.encoders):
            if i:
                h = F.max_pool2d(h, 2)
            h = encoder(h)
            skips.append(h)
        skips.pop()
        if modulation is not None:
            scale, shift = modulation[0]
            h = h * scale + shift
        for j, decoder in enumerate(self.decoders):
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = decoder(torch.cat([h, skip], dim=1))
            if modulation is not None:
                scale, shift = modulation[j + 1]
                h = h * scale + shift
        h = self.head(h)
        if self.unshuffle > 1:
            h = F.pixel_shuffle(h, self.unshuffle)
        out = torch.sigmoid(h)
        if self.black_point:  # calibrated after training: the sigmoid's blacks sit too high
            out = ((out - self.black_point) / (1.0 - self.black_point)).clamp(0.0, 1.0)
        if self.saturation != 1.0:  # calibrated too: L1 training leaves colours pale
            luma = luminance(out, keepdim=True)
            out = (luma + self.saturation * (out - luma)).clamp(0.0, 1.0)
        return out


register_variant(
    "unet-res-large",
    "unet-res",
    description="unet-res at width 32: slower, more capacity (the distillation teacher)",
    width=32,
)
