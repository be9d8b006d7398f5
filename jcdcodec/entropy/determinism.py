"""One place that decides how the entropy path is computed, on both sides.

The encoder and the decoder must derive the same scale index for every symbol. In float32
the same layers differ by ~1e-7 between thread counts and instruction sets, enough to
flip an index now and then. jcd therefore runs the entropy path (h_s, context model,
entropy parameters) in float64 on the CPU with one thread: the differences left between
machines are ~1e-16 and an index flip would need a scale within that distance of a table
boundary (about 1e-9 expected flips per image); the symbol checksum catches it if it
ever happens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

DTYPE = torch.float64


@contextlib.contextmanager
def exact_entropy_path() -> Iterator[None]:
    """Single-threaded, no autocast: the arithmetic both sides agree on."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.autocast("cpu", enabled=False), torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)
