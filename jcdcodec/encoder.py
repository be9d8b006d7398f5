"""Encoding a picture into a .jcd stream, and the codec that needs no PyTorch.

Every encoder does the same around the analysis network: pad the picture, run the analysis, scale the
latent by the quality's gain, run h_a, entropy-code with the shared numpy path (:mod:`.entropy.path`),
keep alpha losslessly, pack the container. :class:`StreamEncoder` holds that; the engines differ in the
networks only:

- :class:`OnnxCodec` ("onnx"): the analysis from ``NAME.analysis.onnx`` and g_s from
  ``NAME.synthesis.onnx``, run by OpenVINO or onnxruntime on the CPU, h_a in numpy
  (:mod:`.analysis`). Imports neither torch nor CompressAI's Python package, so a one-image
  ``jcd encode`` starts in a fraction of a second.
- :class:`~jcdcodec.codec.Codec` ("torch"): the PyTorch model, on the CPU or CUDA, in fp32 or bf16.

The two encoders compute the latent with different float rounding, so a few symbols of a stream may
differ between them; either stream decodes exactly with either decoder, because the decoder derives
every probability from the symbols alone. :func:`open_encoder` picks one.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import bitstream, metadata, tiling
from .bitstream import Header, padded_size
from .decoder import Clock, OnnxDecoder, check_threads, interpolated_gain, onnx_settings, onnx_wanted
from .errors import DoesNotFit, JcdError, WeightsError
from .imageio import DEFAULT_MAX_PIXELS, Picture
from .synthesis import RELEASE_ABOVE
from .weightsfile import WeightsRef, read_tensors, resolve

__all__ = ["Encoded", "OnnxCodec", "StreamEncoder", "open_encoder"]



@dataclass
class Encoded:
    data: bytes
    header: Header
    y_hat: np.ndarray  # the latent as the decoder will see it, (M, h, w) float64
    y_symbols_crc: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


class StreamEncoder:
    """The engine-independent part of encoding; subclasses provide :meth:`_analyse` and :meth:`_hyper`.

    Mixed into a :class:`~jcdcodec.decoder.StreamDecoder`, whose weights reference, entropy path,
    quality checks and clock it uses.
    """

    def encode(self, picture: Picture, quality: float) -> Encoded:
        q = self.check_quality(quality)  # type: ignore[attr-defined]
        clock = self._clock()  # type: ignore[attr-defined]
        return self._code(picture, self._analyse(picture, clock), q, clock)

    def encode_to_size(self, picture: Picture, max_bytes: int) -> Encoded:
        """The best quality (in the stream's 1/32 steps) whose whole .jcd file fits in ``max_bytes``.

        The analysis runs once: quality only scales the latent by its gain, so the bisection repeats just
        h_a and the entropy coding (about 8 passes over the 1/32 steps of q1..q6). Raises JcdError when
        even the lowest quality does not fit.
        """
        lo, hi = self.quality_range  # type: ignore[attr-defined]
        steps = range(round(lo * bitstream.QUALITY_SCALE), round(hi * bitstream.QUALITY_SCALE) + 1)
        clock = self._clock()  # type: ignore[attr-defined]
        y1 = self._analyse(picture, clock)
        tried: dict[int, Encoded] = {}

        def at(k: int) -> Encoded:
            if k not in tried:
                tried[k] = self._code(picture, y1, k / bitstream.QUALITY_SCALE, clock)
            return tried[k]

        if (needed := len(at(steps[0]).data)) > max_bytes:
            meta = len(metadata.pack(picture.meta)) if picture.meta else 0
            kept = f" ({meta} bytes of it metadata, which --metadata none leaves out)" if meta else ""
            raise DoesNotFit.at(lo, needed, max_bytes, kept)
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

    def _check_size(self, picture: Picture) -> tuple[int, int]:
        """The padded size of ``picture``, or a JcdError when it is above the pixel limit."""
        h, w = picture.height, picture.width
        if h < 1 or w < 1:  # an empty array or Picture from the API (a file's empty size is refused as it is read)
            raise JcdError(f"image is {w}x{h}: an empty image, nothing to code")
        if h * w > self.max_pixels:  # type: ignore[attr-defined]
            raise JcdError(f"image is {w}x{h} = {h * w} pixels, above the limit of {self.max_pixels}")  # type: ignore[attr-defined]
        return padded_size(h, w)

    def _analyse(self, picture: Picture, clock: Clock):
        """Padded picture -> the denoised latent before the quality gain (1, N, H/16, W/16), fp32."""
        raise NotImplementedError

    def _hyper(self, y1, quality: float) -> tuple[np.ndarray, np.ndarray]:
        """The latent times the gain of ``quality`` and its hyper-latent h_a(y), as numpy float32 (N, h, w)."""
        raise NotImplementedError

    def _code(self, picture: Picture, y1, q: float, clock: Clock) -> Encoded:
        """Gain of quality ``q``, hyperprior, wavefront entropy coding, container."""
        y, z = self._hyper(y1, q)
        clock.lap("network")
        z_stream, y_stream, y_hat, crc = self.entropy.encode(y, z)  # type: ignore[attr-defined]
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
            fingerprint=self.ref.fingerprint,  # type: ignore[attr-defined]
            kind=picture.kind,
            depth=picture.depth,
            has_alpha=picture.alpha is not None,
            version=bitstream.VERSION_METADATA if picture.meta else bitstream.VERSION,
        )
        meta = metadata.pack(picture.meta) if picture.meta else b""
        data = bitstream.pack(bitstream.JcdStream(header, z_stream, y_stream, alpha, crc, meta))
        clock.lap("container")
        return Encoded(data, header, y_hat, crc, dict(clock.times))


class OnnxCodec(OnnxDecoder, StreamEncoder):
    """Encodes and decodes without PyTorch: ONNX analysis and g_s on the CPU, h_a and entropy path in numpy."""

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
        """As :class:`~jcdcodec.decoder.OnnxDecoder`; the weights need both companions (``jcd export`` writes
        them; ``jcd export-synthesis`` adds them to weights exported before)."""
        from .analysis import HyperAnalysis, OnnxAnalysis

        ref = weights if isinstance(weights, WeightsRef) else resolve(weights)
        analysis = ref.analysis_path()
        if analysis is None:
            raise WeightsError(f"weights {ref.name} have no analysis file for the onnx engine "
                               f"(make one with `jcd export-synthesis {ref.path}`, or use --engine torch)")  # fmt: skip
        super().__init__(ref, max_pixels, max_memory, threads,
                         weights is None if follow_stream is None else follow_stream, precision,
                         sibling_engine)  # fmt: skip
        state = read_tensors(ref.path, ("h_a.", "log_gain"))
        try:
            self._h_a = HyperAnalysis(state)
        except (KeyError, ValueError) as e:
            raise WeightsError(f"{ref.path}: weights do not hold a usable h_a ({e})") from None
        self._gain = state.get("log_gain")
        self._g_a = OnnxAnalysis(analysis, ref.sha256, threads, precision, file_sha256=ref.analysis_sha256())

    def _analyse(self, picture: Picture, clock: Clock) -> np.ndarray:
        hp, wp = self._check_size(picture)
        h, w = picture.height, picture.width
        # One planar copy of the picture, padded in place by edge replication as the PyTorch encoder pads: at
        # 24 Mpx each float copy is about 0.3 GB.
        x = np.empty((1, 3, hp, wp), np.float32)
        x[0, :, :h, :w] = picture.rgb.transpose(2, 0, 1)
        x[0, :, h:, :w] = x[0, :, h - 1 : h, :w]
        x[0, :, :, w:] = x[0, :, :, w - 1 : w]
        tiles = tiling.plan(hp // 16, wp // 16, self.tile_side)
        y1 = tiling.analysis(self._g_a, x, tiles, self.ref.config.N)  # type: ignore[union-attr]
        if hp * wp > RELEASE_ABOVE:  # the entropy coding of a large image needs that memory more
            self._g_a.release()
        clock.lap("network")
        return y1

    def _hyper(self, y1: np.ndarray, quality: float) -> tuple[np.ndarray, np.ndarray]:
        y = y1[0]
        if self._gain is not None:
            y = y * interpolated_gain(self.ref.config, self._gain, quality)[:, None, None]  # type: ignore[arg-type]
        y = np.ascontiguousarray(y, dtype=np.float32)
        return y, self._h_a(y)


def open_encoder(
    weights: str | os.PathLike | WeightsRef | None = None,
    device: str = "auto",
    engine: str = "auto",
    **settings: object,
):
    """A codec that encodes with ``weights`` (None: the default): an :class:`OnnxCodec` or a torch ``Codec``.

    ``engine``: "onnx" (no PyTorch; CPU), "torch", or "auto": onnx when the device is the CPU (or "auto", as
    for decoding), no bf16 precision is asked for, the weights have both ONNX companions and a runtime is
    installed; else torch. ``settings`` are max_pixels, max_memory, threads (0: the runtime's
    default; for the torch engine this sets PyTorch's process-wide thread count), precision.
    """
    check_threads(settings)
    if onnx_wanted(engine, device, str(settings.get("precision", "auto"))):
        ref = weights if isinstance(weights, WeightsRef) else resolve(weights)
        if engine == "onnx":
            return OnnxCodec(ref, follow_stream=weights is None, sibling_engine="onnx",
                             **onnx_settings(settings))  # type: ignore[arg-type]  # fmt: skip
        if ref.synthesis_path() is not None and ref.analysis_path() is not None:
            return OnnxCodec(ref, follow_stream=weights is None, **onnx_settings(settings))  # type: ignore[arg-type]
    from .decoder import _torch_decoder

    return _torch_decoder(weights, device, dict(settings))

