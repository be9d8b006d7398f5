"""What a file is, from its first bytes: the image formats jcd reads.

Why from the bytes and not the name: `jcd decode` given a photo says what the photo is, and `jcd encode photos/`
codes the images of a folder and skips what sits beside them (videos of live photos, .AAE and .xmp sidecars,
notes) instead of failing on each.
"""

from __future__ import annotations

from pathlib import Path

from .heif import is_heif

#: (offset, signature, name) of the image formats jcd reads, the common ones first.
IMAGE_SIGNATURES = ((0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"\xff\xd8\xff", "JPEG"), (4, b"ftypavif", "AVIF"),
                    (8, b"WEBP", "WebP"), (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"), (0, b"GIF8", "GIF"),
                    (0, b"BM", "BMP"), (0, b"P5", "PGM"), (0, b"P6", "PPM"))  # fmt: skip
#: Bytes read to tell (a HEIF file's ftyp box lists its brands within them).
HEAD = 64


def image_format(head: bytes) -> str | None:
    """The image format whose signature ``head`` (a file's first bytes) starts with, else None."""
    if is_heif(head):  # HEVC brands, as the reader routes them
        return "HEIC"
    for offset, sig, name in IMAGE_SIGNATURES:
        if head[offset : offset + len(sig)] == sig:
            return name
    return None


def file_image_format(path: Path) -> str | None:
    """:func:`image_format` of a file; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return image_format(f.read(HEAD))
    except OSError:
        return None
