"""Decoding a .jcd stream, and the decoder that needs no PyTorch.

Every decoder does the same around the synthesis network: validate the container, find the weights the
stream names, entropy-decode the latent with the shared numpy path (:mod:`.entropy.path`), check the
symbol checksum, run g_s, crop, restore alpha. :class:`StreamDecoder` holds that; the engines differ in
g_s only:

- :class:`OnnxDecoder` ("onnx"): g_s exported to ONNX, run by OpenVINO or onnxruntime on the CPU
  (:mod:`.synthesis`). Imports neither torch nor CompressAI's Python package: a one-image
  ``jcd decode`` starts in a fraction of a second.
- :class:`~jcdcodec.codec.Codec` ("torch"): the PyTorch model, on the CPU or CUDA, in fp32 or bf16.

Both decode every stream to the same latent (the entropy path is one implementation) and to pixels that
differ only by float rounding in g_s. :func:`open_decoder` picks one.
"""

from __future__ import annotations

import numbers
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import bitstream, tiling
from .bitstream import Header, JcdStream, padded_size
from .config import ModelConfig
from .entropy.path import PREFIXES, EntropyPath
from .errors import BitstreamError, JcdError, ModelUnavailable, WeightsError
from .imageio import DEFAULT_MAX_PIXELS, Picture
from .manifest import find_by_fingerprint
from .retired import find_retired, rebuilt_weights, retired_label, retired_note
from .streaminfo import describe_fingerprint
from .synthesis import RELEASE_ABOVE
from .weightsfile import WeightsRef, read_tensors, resolve

ENGINES = ("auto", "onnx", "torch")


@dataclass
class Decoded:
    picture: Picture
    header: Header
    y_hat: np.ndarray  # the decoded latent (M, h, w), float64
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


