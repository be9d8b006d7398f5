"""The few network layers the entropy path needs, in numpy float64 (no torch).

Layout is rows of channels: a feature map is (H, W, C), so a 3x3 convolution is nine matrix products
of (H*W, C_in) by (C_in, C_out), summed in a fixed tap order. Weights come in PyTorch's (C_out, C_in,
kh, kw) layout and are rearranged once.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

DTYPE = np.float64
#: Slope of nn.LeakyReLU's default, as CompressAI's hyper-synthesis uses it.
LEAKY_SLOPE = 0.01


_CONTROLLER: list[Any] = []


def one_blas_thread() -> contextlib.AbstractContextManager:
    """numpy's BLAS held to one thread while the entropy path runs (restored after).

    Its matrix products are small, where BLAS threads only cost: with another process busy on one of two
    cores, OpenBLAS's spinning threads made a Kodak decode's entropy path 4.7x slower (0.28 s instead of
    0.059 s) in a program calling ``jcdcodec.decode``. The CLI sets ``OPENBLAS_NUM_THREADS=1`` before numpy
    loads; a library cannot, so it limits the threads here (threadpoolctl, when installed).
    """
    if os.environ.get("OPENBLAS_NUM_THREADS") == "1":
        return contextlib.nullcontext()
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())  # after numpy: it finds the BLAS numpy loaded
        except Exception:  # not installed (a minimal decode-only environment): as before
            _CONTROLLER.append(None)
    controller = _CONTROLLER[0]
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * LEAKY_SLOPE)


@dataclass
class Conv3x3:
    """A padding-1 3x3 convolution (PyTorch's ``Conv2d(k=3, padding=1, stride)``) on (H, W, C) rows; ``taps`` is
    (9, C_in, C_out), tap-major by row then column. It computes in the taps' dtype: float64 for the entropy
    path's h_s, float32 for the torch-free encoder's h_a (:mod:`jcdcodec.analysis`)."""

    taps: np.ndarray
    bias: np.ndarray
    stride: int = 1

    @classmethod
    def from_torch_layout(cls, weight: np.ndarray, bias: np.ndarray, stride: int = 1, dtype=DTYPE) -> Conv3x3:
        w = np.asarray(weight, dtype=dtype)
        b = np.asarray(bias, dtype=dtype)
        if w.ndim != 4 or w.shape[2:] != (3, 3) or b.shape != (w.shape[0],):
            raise ValueError(f"expected a (C_out, C_in, 3, 3) weight and (C_out,) bias, got {w.shape}, {b.shape}")
        taps = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(9, w.shape[1], w.shape[0]))
        return cls(taps, b, stride)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w, c = x.shape
        s = self.stride
        ho, wo = (h - 1) // s + 1, (w - 1) // s + 1
        padded = np.zeros((h + 2, w + 2, c), dtype=self.taps.dtype)
        padded[1:-1, 1:-1] = x
        out = np.broadcast_to(self.bias, (ho * wo, self.bias.shape[0])).copy()
        for k in range(9):
            dy, dx = divmod(k, 3)
            patch = padded[dy : dy + s * (ho - 1) + 1 : s, dx : dx + s * (wo - 1) + 1 : s]
            out += patch.reshape(ho * wo, c) @ self.taps[k]
        return out.reshape(ho, wo, -1)


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """nn.PixelShuffle on rows of channels: (H, W, C*r*r) -> (H*r, W*r, C)."""
    h, w, c = x.shape
    return x.reshape(h, w, c // (r * r), r, r).transpose(0, 3, 1, 4, 2).reshape(h * r, w * r, c // (r * r))
