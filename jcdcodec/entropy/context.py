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

import functools
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


def padded_for_decoding(stream: bytes, n_symbols: int) -> bytes:
    """``stream`` followed by enough zero bytes that CompressAI's rANS decoder never reads past the end.

    The decoder has no bounds checks: a crafted stream (valid checksum, hostile payload) could make it
    read beyond its buffer. Each decode step consumes at most 16 state bits and reads at most one 32-bit
    word; escape (bypass) chains are bounded by the stream's own bits, and zero padding decodes as the
    first symbol of a CDF, never the escape. So for S symbols and L stream bytes it reads fewer than
    ~10 S + 16 L bytes; 12 S + 16 L + 64 zero bytes cover every input.
    """
    return stream + bytes(12 * n_symbols + 16 * len(stream) + 64)


def wavefront_schedule(h: int, w: int) -> list[tuple[Tensor, Tensor]]:
    """Rows and columns of the positions coded at each non-empty step t = 3i + j, in increasing t."""
    steps = []
    for t in range(3 * (h - 1) + w):
        i = torch.arange(max(0, (t - w + 3) // 3), min(h - 1, t // 3) + 1)
        j = t - 3 * i
        keep = (j >= 0) & (j < w)
        if keep.any():  # narrow latents (w < 3) have empty steps
            steps.append((i[keep], j[keep]))
    return steps


@dataclass
class _Step:
    """Flat indices of one wavefront step (precomputed: no per-position Python)."""

    n: int  # positions in the step
    neighbours: Tensor  # (n * 12,) rows of the padded plane, position-major then tap
    params: Tensor  # (n,) rows of the (h * w, 2M) params
    target: Tensor  # (n,) rows of the padded plane


@functools.lru_cache(maxsize=16)
def _plan(h: int, w: int) -> tuple[_Step, ...]:
    """The steps of an h x w latent, built once per size (every image of a size shares them)."""
    pw = w + 4  # padded width: 2 columns each side; 2 rows on top
    tap_off = torch.tensor([dy * pw + dx for dy, dx in TAPS])
    steps = []
    for i, j in wavefront_schedule(h, w):
        centre = (i + 2) * pw + (j + 2)
        steps.append(_Step(len(i), (centre[:, None] + tap_off[None, :]).reshape(-1), i * w + j, centre))
    return tuple(steps)


def _unplane(plane: Tensor, m: int, h: int, w: int) -> Tensor:
    """Rows-of-channels padded plane -> the latent (M, h, w)."""
    return plane.view(h + 2, w + 4, m)[2:, 2:-2].permute(2, 0, 1).contiguous()


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
    def _step_params(self, plane: Tensor, params: Tensor, st: _Step) -> tuple[Tensor, Tensor]:
        """Scales and means (P, M) of one step's positions, from already coded neighbours.

        ``plane`` is the padded latent as rows of channels, ((h+2)*(w+4), M); ``params`` is
        (h*w, 2M). Gathering rows gives (P, 12*M) in the weight's tap-major order directly.
        """
        x = plane.index_select(0, st.neighbours).view(st.n, -1)
        ctx = torch.addmm(self.ctx.bias, x, self.ctx.weight)
        h = torch.cat([params.index_select(0, st.params), ctx], dim=1)
        last = len(self.params_layers) - 1
        for k, layer in enumerate(self.params_layers):
            h = torch.addmm(layer.bias, h, layer.weight)
            if k < last:
                h = F.leaky_relu(h)
        return h[:, : self.m], h[:, self.m :]

    def _indexes(self, scales: Tensor) -> Tensor:
        scales = scales.clamp_min(self.scale_bound)
        # Index = number of table entries strictly below the scale (CompressAI's rule).
        return torch.searchsorted(self.scale_table[:-1].contiguous(), scales.contiguous(), right=False).int()

    # -- coding ---------------------------------------------------------------------------
    def encode(self, y: Tensor, params: Tensor) -> tuple[bytes, Tensor, int]:
        """y (M, h, w) float, params (2M, h, w). Returns (stream, y_hat, symbol crc).

        The encoder knows every symbol once its step is done, so all of them go to rANS in
        one call at the end (same order as the decoder reads them).
        """
        y = y.to(DTYPE)
        params = params.to(DTYPE)
        m, h, w = y.shape
        plane = torch.zeros((h + 2) * (w + 4), m, dtype=DTYPE)
        rows_y = y.reshape(m, h * w).T.contiguous()
        rows_p = params.reshape(2 * m, h * w).T.contiguous()
        symbols, indexes = [], []
        for st in _plan(h, w):
            scales, means = self._step_params(plane, rows_p, st)
            sym = torch.round(rows_y.index_select(0, st.params) - means)
            plane.index_copy_(0, st.target, sym + means)
            symbols.append(sym.reshape(-1))
            indexes.append(self._indexes(scales).reshape(-1))
        sym_all = torch.cat(symbols).int()
        idx_all = torch.cat(indexes)
        crc = zlib.crc32(sym_all.numpy().astype("<i4").tobytes())
        enc = BufferedRansEncoder()
        enc.encode_with_indexes(sym_all.tolist(), idx_all.tolist(), self.cdfs, self.cdf_lengths, self.offsets)
        return enc.flush(), _unplane(plane, m, h, w), crc

    def decode(self, stream: bytes, params: Tensor, h: int, w: int) -> tuple[Tensor, int]:
        """Inverse of :meth:`encode`: returns (y_hat (M, h, w) float64, symbol crc)."""
        params = params.to(DTYPE)
        m = self.m
        plane = torch.zeros((h + 2) * (w + 4), m, dtype=DTYPE)
        rows_p = params.reshape(2 * m, h * w).T.contiguous()
        dec = RansDecoder()
        dec.set_stream(padded_for_decoding(stream, m * h * w))
        crc = 0
        for st in _plan(h, w):
            scales, means = self._step_params(plane, rows_p, st)
            # Pass only the CDFs this step uses: the rANS binding converts every table per call.
            used, local = np.unique(self._indexes(scales).reshape(-1).numpy(), return_inverse=True)
            sub = used.tolist()
            sym = np.asarray(
                dec.decode_stream(
                    local.tolist(),
                    [self.cdfs[k] for k in sub],
                    [self.cdf_lengths[k] for k in sub],
                    [self.offsets[k] for k in sub],
                ),
                dtype="<i4",
            )
            crc = zlib.crc32(sym.tobytes(), crc)
            plane.index_copy_(0, st.target, torch.from_numpy(sym.astype(np.float64)).view(st.n, m) + means)
        return _unplane(plane, m, h, w), crc
