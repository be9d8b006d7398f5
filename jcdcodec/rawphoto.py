"""Camera raw files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, ...), developed by LibRaw (rawpy) in a child process.

Why develop them: a raw file is the noisiest form of a photo, straight from the sensor, and what a denoising codec
is for; refusing it sent the user to a raw converter first. Why a child (child.py): LibRaw is C code that parses
hundreds of camera formats, and a damaged file must not take jcd's process down with it.

The development is a plain one, the camera's own choices where the file has them: the camera's white balance,
LibRaw's AHD demosaicking, the camera's colour matrix to sRGB, the sRGB tone curve, LibRaw's automatic
brightness (as cameras expose their JPEGs), the orientation the camera recorded, and no noise reduction (that is
jcd's work). It comes out at 16 bits, so a decoded file keeps what the sensor gave. The camera data (make,
model, date, exposure, lens, GPS) ride along as EXIF (``camera_data``), read in jcd's own process by Pillow's
pure-Python tag reader, not by LibRaw.
"""

from __future__ import annotations

import io
import struct
import sys
import warnings
from typing import TYPE_CHECKING

from . import child
from .errors import JcdError
from .formats import TIFF_HEADS, bmff_boxes

if TYPE_CHECKING:
    import numpy as np

#: The child's command line (its arguments follow: the pixel limit, 0 for none, and the file's name).
CHILD = child.command("jcdcodec.rawphoto")
#: Seconds the child may take: a 24 Mpx raw develops in 3-5 s (benchmarks/raw_read.py); a hostile file must not
#: hang a batch.
TIMEOUT = 300.0
DECODER = "the raw developer (LibRaw)"


def available() -> bool:
    """Whether rawpy (LibRaw) is installed, so that raw files can be developed here."""
    from importlib.util import find_spec

    return find_spec("rawpy") is not None  # without importing it (and LibRaw) here: the child does


def develop(data: bytes, name: str, kind: str, max_pixels: int | None) -> np.ndarray:
    """The developed photo of a raw file: 16-bit (H, W, 3) sRGB samples, upright, or (H, W, 1) from a monochrome
    sensor. ``kind`` ("DNG") names the format in messages. Raises JcdError for a file LibRaw cannot develop, or
    one above ``max_pixels``."""
    import numpy as np

    if not available():
        raise JcdError(f"{name}: a camera raw file ({kind}); developing it needs rawpy (pip install rawpy), or "
                       "develop it first (a raw converter's 16-bit TIFF or PNG keeps all its bits)")  # fmt: skip
    head, body = child.run(CHILD, data, name, max_pixels, DECODER, TIMEOUT, kind)
    try:
        width, height, channels = int(head["width"]), int(head["height"]), int(head["channels"])
        if width <= 0 or height <= 0 or (max_pixels and width * height > max_pixels) or channels not in (1, 3):
            raise ValueError("size")
        if len(body) != width * height * channels * 2:
            raise ValueError("length")
    except (ValueError, KeyError, TypeError):
        raise child.malformed(name, DECODER) from None
    return np.frombuffer(body, "<u2").reshape(height, width, channels)  # a read-only view of the child's output


def camera_data(data: bytes) -> bytes:
    """The camera data (EXIF: make, model, date, exposure, lens, GPS) of a raw file, b"" where it has none jcd
    can find or they are damaged (they cost the camera data, not the photo). The orientation is left out: the
    development applies it.

    Where each format keeps them: TIFF-based raws (DNG, NEF, ARW, CR2, PEF, SRW) and Olympus ORF (a TIFF with its
    own magic) in their first directory and its EXIF and GPS directories; Panasonic RW2 (likewise) in the JPEG it
    embeds (tag 0x2E), which has the full set; Fujifilm RAF in its preview JPEG; Canon CR3 in the TIFFs of its
    CMT1 (first directory), CMT2 (EXIF) and CMT4 (GPS) boxes. Canon's and others' maker notes inside the EXIF
    directory ride along as they are; CR3's own (CMT3) does not.
    """
    from .imageio import _tiff_exif, exif_of

    with warnings.catch_warnings():  # Pillow warns of each damaged tag: the camera data are best effort
        warnings.simplefilter("ignore")
        try:
            head = data[:4]
            if head in _AS_TIFF:  # ORF and RW2: TIFF under another magic number
                tags = _tiff_tags(_AS_TIFF[head] + data[4:])
                if head == b"IIU\x00" and isinstance(jpeg := tags.get(_RW2_JPEG), bytes):
                    return _jpeg_exif(jpeg) or _tiff_exif(tags)
                return _tiff_exif(tags)
            if head in TIFF_HEADS:
                return _tiff_exif(_tiff_tags(data))
            if data.startswith(b"FUJIFILMCCD-RAW"):
                at, length = struct.unpack_from(">II", data, _RAF_JPEG)
                return _jpeg_exif(data[at : at + length])
            if data[4:12] == b"ftypcrx ":
                cmt = _cr3_tiffs(data)
                if not cmt:
                    return b""
                ifd0, exif, gps = (_tiff_tags(cmt[k]) if k in cmt else {} for k in (b"CMT1", b"CMT2", b"CMT4"))
                return exif_of(ifd0, dict(exif), dict(gps))
        except Exception:  # noqa: BLE001  damaged containers or tags: Pillow and struct raise many kinds
            return b""
    return b""