class Clock:
    """Wall time per phase; ``sync`` (e.g. a CUDA synchronise) makes device work land in the right phase."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.sync is not None:
            self.sync()
        now = time.perf_counter()
        self.times[phase] = self.times.get(phase, 0.0) + now - self._t
        self._t = now


def interpolated_gain(config: ModelConfig, table: np.ndarray, quality: float) -> np.ndarray:
    """exp of the log-gain table interpolated at ``quality``, as (N,) float32 (JointModel._interp's rule)."""
    qs = config.qualities
    pos = min(max(quality, qs[0]), qs[-1])
    lo = max(i for i, q in enumerate(qs) if q <= pos)
    hi = min(lo + 1, len(qs) - 1)
    t = 0.0 if hi == lo else (pos - qs[lo]) / (qs[hi] - qs[lo])
    table = np.asarray(table, np.float32)
    return np.exp(table[lo] * np.float32(1 - t) + table[hi] * np.float32(t))


class StreamDecoder:
    """The engine-independent part of decoding; subclasses provide :meth:`_synthesize`."""

    ref: WeightsRef
    entropy: EntropyPath
    max_pixels: int
    _follow_stream: bool
    _settings: dict

    def _init_stream_decoder(self, ref: WeightsRef, state: dict, follow_stream: bool, settings: dict) -> None:
        self.ref = ref
        try:
            self.entropy = EntropyPath(state)
        except (KeyError, ValueError, IndexError) as e:
            raise WeightsError(f"{ref.path}: weights do not hold a usable entropy model ({e})") from None
        self.max_pixels = settings.get("max_pixels", DEFAULT_MAX_PIXELS)
        self._follow_stream = follow_stream
        self._settings = settings
        self._others: dict[str, StreamDecoder] = {}

    @property
    def engine(self) -> str:
        raise NotImplementedError

    @property
    def quality_range(self) -> tuple[float, float]:
        qs = self.ref.config.qualities
        return float(qs[0]), float(qs[-1])

    def check_quality(self, quality: float) -> float:
        """The quality as the stream stores it (1/32 steps), or a JcdError if the weights cannot code it."""
        lo, hi = self.quality_range
        quality = float(quality)
        if not np.isfinite(quality):
            raise JcdError(f"quality must be a number from {lo:g} to {hi:g}, got {quality}")
        q = bitstream.quantize_quality(quality)
        if lo <= quality <= hi:
            return q
        if lo == hi:
            raise JcdError(f"these weights ({self.ref.name}) code quality {lo:g} only, not {quality:g}")
        raise JcdError(f"quality {quality:g} out of range {lo:g}..{hi:g}")

    def _sibling(self, name: str | WeightsRef) -> StreamDecoder:
        """A decoder of the same kind for another shipped model (streams made with it), or for the rebuilt
        file of an earlier version."""
        raise NotImplementedError

    def _shipped_decoder_for(self, fingerprint: bytes) -> StreamDecoder | None:
        """A decoder with the shipped model that made a stream, when this one follows streams."""
        if not self._follow_stream:
            return None
        found = find_by_fingerprint(fingerprint)
        if found is None:
            return self._earlier_version_decoder(fingerprint)
        if found[0] == self.ref.name:
            return None
        return self._other(found[0], lambda: self._sibling(found[0]))

    def _earlier_version_decoder(self, fingerprint: bytes) -> StreamDecoder | None:
        """A decoder with an earlier version of a shipped model, rebuilt from its delta; None if it has none."""
        old = find_retired(fingerprint)
        if old is None or not old.get("delta"):
            return None
        return self._other(old["sha256"], lambda: self._sibling(rebuilt_weights(old)))

    def _other(self, key: str, make: Callable[[], StreamDecoder]) -> StreamDecoder:
        """The decoder kept under ``key``, made by ``make()`` the first time; weights that do not load raise
        :class:`~jcdcodec.errors.ModelUnavailable`, which stops a batch (every stream of that model would fail)."""
        if key not in self._others:
            try:
                self._others[key] = make()
            except WeightsError as e:
                raise ModelUnavailable(str(e)) from None
        return self._others[key]

    def _clock(self) -> Clock:
        return Clock()

    def decode(self, data: bytes) -> Decoded:
        s = bitstream.unpack(data)
        hd = s.header
        if hd.fingerprint != self.ref.fingerprint:
            other = self._shipped_decoder_for(hd.fingerprint)
            if other is not None:
                return other.decode(data)
            old = find_retired(hd.fingerprint)
            if old is not None and old.get("delta"):
                raise WeightsError(f"stream was made with {retired_label(old)} [{hd.fingerprint.hex()}], which "
                                   "this jcd rebuilds: decode it without --weights")  # fmt: skip
            if old is not None:
                raise WeightsError(f"stream was made with {retired_note(old)}")
            made_with = describe_fingerprint(hd.fingerprint)
            raise WeightsError(
                f"stream was made with weights {made_with}, but the loaded weights are "
                f"{self.ref.name} [{self.ref.fingerprint.hex()}]; pass --weights with the right file"
            )
        q = self.check_quality(hd.quality)
        if hd.width * hd.height > self.max_pixels:
            raise JcdError(
                f"image is {hd.width}x{hd.height} = {hd.width * hd.height} pixels, above the limit of "
                f"{self.max_pixels} (raise it with --max-pixels)"
            )
        meta = s.unpacked_metadata()  # validated before the work, not after it
        hp, wp = padded_size(hd.height, hd.width)
        clock = self._clock()
        y_hat, crc = self.entropy.decode(s.z, s.y, hp // 16, wp // 16)
        clock.lap("entropy_coding")
        if crc != s.symbol_crc:
            raise BitstreamError(
                "decoded latent does not match the encoder's (symbol checksum mismatch): "
                "the stream is damaged or was made by an incompatible jcd"
            )
        rgb = self._synthesize(y_hat, q)[: hd.height, : hd.width]
        clock.lap("network")
        alpha = decode_alpha(s, hd)
        clock.lap("container")
        return Decoded(Picture(np.ascontiguousarray(rgb), hd.kind, hd.depth, alpha, meta), hd, y_hat, clock.times)

    def _synthesize(self, y_hat: np.ndarray, quality: float) -> np.ndarray:
        """The decoded latent (M, h, w) float64 -> the padded picture (16h, 16w, 3) float32 in [0, 1]."""
        raise NotImplementedError


class OnnxDecoder(StreamDecoder):
    """Decodes without PyTorch: numpy entropy path + g_s in an ONNX runtime on the CPU."""

    def __init__(
        self,
        weights: str | os.PathLike | WeightsRef | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_memory: int = tiling.DEFAULT_BUDGET,
        threads: int = 0,
        follow_stream: bool | None = None,
        precision: str = "auto",
        sibling_engine: str = "auto",
    ) -> None:
        """``follow_stream`` (default: when ``weights`` is None): decode streams made by other shipped models
        with their own model. ``precision``: "auto" (bf16 where the CPU has it and the runtime uses it) or
        "fp32". ``sibling_engine``: the engine asked for streams of other shipped models ("onnx" refuses
        a model without a synthesis file instead of loading PyTorch for it)."""
        from .synthesis import OnnxSynthesis

        ref = weights if isinstance(weights, WeightsRef) else resolve(weights)
        if max_memory <= 0:
            raise JcdError(f"max_memory must be positive, got {max_memory}")
        synthesis = ref.synthesis_path()
        if synthesis is None:
            raise WeightsError(f"weights {ref.name} have no synthesis file for the onnx engine "
                               f"(make one with `jcd export-synthesis {ref.path}`, or use --engine torch)")  # fmt: skip
        state = read_tensors(ref.path, (*PREFIXES, "log_inv_gain"))
        if precision not in ("auto", "fp32"):
            raise JcdError(f"the onnx engine computes in auto or fp32 precision, not {precision!r}")
        settings = {"max_pixels": max_pixels, "max_memory": max_memory, "threads": threads, "precision": precision}
        self._init_stream_decoder(ref, state, weights is None if follow_stream is None else follow_stream, settings)
        self._inv_gain = state.get("log_inv_gain")
        self._sibling_engine = sibling_engine
        self._g_s = OnnxSynthesis(synthesis, ref.synthesis_of or ref.sha256, threads, precision,
                                  file_sha256=ref.synthesis_sha256())
        self.tile_side = tiling.tile_side(max_memory, ref.config.N)

    @property
    def engine(self) -> str:
        return f"onnx ({self._g_s.runtime})"

    def _sibling(self, name: str | WeightsRef) -> StreamDecoder:
        return open_decoder(name, engine=self._sibling_engine, device="cpu", **self._settings)

    def _synthesize(self, y_hat: np.ndarray, quality: float) -> np.ndarray:
        y = y_hat.astype(np.float32)[None]
        if self._inv_gain is not None:
            y = y * interpolated_gain(self.ref.config, self._inv_gain, quality)[None, :, None, None]
        tiles = tiling.plan(y.shape[2], y.shape[3], self.tile_side)
        x = tiling.synthesis(self._g_s, y, tiles)
        if y.shape[2] * y.shape[3] * 256 > RELEASE_ABOVE:  # the output picture needs that memory more
            self._g_s.release()
        return np.clip(x[0].transpose(1, 2, 0), 0, 1)


def decode_alpha(s: JcdStream, hd: Header) -> np.ndarray | None:
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


def open_decoder(
    weights: str | os.PathLike | WeightsRef | None = None,
    device: str = "auto",
    engine: str = "auto",
    **settings: object,
) -> StreamDecoder:
    """A decoder for ``weights`` (None: the default; streams of other shipped models follow their model).

    ``engine``: "onnx" (no PyTorch; CPU, fp32), "torch", or "auto": onnx when the device is the CPU (or
    "auto"), no bf16 precision is asked for, the weights have a synthesis file and onnxruntime is
    installed; else torch. ``settings`` are max_pixels, max_memory, threads (0: the runtime's default;
    for the torch engine this sets PyTorch's process-wide thread count), and for torch precision.
    """
    check_threads(settings)
    if onnx_wanted(engine, device, str(settings.get("precision", "auto"))):
        ref = weights if isinstance(weights, WeightsRef) else resolve(weights)
        if engine == "onnx":
            return OnnxDecoder(ref, follow_stream=weights is None, sibling_engine="onnx",
                               **onnx_settings(settings))  # type: ignore[arg-type]  # fmt: skip
        if ref.synthesis_path() is not None:
            return OnnxDecoder(ref, follow_stream=weights is None, **onnx_settings(settings))  # type: ignore[arg-type]
    return _torch_decoder(weights, device, settings)


def onnx_wanted(engine: str, device: str, precision: str) -> bool:
    """Whether to try the onnx engine (asked for, or "auto" on the CPU without bf16 and with a runtime
    installed); a one-line JcdError for a choice that cannot work. Shared by open_decoder and open_encoder."""
    if engine not in ENGINES:
        raise JcdError(f"unknown engine {engine!r} (use {', '.join(ENGINES)})")
    from .synthesis import choose_runtime

    if engine == "onnx":
        if precision == "bf16":
            raise JcdError("--engine onnx computes in auto or fp32 precision; --precision bf16 needs --engine torch")
        if device not in ("auto", "cpu"):
            raise JcdError(f"--engine onnx runs on the CPU only, not on --device {device}")
        if choose_runtime() is None:
            raise JcdError("--engine onnx needs onnxruntime or openvino (pip install onnxruntime)")
        return True
    return engine == "auto" and precision != "bf16" and device in ("auto", "cpu") and choose_runtime() is not None


def check_threads(settings: dict) -> None:
    """A thread count is a whole number, 0 (the runtime's default) or more: -1 reached OpenVINO, whose refusal
    read as damaged weights ("not a readable synthesis file")."""
    threads = settings.get("threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 0:
        raise JcdError(f"threads must be a whole number, 0 (the runtime's default) or more, not {threads!r}")


def onnx_settings(settings: dict) -> dict:
    """The settings the onnx engine takes (PyTorch's device-specific ones left out)."""
    return {k: v for k, v in settings.items() if k in ("max_pixels", "max_memory", "threads", "precision")}


def _torch_decoder(weights: str | os.PathLike | WeightsRef | None, device: str, settings: dict) -> StreamDecoder:
    from .codec import Codec

    if isinstance(weights, WeightsRef):
        weights = str(weights.path)
    torch_settings = {k: v for k, v in settings.items() if k in ("max_pixels", "max_memory", "precision")}
    if settings.get("threads"):
        import torch

        torch.set_num_threads(int(settings["threads"]))  # type: ignore[call-overload]  (process-wide)
    return Codec(weights, device=device, **torch_settings)  # type: ignore[arg-type]
