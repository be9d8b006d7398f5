"""JPEG XL input, read by libjxl (pillow-jxl-plugin) in a child process.

Why a child (child.py): libjxl is C++ and its Python binding decodes the whole picture as it opens the file, before
anything could check its size. So the size is read here first, from the codestream's own header (``header``, a few
bits parsed in Python), and checked against the pixel limit before the child decodes anything; a file the
decoder crashes on, or one that declares another size than it decodes to, is one line naming it.

What comes back: colour at 8 bits (the binding hands colour over at 8, also from a 16-bit file: a warning says
so), grey at 16 (floating-point grey clipped to [0, 1]), alpha (at 16 bits with grey of more than 8), the ICC
profile and EXIF. A JPEG stored losslessly in a JPEG XL file comes back as that JPEG's picture.
"""

from __future__ import annotations

import sys
import warnings
from typing import NamedTuple

from . import child
from .errors import JcdError, JcdWarning

#: A bare codestream starts with the first; a file in the container format with the second (its signature box).
CODESTREAM, CONTAINER = b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"
#: Modes the child hands back, with their bytes per pixel ("I;16": 16-bit grey, "LA;16": 16-bit grey and alpha,
#: little-endian).
MODES = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2, "I;16": 2, "LA;16": 4}
#: What of the image's info travels back, as raw bytes.
INFO_KEYS = ("icc_profile", "exif")
CHILD = child.command("jcdcodec.jxl")
#: Seconds the child may take: a 48 Mpx photo decodes in a few; a hostile file must not hang a batch.
TIMEOUT = 300.0
DECODER = "the JPEG XL decoder"
#: The SizeHeader's aspect ratios (its ``ratio`` field 1..7): width = height * num // den.
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def is_jxl(head: bytes) -> bool:
    """A JPEG XL file, bare codestream or container."""
    return head.startswith(CODESTREAM) or head.startswith(CONTAINER)


class Header(NamedTuple):
    """What the codestream's first fields say: its size, the bits per colour sample (None where the header ends
    before them), whether they are floats and whether it is an animation."""

    width: int
    height: int
    bits: int | None
    floats: bool
    animated: bool


def header(data: bytes) -> Header | None:
    """The codestream's SizeHeader (ISO/IEC 18181-1) and ImageMetadata up to its BitDepth, read without decoding;
    None where the file ends before a size or the container holds no codestream. The picture's orientation may
    swap width and height: the pixel count is what is checked. Why the depth: the binding hands colour over at 8
    bits whatever the file holds, and a user should hear when a 16-bit file loses its precision (and when an
    animation loses all but its first frame)."""
    from .formats import bmff_boxes

    stream = data
    if data.startswith(CONTAINER):
        stream = b""
        for kind, start, end in bmff_boxes(data, 0, len(data)):
            if kind == b"jxlc":
                stream = data[start : start + 64]
                break
            if kind == b"jxlp" and end - start >= 4:  # partial codestreams, numbered: the first holds the header
                stream = data[start + 4 : start + 68]
                break
    if not stream.startswith(CODESTREAM):
        return None
    bits = _Bits(stream[2:64])
    try:
        width, height = _size_header(bits)
    except EOFError:
        return None
    try:
        return Header(width, height, *_bit_depth(bits))
    except EOFError:
        return Header(width, height, None, False, False)


def _size_header(bits: _Bits) -> tuple[int, int]:
    """A SizeHeader: (width, height)."""
    small = bits.read(1)
    height = (bits.read(5) + 1) * 8 if small else bits.u32()
    ratio = bits.read(3)
    if ratio:
        num, den = _RATIOS[ratio]
        return height * num // den, height
    return ((bits.read(5) + 1) * 8 if small else bits.u32()), height


def _bit_depth(bits: _Bits) -> tuple[int, bool, bool]:
    """ImageMetadata up to its BitDepth: the bits per sample (8 where all its fields are the defaults), whether
    they are floats, and whether it has an AnimationHeader."""
    if bits.read(1):  # all_default
        return 8, False, False
    animated = False
    if bits.read(1):  # extra_fields: orientation, intrinsic size, preview, animation
        bits.read(3)
        if bits.read(1):
            _size_header(bits)
        if bits.read(1):  # PreviewHeader
            div8 = bits.read(1)
            dims = ((0, 16), (0, 32), (5, 1), (9, 33)) if div8 else ((6, 1), (8, 65), (10, 321), (12, 1345))
            bits.field(dims)
            if bits.read(3) == 0:
                bits.field(dims)
        animated = bool(bits.read(1))
        if animated:  # AnimationHeader
            bits.field(((0, 100), (0, 1000), (10, 1), (30, 1)))
            bits.field(((0, 1), (0, 1001), (8, 1), (10, 1)))
            bits.field(((0, 0), (3, 0), (16, 0), (32, 0)))
            bits.read(1)
    if bits.read(1):  # float samples
        return bits.field(((0, 32), (0, 16), (0, 24), (6, 1))), True, animated
    return bits.field(((0, 8), (0, 10), (0, 12), (6, 1))), False, animated


class _Bits:
    """The codestream's bit reader: least significant bit of each byte first."""

    def __init__(self, data: bytes) -> None:
        self.value, self.left = int.from_bytes(data, "little"), 8 * len(data)

    def read(self, n: int) -> int:
        if n > self.left:
            raise EOFError
        out = self.value & ((1 << n) - 1)
        self.value, self.left = self.value >> n, self.left - n
        return out

    def u32(self) -> int:
        """A size field: a 2-bit selector of 9, 13, 18 or 30 more bits, plus one."""
        return self.field(((9, 1), (13, 1), (18, 1), (30, 1)))

    def field(self, choices: tuple[tuple[int, int], ...]) -> int:
        """A U32 field: a 2-bit selector of (bits, offset), the value those bits plus the offset."""
        n, offset = choices[self.read(2)]
        return self.read(n) + offset


