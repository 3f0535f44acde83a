"""LLID: two-stage denoise-then-relight network ("Low Light Image Denoising" write-up).

Stage 1 (denoise, relight):

1. The RGB input is converted to YCbCr (BT.601, full range, differentiable).
2. A small CNN on the noisy luma Y (3x3 conv + ReLU, ``gray_depth`` x [3x3 conv, BN, ReLU])
   produces ``gray_channels`` feature maps, which a latent-subspace block projects onto a
   ``basis``-dimensional subspace (see :class:`LocalSubspaceProjection`); a 3x3 conv and a
   sigmoid turn the projected features into the clean grayscale prediction. It is stored as
   ``model.last_gray`` (N, 1, H, W) after every forward so the trainer can add an auxiliary
   loss; its target is the luma (:func:`rgb_to_ycbcr` channel 0) of the reference image, and
   :meth:`LLID.auxiliary_loss` (``gray_weight`` times that L1 distance) is what the trainer adds.
3. The noisy Y is replaced by that prediction and the image converted back to RGB (``I``).
4. A small U-Net (two max-pool levels, conv + BN + ReLU) sees ``I`` and the raw input and predicts
   a transmission map ``t = 0.05 + 0.95 * sigmoid(.)`` (so t >= 0.05 with a gradient everywhere;
   initialised near 1, i.e. near the identity) and an atmospheric light ``A``: a 1x1 conv of the
   quarter-resolution bottleneck, a LOCAL mean over ``a_pool`` x ``a_pool`` of those pixels, a
   bilinear up-sampling and a sigmoid, so A is per pixel but smooth (no global pooling).
5. Dehazing-based relighting: the inverted image ``1 - I`` looks hazy, so the scattering model
   ``J_h = (H - A) / t + A`` is applied to ``H = 1 - I`` and ``J = 1 - J_h``.

Stage 2 (refine): spatial feature transform (SFT) residual blocks on features of ``J``; every SFT
layer scales and shifts features by ``(1 + gamma, beta)`` predicted (1x1 convs) from the
grayscale branch's projected features. A 3x3 conv gives a residual; the output is
``clamp(J + residual, 0, 1)``.

Two down-samplings in the U-Net: inputs must be multiples of 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs.blocks import check_pool, conv3x3, local_mean
from llenhance.archs.registry import register_arch
from llenhance.errors import UserError

_KR, _KG, _KB = 0.299, 0.587, 0.114


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> YCbCr (BT.601 full range, chroma centred on 0.5)."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = _KR * r + _KG * g + _KB * b
    cb = 0.5 + (b - y) / (2.0 * (1.0 - _KB))
    cr = 0.5 + (r - y) / (2.0 * (1.0 - _KR))
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    y, cb, cr = ycc[:, 0:1], ycc[:, 1:2], ycc[:, 2:3]
    r = y + 2.0 * (1.0 - _KR) * (cr - 0.5)
    b = y + 2.0 * (1.0 - _KB) * (cb - 0.5)
    g = (y - _KR * r - _KB * b) / _KG
    return torch.cat([r, g, b], dim=1)


class LocalSubspaceProjection(nn.Module):
    """Project features onto a learned low-rank subspace, estimated in a local window.

    A 1x1 conv turns the C feature maps ``f`` into ``k`` basis maps ``v_1..v_k``. Around every
    pixel, each feature map is replaced by its least-squares fit in the span of the basis maps
    over the ``window`` x ``window`` neighbourhood (the subspace projection of NBNet / the
    write-up's latent-subspace block, but with the inner products taken over a local window
    instead of the whole image, so the block stays local and tileable):

        G_ij = <v_i, v_j>_w,  B_ic = <v_i, f_c>_w,  a = (G + lambda I)^-1 B,
        out_c = sum_i a_ic v_i

    with ``<.,.>_w`` the local mean of products and a small ridge ``lambda`` (relative to the
    trace of G) keeping the per-pixel k x k solve well conditioned. Computed as
    ``out_c = z' B_c`` with ``z = (G + lambda I)^-1 v`` (one right-hand side instead of C), via a
    Cholesky factorisation written out over the k x k entries, vectorised across pixels.
    """

    def __init__(self, channels: int, basis: int, window: int, ridge: float = 1e-2) -> None:
        super().__init__()
        if basis < 1:
            raise UserError(f"llid basis must be at least 1, got {basis}")
        self.basis = nn.Conv2d(channels, basis, 1)
        self.k = basis
        self.window = window
        self.ridge = ridge

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        k = self.k
        v = self.basis(f)
        c = f.shape[1]
        vs = [v[:, i : i + 1] for i in range(k)]
        pairs = [(i, j) for i in range(k) for j in range(i + 1)]
        gram = local_mean(torch.cat([vs[i] * vs[j] for i, j in pairs], dim=1), self.window)
        g = {pair: gram[:, m : m + 1] for m, pair in enumerate(pairs)}  # (N, 1, H, W) each
        rhs = local_mean(torch.cat([vs[i] * f for i in range(k)], dim=1), self.window)
        trace = g[(0, 0)]
        for i in range(1, k):
            trace = trace + g[(i, i)]
        lam = self.ridge * trace / k + 1e-6
        # Cholesky factor L of G + lam I (per pixel, entries (N, 1, H, W))
        low: dict[tuple[int, int], torch.Tensor] = {}
        for j in range(k):
            diag = g[(j, j)] + lam
            for m in range(j):
                diag = diag - low[(j, m)] ** 2
            low[(j, j)] = diag.clamp_min(1e-8).sqrt()
            for i in range(j + 1, k):
                off = g[(i, j)]
                for m in range(j):
                    off = off - low[(i, m)] * low[(j, m)]
                low[(i, j)] = off / low[(j, j)]
        # out_c = v' (G + lam I)^-1 B_c = z' B_c with z = (G + lam I)^-1 v: solve L L' z = v
        y: list[torch.Tensor] = []
        for i in range(k):
            acc = vs[i]
            for m in range(i):
                acc = acc - low[(i, m)] * y[m]
            y.append(acc / low[(i, i)])
        z: dict[int, torch.Tensor] = {}
        for i in reversed(range(k)):
            acc = y[i]
            for m in range(i + 1, k):
                acc = acc - low[(m, i)] * z[m]
            z[i] = acc / low[(i, i)]
        out = rhs[:, 0:c] * z[0]
        for i in range(1, k):
            out = torch.addcmul(out, rhs[:, i * c : (i + 1) * c], z[i])
        return out


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        conv3x3(c_in, c_out, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class TransmissionUNet(nn.Module):
    """Predicts the transmission map t and a smooth atmospheric light A."""

    def __init__(self, width: int, a_pool: int) -> None:
        super().__init__()
        w = width
        self.enc0 = nn.Sequential(conv_bn_relu(6, w), conv_bn_relu(w, w))
        self.enc1 = conv_bn_relu(w, 2 * w)
        self.enc2 = conv_bn_relu(2 * w, 4 * w)
        self.dec1 = conv_bn_relu(6 * w, 2 * w)
        self.dec0 = conv_bn_relu(3 * w, w)
        self.t_head = conv3x3(w, 1)
        nn.init.constant_(self.t_head.bias, 3.0)  # t ~ 0.95 at start: J ~ I
        self.a_head = nn.Conv2d(4 * w, 3, 1)
        self.a_pool = a_pool

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e0 = self.enc0(x)
        e1 = self.enc1(F.max_pool2d(e0, 2, ceil_mode=True))
        e2 = self.enc2(F.max_pool2d(e1, 2, ceil_mode=True))
        d1 = self.dec1(torch.cat([_up(e2, e1), e1], dim=1))
        d0 = self.dec0(torch.cat([_up(d1, e0), e0], dim=1))
        t = 0.05 + 0.95 * torch.sigmoid(self.t_head(d0))
        a = torch.sigmoid(_up(local_mean(self.a_head(e2), self.a_pool), x))
        return t, a


class SFTLayer(nn.Module):
    """Spatial feature transform: ``x * (1 + gamma(cond)) + beta(cond)``."""

    def __init__(self, cond_channels: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Sequential(
            nn.Conv2d(cond_channels, cond_channels, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(cond_channels, channels, 1),
        )
        self.beta = nn.Sequential(
            nn.Conv2d(cond_channels, cond_channels, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(cond_channels, channels, 1),
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta(cond), x, 1.0 + self.gamma(cond))


class SFTResBlock(nn.Module):
    def __init__(self, cond_channels: int, channels: int) -> None:
        super().__init__()
        self.sft1 = SFTLayer(cond_channels, channels)
        self.conv1 = conv3x3(channels, channels)
        self.sft2 = SFTLayer(cond_channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(self.sft1(x, cond)), inplace=True)
        return x + self.conv2(self.sft2(h, cond))


@register_arch(
    "llid",
    description="denoise (latent subspace, grayscale) then relight (scattering model) + SFT refine",
    multiple=4,
    receptive_field=81,
    tile=640,  # peak memory: benchmarks.speed
)
class LLID(nn.Module):
    def __init__(
        self,
        gray_channels: int = 16,
        gray_depth: int = 4,
        basis: int = 4,
        window: int = 7,
        unet_width: int = 16,
        a_pool: int = 7,
        sft_channels: int = 24,
        sft_blocks: int = 2,
        gray_weight: float = 0.5,
    ) -> None:
        super().__init__()
        check_pool(window, "window")
        check_pool(a_pool, "a_pool")
        g = gray_channels
        self.gray_weight = gray_weight
        self.gray_body = nn.Sequential(
            conv3x3(1, g), nn.ReLU(inplace=True), *(conv_bn_relu(g, g) for _ in range(gray_depth))
        )
        self.subspace = LocalSubspaceProjection(g, basis, window)
        self.gray_head = conv3x3(g, 1)
        self.transmission = TransmissionUNet(unet_width, a_pool)
        self.cond = nn.Sequential(
            nn.Conv2d(g, g, 1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(g, g, 1)
        )
        self.refine_in = conv3x3(3, sft_channels)
        self.refine = nn.ModuleList(SFTResBlock(g, sft_channels) for _ in range(sft_blocks))
        self.refine_sft = SFTLayer(g, sft_channels)
        self.refine_out = conv3x3(sft_channels, 3)
        self.last_gray: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        ycc = rgb_to_ycbcr(x)
        feats = self.subspace(self.gray_body(ycc[:, 0:1]))
        gray = torch.sigmoid(self.gray_head(feats))
        self.last_gray = gray
        relit = ycbcr_to_rgb(torch.cat([gray, ycc[:, 1:]], dim=1)).clamp(0.0, 1.0)
        t, a = self.transmission(torch.cat([relit, x], dim=1))
        hazy = 1.0 - relit
        dehazed = 1.0 - ((hazy - a) / t + a)
        cond = self.cond(feats)
        h = self.refine_in(dehazed.clamp(0.0, 1.0))
        for block in self.refine:
            h = block(h, cond)
        residual = self.refine_out(self.refine_sft(h, cond))
        return (dehazed + residual).clamp(0.0, 1.0)

    def auxiliary_loss(self, high: torch.Tensor) -> torch.Tensor:
        """``gray_weight`` x L1 between the last forward's grayscale prediction and the luma of
        the reference images ``high`` (N, 3, H, W); the trainer adds it to the main loss."""
        if self.last_gray is None:
            raise RuntimeError("auxiliary_loss needs a forward pass first")
        target = rgb_to_ycbcr(high.float())[:, :1]
        return self.gray_weight * F.l1_loss(self.last_gray.float(), target)
