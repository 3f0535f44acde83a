"""Render the example dark photo shipped in ``examples/`` (a scene drawn by code, so the project
owns it), then darken it with llenhance's own low-light synthesis.

    python examples/render_example.py   # writes examples/scene.png and examples/dark.png
"""

from pathlib import Path

import cv2
import numpy as np

from llenhance.io.write import write_image
from llenhance.synthesis import SynthesisParams, synthesize_low_light

HERE = Path(__file__).resolve().parent


def render_scene(height: int = 360, width: int = 540, seed: int = 0) -> np.ndarray:
    """A dusk street: sky gradient, hills, houses with lit windows, textured road, a lamp."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    sky = (1 - y) * np.array([0.45, 0.62, 0.85], np.float32) + y * np.array(
        [0.95, 0.75, 0.55], np.float32
    )
    img = np.broadcast_to(sky, (height, width, 3)).copy()
    hills = (0.55 * height + 25 * np.sin(np.linspace(0, 7, width))).astype(int)
    for x in range(width):
        img[hills[x] :, x] = (0.22, 0.40, 0.20)
    grass = rng.normal(0, 0.04, (height, width, 1)).astype(np.float32)
    img += grass * (np.arange(height)[:, None, None] > hills[None, :, None])
    road_top = int(0.78 * height)
    img[road_top:] = (0.35, 0.34, 0.33)
    img[road_top:] += rng.normal(0, 0.05, (height - road_top, width, 1)).astype(np.float32)
    cv2.line(img, (0, int(0.89 * height)), (width, int(0.89 * height)), (0.9, 0.9, 0.85), 3)
    for i, (x0, color) in enumerate(
        [(40, (0.75, 0.35, 0.30)), (190, (0.85, 0.80, 0.65)), (350, (0.40, 0.55, 0.75))]
    ):
        top = road_top - 120 - 15 * i
        cv2.rectangle(img, (x0, top), (x0 + 130, road_top), color, -1)
        roof = np.array([[x0 - 10, top], [x0 + 65, top - 50], [x0 + 140, top]], np.int32)
        cv2.fillPoly(img, [roof], (0.30, 0.20, 0.18))
        for wx in (x0 + 15, x0 + 75):
            for wy in (top + 15, top + 65):
                cv2.rectangle(img, (wx, wy), (wx + 35, wy + 30), (1.0, 0.9, 0.55), -1)
                cv2.rectangle(img, (wx, wy), (wx + 35, wy + 30), (0.15, 0.12, 0.1), 2)
    cv2.line(img, (505, road_top + 10), (505, 120), (0.2, 0.2, 0.22), 5)
    cv2.circle(img, (505, 115), 12, (1.0, 0.95, 0.7), -1)
    text = np.zeros((height, width), np.uint8)
    cv2.putText(
        text,
        "llenhance",
        (200, int(0.96 * height)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.9,
        255,
        2,
        cv2.LINE_AA,
    )
    alpha = (text.astype(np.float32) / 255.0)[..., None]
    img = img * (1 - alpha) + 0.95 * alpha
    return np.clip(img, 0, 1).astype(np.float32)


def main() -> None:
    scene = render_scene()
    params = SynthesisParams(exposure=(0.06, 0.06), photons=(400.0, 400.0), jpeg_probability=0.0)
    dark = synthesize_low_light(scene, np.random.default_rng(1), params)
    write_image(HERE / "scene.png", scene, overwrite=True)
    write_image(HERE / "dark.png", dark, overwrite=True)


if __name__ == "__main__":
    main()
