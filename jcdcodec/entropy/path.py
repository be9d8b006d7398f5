"""The entropy path of a jcd stream: z's factorized prior, the hyper-synthesis h_s, and the context coder.

Everything that decides a symbol's probability lives here, in numpy float64, built from the weights
file's tensors: the encoder (with PyTorch) and the decoder (with or without it) run this one
implementation, so they agree by construction (see :mod:`.determinism` for the remaining ~1e-16).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import BitstreamError
from .arrays import DTYPE, Conv3x3, leaky_relu, one_blas_thread, pixel_shuffle
from .context import WavefrontCoder, coder_tables, padded_for_decoding
from .rans import RansDecoder, RansEncoder

#: Tensors of a weights file that the entropy path reads (prefixes); a decoder loads only these and g_s.
PREFIXES = ("h_s.", "context_prediction.", "entropy_parameters.", "entropy_bottleneck.", "gaussian_conditional.")


class HyperSynthesis:
    """h_s: conv3x3, subpel x2, conv3x3, subpel x2, conv3x3, LeakyReLU between them (Cheng2020)."""

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.layers: list[tuple[Conv3x3, int]] = []  # (convolution, pixel-shuffle factor)
        k = 0
        while True:
            if f"h_s.{k}.weight" in state:
                self.layers.append((Conv3x3.from_torch_layout(state[f"h_s.{k}.weight"], state[f"h_s.{k}.bias"]), 1))
            elif f"h_s.{k}.0.weight" in state:
                conv = Conv3x3.from_torch_layout(state[f"h_s.{k}.0.weight"], state[f"h_s.{k}.0.bias"])
                self.layers.append((conv, 2))
            else:
                break
            k += 2  # layer, LeakyReLU, layer, ...
        if not self.layers:
            raise ValueError("weights hold no h_s layers")

    def __call__(self, z_hat: np.ndarray) -> np.ndarray:
        """z_hat (N, h, w) -> entropy parameters from the hyperprior (2M, 4h, 4w), float64."""
        x = np.ascontiguousarray(np.asarray(z_hat, DTYPE).transpose(1, 2, 0))
        last = len(self.layers) - 1
        for k, (conv, r) in enumerate(self.layers):
            x = conv(x)
            if r > 1:
                x = pixel_shuffle(x, r)
            if k < last:
                x = leaky_relu(x)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


class FactorizedPrior:
    """z's coder: CompressAI's EntropyBottleneck tables (one CDF per channel) and medians, without torch.

    Symbols are round(z - median); z_hat = symbol + median in float32, as CompressAI computes both.
    """

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        quantiles = np.asarray(state["entropy_bottleneck.quantiles"], np.float32)  # (C, 1, 3)
        self.medians = np.ascontiguousarray(quantiles[:, 0, 1])
        self.channels = self.medians.shape[0]
        self.cdfs, self.cdf_lengths, self.offsets = coder_tables(state, "entropy_bottleneck")

    def _indexes(self, h: int, w: int) -> list[int]:
        return np.repeat(np.arange(self.channels), h * w).tolist()

    def encode(self, z: np.ndarray) -> bytes:
        """z (C, h, w) float32 -> its stream."""
        c, h, w = z.shape
        symbols = np.round(np.asarray(z, np.float32) - self.medians[:, None, None]).astype(np.int32)
        return RansEncoder().encode_with_indexes(
            symbols.reshape(-1).tolist(), self._indexes(h, w), self.cdfs, self.cdf_lengths, self.offsets
        )

    def decode(self, stream: bytes, h: int, w: int) -> np.ndarray:
        """The stream -> z_hat (C, h, w) float32; a damaged stream gives wrong values, never a crash."""
        n = self.channels * h * w
        try:
            values = RansDecoder().decode_with_indexes(
                padded_for_decoding(stream, n), self._indexes(h, w), self.cdfs, self.cdf_lengths, self.offsets
            )
        except (RuntimeError, ValueError) as e:
            raise BitstreamError(f"corrupted stream (z: {e})") from None
        symbols = np.asarray(values, dtype=np.int32).reshape(self.channels, h, w)
        return symbols.astype(np.float32) + self.medians[:, None, None]


class EntropyPath:
    """z prior + h_s + context coder of one set of weights."""

    def __init__(self, state: Mapping[str, np.ndarray]) -> None:
        self.z = FactorizedPrior(state)
        self.h_s = HyperSynthesis(state)
        self.y = WavefrontCoder(state)

    def encode(self, y: np.ndarray, z: np.ndarray) -> tuple[bytes, bytes, np.ndarray, int]:
        """Latent y (M, h, w) and hyper-latent z (N, h/4, w/4) -> (z stream, y stream, y_hat, symbol crc).

        The encoder decodes its own z stream so that h_s sees exactly the decoder's z_hat.
        """
        with one_blas_thread():
            z_stream = self.z.encode(z)
            z_hat = self.z.decode(z_stream, *z.shape[1:])
            y_stream, y_hat, crc = self.y.encode(y, self.h_s(z_hat))
        return z_stream, y_stream, y_hat, crc

    def decode(self, z_stream: bytes, y_stream: bytes, h: int, w: int) -> tuple[np.ndarray, int]:
        """Streams of an (h, w) latent -> (y_hat (M, h, w) float64, symbol crc)."""
        with one_blas_thread():
            z_hat = self.z.decode(z_stream, h // 4, w // 4)
            return self.y.decode(y_stream, self.h_s(z_hat), h, w)
