"""Context-model coding of y on a wavefront schedule.

The 5x5 type-A mask of Cheng2020 reads 12 neighbours: the two rows above at dx=-2..2 and
the two positions to the left. Position (i, j) therefore depends only on positions with a
smaller ``t = 3*i + j``; all positions of one ``t`` are independent and are coded together
(at most ceil(W/3) of them). For a 32x48 latent this is 141 steps instead of 1536.

Per step the 12 neighbours are gathered, the masked convolution and the entropy-parameter
network run as matrix products over the step's positions, and all their symbols go to
rANS in one call. The rANS stream order is: steps by increasing t; inside a step,
positions by increasing row i; inside a position, channels 0..M-1.

Encoder and decoder run this same code in float64 (see :mod:`.determinism`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from compressai.ans import BufferedRansEncoder, RansDecoder
from torch import Tensor

from .determinism import DTYPE

# (dy, dx) of the taps the type-A 5x5 mask keeps, in a fixed order.
TAPS: tuple[tuple[int, int], ...] = tuple(
    [(dy, dx) for dy in (-2, -1) for dx in range(-2, 3)] + [(0, -2), (0, -1)]
)


def wavefront_schedule(h: int, w: int) -> list[tuple[Tensor, Tensor]]:
    """Rows and columns of the positions coded at each step t = 3i + j, t = 0..3(h-1)+w-1."""
    steps = []
    for t in range(3 * (h - 1) + w):
        i = torch.arange(max(0, (t - w + 3) // 3), min(h - 1, t // 3) + 1)
        j = t - 3 * i
        keep = (j >= 0) & (j < w)
        steps.append((i[keep], j[keep]))
    return steps


@dataclass
class _Layer:
    weight: Tensor  # (in, out)
    bias: Tensor


class WavefrontCoder:
    """Codes the quantised latent with the model's context and entropy-parameter layers."""

    def __init__(self, model: torch.nn.Module) -> None:
        ctx = model.context_prediction
        m = ctx.in_channels
        w = (ctx.weight.detach() * ctx.mask).to(DTYPE).cpu()  # (2M, M, 5, 5)
        taps = torch.stack([w[:, :, 2 + dy, 2 + dx] for dy, dx in TAPS], dim=1)  # (2M, 12, M)
        self.ctx = _Layer(taps.reshape(2 * m, -1).T.contiguous(), ctx.bias.detach().to(DTYPE).cpu())
        self.params_layers = []
        for layer in model.entropy_parameters:
            if isinstance(layer, torch.nn.Conv2d):
                self.params_layers.append(
                    _Layer(
                        layer.weight.detach()[:, :, 0, 0].to(DTYPE).cpu().T.contiguous(),
                        layer.bias.detach().to(DTYPE).cpu(),
                    )
                )
        self.m = m
        gc = model.gaussian_conditional
        self.scale_bound = float(gc.lower_bound_scale.bound)
        self.scale_table = gc.scale_table.detach().to(DTYPE).cpu()
        self.cdf_lengths = gc._cdf_length.reshape(-1).int().tolist()
        # Rows are padded to the longest CDF; the coder only reads cdf_length entries. Passing
        # trimmed rows cuts the per-call conversion cost of CompressAI's rANS by ~7x.
        self.cdfs = [row[:n] for row, n in zip(gc._quantized_cdf.tolist(), self.cdf_lengths, strict=True)]
        self.offsets = gc._offset.reshape(-1).int().tolist()

    # -- shared per-step arithmetic ------------------------------------------------------
    def _step_params(self, y_pad: Tensor, params: Tensor, i: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        """Scales and means (P, M) of the positions (i, j), from already coded neighbours."""
        neigh = torch.stack([y_pad[:, i + 2 + dy, j + 2 + dx] for dy, dx in TAPS], dim=0)  # (12, M, P)
        x = neigh.permute(2, 0, 1).reshape(len(i), -1)  # (P, 12*M), tap-major like the weight
        ctx = torch.addmm(self.ctx.bias, x, self.ctx.weight)
        h = torch.cat([params[:, i, j].T, ctx], dim=1)
        last = len(self.params_layers) - 1
        for k, layer in enumerate(self.params_layers):
            h = torch.addmm(layer.bias, h, layer.weight)
            if k < last:
                h = F.leaky_relu(h)
        scales, means = h[:, : self.m], h[:, self.m :]
        return scales, means

    def _indexes(self, scales: Tensor) -> Tensor:
        scales = scales.clamp_min(self.scale_bound)
        # Index = number of table entries strictly below the scale (CompressAI's rule).
        return torch.searchsorted(self.scale_table[:-1].contiguous(), scales.contiguous(), right=False).int()

    # -- coding ---------------------------------------------------------------------------
    def encode(self, y: Tensor, params: Tensor) -> tuple[bytes, Tensor, int]:
        """y (M, h, w) float, params (2M, h, w). Returns (stream, y_hat, symbol crc)."""
        y = y.to(DTYPE)
        params = params.to(DTYPE)
        m, h, w = y.shape
        y_pad = torch.zeros(m, h + 2, w + 4, dtype=DTYPE)
        enc = BufferedRansEncoder()
        crc = 0
        for i, j in wavefront_schedule(h, w):
            scales, means = self._step_params(y_pad, params, i, j)
            sym = torch.round(y[:, i, j].T - means)
            y_pad[:, i + 2, j + 2] = (sym + means).T
            sym_i = sym.int().reshape(-1)
            crc = zlib.crc32(sym_i.numpy().astype("<i4").tobytes(), crc)
            enc.encode_with_indexes(
                sym_i.tolist(), self._indexes(scales).reshape(-1).tolist(), self.cdfs, self.cdf_lengths, self.offsets
            )
        return enc.flush(), y_pad[:, 2:, 2:-2].clone(), crc

    def decode(self, stream: bytes, params: Tensor, h: int, w: int) -> tuple[Tensor, int]:
        """Inverse of :meth:`encode`: returns (y_hat (M, h, w) float64, symbol crc)."""
        params = params.to(DTYPE)
        m = self.m
        y_pad = torch.zeros(m, h + 2, w + 4, dtype=DTYPE)
        dec = RansDecoder()
        dec.set_stream(stream)
        crc = 0
        for i, j in wavefront_schedule(h, w):
            scales, means = self._step_params(y_pad, params, i, j)
            idx = self._indexes(scales).reshape(-1).tolist()
            sym = np.asarray(dec.decode_stream(idx, self.cdfs, self.cdf_lengths, self.offsets), dtype="<i4")
            crc = zlib.crc32(sym.tobytes(), crc)
            y_pad[:, i + 2, j + 2] = (torch.from_numpy(sym.astype(np.float64)).view(len(i), m) + means).T
        return y_pad[:, 2:, 2:-2].clone(), crc
