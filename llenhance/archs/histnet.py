"""HistNet: fitted histogram (percentile) mapping + a small CNN ("Low-Light Image Enhancement"
histogram write-up).

Preprocessor. The input image's ``PERCENTILES`` per-channel percentiles (levels
``(i + 0.5) / PERCENTILES``, measured on an area-averaged thumbnail of at most
``THUMBNAIL_SIDE`` pixels a side) are whole-image statistics, so they are the architecture's
``context_fn`` (:func:`histogram_percentiles`, an (N, 3 * PERCENTILES) tensor) and every tile of
an image shares them. A linear regression, fitted once from training pairs by
:meth:`HistNet.fit_preprocessor` (ridge least squares, shrunk towards the identity), predicts
the reference image's percentiles from the low image's. Each pixel of each channel is then
mapped by piecewise-linear interpolation through the knots ``(0, 0), (p_1, q_1), ...,
(p_K, q_K), (1, 1)`` (input percentiles p; predicted target percentiles q, made monotone by
clamping to [0, 1] and a cumulative max). The regression weights are registered buffers (saved
with the weights); before fitting they are the identity, so the mapping is the identity.

Network. 3x3 conv + ReLU, ``modules`` "special" modules, a long skip from the first features, and
a final 3x3 conv whose output is added to the logit of the preprocessed image before a sigmoid
(so the untrained net starts near the histogram mapping). A special module: stage 1 sums a 1x1
conv path and a 3x3-ReLU-3x3 path; stage 2 applies 3x3-ReLU-3x3 to that sum with an identity
shortcut; then BN and ReLU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llenhance.archs.blocks import conv3x3
from llenhance.archs.registry import register_arch
from llenhance.errors import UserError

PERCENTILES = 32
THUMBNAIL_SIDE = 256
LEVELS = tuple((i + 0.5) / PERCENTILES for i in range(PERCENTILES))


def histogram_percentiles(image: torch.Tensor) -> torch.Tensor:
    """Per-channel percentiles of ``image`` (N, 3, H, W) -> (N, 3 * PERCENTILES), channel-major."""
    n, c, h, w = image.shape
    thumb = image.float()
    if h > THUMBNAIL_SIDE or w > THUMBNAIL_SIDE:
        thumb = F.adaptive_avg_pool2d(thumb, (min(h, THUMBNAIL_SIDE), min(w, THUMBNAIL_SIDE)))
    values = thumb.clamp(0.0, 1.0).reshape(n * c, -1)
    q = torch.quantile(values, values.new_tensor(LEVELS), dim=1)  # (K, N * C)
    return q.T.reshape(n, c * PERCENTILES)


def _piecewise_linear(x: torch.Tensor, xk: torch.Tensor, yk: torch.Tensor) -> torch.Tensor:
    """Map ``x`` (N, C, H, W) per (image, channel) through sorted knots ``xk``/``yk`` (N, C, M)."""
    n, c, h, w = x.shape
    m = xk.shape[-1]
    flat = x.reshape(n * c, h * w)
    xk = xk.reshape(n * c, m).contiguous()
    yk = yk.reshape(n * c, m)
    idx = torch.searchsorted(xk, flat.detach().contiguous(), right=True).clamp(1, m - 1)
    x0, x1 = xk.gather(1, idx - 1), xk.gather(1, idx)
    y0, y1 = yk.gather(1, idx - 1), yk.gather(1, idx)
    frac = ((flat - x0) / (x1 - x0).clamp_min(1e-6)).clamp(0.0, 1.0)
    return (y0 + frac * (y1 - y0)).reshape(n, c, h, w)


class SpecialModule(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.path1 = nn.Conv2d(c, c, 1)
        self.path3 = nn.Sequential(conv3x3(c, c), nn.ReLU(inplace=True), conv3x3(c, c))
        self.stage2 = nn.Sequential(conv3x3(c, c), nn.ReLU(inplace=True), conv3x3(c, c))
        self.norm = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.path1(x) + self.path3(x)
        return F.relu(self.norm(s + self.stage2(s)), inplace=True)


@register_arch(
    "histnet",
    description="fitted percentile (histogram) mapping + CNN of special modules",
    multiple=1,
    receptive_field=37,
    tile=768,  # peak memory: benchmarks.speed
    context_fn=histogram_percentiles,
)
class HistNet(nn.Module):
    def __init__(self, channels: int = 32, modules: int = 4, ridge: float = 1e-3) -> None:
        super().__init__()
        d = 3 * PERCENTILES
        self.ridge = ridge
        self.register_buffer("hist_weight", torch.eye(d))
        self.register_buffer("hist_bias", torch.zeros(d))
        self.head = nn.Sequential(conv3x3(3, channels), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*(SpecialModule(channels) for _ in range(modules)))
        self.tail = conv3x3(channels, 3)

    def predict_percentiles(self, percentiles: torch.Tensor) -> torch.Tensor:
        """Target percentiles (N, 3, K), monotone and in [0, 1], from input percentiles (N, 3K)."""
        w = self.hist_weight.to(percentiles.dtype)
        b = self.hist_bias.to(percentiles.dtype)
        q = (percentiles @ w.T + b).clamp(0.0, 1.0).reshape(-1, 3, PERCENTILES)
        return torch.cummax(q, dim=-1).values

    def preprocess(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The fitted histogram mapping of ``x``, given its (whole-image) percentiles."""
        p = histogram_percentiles(x) if context is None else context
        p = p.to(x.dtype)
        q = self.predict_percentiles(p)
        p = torch.cummax(p.reshape(-1, 3, PERCENTILES), dim=-1).values
        zeros = p.new_zeros(p.shape[0], 3, 1)
        ones = p.new_ones(p.shape[0], 3, 1)
        xk = torch.cat([zeros, p, ones], dim=-1)
        yk = torch.cat([zeros, q, ones], dim=-1)
        return _piecewise_linear(x.clamp(0.0, 1.0), xk, yk)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        pre = self.preprocess(x, context)
        pre = pre.contiguous(memory_format=torch.channels_last) if _is_channels_last(x) else pre
        h = self.head(pre)
        h = h + self.body(h)
        return torch.sigmoid(self.tail(h) + torch.logit(pre, eps=1e-3))

    @torch.no_grad()
    def fit_preprocessor(self, lows: list[np.ndarray], highs: list[np.ndarray]) -> None:
        """Fit the percentile regression from paired float32 HxWx3 images in [0, 1].

        Ridge least squares per output percentile, shrunk towards the identity map (so few pairs
        still give a sane mapping); the intercept is not penalised.
        """
        if len(lows) != len(highs) or not lows:
            raise UserError("fit_preprocessor needs equally many (>= 1) low and high images")

        def stats(images: list[np.ndarray]) -> np.ndarray:
            rows = []
            for img in images:
                t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
                rows.append(histogram_percentiles(t.permute(2, 0, 1)[None]).double().numpy())
            return np.concatenate(rows, axis=0)

        xs, ys = stats(lows), stats(highs)
        x_mean, y_mean = xs.mean(axis=0), ys.mean(axis=0)
        xc, yc = xs - x_mean, ys - y_mean
        d = xs.shape[1]
        gram = xc.T @ xc
        lam = self.ridge * max(np.trace(gram) / d, 1e-8)
        # minimise |xc W - yc|^2 + lam |W - I|^2  ->  (xc'xc + lam I) W = xc'yc + lam I
        coef = np.linalg.solve(gram + lam * np.eye(d), xc.T @ yc + lam * np.eye(d))
        weight = coef.T  # q = W p + b
        bias = y_mean - weight @ x_mean
        self.hist_weight.copy_(torch.from_numpy(weight))
        self.hist_bias.copy_(torch.from_numpy(bias))


def _is_channels_last(x: torch.Tensor) -> bool:
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()
    )
