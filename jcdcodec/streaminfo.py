"""What a .jcd file holds, read from the container alone (no weights, no torch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import bitstream
from .bitstream import padded_size
from .manifest import find_by_fingerprint, read_manifest
from .metadata import describe_cicp, dpi_of, text_pairs
from .retired import find_retired, retired_label

KIND_NAMES = {0: "grey", 1: "RGB", 2: "palette"}


def describe_fingerprint(fp: bytes) -> str:
    """'name [hex]' when the manifest knows the weights (an earlier version: 'name, replaced DATE [hex]'),
    else just the hex fingerprint."""
    manifest = read_manifest()
    found = find_by_fingerprint(fp, manifest)
    if found:
        return f"{found[0]} [{fp.hex()}]"
    old = find_retired(fp, manifest)
    return f"{retired_label(old)} [{fp.hex()}]" if old else f"[{fp.hex()}]"


@dataclass(frozen=True)
class StreamInfo:
    """Everything a .jcd file says about itself (``jcd info``; ``dataclasses.asdict`` for JSON)."""

    format: str
    width: int
    height: int
    colour: str  # grey, RGB or palette: what decoding gives back
    bit_depth: int
    alpha: bool
    quality: float
    weights_fingerprint: str  # 8 hex digits of the weights' sha256
    weights_name: str | None  # from the manifest, when it lists those weights
    weights_trained: bool | None
    padded_size: tuple[int, int]  # (width, height) the networks see: multiples of 64
    padding: tuple[int, int]
    y_shape: tuple[int | None, int, int]  # channels (None when the weights are unknown), rows, columns
    z_shape: tuple[int | None, int, int]
    bytes_total: int
    bytes_z: int
    bytes_y: int
    bytes_alpha: int
    bytes_metadata: int  # the deflated metadata section
    bytes_header: int  # container overhead: header, lengths, two checksums
    bpp: float
    checksum: str  # "ok": the file CRC was verified
    metadata: dict[str, int] = dataclasses.field(default_factory=dict)  # kind (icc, exif, ...) -> bytes inflated
    cicp: str | None = None  # the CICP code points and their names ("9/16/0/1 (BT.2020, PQ)"), None without
    text: list[str] = dataclasses.field(default_factory=list)  # the keywords of the text (Title, Comment, ...)
    dpi: tuple[float, float] | None = None  # the resolution, dots per inch (x, y)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def stream_info(data: bytes, n_channels: int | None = None) -> StreamInfo:
    """Header, derived shapes, section sizes and bpp of a stream (validated, checksum included)."""
    s = bitstream.unpack(data)
    h = s.header
    hp, wp = padded_size(h.height, h.width)
    weights_name, trained, n = None, None, n_channels
    manifest = read_manifest()
    found = find_by_fingerprint(h.fingerprint, manifest)
    if found:
        weights_name, entry = found
        trained = entry.get("trained", True)
        n = n or entry.get("config", {}).get("N")
    elif (old := find_retired(h.fingerprint, manifest)) is not None:
        weights_name = retired_label(old)
        n = n or old.get("config", {}).get("N")
    return StreamInfo(
        format=f"jcd v{h.version}",
        width=h.width,
        height=h.height,
        colour=KIND_NAMES[h.kind],
        bit_depth=h.depth,
        alpha=h.has_alpha,
        quality=h.quality,
        weights_fingerprint=h.fingerprint.hex(),
        weights_name=weights_name,
        weights_trained=trained,
        padded_size=(wp, hp),
        padding=(wp - h.width, hp - h.height),
        y_shape=(n, hp // 16, wp // 16),
        z_shape=(n, hp // 64, wp // 64),
        bytes_total=len(data),
        bytes_z=len(s.z),
        bytes_y=len(s.y),
        bytes_alpha=len(s.alpha),
        bytes_metadata=len(s.metadata),
        bytes_header=len(data) - len(s.z) - len(s.y) - len(s.alpha) - len(s.metadata),
        bpp=len(data) * 8 / (h.width * h.height),
        checksum="ok",
        metadata=(meta := s.unpacked_metadata()).sizes(),
        cicp=describe_cicp(meta.cicp) if meta.cicp else None,
        text=[k for k, _ in text_pairs(meta.text)],
        dpi=dpi_of(meta.dpi),
    )
