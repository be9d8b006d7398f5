"""One-call functions: ``jcdcodec.encode``, ``jcdcodec.decode``, ``jcdcodec.info``.

For scripts that code a few images without managing a :class:`~jcdcodec.codec.Codec`: the
weights load once per (weights, device) and stay cached for the next call. Code many images
in a loop? Either works; a ``Codec`` of your own just makes the lifetime explicit.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import JcdError
from .imageio import GRAY, RGB, Picture, from_pillow, load_image, to_pillow_or_array
from .inputs import read_file
from .metadata import parse_keep, pillow_info, within_stream
from .streaminfo import StreamInfo, stream_info

if TYPE_CHECKING:
    from PIL import Image

    from .choose import AutoCodec
    from .decoder import StreamDecoder
    from .encoder import StreamEncoder

_CODECS: dict[tuple[str | None, str, str], StreamEncoder] = {}
_DECODERS: dict[tuple[str | None, str, str], StreamDecoder] = {}
_AUTO: dict[tuple[str, str], AutoCodec] = {}


def codec_for(weights: str | os.PathLike | None = None, device: str = "auto", engine: str = "auto") -> StreamEncoder:
    """The cached encoder for these weights (None: the shipped default), device and engine (see
    :func:`jcdcodec.encoder.open_encoder`; with the default engine on the CPU it imports no PyTorch)."""
    from .encoder import open_encoder

    key = (None if weights is None else str(Path(weights).resolve()), device, engine)
    if key not in _CODECS:
        _CODECS[key] = open_encoder(weights, device=device, engine=engine)
    return _CODECS[key]


def decoder_for(weights: str | os.PathLike | None = None, device: str = "auto", engine: str = "auto") -> StreamDecoder:
    """The cached decoder for these weights, device and engine (see :func:`jcdcodec.decoder.open_decoder`).

    With the default engine on the CPU this imports no PyTorch: decoding starts in a fraction of a second.
    """
    from .decoder import open_decoder

    key = (None if weights is None else str(Path(weights).resolve()), device, engine)
    if key not in _DECODERS:
        _DECODERS[key] = open_decoder(weights, device=device, engine=engine)
    return _DECODERS[key]


def to_picture(image: str | os.PathLike | bytes | memoryview | Image.Image | np.ndarray | Picture) -> Picture:
    """Anything image-like as a :class:`Picture`.

    A path or encoded bytes is read like ``jcd encode`` reads files; a Pillow image keeps its mode's
    meaning (grey, palette, alpha); an array is (H, W) grey or (H, W, 3|4) RGB[A]: uint8, uint16
    (16-bit), or float in [0, 1].
    """
    from PIL import Image

    if isinstance(image, Picture):
        return image
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
        return load_image(bytes(image) if isinstance(image, memoryview) else image)
    if isinstance(image, Image.Image):
        return from_pillow(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise JcdError(f"cannot code a {type(image).__name__}: pass a path, bytes, a PIL image or a numpy array")


def _from_array(a: np.ndarray) -> Picture:
    if a.ndim == 2:
        a, kind = a[:, :, None].repeat(3, axis=2), GRAY
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        kind = RGB
    else:
        raise JcdError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {a.shape}")
    alpha = a[:, :, 3].copy() if a.shape[2] == 4 else None
    rgb = a[:, :, :3]
    if a.dtype == np.uint8:
        return Picture(rgb.astype(np.float32) / 255.0, kind, 8, alpha)
    if a.dtype == np.uint16:
        return Picture(rgb.astype(np.float32) / 65535.0, kind, 16, alpha)
    if np.issubdtype(a.dtype, np.floating):
        if alpha is not None:
            alpha = np.round(np.clip(np.nan_to_num(alpha), 0, 1) * 255).astype(np.uint8)  # NaN: transparent
        return Picture(np.clip(np.nan_to_num(rgb.astype(np.float32)), 0, 1), kind, 8, alpha)
    raise JcdError(f"unsupported array type {a.dtype} (use uint8, uint16 or float)")


def encode(
    image: str | os.PathLike | bytes | memoryview | Image.Image | np.ndarray | Picture,
    quality: float = 4,
    *,
    device: str = "auto",
    weights: str | os.PathLike | None = None,
    engine: str = "auto",
    metadata: str = "all",
) -> bytes:
    """Compress and denoise ``image`` into the bytes of a .jcd file (quality 1..6, fractions allowed).

    ``metadata``: what of a file's or PIL image's ICC profile, EXIF, XMP and CICP the stream keeps, as ``jcd
    encode --metadata`` takes it ("all", "none", or e.g. "icc,exif"); :mod:`jcdcodec.metadata` says why.

    Without ``weights``, the default codes it, or a shipped model whose ``auto`` rule claims images that noisy
    (:mod:`jcdcodec.choose`; none of the shipped models has one). ``engine``: "onnx" (no PyTorch), "torch",
    or "auto" (onnx on the CPU when the weights have its files); see :func:`jcdcodec.encoder.open_encoder`.
    """
    picture = to_picture(image)
    name = str(image) if isinstance(image, (str, os.PathLike)) else "image"
    meta = within_stream(picture.meta.kept(parse_keep(metadata)), name)  # what is kept, if it fits a stream
    if meta != picture.meta:
        picture = dataclasses.replace(picture, meta=meta)
    if weights is None or (str(weights) == "auto" and not Path(weights).is_file()):
        from .choose import AutoCodec

        if (device, engine) not in _AUTO:
            _AUTO[device, engine] = AutoCodec(device=device, engine=engine)
        return _AUTO[device, engine].encode(picture, quality).data
    return codec_for(weights, device, engine).encode(picture, quality).data


def decode(
    data: bytes | memoryview | str | os.PathLike,
    *,
    device: str = "auto",
    weights: str | os.PathLike | None = None,
    engine: str = "auto",
    metadata: str = "all",
) -> Image.Image:
    """Decode a .jcd stream (bytes, or a file's path) into a clean 8-bit Pillow image.

    Grey streams give mode L, palette P, colour RGB; alpha adds A. For 16 bits use ``decoder_for(...).decode``.
    ``engine``: "onnx" (no PyTorch), "torch", or "auto" (onnx on the CPU when the weights have its file).
    ``metadata``: what of the stream's ICC profile, EXIF, XMP and CICP goes into ``info`` ("all", "none", or
    e.g. "icc", as ``jcd decode --metadata``).
    """
    keep = parse_keep(metadata)  # before the work, not after it
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data = _read(data)
    p = decoder_for(weights, device, engine).decode(bytes(data)).picture
    im = to_pillow_or_array(p.rgb, p.kind, 8, p.alpha)
    im.info.update(pillow_info(p.meta.kept(keep)))  # Pillow's save writes them back (PNG, JPEG, WebP, TIFF)
    return im  # type: ignore[return-value]


def info(data: bytes | memoryview | str | os.PathLike) -> StreamInfo:
    """What a .jcd stream holds, from its header alone (no weights, no torch)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data = _read(data)
    return stream_info(bytes(data))


def _read(path: str | os.PathLike) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise JcdError(f"{p}: no such file")
    return read_file(p)
