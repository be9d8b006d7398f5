"""Context-model coding of y on a wavefront schedule.

The 5x5 type-A mask of Cheng2020 reads 12 neighbours: the two rows above at dx=-2..2 and
the two positions to the left. Position (i, j) therefore depends only on positions with a
smaller ``t = 3*i + j``; all positions of one ``t`` are independent and are coded together
(at most ceil(W/3) of them). For a 32x48 latent this is 141 steps instead of 1536.

Per step the 12 neighbours are gathered, the masked convolution and the entropy-parameter
network run as matrix products over the step's positions, and all their symbols go to
rANS in one call. The rANS stream order is: steps by increasing t; inside a step,
positions by increasing row i; inside a position, channels 0..M-1.

Encoder and decoder run this same numpy code in float64 (see :mod:`.determinism`); it imports
no torch, so a decoder without PyTorch shares it.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .arrays import DTYPE, leaky_relu
from .rans import BufferedRansEncoder, RansDecoder

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


def coder_tables(state: Mapping[str, np.ndarray], prefix: str) -> tuple[list[list[int]], list[int], list[int]]:
    """An entropy model's quantised CDFs (rows trimmed to their length), lengths and offsets, as rANS takes them.

    Rows are padded to the longest CDF; the coder only reads cdf_length entries. Passing trimmed rows
    cuts the per-call conversion cost of CompressAI's rANS by ~7x.
    """
    lengths = np.asarray(state[f"{prefix}._cdf_length"]).reshape(-1).astype(int).tolist()
    cdf = np.asarray(state[f"{prefix}._quantized_cdf"]).astype(int).tolist()
    offsets = np.asarray(state[f"{prefix}._offset"]).reshape(-1).astype(int).tolist()
    return [row[:n] for row, n in zip(cdf, lengths, strict=True)], lengths, offsets


def wavefront_schedule(h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rows and columns of the positions coded at each non-empty step t = 3i + j, in increasing t."""
    steps = []
    for t in range(3 * (h - 1) + w):
        i = np.arange(max(0, (t - w + 3) // 3), min(h - 1, t // 3) + 1)
        j = t - 3 * i
        keep = (j >= 0) & (j < w)
        if keep.any():  # narrow latents (w < 3) have empty steps
            steps.append((i[keep], j[keep]))
    return steps


@dataclass
class _Step:
    """Flat indices of one wavefront step (precomputed: no per-position Python)."""

    n: int  # positions in the step
    neighbours: np.ndarray  # (n * 12,) rows of the padded plane, position-major then tap
    params: np.ndarray  # (n,) rows of the (h * w, 2M) params
    target: np.ndarray  # (n,) rows of the padded plane


@functools.lru_cache(maxsize=16)
def _plan(h: int, w: int) -> tuple[_Step, ...]:
    """The steps of an h x w latent, built once per size (every image of a size shares them)."""
    pw = w + 4  # padded width: 2 columns each side; 2 rows on top
    tap_off = np.array([dy * pw + dx for dy, dx in TAPS])
    steps = []
    for i, j in wavefront_schedule(h, w):
        centre = (i + 2) * pw + (j + 2)
        steps.append(_Step(len(i), (centre[:, None] + tap_off[None, :]).reshape(-1), i * w + j, centre))
    return tuple(steps)


def _unplane(plane: np.ndarray, m: int, h: int, w: int) -> np.ndarray:
    """Rows-of-channels padded plane -> the latent (M, h, w)."""
    return np.ascontiguousarray(plane.reshape(h + 2, w + 4, m)[2:, 2:-2].transpose(2, 0, 1))


@dataclass
class _Layer:
    weight: np.ndarray  # (in, out)
    bias: np.ndarray


class WavefrontCoder:
    """Codes the quantised latent with the model's context and entropy-parameter layers.

    Built from the weights file's tensors (``state``: name -> array, any float dtype; PyTorch layouts).
    """

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        w = np.asarray(state["context_prediction.weight"], DTYPE) * np.asarray(state["context_prediction.mask"], DTYPE)
        m = w.shape[1]  # (2M, M, 5, 5)
        taps = np.stack([w[:, :, 2 + dy, 2 + dx] for dy, dx in TAPS], axis=1)  # (2M, 12, M)
        bias = np.asarray(state["context_prediction.bias"], DTYPE)
        self.ctx = _Layer(np.ascontiguousarray(taps.reshape(2 * m, -1).T), bias)
        self.params_layers = []
        k = 0
        while f"entropy_parameters.{k}.weight" in state:
            weight = np.asarray(state[f"entropy_parameters.{k}.weight"], DTYPE)[:, :, 0, 0]
            bias = np.asarray(state[f"entropy_parameters.{k}.bias"], DTYPE)
            self.params_layers.append(_Layer(np.ascontiguousarray(weight.T), bias))
            k += 2  # Conv2d, LeakyReLU, Conv2d, ...
        self.m = m
        self.w1_ctx = np.ascontiguousarray(self.params_layers[0].weight[2 * m :])  # the first layer's context half
        self.scale_bound = float(np.asarray(state["gaussian_conditional.lower_bound_scale.bound"]).reshape(-1)[0])
        self.scale_table = np.asarray(state["gaussian_conditional.scale_table"], DTYPE)
        self.cdfs, self.cdf_lengths, self.offsets = coder_tables(state, "gaussian_conditional")

    # -- shared per-step arithmetic ------------------------------------------------------
    def _step_params(self, plane: np.ndarray, params: np.ndarray, st: _Step) -> tuple[np.ndarray, np.ndarray]:
        """Scales and means (P, M) of one step's positions, from already coded neighbours.

        ``plane`` is the padded latent as rows of channels, ((h+2)*(w+4), M); ``params`` is the
        hyperprior's share of the first layer, (h*w, out) (:meth:`_first_layer`). Gathering rows gives
        (P, 12*M) in the weight's tap-major order directly.
        """
        x = plane[st.neighbours].reshape(st.n, -1)
        ctx = x @ self.ctx.weight + self.ctx.bias
        # First layer: the hyperprior's half was multiplied for every position at once (see _first_layer).
        h = leaky_relu(params[st.params] + ctx @ self.w1_ctx)
        for k, layer in enumerate(self.params_layers[1:], start=1):
            h = h @ layer.weight + layer.bias
            if k < len(self.params_layers) - 1:
                h = leaky_relu(h)
        return h[:, : self.m], h[:, self.m :]

    def _first_layer(self, params: np.ndarray) -> np.ndarray:
        """The hyperprior's part of the first entropy-parameter layer, for all positions in one product.

        The layer reads cat(params, ctx); splitting its weight, params @ W[:2M] + bias does not depend on
        the coding order, so it is computed once instead of per step (per step only ctx @ W[2M:] remains).
        ``params`` (h*w, 2M) -> (h*w, out).
        """
        first = self.params_layers[0]
        return params @ first.weight[: params.shape[1]] + first.bias

    def _indexes(self, scales: np.ndarray) -> np.ndarray:
        scales = np.maximum(scales, self.scale_bound)
        # Index = number of table entries strictly below the scale (CompressAI's rule).
        return np.searchsorted(self.scale_table[:-1], scales, side="left").astype(np.int32)

    # -- coding ---------------------------------------------------------------------------
    def encode(self, y: np.ndarray, params: np.ndarray) -> tuple[bytes, np.ndarray, int]:
        """y (M, h, w) float, params (2M, h, w). Returns (stream, y_hat float64, symbol crc).

        The encoder knows every symbol once its step is done, so all of them go to rANS in
        one call at the end (same order as the decoder reads them).
        """
        m, h, w = y.shape
        plane = np.zeros(((h + 2) * (w + 4), m), dtype=DTYPE)
        rows_y = np.ascontiguousarray(np.asarray(y, DTYPE).reshape(m, h * w).T)
        rows_p = self._first_layer(np.ascontiguousarray(np.asarray(params, DTYPE).reshape(2 * m, h * w).T))
        symbols, indexes = [], []
        for st in _plan(h, w):
            scales, means = self._step_params(plane, rows_p, st)
            sym = np.round(rows_y[st.params] - means)
            plane[st.target] = sym + means
            symbols.append(sym.reshape(-1))
            indexes.append(self._indexes(scales).reshape(-1))
        sym_all = np.concatenate(symbols).astype("<i4")
        idx_all = np.concatenate(indexes)
        crc = zlib.crc32(sym_all.tobytes())
        enc = BufferedRansEncoder()
        enc.encode_with_indexes(sym_all.tolist(), idx_all.tolist(), self.cdfs, self.cdf_lengths, self.offsets)
        return enc.flush(), _unplane(plane, m, h, w), crc

    def decode(self, stream: bytes, params: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int]:
        """Inverse of :meth:`encode`: returns (y_hat (M, h, w) float64, symbol crc)."""
        m = self.m
        plane = np.zeros(((h + 2) * (w + 4), m), dtype=DTYPE)
        rows_p = np.ascontiguousarray(np.asarray(params, DTYPE).reshape(2 * m, h * w).T)
        rows_p = self._first_layer(rows_p)
        dec = RansDecoder()
        dec.set_stream(padded_for_decoding(stream, m * h * w))
        crc = 0
        for st in _plan(h, w):
            scales, means = self._step_params(plane, rows_p, st)
            # Pass only the CDFs this step uses: the rANS binding converts every table per call.
            used, local = np.unique(self._indexes(scales).reshape(-1), return_inverse=True)
            sub = used.tolist()
            sym = np.asarray(
                dec.decode_stream(
                    local.reshape(-1).tolist(),
                    [self.cdfs[k] for k in sub],
                    [self.cdf_lengths[k] for k in sub],
                    [self.offsets[k] for k in sub],
                ),
                dtype="<i4",
            )
            crc = zlib.crc32(sym.tobytes(), crc)
            plane[st.target] = sym.astype(DTYPE).reshape(st.n, m) + means
        return _unplane(plane, m, h, w), crc
