"""Codec: weights + device; pictures <-> .jcd bytes.

Encoding: pad to a multiple of 64 (edge replication), analysis with the denoisers,
hyper-analysis, then the entropy path (z's prior, h_s and the wavefront context coder for
y; :mod:`.entropy.path`), alpha losslessly beside it, then the container. Decoding runs the
same parts backwards (:class:`~jcdcodec.decoder.StreamDecoder`). The transforms run on the
chosen device; the entropy path always runs in numpy float64 on the CPU (see
``entropy.determinism``), so a stream made on a GPU decodes on any CPU, with or without PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import tiling
from .decoder import Clock, Decoded, StreamDecoder
from .encoder import Encoded, StreamEncoder
from .entropy import PREFIXES
from .errors import JcdError
from .imageio import DEFAULT_MAX_PIXELS, Picture
from .weights import LoadedWeights, load_weights
from .weightsfile import WeightsRef, read_tensors

__all__ = ["Codec", "Decoded", "Encoded", "native_bf16", "resolve_device"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise JcdError("--device cuda requested but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise JcdError(f"unknown device {device!r} (use auto, cpu or cuda)") from None


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 convolutions are fast here (CUDA, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


class Codec(StreamDecoder, StreamEncoder):
    """Encode and decode with one set of weights on one device (the "torch" decoding engine)."""

    def __init__(
        self,
        weights: str | LoadedWeights | None = None,
        device: str = "auto",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        precision: str = "auto",
        max_memory: int = tiling.DEFAULT_BUDGET,
    ) -> None:
        """``precision`` of the analysis/synthesis transforms: "fp32", "bf16", or "auto" (bf16 where the
        hardware runs it natively). It never touches the entropy path, so streams stay compatible.
        ``max_memory``: bytes the transforms may use; larger images run in tiles (see :mod:`.tiling`).
        """
        if precision not in ("auto", "fp32", "bf16"):
            raise JcdError(f"unknown precision {precision!r} (auto, fp32, bf16)")
        if isinstance(weights, LoadedWeights):
            self.weights = weights
        else:  # from a file: the entropy path reads its tables there, CompressAI's entropy models stay unloaded
            self.weights = load_weights(weights, coding_only=True)
        model = self.weights.model.eval()
        if model.entropy_bottleneck is not None:  # the entropy path's numpy copy of its tensors
            state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items() if k.startswith(PREFIXES)}
        else:
            state = read_tensors(self.weights.path, PREFIXES)
        settings = {"device": device, "max_pixels": max_pixels, "precision": precision, "max_memory": max_memory}
        # Without explicit weights, a stream made by another shipped model decodes with that model.
        self._init_stream_decoder(self._ref(), state, weights is None, settings)
        self.device = resolve_device(device)
        if max_memory <= 0:
            raise JcdError(f"max_memory must be positive, got {max_memory}")
        self.tile_side = tiling.tile_side(max_memory, model.config.N)
        self.bf16 = precision == "bf16" or (precision == "auto" and native_bf16(self.device))
        # channels_last helps oneDNN's convolutions on the CPU in both precisions.
        self._fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.model = model.to(self.device).to(memory_format=self._fmt)

    # -- helpers -------------------------------------------------------------------------
    def _ref(self) -> WeightsRef:
        w = self.weights
        if w.ref is not None:
            return w.ref
        return WeightsRef(w.path, w.sha256, w.manifest_entry, {"name": w.name}, w.model.config)

    @property
    def engine(self) -> str:
        return "torch"

    def _sibling(self, name: str | WeightsRef) -> StreamDecoder:
        return Codec(str(name.path) if isinstance(name, WeightsRef) else name, **self._settings)

    def _clock(self) -> Clock:
        sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        return Clock(sync)

    def _transforms(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # -- encode -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, picture: Picture, quality: float) -> Encoded:
        return super().encode(picture, quality)

    @torch.no_grad()
    def encode_to_size(self, picture: Picture, max_bytes: int) -> Encoded:
        return super().encode_to_size(picture, max_bytes)

    def _analyse(self, picture: Picture, clock: Clock) -> torch.Tensor:
        h, w = picture.height, picture.width
        hp, wp = self._check_size(picture)
        x = torch.from_numpy(np.require(picture.rgb, requirements=["C", "W"])).permute(2, 0, 1)[None].to(self.device)
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate") if (hp, wp) != (h, w) else x
        tiles = tiling.plan(hp // 16, wp // 16, self.tile_side)
        with self._transforms():
            y1 = tiling.analysis(lambda t: self.model.analysis_noisy(t.contiguous(memory_format=self._fmt))[1], x,
                                 tiles, self.model.config.N)  # fmt: skip
        clock.lap("network")
        return y1

    def _hyper(self, y1: torch.Tensor, quality: float) -> tuple[np.ndarray, np.ndarray]:
        g = self.model.gain(quality)
        y = y1 if g is None else y1 * g.to(y1.device)
        z = self.model.h_a(y).float().cpu().numpy()[0]
        return y.float().cpu().numpy()[0], z

    # -- decode -----------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, data: bytes) -> Decoded:
        return super().decode(data)

    def _synthesize(self, y_hat: np.ndarray, quality: float) -> np.ndarray:
        h, w = y_hat.shape[-2:]
        tiles = tiling.plan(h, w, self.tile_side)
        with self._transforms():
            y_in = torch.from_numpy(y_hat)[None].float().to(self.device)
            x_hat = tiling.synthesis(lambda t: self.model.synthesis(t.contiguous(memory_format=self._fmt), quality),
                                     y_in, tiles).clamp_(0, 1)  # fmt: skip
        return x_hat[0].permute(1, 2, 0).float().cpu().numpy()
