"""A PNG's metadata chunks (text, XMP, ICC profile) above Pillow's bounds.

Why: Pillow refuses a whole PNG when one such chunk unpacks to more than 1 MiB (its zip-bomb bound,
``PngImagePlugin.MAX_TEXT_CHUNK``), and a user's photo was then "cannot read image": large LUT profiles reach a
few MB, and Photoshop's XMP grows past 1 MB with its document history. A stream holds up to 16 MiB of metadata
(metadata.MAX_BYTES), so jcd reads chunks up to that bound (still bounded: Pillow's 64 MiB for all text chunks
together stays). A chunk that unpacks to more is a zip bomb or more than any stream could carry, and so is text
past 16 MiB in all (Pillow refuses a file past 64 MiB of it): those chunks are left out, with a warning naming
them, and the picture is coded. A picture is never refused for its metadata.
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
    """Pillow's per-chunk bound raised to the stream's MAX_BYTES while jcd reads (restored after the last read).
    The bound is Pillow's module setting: another thread's PNG read in the same process meanwhile gets the raised
    bound too, still a bound."""
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
    """PNG ``data`` without the metadata chunks a stream could not hold, and what they were ("the text chunk
    'Comment'", "the ICC profile", "the XMP", ...): a chunk that unpacks to more than MAX_BYTES (a zip bomb), and
    text chunks past MAX_BYTES of text in all (Pillow refuses a file past 64 MiB of it). Each compressed chunk is
    unpacked to at most MAX_BYTES + 1 bytes, and once 4 x MAX_BYTES were unpacked in all, the remaining ones are
    left out unread."""
    out, left, budget, text, pos = bytearray(data[:8]), [], 4 * MAX_BYTES, 0, 8
    while pos + 12 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + size
        if end > len(data):
            break
        found = _metadata(kind, data[pos + 8 : pos + 8 + size])
        if found is not None:
            label, payload, packed = found
            if packed and budget <= 0:
                n = MAX_BYTES + 1
            elif packed:
                try:
                    n = len(zlib.decompressobj().decompress(payload, MAX_BYTES + 1))
                except zlib.error:  # damaged: Pillow says so for itself
                    n = 0
                budget -= n
            else:
                n = len(payload)
            if n > MAX_BYTES or (kind != b"iCCP" and text + n > MAX_BYTES):
                left.append(label)
                pos = end
                continue
            text += 0 if kind == b"iCCP" else n
        out += data[pos:end]
        pos = end
    return bytes(out + data[pos:]), left


def _metadata(kind: bytes, body: bytes) -> tuple[str, bytes, bool] | None:
    """(what it is, its payload, whether that is deflated) of a metadata chunk; None for any other chunk."""
    key, sep, rest = body.partition(b"\0")
    if not sep:
        return None
    what = key.decode("latin-1")
    if kind == b"tEXt":
        return f"the text chunk {what!r}", rest, False
    if kind in (b"iCCP", b"zTXt"):
        return ("the ICC profile" if kind == b"iCCP" else f"the text chunk {what!r}"), rest[1:], True
    if kind == b"iTXt":  # compressed or not, its method; then language and translated keyword
        _, _, after = rest[2:].partition(b"\0")
        _, _, payload = after.partition(b"\0")
        return ("the XMP" if what == "XML:com.adobe.xmp" else f"the text chunk {what!r}"), payload, rest[:1] == b"\1"
    return None
