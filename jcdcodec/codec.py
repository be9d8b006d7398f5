"""Codec: weights + device; pictures <-> .jcd bytes.

Encoding: pad to a multiple of 64 (edge replication), analysis with the denoisers,
hyper-analysis, z through the EntropyBottleneck, h_s and the wavefront context coder for
y, alpha losslessly beside it, then the container. Decoding runs the same parts
backwards. The transforms run on the chosen device; the entropy path (h_s, context,
entropy parameters) always runs on the CPU in float64 (see ``entropy.determinism``), so
a stream made on a GPU decodes on any CPU.
"""

from __future__ import annotations

import copy
import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import bitstream, tiling
from .bitstream import PAD, Header, JcdStream, padded_size
from .entropy import WavefrontCoder, exact_entropy_path, padded_for_decoding
from .entropy.determinism import DTYPE
from .errors import BitstreamError, JcdError, WeightsError
from .imageio import DEFAULT_MAX_PIXELS, Picture
from .manifest import find_by_fingerprint
from .streaminfo import describe_fingerprint
from .weights import LoadedWeights, load_weights


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise JcdError("--device cuda requested but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise JcdError(f"unknown device {device!r} (use auto, cpu or cuda)") from None


class _Clock:
    """Wall time per phase; synchronises CUDA so GPU work lands in the right phase."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.times[phase] = self.times.get(phase, 0.0) + now - self._t
        self._t = now


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 convolutions are fast here (CUDA, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


@dataclass
class Decoded:
    picture: Picture
    header: Header
    y_hat: torch.Tensor  # the decoded latent (M, h, w), float64
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


@dataclass
class Encoded:
    data: bytes
    header: Header
    y_hat: torch.Tensor  # the latent as the decoder will see it
    y_symbols_crc: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


class Codec:
    """Encode and decode with one set of weights on one device."""

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
        self.weights = weights if isinstance(weights, LoadedWeights) else load_weights(weights)
        # Without explicit weights, a stream made by another shipped model decodes with that model.
        self._follow_stream = weights is None
        self._settings = {"device": device, "max_pixels": max_pixels, "precision": precision,
                          "max_memory": max_memory}  # fmt: skip
        self._others: dict[str, Codec] = {}
        model = self.weights.model.eval()
        # Entropy path: CPU, float64, its own copies, taken before the transforms move to the device.
        self._h_s = copy.deepcopy(model.h_s).to(DTYPE)
        self._eb = copy.deepcopy(model.entropy_bottleneck)
        self._coder = WavefrontCoder(model)
        self.device = resolve_device(device)
        self.max_pixels = max_pixels
        if max_memory <= 0:
            raise JcdError(f"max_memory must be positive, got {max_memory}")
        self.tile_side = tiling.tile_side(max_memory, model.config.N)
        self.bf16 = precision == "bf16" or (precision == "auto" and native_bf16(self.device))
        # channels_last helps oneDNN's convolutions on the CPU in both precisions.
        self._fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.model = model.to(self.device).to(memory_format=self._fmt)

    # -- helpers -------------------------------------------------------------------------
    @property
    def quality_range(self) -> tuple[float, float]:
        return self.model.quality_range()

    def check_quality(self, quality: float) -> float:
        """The quality as the stream stores it (1/32 steps), or a JcdError if the weights cannot code it."""
        lo, hi = self.quality_range
        quality = float(quality)
        if not math.isfinite(quality):
            raise JcdError(f"quality must be a number from {lo:g} to {hi:g}, got {quality}")
        q = bitstream.quantize_quality(quality)
        if lo <= quality <= hi:
            return q
        if lo == hi:
            raise JcdError(f"these weights ({self.weights.name}) code quality {lo:g} only, not {quality:g}")
        raise JcdError(f"quality {quality:g} out of range {lo:g}..{hi:g}")

    def _transforms(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _params(self, z_hat: torch.Tensor) -> torch.Tensor:
        with exact_entropy_path():
            return self._h_s(z_hat.to(DTYPE))[0]

    # -- encode -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, picture: Picture, quality: float) -> Encoded:
        q = self.check_quality(quality)
        clock = _Clock(self.device)
        return self._code(picture, self._analyse(picture, clock), q, clock)

    @torch.no_grad()
    def encode_to_size(self, picture: Picture, max_bytes: int) -> Encoded:
        """The best quality (in the stream's 1/32 steps) whose whole .jcd file fits in ``max_bytes``.

        The analysis runs once: quality only scales the latent by its gain, so the bisection repeats just
        the entropy coding (about 8 passes over the 1/32 steps of q1..q6). Raises JcdError when even the
        lowest quality does not fit.
        """
        lo, hi = self.quality_range
        steps = range(round(lo * bitstream.QUALITY_SCALE), round(hi * bitstream.QUALITY_SCALE) + 1)
        clock = _Clock(self.device)
        y1 = self._analyse(picture, clock)
        tried: dict[int, Encoded] = {}

        def at(k: int) -> Encoded:
            if k not in tried:
                tried[k] = self._code(picture, y1, k / bitstream.QUALITY_SCALE, clock)
            return tried[k]

        if len(at(steps[0]).data) > max_bytes:
            raise JcdError(f"even quality {lo:g} needs {len(at(steps[0]).data)} bytes, more than {max_bytes}")
        a, b = 0, len(steps) - 1  # invariant: steps[a] fits; everything above steps[b] was not found to fit
        if len(at(steps[b]).data) <= max_bytes:
            a = b
        while a < b:
            mid = (a + b + 1) // 2
            if len(at(steps[mid]).data) <= max_bytes:
                a = mid
            else:
                b = mid - 1
        best = at(steps[a])
        best.timings.update(clock.times, passes=float(len(tried)))
        return best

    def _analyse(self, picture: Picture, clock: _Clock) -> torch.Tensor:
        """Padded picture -> denoised latent before the quality gain (1, N, H/16, W/16), fp32 on the device."""
        h, w = picture.height, picture.width
        if h * w > self.max_pixels:
            raise JcdError(f"image is {w}x{h} = {h * w} pixels, above the limit of {self.max_pixels}")
        hp, wp = padded_size(h, w)
        x = torch.from_numpy(np.require(picture.rgb, requirements=["C", "W"])).permute(2, 0, 1)[None].to(self.device)
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate") if (hp, wp) != (h, w) else x
        tiles = tiling.plan(hp // 16, wp // 16, self.tile_side)
        with self._transforms():
            y1 = tiling.analysis(lambda t: self.model.analysis_noisy(t.contiguous(memory_format=self._fmt))[1], x,
                                 tiles, self.model.config.N)  # fmt: skip
        clock.lap("network")
        return y1

    def _code(self, picture: Picture, y1: torch.Tensor, q: float, clock: _Clock) -> Encoded:
        """Gain of quality ``q``, hyperprior, wavefront entropy coding, container."""
        g = self.model.gain(q)
        y = y1 if g is None else y1 * g.to(y1.device)
        z = self.model.h_a(y).cpu()
        y = y.cpu()
        clock.lap("network")
        z_strings = self._eb.compress(z)
        z_hat = self._eb.decompress(z_strings, z.shape[-2:])
        params = self._params(z_hat)
        clock.lap("hyper_synthesis")
        with exact_entropy_path():
            y_stream, y_hat, crc = self._coder.encode(y[0], params)
        clock.lap("entropy_coding")
        alpha = b""
        if picture.alpha is not None:
            full = np.iinfo(picture.alpha.dtype).max
            if not (picture.alpha == full).all():
                alpha = zlib.compress(picture.alpha.astype(picture.alpha.dtype.newbyteorder(">")).tobytes(), 9)
        header = Header(
            width=picture.width,
            height=picture.height,
            quality=q,
            fingerprint=self.weights.fingerprint,
            kind=picture.kind,
            depth=picture.depth,
            has_alpha=picture.alpha is not None,
        )
        data = bitstream.pack(JcdStream(header, z_strings[0], y_stream, alpha, crc))
        clock.lap("container")
        return Encoded(data, header, y_hat, crc, dict(clock.times))

    # -- decode -----------------------------------------------------------------------------
    def _shipped_codec_for(self, fingerprint: bytes) -> Codec | None:
        """A codec with the shipped model that made a stream, when this one follows streams."""
        if not self._follow_stream:
            return None
        found = find_by_fingerprint(fingerprint)
        if found is None or found[0] == self.weights.name:
            return None
        name = found[0]
        if name not in self._others:
            self._others[name] = Codec(load_weights(name), **self._settings)
        return self._others[name]

    @torch.no_grad()
    def decode(self, data: bytes) -> Decoded:
        s = bitstream.unpack(data)
        hd = s.header
        if hd.fingerprint != self.weights.fingerprint:
            other = self._shipped_codec_for(hd.fingerprint)
            if other is not None:
                return other.decode(data)
            made_with = describe_fingerprint(hd.fingerprint)
            raise WeightsError(
                f"stream was made with weights {made_with}, but the loaded weights are "
                f"{self.weights.name} [{self.weights.fingerprint.hex()}]; pass --weights with the right file"
            )
        q = self.check_quality(hd.quality)
        if hd.width * hd.height > self.max_pixels:
            raise JcdError(
                f"image is {hd.width}x{hd.height} = {hd.width * hd.height} pixels, above the limit of "
                f"{self.max_pixels} (raise it with --max-pixels)"
            )
        hp, wp = padded_size(hd.height, hd.width)
        clock = _Clock(self.device)
        try:
            zh, zw = hp // PAD, wp // PAD
            z_hat = self._eb.decompress([padded_for_decoding(s.z, self.model.config.N * zh * zw)], (zh, zw))
        except (RuntimeError, ValueError) as e:
            raise BitstreamError(f"corrupted stream (z: {e})") from None
        params = self._params(z_hat)
        clock.lap("hyper_synthesis")
        with exact_entropy_path():
            y_hat, crc = self._coder.decode(s.y, params, hp // 16, wp // 16)
        clock.lap("entropy_coding")
        if crc != s.symbol_crc:
            raise BitstreamError(
                "decoded latent does not match the encoder's (symbol checksum mismatch): "
                "the stream is damaged or was made by an incompatible jcd"
            )
        tiles = tiling.plan(hp // 16, wp // 16, self.tile_side)
        with self._transforms():
            y_in = y_hat[None].float().to(self.device)
            x_hat = tiling.synthesis(lambda t: self.model.synthesis(t.contiguous(memory_format=self._fmt), q), y_in,
                                     tiles).clamp_(0, 1)  # fmt: skip
        rgb = x_hat[0, :, : hd.height, : hd.width].permute(1, 2, 0).float().cpu().numpy()
        clock.lap("network")
        alpha = self._decode_alpha(s, hd)
        clock.lap("container")
        return Decoded(Picture(np.ascontiguousarray(rgb), hd.kind, hd.depth, alpha), hd, y_hat, clock.times)

    @staticmethod
    def _decode_alpha(s: JcdStream, hd: Header) -> np.ndarray | None:
        if not hd.has_alpha:
            return None
        dtype = np.dtype(">u2") if hd.depth == 16 else np.dtype("u1")
        size = hd.width * hd.height * dtype.itemsize
        if not s.alpha:
            return np.full((hd.height, hd.width), np.iinfo(dtype).max, dtype=dtype.newbyteorder("="))
        try:
            d = zlib.decompressobj()
            raw = d.decompress(s.alpha, size + 1)
        except zlib.error as e:
            raise BitstreamError(f"corrupted stream (alpha: {e})") from None
        if len(raw) != size:
            raise BitstreamError("corrupted stream (alpha plane has the wrong size)")
        return np.frombuffer(raw, dtype=dtype).reshape(hd.height, hd.width).astype(dtype.newbyteorder("="))
