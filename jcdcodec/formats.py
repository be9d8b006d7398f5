"""What a file is, from its first bytes: the image formats jcd reads.

Why from the bytes and not the name: `jcd decode` given a photo says what the photo is, and `jcd encode photos/`
codes the images of a folder and skips what sits beside them (videos of live photos, .AAE and .xmp sidecars,
notes) instead of failing on each.

Camera raw files are told apart too. Most are TIFF inside (DNG, NEF, ARW, CR2, PEF, ...) and their first image
is a small preview, which a TIFF reader opens without complaint: coded as the photo, a 24 Mpx raw became a
256x171 picture without a word (a user who then deletes the raw has lost the photo). jcd codes developed
pictures: a raw file is developed first (rawphoto.py), and in a folder one that has a picture of the same
name beside it (RAW+JPEG, as cameras shoot) is skipped with one warning.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

from .heif import is_heif
from .jxl import is_jxl

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
    if is_jxl(head):  # bare codestream or container, as the reader routes them
        return "JPEG XL"
    for offset, sig, name in IMAGE_SIGNATURES:
        if head[offset : offset + len(sig)] == sig:
            return name
    return None


#: (offset, signature, what) of files that are no image, for the message that refuses one.
OTHER_SIGNATURES = ((0, b"%PDF", "a PDF document"), (0, b"PK\x03\x04", "a ZIP archive (or an office document)"),
                    (8, b"AVI ", "a video (AVI)"), (8, b"WAVE", "a sound (WAV)"), (0, b"ID3", "a sound (MP3)"),
                    (0, b"\x1a\x45\xdf\xa3", "a video (Matroska or WebM)"), (0, b"OggS", "a sound or video (Ogg)"),
                    (0, b"fLaC", "a sound (FLAC)"), (0, b"\x1f\x8b", "a gzip archive"))  # fmt: skip


def not_an_image(head: bytes) -> str:
    """What a file that no reader took seems to be, from its first bytes, in words: "it is a video (MP4 or
    QuickTime)", "it is text", ... . Why: "not an image" is all a reader can say, and a user who passed a video
    or a web page saved under .jpg should hear which."""
    if head[4:8] == b"ftyp" or head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "it is a video (MP4 or QuickTime)"
    for offset, sig, what in OTHER_SIGNATURES:
        if head[offset : offset + len(sig)] == sig:
            return f"it is {what}"
    text = None
    for cut in range(4):  # the HEAD-byte cut may split the last character
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if text is not None and all(c.isprintable() or c in "\t\r\n\f" for c in text.lstrip("\ufeff")):
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if lowered.startswith(("<!doctype html", "<html")):
            return "it is a web page (HTML)"
        if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
            return "it is an SVG drawing (jcd codes pixels: export it as PNG first)"
        return "it is text"
    return "no format jcd knows starts like this"


def what_it_is(head: bytes) -> str:
    """What a file seems to be from its first bytes, for the message that refuses it as something else (a stream,
    weights, a checkpoint): "it is a PNG image", "it is a video (MP4 or QuickTime)", ..., or "" when they tell
    nothing."""
    if name := image_format(head):
        return f"it is a {name} image"
    what = not_an_image(head) if head else ""
    return what if what.startswith("it is ") else ""


def describe(path: Path) -> str:
    """:func:`what_it_is` of a file on disk ("" when it cannot be read)."""
    return what_it_is(file_head(path))


#: Extensions of camera raw files (a folder's raw files are told by name; renamed ones are caught by content).
RAW_SUFFIXES = frozenset((".dng", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                          ".raf", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mos", ".mrw",
                          ".rwl"))  # fmt: skip
#: (offset, signature, name) of raw formats that are not plain TIFF; the TIFF-based ones are told by their tags.
RAW_SIGNATURES = ((0, b"II*\x00\x10\x00\x00\x00CR", "Canon CR2"), (4, b"ftypcrx ", "Canon CR3"),
                  (0, b"FUJIFILMCCD-RAW", "Fujifilm RAF"), (0, b"IIRO", "Olympus ORF"), (0, b"IIRS", "Olympus ORF"),
                  (0, b"MMOR", "Olympus ORF"), (0, b"IIU\x00", "Panasonic RW2"), (0, b"FOVb", "Sigma X3F"))  # fmt: skip
#: TIFF tags that make a TIFF a camera raw file: DNGVersion; NewSubfileType with bit 0 (a reduced-resolution
#: image) on the first image, which says that the picture itself is elsewhere in the file.
DNG_VERSION, NEW_SUBFILE_TYPE = 50706, 254


def camera_raw(head: bytes, tags: Mapping | None = None) -> str | None:
    """The kind of camera raw file that ``head`` (a file's first bytes) and, for a TIFF, its first image's
    ``tags`` show, else None."""
    for offset, sig, name in RAW_SIGNATURES:
        if head[offset : offset + len(sig)] == sig:
            return name
    if tags is None:
        return None
    try:
        if DNG_VERSION in tags:
            return "DNG"
        if int(tags.get(NEW_SUBFILE_TYPE, 0)) & 1:
            return "a TIFF-based raw format"
    except Exception:  # noqa: BLE001  a damaged tag says nothing about rawness; the reader judges the rest
        return None
    return None


#: The first four bytes of a TIFF (little- and big-endian), which many raw formats are inside.
TIFF_HEADS = (b"II*\x00", b"MM\x00*")


def tiff_tags(data: bytes) -> Mapping | None:
    """The tags of a TIFF's first image, read even where Pillow cannot open the image (a DNG whose first image is
    the sensor's mosaic); None for anything else or a damaged directory."""
    if data[:4] not in TIFF_HEADS:
        return None
    import io

    from PIL import TiffImagePlugin

    try:
        fp = io.BytesIO(data)
        tags = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        fp.seek(tags.next)
        tags.load(fp)
    except Exception:  # noqa: BLE001  a damaged directory: not told apart here
        return None
    return tags


def file_head(path: Path) -> bytes:
    """A file's first HEAD bytes; b"" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(HEAD)
    except OSError:
        return b""


def bmff_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the ISO base media boxes in ``data[start:end]`` (CR3, JPEG XL's
    container, AVIF's item properties); stops at one that does not fit."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        head = 8
        if size == 1:  # a 64-bit size follows
            if at + 16 > end:
                return
            size, head = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:  # to the end
            size = end - at
        if size < head or at + size > end:
            return
        yield kind, at + head, at + size
        at += size