#: The raw formats that are TIFF under another magic number -> the TIFF magic of their byte order.
_AS_TIFF = {b"IIRO": b"II*\x00", b"IIRS": b"II*\x00", b"MMOR": b"MM\x00*", b"IIU\x00": b"II*\x00"}
#: RW2's tag of the JPEG it embeds (JpgFromRaw), whose EXIF is the camera's full set.
_RW2_JPEG = 0x2E
#: Where a RAF header says where its preview JPEG is (offset and length, big-endian).
_RAF_JPEG = 0x54
#: The uuid of the box in a CR3's moov box that holds Canon's metadata boxes (CMT1 ... CMT4).
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")


def _tiff_tags(tiff: bytes):
    """A TIFF's (or EXIF's) first directory, read by Pillow (an ``Image.Exif``; its sub-directories on demand)."""
    from PIL import Image

    tags = Image.Exif()
    tags.load(tiff)
    return tags


def _jpeg_exif(jpeg: bytes) -> bytes:
    """The camera data of a JPEG's EXIF, by Pillow, which reads its header only."""
    from PIL import Image

    from .imageio import _tiff_exif

    with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as im:
        return _tiff_exif(im.getexif())


def _cr3_tiffs(data: bytes) -> dict[bytes, bytes]:
    """The TIFFs of a CR3's Canon metadata boxes (CMT1 ... CMT4) by box type; empty where there are none."""
    for kind, start, end in bmff_boxes(data, 0, len(data)):
        if kind == b"moov":
            for inner, a, b in bmff_boxes(data, start, end):
                if inner == b"uuid" and data[a : a + 16] == _CANON_UUID:
                    return {k: data[x:y] for k, x, y in bmff_boxes(data, a + 16, b) if k.startswith(b"CMT")}
    return {}


def _child(data: bytes, max_pixels: int, name: str, kind: str) -> tuple[dict, list[bytes]]:
    """The child's work: the size before anything is developed, then the photo at 16 bits; ``kind`` ("DNG")
    names the format in its refusal."""
    import rawpy

    from .imageio import _check_size

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            turned = sizes.flip in (5, 6)  # a quarter turn: the developed photo is taller than wide, or wider
            width, height = (sizes.iheight, sizes.iwidth) if turned else (sizes.iwidth, sizes.iheight)
            _check_size(name, width, height, max_pixels or None)
            _check_size(name, sizes.raw_width, sizes.raw_height, 4 * max_pixels or None)  # the sensor's buffer
            rgb = raw.postprocess(use_camera_wb=True, output_bps=16, gamma=(2.4, 12.92),
                                  output_color=rawpy.ColorSpace.sRGB)  # fmt: skip
    except (rawpy.LibRawError, ValueError) as e:  # reading or developing
        said = e.args[0] if e.args else ""  # LibRaw's own words come as bytes
        why = (said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)).strip() or type(e).__name__
        raise JcdError(f"{name}: a camera raw file ({kind}) that LibRaw cannot develop ({why}); develop it with a raw "
                       "converter first (its 16-bit TIFF or PNG keeps all its bits)") from None  # fmt: skip
    height, width, channels = rgb.shape  # one channel from a monochrome sensor (or a linear DNG of one)
    return {"width": width, "height": height, "channels": channels}, [rgb.astype("<u2").tobytes()]


if __name__ == "__main__":
    sys.exit(child.serve(_child))
