"""How noisy an image looks, from the image alone: the noise std that BM3D is told on real noise, and the
measure the encoder picks a model by (:mod:`jcdcodec.choose`).

Donoho's rule on the finest diagonal Haar detail: in natural images that band is mostly noise, and the
median of its absolute values is robust to the edges that are not. It reads camera noise low (demosaicking
and JPEG take out the finest detail: the 55 PolyU shots read 0.7-1.7 in 8-bit levels where their real
noise is 2-6) and fine texture high (clean Kodak photos read up to about 4), so it ranks images by noise
rather than measuring it; a rounded 8-bit image has a floor of 0.74 levels (half a level over 0.6745).
"""

from __future__ import annotations

import numpy as np


def estimate_sigma(rgb8: np.ndarray) -> float:
    """Noise std of an 8-bit (H, W, C) image in [0, 1] units, averaged over channels."""
    h, w = (rgb8.shape[0] // 2) * 2, (rgb8.shape[1] // 2) * 2
    if h == 0 or w == 0:
        return 0.0
    out = []
    for c in range(rgb8.shape[2]):  # a channel at a time: a 50 MP photo needs no full float64 copy
        x = rgb8[:h, :w, c].astype(np.float64) / 255.0
        hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
        out.append(np.median(np.abs(hh)) / 0.6745)
    return float(np.mean(out))


#: 2x2 blocks :func:`noise_level` reads at most (a 4 MP image whole; above that, evenly spaced rows of blocks),
#: so that choosing a model for a 64 MP photo costs a few tens of MB, not gigabytes of float copies.
MAX_BLOCKS = 1 << 20


def noise_level(rgb: np.ndarray) -> float:
    """:func:`estimate_sigma` of a float (H, W, 3) picture in [0, 1] after rounding to 8 bits, in 8-bit levels.

    Rounded first so that an 8-bit file and the same pixels given as floats or 16 bits read alike.
    """
    h2, w2 = rgb.shape[0] // 2, rgb.shape[1] // 2
    if h2 == 0 or w2 == 0:
        return 0.0
    step = -(-h2 * w2 // MAX_BLOCKS)  # every step-th row of blocks
    if step > 1:
        rows = np.arange(0, h2, step) * 2
        rgb = rgb[np.stack([rows, rows + 1], axis=1).ravel(), : 2 * w2]
    rgb8 = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return estimate_sigma(rgb8) * 255.0
