"""Analysis and synthesis in tiles, so memory stays bounded for any image size.

The latent is still coded as one piece (one stream, one context model over the whole
image): only the transforms run tile by tile. A tile is a rectangle of the latent grid
(1/16 of the image) grown by a halo of ``HALO`` latent pixels on every side that has a
neighbour; the transform runs on the tile with its halo and only the core is kept.

- Synthesis (g_s) is made of local convolutions only. With an 8-pixel latent halo the
  tiled output matches the untiled one to float rounding (tests/test_tiling.py).
- Analysis contains CBAM, whose channel gate pools over the whole feature map, so each
  tile sees its own (tile + halo) statistics. Tiles are made large (memory permitting) to
  keep that difference small; the seams it leaves are measured in docs/robustness.md.

The tile size comes from a memory budget: activations of the transforms cost about
``BYTES_PER_PIXEL_PER_CHANNEL * N`` bytes per image pixel (measured with
benchmarks/huge.py), so a budget of B bytes allows tiles of about B / (that) pixels.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

#: A torch tensor (the PyTorch codec) or a numpy array (the torch-free coder): tiling works on both.
Array = TypeVar("Array")

#: Latent pixels of context kept around each tile (128 image pixels).
HALO = 8
#: Transform-activation bytes per image pixel and per channel of N (fp32, CPU), measured peak
#: over analysis and synthesis; benchmarks/huge.py prints the figure this comes from.
BYTES_PER_PIXEL_PER_CHANNEL = 3.0
#: Smallest core tile side in latent pixels (256 image pixels): below this the halo dominates.
MIN_TILE = 16
#: Memory budget for the transforms when none is given: 1.5 GiB (24 Mpx photos peak under 4 GB in all).
DEFAULT_BUDGET = 3 << 29


#: Told (tiles done, tiles in all) after each tile of a tiled transform, when set by :func:`reporting`.
_progress: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar("jcd_tiles", default=None)


@contextlib.contextmanager
def reporting(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, tiled transforms call ``callback(done, total)`` after each tile.

    Why: a 24 Mpx photo spends a minute or more in its transforms; `jcd encode` shows that as a bar instead of
    a spinner. The codec's API stays as it is (a context variable, not an argument through every layer).
    """
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


def _told(done: int, total: int) -> None:
    callback = _progress.get()
    if callback is not None:
        callback(done, total)


@dataclass(frozen=True)
class Tile:
    """A core rectangle of the latent grid and the halo-grown rectangle the transform sees."""

    core: tuple[int, int, int, int]  # i0, i1, j0, j1 (latent rows, columns; end exclusive)
    outer: tuple[int, int, int, int]


def tile_side(budget_bytes: int, channels: int) -> int:
    """The core tile side (latent pixels) whose halo-grown tile fits the budget."""
    pixels = budget_bytes / (BYTES_PER_PIXEL_PER_CHANNEL * channels)
    side = int(math.sqrt(pixels) / 16) - 2 * HALO
    return max(MIN_TILE, side)


def plan(h: int, w: int, side: int) -> list[Tile]:
    """Tiles covering an h x w latent with cores of at most side x side; one tile when it fits."""
    if h <= side and w <= side:
        return [Tile((0, h, 0, w), (0, h, 0, w))]
    rows = _split(h, side)
    cols = _split(w, side)
    tiles = []
    for i0, i1 in rows:
        for j0, j1 in cols:
            outer = (max(i0 - HALO, 0), min(i1 + HALO, h), max(j0 - HALO, 0), min(j1 + HALO, w))
            tiles.append(Tile((i0, i1, j0, j1), outer))
    return tiles


def _split(n: int, side: int) -> list[tuple[int, int]]:
    """n into ceil(n/side) nearly equal parts (equal parts keep every tile's context alike)."""
    k = -(-n // side)
    edges = [round(n * i / k) for i in range(k + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _empty(like: Array, shape: tuple[int, ...]) -> Array:
    """An uninitialised float32 array of ``shape`` of the same kind (and device) as ``like``."""
    if isinstance(like, np.ndarray):
        return np.empty(shape, dtype=np.float32)
    import torch  # already loaded: ``like`` is a tensor

    return like.new_empty(shape, dtype=torch.float32)


def _float(a: Array) -> Array:
    return a.astype(np.float32, copy=False) if isinstance(a, np.ndarray) else a.float()


def analysis(fn: Callable[[Array], Array], x: Array, tiles: list[Tile], channels: int) -> Array:
    """y = fn(x) tile by tile; x is (1, 3, 16 h, 16 w), y is (1, channels, h, w) fp32 on x's device.

    ``x`` is a torch tensor or a numpy array (``fn`` takes and returns the same kind).
    """
    if len(tiles) == 1:
        return _float(fn(x))
    h, w = x.shape[-2] // 16, x.shape[-1] // 16
    y = _empty(x, (1, channels, h, w))
    for k, t in enumerate(tiles, start=1):
        a0, a1, b0, b1 = t.outer
        part = _float(fn(x[:, :, a0 * 16 : a1 * 16, b0 * 16 : b1 * 16]))
        i0, i1, j0, j1 = t.core
        y[:, :, i0:i1, j0:j1] = part[:, :, i0 - a0 : i1 - a0, j0 - b0 : j1 - b0]
        _told(k, len(tiles))
    return y


def synthesis(fn: Callable[[Array], Array], y: Array, tiles: list[Tile]) -> Array:
    """x = fn(y) tile by tile; y is (1, C, h, w), x is (1, 3, 16 h, 16 w) fp32 on y's device.

    ``y`` is a torch tensor or a numpy array (``fn`` takes and returns the same kind).
    """
    if len(tiles) == 1:
        return _float(fn(y))
    h, w = y.shape[-2:]
    x = _empty(y, (1, 3, h * 16, w * 16))
    for k, t in enumerate(tiles, start=1):
        a0, a1, b0, b1 = t.outer
        part = _float(fn(y[:, :, a0:a1, b0:b1]))
        i0, i1, j0, j1 = t.core
        x[:, :, i0 * 16 : i1 * 16, j0 * 16 : j1 * 16] = part[
            :, :, (i0 - a0) * 16 : (i1 - a0) * 16, (j0 - b0) * 16 : (j1 - b0) * 16
        ]
        _told(k, len(tiles))
    return x


def boundary_mask(height: int, width: int, side: int, band: int = 8) -> np.ndarray:
    """(height, width) bool: within ``band`` image pixels of an interior tile boundary (for seam checks)."""
    from .bitstream import padded_size

    hp, wp = padded_size(height, width)
    mask = np.zeros((hp, wp), dtype=bool)
    for t in plan(hp // 16, wp // 16, side):
        i0, i1, j0, j1 = (v * 16 for v in t.core)
        for i in (i0, i1):
            if 0 < i < hp:
                mask[max(i - band, 0) : i + band, :] = True
        for j in (j0, j1):
            if 0 < j < wp:
                mask[:, max(j - band, 0) : j + band] = True
    return mask[:height, :width]


def parse_bytes(text: str) -> int:
    """'1.5G', '800M', '4GiB', '123456' -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (e.g. 1.5G, 800M)") from None
    if not value > 0:
        raise ValueError(f"{text!r}: a memory budget must be positive")
    return int(value)
