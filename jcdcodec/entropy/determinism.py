"""Why the entropy path is numpy float64, on both sides.

The encoder and the decoder must derive the same scale index for every symbol. In float32
the same layers differ by ~1e-7 between thread counts and instruction sets, enough to
flip an index now and then. jcd therefore runs the entropy path (z's prior, h_s, context
model, entropy parameters) in float64, in one numpy implementation (:mod:`.path`) that the
encoder and both decoders (with and without PyTorch) share: the differences left between
machines (BLAS kernels, thread counts) are ~1e-16, and an index flip would need a scale
within that distance of a table boundary (about 1e-9 expected flips per image); the symbol
checksum catches it if it ever happens.
"""

from __future__ import annotations

from .arrays import DTYPE

__all__ = ["DTYPE"]
