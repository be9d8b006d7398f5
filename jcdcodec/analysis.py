"""The encoder's networks without PyTorch: the analysis from its ONNX companion, h_a in numpy.

The decoder has run without PyTorch since g_s went to ONNX (:mod:`.synthesis`); importing PyTorch is
most of a one-image ``jcd encode`` too (about 2.5 s of 5 s on two cores). The analysis (g_a with the
denoisers, up to the latent before the quality gain) is exported beside the weights as
``NAME.analysis.onnx``, a graph whose parameters are read from the weights file itself
(:func:`jcdcodec.nn.onnx_export.export_analysis`), and runs in the same runtimes as g_s.

h_a, the hyper-analysis, works on the 1/16 latent and costs little, so it runs here in numpy float32,
from the weights file's ``h_a.*`` tensors. Neither needs to match the PyTorch encoder bit for bit: the
encoder decides the symbols, and every probability the decoder needs is computed from the symbols by the
shared entropy path (:mod:`.entropy.path`), so a stream from either encoder decodes exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .entropy.arrays import Conv3x3, leaky_relu
from .synthesis import OnnxNetwork

#: Strides of h_a's five 3x3 convolutions (``JointModel.h_a``: conv, conv, conv/2, conv, conv/2, LeakyReLU
#: between them); the weights file holds them as ``h_a.0``, ``h_a.2``, ... ``h_a.8``.
H_A_STRIDES = (1, 1, 2, 1, 2)


class OnnxAnalysis(OnnxNetwork):
    """``y = analysis(x)`` for x (1, 3, H, W) float32 in [0, 1] -> y (1, N, H/16, W/16), before the gain."""

    kind = "analysis"


class HyperAnalysis:
    """h_a of a weights file: y (N, h, w) -> z (N, h/4, w/4), float32."""

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.layers = []
        for k, stride in enumerate(H_A_STRIDES):
            try:
                conv = Conv3x3.from_torch_layout(state[f"h_a.{2 * k}.weight"], state[f"h_a.{2 * k}.bias"], stride,
                                                 np.float32)  # fmt: skip
            except ValueError as e:
                raise ValueError(f"h_a.{2 * k}: {e}") from None
            self.layers.append(conv)
        if f"h_a.{2 * len(H_A_STRIDES)}.weight" in state:
            raise ValueError("h_a has more layers than this encoder knows")

    def __call__(self, y: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(y, np.float32).transpose(1, 2, 0))
        for k, conv in enumerate(self.layers):
            x = conv(x)
            if k < len(self.layers) - 1:
                x = leaky_relu(x)
        return np.ascontiguousarray(x.transpose(2, 0, 1))
