"""Reading an input whole, within a bound: a file, a device or a pipe never fills memory.

Why: jcd reads an input's bytes before it looks at them (signatures, containers and the HEIF reader's child all
take bytes). A 20 GB file given by mistake (a disk image, a film named .jpg), ``/dev/zero``, or an endless pipe
was read until memory ran out. An input is now read up to what the largest image allowed (``--max-pixels``) can
take: 16 bytes a pixel, a float RGBA TIFF's, plus 64 MiB for metadata, a raw file's previews and a motion photo's
video; a regular file larger than that is refused from its size, before a byte is read.

Kept free of numpy and Pillow: `jcd info` reads streams through it.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import JcdError

#: The largest image coded unless asked otherwise (--max-pixels): 64 Mpx, about 1.5 GB of float pixels.
DEFAULT_MAX_PIXELS = 64_000_000
#: Bytes a pixel takes in the widest uncompressed picture jcd reads (float32 RGBA TIFF).
BYTES_PER_PIXEL = 16
#: Room beside the pixels: metadata (a stream holds 16 MiB), a raw file's previews, a motion photo's video.
SLACK = 64 << 20
_CHUNK = 1 << 20


def limit_for(max_pixels: int | None) -> int | None:
    """The most bytes an input may hold when images of up to ``max_pixels`` are allowed; None: no bound."""
    return None if max_pixels is None else max_pixels * BYTES_PER_PIXEL + SLACK


def read_file(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes of ``path`` (a file, a device, a named pipe), refused past :func:`limit_for`."""
    try:
        with open(path, "rb") as f:
            return read_stream(f, str(path), max_pixels)
    except OSError as e:
        raise JcdError(f"{path}: cannot read ({e.strerror or e})") from None


def read_stream(f: BinaryIO, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> bytes:
    """All of ``f`` (an open file, stdin), refused past :func:`limit_for`: a regular file by its size before
    reading, anything else (a pipe, a device) once it has given more than that."""
    limit = limit_for(max_pixels)
    if limit is None:
        return f.read()
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # no descriptor (an in-memory file): read in chunks
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        if st.st_size > limit:
            raise _too_large(name, f"{_size(st.st_size)}", limit, max_pixels)
        data = f.read(st.st_size + 1)
        if len(data) <= st.st_size:  # the usual case: all of it
            return data
        data += f.read(limit + 1 - len(data))  # it grew while being read
    else:  # in chunks, joined once: a growing bytearray held two copies while it moved
        chunks, got = [], 0
        while got <= limit and (chunk := f.read(min(_CHUNK, limit + 1 - got))):
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise _too_large(name, f"over {_size(limit)}", limit, max_pixels)
        return b"".join(chunks)
    if len(data) > limit:
        raise _too_large(name, f"over {_size(limit)}", limit, max_pixels)
    return data


def _too_large(name: str, size: str, limit: int, max_pixels: int | None) -> JcdError:
    return JcdError(f"{name}: {size}, larger than any image of at most {max_pixels} pixels ({_size(limit)} at "
                    "most): not an image, or raise --max-pixels")  # fmt: skip


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"
