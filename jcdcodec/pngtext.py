"""A PNG's compressed metadata chunks (zTXt, compressed iTXt, iCCP) above Pillow's bounds.

Why: Pillow refuses a whole PNG when one such chunk unpacks to more than 1 MiB (its zip-bomb bound,
``PngImagePlugin.MAX_TEXT_CHUNK``), and a user's photo was then "cannot read image": large LUT profiles reach a
few MB, and Photoshop's XMP grows past 1 MB with its document history. A stream holds up to 16 MiB of metadata
(metadata.MAX_BYTES), so jcd reads chunks up to that bound (still bounded: Pillow's 64 MiB for all text chunks
together stays). A chunk that unpacks to more is a zip bomb or more than any stream could carry: it is left out,
with a warning naming it, and the picture is coded.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import zlib
from collections.abc import Iterator

from .metadata import MAX_BYTES

_lock = threading.Lock()
_readers = 0  # reads under way with the raised bound (threads of the API may read at once)
_before = 0


@contextlib.contextmanager
def raised_bound() -> Iterator[None]:
    """Pillow's per-chunk bound raised to the stream's MAX_BYTES while jcd reads (restored after the last read)."""
    global _readers, _before
    from PIL import PngImagePlugin

    with _lock:
        if _readers == 0:
            _before = PngImagePlugin.MAX_TEXT_CHUNK
            PngImagePlugin.MAX_TEXT_CHUNK = max(_before, MAX_BYTES)
        _readers += 1
    try:
        yield
    finally:
        with _lock:
            _readers -= 1
            if _readers == 0:
                PngImagePlugin.MAX_TEXT_CHUNK = _before


def refused_for_metadata(e: BaseException) -> bool:
    """Whether Pillow refused a PNG for the size of its metadata chunks (not for its pixels)."""
    return isinstance(e, ValueError) and str(e).startswith(("Decompressed data too large", "Too much memory used"))


def without_oversized(data: bytes) -> tuple[bytes, list[str]]:
    """PNG ``data`` without its compressed metadata chunks that unpack to more than MAX_BYTES, and what they were
    ("the text chunk 'Comment'", "the ICC profile", ...). Each is unpacked to at most MAX_BYTES + 1 bytes, and once
    4 x MAX_BYTES were unpacked in all, the remaining compressed chunks are left out unread (Pillow would refuse
    them past its 64 MiB of text anyway)."""
    out, left, budget, pos = bytearray(data[:8]), [], 4 * MAX_BYTES, 8
    while pos + 12 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + size
        if end > len(data):
            break
        body = data[pos + 8 : pos + 8 + size]
        packed = _packed(kind, body)
        if packed is not None:
            label, stream = packed
            if budget <= 0:
                left.append(label)
                pos = end
                continue
            d = zlib.decompressobj()
            try:
                n = len(d.decompress(stream, MAX_BYTES + 1))
            except zlib.error:  # damaged: Pillow says so for itself
                n = 0
            budget -= n
            if n > MAX_BYTES:
                left.append(label)
                pos = end
                continue
        out += data[pos:end]
        pos = end
    return bytes(out + data[pos:]), left


def _packed(kind: bytes, body: bytes) -> tuple[str, bytes] | None:
    """(what it is, its deflate stream) of a compressed metadata chunk; None for any other chunk."""
    key, sep, rest = body.partition(b"\0")
    if not sep:
        return None
    what = key.decode("latin-1")
    if kind == b"iCCP" and rest[:1] == b"\0":
        return "the ICC profile", rest[1:]
    if kind == b"zTXt" and rest[:1] == b"\0":
        return f"the text chunk {what!r}", rest[1:]
    if kind == b"iTXt" and rest[:2] == b"\1\0":  # compressed, deflate; then language and translated keyword
        _, _, after = rest[2:].partition(b"\0")
        _, _, text = after.partition(b"\0")
        return ("the XMP" if what == "XML:com.adobe.xmp" else f"the text chunk {what!r}"), text
    return None
