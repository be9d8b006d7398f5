"""16-bit colour TIFF (what raw converters export), which Pillow reads at 8 bits and does not write.

Why by hand: Pillow narrows 16-bit RGB TIFF to 8 bits, and tifffile, which reads it, inflates deflate strips
without a bound unless imagecodecs is installed (``zlib.decompress``), so a small hostile file could ask for
gigabytes. This reads the layouts raw converters write (Lightroom, darktable, RawTherapee, Capture One): strips,
chunky or planar, uncompressed or deflate, with or without the horizontal predictor, and inflates each strip to
at most the bytes it must hold. Anything else (LZW, tiles, other sample formats) is left to Pillow, at 8 bits.
:func:`write` makes the 16-bit TIFFs `jcd decode` writes, in a layout :func:`samples` reads.
"""

from __future__ import annotations

import zlib

import numpy as np

from .errors import JcdError

_DEFLATE = (8, 32946)


def samples(tags: dict, size: tuple[int, int], big_endian: bool, data: bytes, name: str) -> np.ndarray | None:
    """The (height, width, 3 or 4) uint16 samples of a 16-bit RGB(A) TIFF's first image, from its tags (Pillow's
    ``tag_v2``) and the file's bytes; None for a layout this does not read. Raises JcdError for damaged strips."""
    width, height = size
    if width <= 0 or height <= 0:
        return None
    bits = tags.get(258)
    bits = bits if isinstance(bits, tuple) else (bits,)
    spp = int(tags.get(277, 1))
    compression, predictor = int(tags.get(259, 1)), int(tags.get(317, 1))
    planar, formats = int(tags.get(284, 1)), tags.get(339, 1)
    formats = formats if isinstance(formats, tuple) else (formats,)
    if (spp not in (3, 4) or set(bits) != {16} or tags.get(262) != 2 or compression not in (1, *_DEFLATE)
            or predictor not in (1, 2) or planar not in (1, 2) or set(formats) != {1} or 322 in tags):  # fmt: skip
        return None
    offsets, counts = tags.get(273), tags.get(279)
    offsets = offsets if isinstance(offsets, tuple) else (offsets,)
    counts = counts if isinstance(counts, tuple) else (counts,)
    rows_per_strip = min(int(tags.get(278, height)), height)
    planes, channels = (spp, 1) if planar == 2 else (1, spp)
    strips = -(-height // rows_per_strip)
    if rows_per_strip <= 0 or len(offsets) != planes * strips or len(counts) != len(offsets):
        raise JcdError(f"{name}: cannot read image (its strips do not match its size)")
    dtype = np.dtype(">u2" if big_endian else "<u2")
    out = np.empty((planes, height, width * channels), np.uint16)
    for k, (offset, count) in enumerate(zip(offsets, counts, strict=True)):
        plane, strip = divmod(k, strips)
        r0, r1 = strip * rows_per_strip, min(height, (strip + 1) * rows_per_strip)
        need = (r1 - r0) * width * channels * 2
        raw = data[int(offset) : int(offset) + int(count)]
        if compression in _DEFLATE:
            try:
                raw = zlib.decompressobj().decompress(raw, need)  # at most what the strip holds: no bomb
            except zlib.error as e:
                raise JcdError(f"{name}: cannot read image (a damaged deflate strip: {e})") from None
        if len(raw) < need:
            raise JcdError(f"{name}: cannot read image (image file is truncated)")
        rows = np.frombuffer(raw, dtype, (r1 - r0) * width * channels).reshape(r1 - r0, width, channels)
        if predictor == 2:  # each sample was stored as the difference to its left neighbour, modulo 2^16
            rows = np.cumsum(rows, axis=1, dtype=np.uint16)
        out[plane, r0:r1] = rows.reshape(r1 - r0, width * channels)
    if planar == 2:
        return np.ascontiguousarray(out.transpose(1, 2, 0))
    return out[0].reshape(height, width, spp)


#: TIFF tags that describe the layout of the pixels: the writer sets them; an EXIF block's copies are dropped.
_LAYOUT = (254, 256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 284, 317, 338, 339, 322, 323, 324, 325)


def write(a: np.ndarray, icc: bytes = b"", exif: bytes = b"", xmp: bytes = b"") -> bytes:
    """A 16-bit TIFF of ``a`` (height, width, 1-4 uint16: grey, grey + alpha, RGB, RGBA), one deflate strip with
    the horizontal predictor (what Lightroom's "ZIP" writes), with the ICC profile, the EXIF (camera tags, EXIF
    and GPS directories) and the XMP. Why: Pillow writes no 16-bit colour TIFF, and 16-bit workflows (raw
    converter -> jcd -> editor) keep their bits. Pillow's EXIF writer lays out the directories."""
    from PIL import Image

    height, width, channels = a.shape
    tags = Image.Exif()
    if exif:
        try:
            tags.load(exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
        except Exception:  # noqa: BLE001  unreadable EXIF: the picture goes without it
            tags = Image.Exif()
        for tag in _LAYOUT:
            tags.pop(tag, None)
        for ifd in (0x8769, 0x8825):  # the directories themselves, not their stale offsets
            if ifd in tags:
                tags[ifd] = dict(tags.get_ifd(ifd))
    diff = np.array(a, dtype="<u2")  # one copy: differences to the left neighbour, in place, modulo 2^16
    np.subtract(diff[:, 1:], a[:, :-1].astype("<u2", copy=False), out=diff[:, 1:])
    strip = zlib.compress(memoryview(diff).cast("B"), 6)
    grey = channels <= 2
    tags.update({256: width, 257: height, 258: (16,) * channels, 259: 8, 262: 1 if grey else 2,
                 277: channels, 278: height, 279: len(strip), 284: 1, 317: 2, 339: (1,) * channels, 273: 0})
    if channels in (2, 4):
        tags[338] = 2  # unassociated alpha
    if icc:
        tags[34675] = icc
    if xmp:
        tags[700] = xmp
    tags.endian = "<"
    head = tags.tobytes()[6:]  # without "Exif\0\0"; the strip offset comes out as the end of the directories
    return head + strip
