"""The .jcd container: byte layout, packing, and validation before anything is allocated.

Layout (docs/bitstream.md has the table)::

    "JCD" version flags quality fingerprint[4] varint(W) varint(H) varint(len z)
    [varint(len alpha)] [varint(len metadata)] z-stream [alpha-stream] [metadata] y-stream
    symbol-crc32 file-crc32

A stream with metadata (ICC profile, EXIF, XMP, CICP: metadata.py) is version 2; one without stays version 1,
byte for byte what earlier jcd wrote and reads, so only a file that carries metadata needs a newer decoder.

Everything that can be derived is not stored: the padded size is W and H rounded up to
64, the latent shapes follow from it and the weights' N. 23 bytes of overhead for a
Kodak image, against 31 for CompressAI's example format, while carrying the weights'
identity, colour kind, depth, alpha and two checksums.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .errors import BitstreamError
from .metadata import Metadata

MAGIC = b"JCD"
VERSION = 1  # streams without metadata
VERSION_METADATA = 2  # streams with a metadata section (flag bit 5)
READS = VERSION_METADATA  # the newest version this jcd decodes
QUALITY_SCALE = 32  # quality is stored as round(q * 32): steps of 1/32
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 28  # 268 Mpx: what a header may ask the decoder to allocate for

PAD = 64  # the model's total down-sampling: y at 1/16, z at 1/64 of the padded size


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The coded size: height and width rounded up to a multiple of 64 (derived, not stored)."""
    return -(-height // PAD) * PAD, -(-width // PAD) * PAD


_F_KIND = 0b0000_0011
_F_ALPHA = 0b0000_0100
_F_DEPTH16 = 0b0000_1000
_F_ALPHA_DATA = 0b0001_0000
_F_METADATA = 0b0010_0000
_F_RESERVED = 0b1100_0000
_FIXED = 3 + 1 + 1 + 1 + 4  # magic, version, flags, quality, fingerprint
_TRAILER = 8


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    quality: float
    fingerprint: bytes  # 4 bytes of the weights' sha256
    kind: int = 1  # 0 grey, 1 RGB, 2 palette
    depth: int = 8
    has_alpha: bool = False
    version: int = VERSION


@dataclass(frozen=True)
class JcdStream:
    header: Header
    z: bytes
    y: bytes
    alpha: bytes = b""  # zlib-compressed alpha plane; empty when fully opaque
    symbol_crc: int = 0  # CRC32 of the y symbols in coding order
    metadata: bytes = b""  # the metadata section (metadata.pack); empty when the picture carries none

    def unpacked_metadata(self) -> Metadata:
        from .metadata import unpack

        return unpack(self.metadata) if self.metadata else Metadata()


def quantize_quality(q: float) -> float:
    return round(q * QUALITY_SCALE) / QUALITY_SCALE


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    n = shift = 0
    for k in range(5):
        if pos + k >= len(data):
            raise BitstreamError(f"truncated stream (in {what})")
        b = data[pos + k]
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos + k + 1
    raise BitstreamError(f"corrupted stream (overlong {what})")


def pack(s: JcdStream) -> bytes:
    h = s.header
    if not (0 < h.width <= MAX_SIDE and 0 < h.height <= MAX_SIDE):
        raise ValueError("image size out of range")
    flags = h.kind & _F_KIND
    flags |= _F_ALPHA if h.has_alpha else 0
    flags |= _F_DEPTH16 if h.depth == 16 else 0
    flags |= _F_ALPHA_DATA if s.alpha else 0
    flags |= _F_METADATA if s.metadata else 0
    version = VERSION_METADATA if s.metadata else VERSION
    q = round(h.quality * QUALITY_SCALE)
    if not 0 < q < 256:
        raise ValueError("quality out of range")
    out = bytearray(MAGIC + bytes([version, flags, q]) + h.fingerprint)
    out += varint(h.width) + varint(h.height) + varint(len(s.z))
    if s.alpha:
        out += varint(len(s.alpha))
    if s.metadata:
        out += varint(len(s.metadata))
    out += s.z + s.alpha + s.metadata + s.y
    out += struct.pack("<I", s.symbol_crc)
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def looks_like_jcd(data: bytes) -> bool:
    return data[:3] == MAGIC


def _not_jcd_reason(data: bytes) -> str:
    """Say what the file is when it is an image: people hand photos to `jcd decode` by mistake."""
    from .formats import HEAD, image_format, what_it_is

    what = what_it_is(data[:HEAD])
    if not what:
        return "not a .jcd file (bad magic)"
    return f"not a .jcd file: {what}" + (" (jcd encode compresses images)" if image_format(data[:HEAD]) else "")


def unpack(data: bytes) -> JcdStream:
    """Parse and validate; raises :class:`BitstreamError` with a one-line reason."""
    if len(data) < 3 or data[:3] != MAGIC:
        raise BitstreamError(_not_jcd_reason(data))
    if len(data) < _FIXED + 3 + _TRAILER:
        raise BitstreamError("truncated stream (shorter than a header)")
    version, flags, q = data[3], data[4], data[5]
    if version > READS:
        raise BitstreamError(f"written by a newer jcd (format version {version}; this jcd reads versions 1-{READS}): "
                             "upgrade jcd to decode it")  # fmt: skip
    if version < VERSION:
        raise BitstreamError(f"unsupported .jcd version {version} (this jcd reads versions 1-{READS})")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise BitstreamError("corrupted or truncated stream (checksum mismatch)")
    if flags & _F_RESERVED or (flags & _F_KIND) == 3 or (flags & _F_METADATA and version < VERSION_METADATA):
        raise BitstreamError("corrupted stream (invalid flags)")
    if not QUALITY_SCALE <= q <= 6 * QUALITY_SCALE:
        raise BitstreamError(f"corrupted stream (quality {q / QUALITY_SCALE} out of range)")
    fingerprint = bytes(data[6:10])
    pos = _FIXED
    width, pos = read_varint(data, pos, "width")
    height, pos = read_varint(data, pos, "height")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise BitstreamError(f"corrupted stream (image size {width}x{height} out of range)")
    zlen, pos = read_varint(data, pos, "z length")
    alen = 0
    if flags & _F_ALPHA_DATA:
        if not flags & _F_ALPHA:
            raise BitstreamError("corrupted stream (alpha data without alpha flag)")
        alen, pos = read_varint(data, pos, "alpha length")
    mlen = 0
    if flags & _F_METADATA:
        mlen, pos = read_varint(data, pos, "metadata length")
        if not mlen:
            raise BitstreamError("corrupted stream (empty metadata section)")
    end = len(data) - _TRAILER
    if pos + zlen + alen + mlen > end:
        raise BitstreamError("truncated stream (section lengths exceed the file)")
    z = bytes(data[pos : pos + zlen])
    alpha = bytes(data[pos + zlen : pos + zlen + alen])
    metadata = bytes(data[pos + zlen + alen : pos + zlen + alen + mlen])
    y = bytes(data[pos + zlen + alen + mlen : end])
    (symbol_crc,) = struct.unpack_from("<I", data, end)
    header = Header(
        width=width,
        height=height,
        quality=q / QUALITY_SCALE,
        fingerprint=fingerprint,
        kind=flags & _F_KIND,
        depth=16 if flags & _F_DEPTH16 else 8,
        has_alpha=bool(flags & _F_ALPHA),
        version=version,
    )
    return JcdStream(header, z, y, alpha, symbol_crc, metadata)
