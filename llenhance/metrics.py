"""Full-reference image quality: PSNR, SSIM, MAE, MSE on float arrays in [0, 1].

SSIM follows Wang et al. 2004 exactly as scikit-image computes it with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``: an 11x11
Gaussian window (truncate 3.5), reflected borders, the mean taken away from a 5-pixel border.
OpenCV's separable Gaussian makes it fast on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from llenhance.pixels import LUMA

_WINDOW = 11
_SIGMA = 1.5
_C1 = 0.01**2
_C2 = 0.03**2

METRIC_NAMES = ("psnr", "ssim", "mae", "mse")


@dataclass(frozen=True)
class Scores:
    psnr: float
    ssim: float
    mae: float
    mse: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs reference {ref.shape}")


def _mean_norm(pred: np.ndarray, ref: np.ndarray, norm: int) -> float:
    """Mean absolute or squared difference, accumulated in float64. OpenCV's SIMD norm needs no
    float64 copies of the images (calibration scores hundreds of candidates per image)."""
    _check(pred, ref)
    if pred.size == 0:
        return float("nan")
    if pred.dtype != ref.dtype or pred.dtype not in (np.float32, np.float64):
        pred, ref = pred.astype(np.float64), ref.astype(np.float64)
    flat = (np.ascontiguousarray(a).reshape(-1, 1) for a in (pred, ref))
    return float(cv2.norm(*flat, norm)) / pred.size


def mse(pred: np.ndarray, ref: np.ndarray) -> float:
    return _mean_norm(pred, ref, cv2.NORM_L2SQR)


def mae(pred: np.ndarray, ref: np.ndarray) -> float:
    return _mean_norm(pred, ref, cv2.NORM_L1)


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for data range 1; infinite for identical images."""
    err = mse(pred, ref)
    return float("inf") if err == 0 else float(10.0 * np.log10(1.0 / err))


def _blur(x: np.ndarray, window: int = _WINDOW) -> np.ndarray:
    sigma = _SIGMA * window / _WINDOW
    return cv2.GaussianBlur(x, (window, window), sigma, borderType=cv2.BORDER_REFLECT)


def ssim(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean structural similarity over channels (HxW or HxWxC arrays in [0, 1]).

    Images with a side under the 11-pixel window use the largest odd window that fits (its
    Gaussian narrowed in proportion); a 1-pixel side compares means and no structure."""
    _check(pred, ref)
    x = pred.astype(np.float64)
    y = ref.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    height, width = x.shape[:2]
    if height < 1 or width < 1:
        raise ValueError("SSIM needs at least one pixel")
    window = min(_WINDOW, min(height, width) - (1 - min(height, width) % 2))
    values = []
    pad = (window - 1) // 2

    def blur(z: np.ndarray) -> np.ndarray:
        return _blur(z, window) if window > 1 else z

    for c in range(x.shape[2]):
        a, b = np.ascontiguousarray(x[..., c]), np.ascontiguousarray(y[..., c])
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a * mu_a if window > 1 else 0 * a
        var_b = blur(b * b) - mu_b * mu_b if window > 1 else 0 * b
        cov = blur(a * b) - mu_a * mu_b if window > 1 else 0 * a
        num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
        den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
        values.append((num / den)[pad : height - pad, pad : width - pad].mean())
    return float(np.mean(values))


def mean_luminance(image: np.ndarray) -> float:
    """Mean Rec. 601 luma of an HxWx3 image."""
    return float((image.astype(np.float64) @ np.array(LUMA)).mean())


def match_gt_mean(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Scale ``pred`` so its mean luminance equals the reference's (the "GT-mean" protocol)."""
    pred_mean = mean_luminance(pred)
    ref_mean = mean_luminance(ref)
    if pred_mean <= 0:
        return pred.copy()
    return np.clip(pred * (ref_mean / pred_mean), 0.0, 1.0).astype(pred.dtype)


def score(pred: np.ndarray, ref: np.ndarray) -> Scores:
    """All four metrics for one image pair."""
    return Scores(
        psnr=psnr(pred, ref), ssim=ssim(pred, ref), mae=mae(pred, ref), mse=mse(pred, ref)
    )
