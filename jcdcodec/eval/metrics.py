"""Distortion metrics against the clean image, on 8-bit outputs (as the published tables)."""

from __future__ import annotations

import math

import numpy as np
import torch


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (pytorch_msssim, data range 255); NaN for images too small for 5 scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(a.shape[:2]) <= 160:
        return float("nan")
    # torch.tensor copies: the arrays may be read-only views (decoded images), which from_numpy warns about.
    # float32: 3x faster than float64 on a CPU, and the value moves by about 5e-7 (reports show 4 decimals).
    ta = torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None]
    tb = torch.tensor(b, dtype=torch.float32).permute(2, 0, 1)[None]
    return float(_ms_ssim(ta, tb, data_range=255.0))