def read(data: bytes, name: str, max_pixels: int | None):
    """The picture of a JPEG XL file: a Pillow image with its ICC profile and EXIF in its info, and for grey with
    alpha above 8 bits its samples, uint16 (H, W, 2) (else None; the Pillow image then holds their top 8 bits and
    carries the info). Raises JcdError, with ``name``, for a file above ``max_pixels`` (from its header, before
    decoding), one without a readable header, or one the child refuses or crashes on."""
    from importlib.util import find_spec

    from .imageio import _check_size

    if find_spec("pillow_jxl") is None:
        raise JcdError(f"{name}: a JPEG XL image; reading it needs pillow-jxl-plugin (pip install pillow-jxl-plugin)")
    head = header(data)
    if head is None:
        raise JcdError(f"{name}: cannot read image (a damaged or truncated JPEG XL file)")
    _check_size(name, head.width, head.height, max_pixels)
    h, body = child.run(CHILD, data, name, max_pixels, DECODER, TIMEOUT)
    try:
        mode, width, height = h["mode"], int(h["width"]), int(h["height"])
        lengths = [int(h["info"][k]) for k in INFO_KEYS]
        if mode not in MODES or width * height != head.width * head.height or min(lengths) < 0:
            raise ValueError(mode)
        if len(body) != sum(lengths) + width * height * MODES[mode]:
            raise ValueError("length")
    except (ValueError, KeyError, TypeError):  # the child's own output is checked like any input
        raise child.malformed(name, DECODER) from None
    if head.animated:
        warnings.warn(f"{name}: an animation; coding its first frame only", JcdWarning, stacklevel=3)
    if mode.startswith("RGB") and (head.bits or 8) > 8:
        kind = " float" if head.floats else ""
        warnings.warn(f"{name}: {head.bits}-bit{kind} colour, read at 8 bits (the JPEG XL reader gives colour at 8)",
                      JcdWarning, stacklevel=3)  # fmt: skip
    return child.picture(body, INFO_KEYS, lengths, mode, width, height)


def _child(data: bytes, max_pixels: int, name: str) -> tuple[dict, list[bytes]]:
    """The child's work: the picture's head (mode, size, info lengths), its info bytes and pixels."""
    import io

    import numpy as np
    import pillow_jxl  # noqa: F401  registers JPEG XL with Pillow
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["JXL"]) as im:
            samples = im._data  # type: ignore[attr-defined]  # the binding's pixels, as it decoded them
            info = {k: bytes(im.info[k]) if isinstance(im.info.get(k), (bytes, bytearray)) else b""
                    for k in INFO_KEYS}  # fmt: skip
            if info["exif"] and not getattr(im, "jpeg", False):
                info["exif"] = _unturned(info["exif"])
            n = im.width * im.height
            if im.mode == "LA" and len(samples) in (4 * n, 8 * n):  # grey and alpha above 8 bits, which the
                # binding hands over under the 8-bit mode: 16-bit samples (any depth above 8, scaled to 16) or float
                a = (np.frombuffer(samples, "<u2") if len(samples) == 4 * n
                     else np.clip(np.nan_to_num(np.frombuffer(samples, "<f4")), 0, 1) * 65535 + 0.5)  # fmt: skip
                head = {"mode": "LA;16", "width": im.width, "height": im.height,
                        "info": {k: len(v) for k, v in info.items()}}  # fmt: skip
                return head, [*(info[k] for k in INFO_KEYS), a.astype("<u2").tobytes()]
            im.load()
            if im.mode == "F":  # floating-point grey: [0, 1] at 16 bits, as TIFF's mode F is read
                a = np.asarray(im, dtype=np.float32)
                out = Image.fromarray((np.clip(np.nan_to_num(a), 0, 1) * 65535 + 0.5).astype(np.uint16))
            elif im.mode not in MODES:
                out = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            else:
                out = im
            pixels = out.tobytes("raw", "I;16") if out.mode.startswith("I;16") else out.tobytes()
            mode = "I;16" if out.mode.startswith("I;16") else out.mode
    except BaseException as e:  # noqa: BLE001  the binding raises RuntimeError, and its panics as PanicException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):  # (a BaseException, as pyo3 makes them)
            raise
        raise JcdError(f"{name}: cannot read image (a damaged or truncated JPEG XL file)") from None
    head = {"mode": mode, "width": out.width, "height": out.height, "info": {k: len(v) for k, v in info.items()}}
    return head, [*(info[k] for k in INFO_KEYS), pixels]


def _unturned(exif: bytes) -> bytes:
    """A JPEG XL file's EXIF without its orientation: libjxl has turned the pixels by the codestream's own, which
    the format makes the one that counts (an EXIF tag left in would turn them again). "Exif\\0\\0" first, as
    Pillow's readers give EXIF. (A JPEG stored in the file keeps its EXIF whole: its pixels are not turned.)"""
    from PIL import Image

    tags = Image.Exif()
    tags.load(exif)
    tags.pop(0x0112, None)
    return tags.tobytes()


if __name__ == "__main__":
    sys.exit(child.serve(_child))
