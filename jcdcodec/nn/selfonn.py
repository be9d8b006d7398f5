"""Self-organised operational layers (generative neurons).

A generative neuron replaces the linear kernel by a truncated Maclaurin series: the
layer sees ``[x, x**2, ..., x**q]`` stacked on the channel axis (power-major order) and
runs one ordinary convolution over them, so ``q=1`` is a plain convolution. Powers of an
unbounded input explode, so callers must feed values in [-1, 1] (jcd's Self-ONN units
put a ``tanh`` in front of every layer).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SelfONN2d(nn.Conv2d):
    """Convolution over the first ``q`` powers of its input (Kiranyaz et al., 2021)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        q: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        if q < 1:
            raise ValueError("q must be >= 1")
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            in_channels * q,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        )
        self.q = q
        self.in_features = in_channels
        # Xavier with the tanh gain over the whole (out, q*in, k, k) bank, as the
        # reference implementations do; higher powers start as small as the first.
        nn.init.xavier_uniform_(self.weight, gain=nn.init.calculate_gain("tanh"))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if self.q == 1:
            return super().forward(x)
        powers = [x]
        for _ in range(self.q - 1):
            powers.append(powers[-1] * x)
        return super().forward(torch.cat(powers, dim=1))
