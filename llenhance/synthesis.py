"""Low-light pairs from ordinary well-exposed photos, with a physically motivated noise model.

sRGB -> linear light (inverse gamma) -> exposure scaled down -> Poisson (shot) + Gaussian (read)
sensor noise -> optional colour cast -> back to sRGB -> 8-bit quantisation -> optional JPEG.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from llenhance.pixels import to_float, to_uint8


@dataclass(frozen=True)
class SynthesisParams:
    """Ranges the random low-light conditions are drawn from (uniform, exposure log-uniform)."""

    exposure: tuple[float, float] = (0.03, 0.25)
    """Fraction of the original light that reaches the sensor."""
    photons: tuple[float, float] = (200.0, 2000.0)
    """Photo-electrons at full scale of the darkened image: fewer means stronger shot noise."""
    read_noise: tuple[float, float] = (0.0005, 0.004)
    """Standard deviation of Gaussian read noise, in linear units of full scale."""
    color_cast: float = 0.08
    """Each channel's gain is drawn from 1 +/- this."""
    jpeg_probability: float = 0.3
    jpeg_quality: tuple[int, int] = (70, 95)
    gamma: float = 2.2


def srgb_to_linear(image: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    return np.power(np.clip(image, 0.0, 1.0), gamma)


def linear_to_srgb(image: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    return np.power(np.clip(image, 0.0, 1.0), 1.0 / gamma)


def scale_exposure(image: np.ndarray, factor: float) -> np.ndarray:
    """An 8-bit sRGB ``image`` as if exposed ``factor`` times as long: scaled in linear light and
    quantised to 8 bits again, so a darker exposure loses its deep shadows as a camera's would."""
    linear = srgb_to_linear(to_float(image)) * np.float32(factor)
    return to_uint8(linear_to_srgb(linear), in_place=True)


def synthesize_low_light(
    image: np.ndarray, rng: np.random.Generator, params: SynthesisParams | None = None
) -> np.ndarray:
    """A dark, noisy version of ``image`` (HxWx3 float32 in [0, 1]), quantised to 8 bits."""
    p = params or SynthesisParams()
    linear = srgb_to_linear(image.astype(np.float32), p.gamma)
    log_lo, log_hi = np.log(p.exposure[0]), np.log(p.exposure[1])
    exposure = float(np.exp(rng.uniform(log_lo, log_hi)))
    dark = linear * exposure
    if p.color_cast > 0:
        dark = dark * rng.uniform(1 - p.color_cast, 1 + p.color_cast, size=3).astype(np.float32)
    photons = float(rng.uniform(*p.photons))
    dark = rng.poisson(np.clip(dark, 0, 1) * photons).astype(np.float32) / photons
    dark += rng.normal(0.0, rng.uniform(*p.read_noise), size=dark.shape).astype(np.float32)
    srgb = linear_to_srgb(dark, p.gamma)
    quantised = to_uint8(srgb)
    if rng.random() < p.jpeg_probability:
        quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(
            ".jpg", quantised[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if ok:
            quantised = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return to_float(quantised)
