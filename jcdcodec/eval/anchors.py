"""Classical anchors on the same noisy image: JPEG, WebP, AVIF (Pillow) and BM3D first.

Every anchor sees exactly the noisy picture jcd sees (by default rounded to 8 bits).
BM3D (``bm3d`` package, ``bm3d_rgb`` with all defaults) is given the true noise std of
the image (an oracle sigma, std of noisy - clean in the sRGB domain), which favours it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..noise.estimate import estimate_sigma

__all__ = ["CODECS", "REAL_SWEEPS", "SWEEPS", "bm3d_denoise", "code", "estimate_sigma"]

#: Quality sweeps of the Pillow codecs.
SWEEPS = {
    "jpeg": [5, 10, 20, 30, 40, 50, 60, 70, 80, 90],
    "webp": [5, 10, 20, 30, 40, 50, 60, 70, 80, 90],
    "avif": [5, 15, 30, 45, 60, 75, 90],
}
CODECS = tuple(SWEEPS)
#: Real camera noise is mild (the noisy shots are 32-41 dB from their references): the codecs need their top
#: qualities to reach the noisy input's own PSNR, where a reader sees jcd stop paying off.
REAL_SWEEPS = {
    "jpeg": [*SWEEPS["jpeg"], 95, 98],
    "webp": [*SWEEPS["webp"], 95, 100],
    "avif": [*SWEEPS["avif"], 95, 100],
}


def code(rgb8: np.ndarray, codec: str, quality: int) -> tuple[int, np.ndarray]:
    """(bytes, decoded uint8 RGB) of one Pillow encode/decode."""
    im = Image.fromarray(rgb8, "RGB")
    buf = io.BytesIO()
    if codec == "jpeg":
        im.save(buf, format="JPEG", quality=quality)
    elif codec == "webp":
        im.save(buf, format="WEBP", quality=quality, method=6)
    elif codec == "avif":
        im.save(buf, format="AVIF", quality=quality, speed=6)
    else:
        raise ValueError(f"unknown codec {codec!r}")
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as out:
        return len(data), np.asarray(out.convert("RGB"))


def bm3d_denoise(noisy8: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D on a uint8 RGB image with noise std ``sigma`` (in [0, 1] units); uint8 out."""
    import bm3d

    out = bm3d.bm3d_rgb(noisy8.astype(np.float64) / 255.0, sigma)
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)
