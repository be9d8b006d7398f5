"""HEIF/HEIC input (what phones write), read by pi-heif in a child process.

Why a child (child.py): libheif and libde265 are C code, and damaged HEIC files crash them. Three of 400
byte-mutated copies of tests/data/heif/phone.heic ended the reading process with a segmentation fault (pi-heif
1.4.0, inside libheif's parsing of the container, before any size could be checked). The child hands back the
first frame's pixels and its ICC profile, EXIF, XMP and CICP as plain bytes, which are checked before use. The
price is a Python start-up per HEIC file (a read of phone.heic took 0.18-0.27 s, docs/robustness.md).

A 10- or 12-bit HEIF (HDR phone and camera photos) comes back at 16 bits, its samples stretched to the full
range by repeating their top bits (1023 -> 65535), like a 16-bit PNG: jcd codes it from all its bits and decodes
it to a 16-bit file. (Pillow's view of it, through pi-heif's plugin, has 8.)

AVIF is read by Pillow itself, in process, like every other format.
"""

from __future__ import annotations

import re
import sys

from . import child
from .errors import JcdError
from .metadata import nclx_cicp

# numpy and Pillow are imported where used: `jcd info` imports this module (formats.py) and stays without them.

#: ftyp brands of HEVC-coded HEIF files (AVIF's are Pillow's own).
BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx")
#: Modes the child hands back (it converts others to RGB or RGBA first), with their bytes per pixel; the ";16"
#: ones are a deep (10- or 12-bit) file's samples, little-endian 16-bit.
MODES = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2, "RGB;16": 6, "RGBA;16": 8}
#: What of the image's info travels back, as raw bytes ("cicp": the nclx box's four code points, metadata.py).
INFO_KEYS = ("icc_profile", "exif", "xmp", "cicp")
#: The child's command line (its arguments follow: the pixel limit, 0 for none, and the file's name).
CHILD = child.command("jcdcodec.heif")
#: Seconds the child may take: a 48 Mpx photo reads in a few; a hostile file must not hang a batch.
TIMEOUT = 300.0


def is_heif(data: bytes) -> bool:
    """An ISO-BMFF file whose ftyp box names a HEVC brand (major or compatible)."""
    if data[4:8] != b"ftyp":
        return False
    box = data[8 : min(int.from_bytes(data[:4], "big"), 64)]
    return any(box[i : i + 4] in BRANDS for i in range(0, len(box) - 3, 4))


def primary_nclx(data: bytes) -> bytes:
    """The CICP (4 bytes: primaries, transfer, matrix, full range) of the nclx colour box that a HEIF-family file
    (AVIF here; pi-heif gives HEIC's) associates with its primary image; b"" for none or a damaged container.

    Why: Pillow's AVIF reader drops it, and an HDR AVIF (PQ or HLG, BT.2020, without an ICC profile) decoded
    without it is shown as sRGB: washed out.
    """
    import struct

    for kind, body in _primary_properties(data):
        if kind == b"colr" and body[:4] == b"nclx" and len(body) >= 11:
            primaries, transfer, matrix = struct.unpack_from(">HHH", body, 4)
            if max(primaries, transfer, matrix) < 256:
                return bytes((primaries, transfer, matrix, body[10] >> 7))
    return b""


def primary_bits(data: bytes) -> int:
    """The bits per channel that the pixi box of a HEIF-family file's primary image declares (its most), or 8
    without one. Why: Pillow's AVIF reader gives 8 bits, and a user should hear when a 10-bit file loses two."""
    for kind, body in _primary_properties(data):
        if kind == b"pixi" and len(body) >= 5 and body[4]:  # version and flags, the channel count, their bits
            return max(body[5 : 5 + body[4]] or b"\x08")
    return 8


def _meta_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """The boxes in a HEIF-family file's meta box (a full box: its version and flags skipped), as
    formats.bmff_boxes gives them; none without one."""
    from .formats import bmff_boxes

    meta = next(((a + 4, b) for k, a, b in bmff_boxes(data, 0, len(data)) if k == b"meta"), None)
    return [] if meta is None else list(bmff_boxes(data, *meta))


def motion_video(data: bytes) -> bool:
    """Whether a HEIF-family file carries a motion photo's video: an mpvd box behind the picture's data (Samsung's
    HEIC motion photos, Google's Motion Photo format for HEIC and AVIF), at the top level or, as some writers put
    it, in the meta box. libheif skips the box, so a decoder sees only the still; jcd names what it leaves behind,
    as for a JPEG's appended video."""
    import struct

    from .formats import bmff_boxes

    try:
        boxes = [*bmff_boxes(data, 0, len(data)), *_meta_boxes(data)]
    except struct.error:  # a damaged container: as without the boxes
        return False
    return any(kind == b"mpvd" for kind, _, _ in boxes)


def gain_map(data: bytes) -> str:
    """Which HDR gain map a HEIF-family file holds beside its picture: "Apple" (an auxiliary image whose auxC
    names urn:com:apple:photo:2020:aux:hdrgainmap, iPhones since the 12), "ISO 21496-1" (a tmap item deriving the
    HDR rendition, iPhones since iOS 18, Android, libavif), or "" for none or a damaged container.

    Why: jcd codes the primary picture, the standard rendition; a phone's HDR photo comes out of it as its standard
    picture, and a user should hear that, as for an Ultra HDR JPEG.
    """
    import struct

    from .formats import bmff_boxes

    try:
        for kind, a, b in _meta_boxes(data):
            if kind == b"iinf":  # version 0: a 16-bit entry count, else 32; each infe of version >= 2 holds the
                # item's id (16 bits in version 2, 32 in 3), its protection index and its type
                for inner, x, _ in bmff_boxes(data, a + (6 if data[a] == 0 else 8), b):
                    at = x + 4 + (2 if data[x] == 2 else 4) + 2
                    if inner == b"infe" and data[x] >= 2 and data[at : at + 4] == b"tmap":
                        return "ISO 21496-1"
    except (struct.error, IndexError):  # a damaged container: as without the boxes
        return ""
    return "Apple" if any(urn.endswith(b":aux:hdrgainmap") for urn in _aux_types(data)) else ""


def auxiliary_images(data: bytes) -> list[str]:
    """What a HEIF-family file holds beside its picture as auxiliary images, other than alpha (which jcd keeps)
    and an HDR gain map (gain_map), in words: "depth map", "portrait matte", "skin matte", ... ; [] for none or a
    damaged container.

    Why: an iPhone's portrait photo carries its depth map and segmentation mattes (skin, hair, teeth, glasses,
    sky) for refocusing and editing later. jcd codes the picture only, and a user should hear what stays behind
    rather than find the blur slider gone.
    """
    said: list[str] = []
    for urn in _aux_types(data):
        text = urn.decode("ascii", "replace")
        if text.endswith(("auxid:1", ":auxiliary:alpha", ":aux:hdrgainmap")):
            continue
        if text.endswith(("auxid:2", ":auxiliary:depth")):
            word = "depth map"
        elif text.endswith(":aux:portraiteffectsmatte"):
            word = "portrait matte"
        elif m := re.search(r":aux:semantic([a-z]+?)matte(v\d+)?$", text):
            word = f"{m.group(1)} matte"
        else:
            word = "auxiliary image"
        if word not in said:
            said.append(word)
    return said


def _aux_types(data: bytes) -> list[bytes]:
    """The auxC properties' URNs (the kind of each auxiliary image) in a HEIF-family file; [] for a damaged
    container."""
    import struct

    from .formats import bmff_boxes

    urns = []
    try:
        for kind, a, b in _meta_boxes(data):
            for inner, x, y in bmff_boxes(data, a, b) if kind == b"iprp" else ():
                for prop, i, j in bmff_boxes(data, x, y) if inner == b"ipco" else ():
                    if prop == b"auxC":  # a full box: version and flags, then the URN, NUL-ended
                        urns.append(data[i + 4 : j].split(b"\0", 1)[0])
    except (struct.error, IndexError):
        return []
    return urns


def _primary_properties(data: bytes) -> list[tuple[bytes, bytes]]:
    """The item properties (box type, body) associated with the primary image; [] for a damaged container. Read
    from the boxes: meta's pitm names the primary item, iprp's ipma lists its properties by their 1-based place
    in ipco."""
    import struct

    from .formats import bmff_boxes

    try:
        primary, props, links = None, [], b""
        for kind, a, b in _meta_boxes(data):
            if kind == b"pitm":
                primary = struct.unpack_from(">H" if data[a] == 0 else ">I", data, a + 4)[0]
            elif kind == b"iprp":
                for inner, x, y in bmff_boxes(data, a, b):
                    if inner == b"ipco":
                        props = [(k, data[i:j]) for k, i, j in bmff_boxes(data, x, y)]
                    elif inner == b"ipma":
                        links = data[x:y]
        if primary is None or len(links) < 8:
            return []
        version, flags = links[0], int.from_bytes(links[1:4], "big")
        at, wide_id, wide_index = 8, version >= 1, bool(flags & 1)
        for _ in range(int.from_bytes(links[4:8], "big")):
            item = int.from_bytes(links[at : at + (4 if wide_id else 2)], "big")
            at += 4 if wide_id else 2
            count, at = links[at], at + 1
            width = 2 if wide_index else 1
            indices = [int.from_bytes(links[at + i * width : at + (i + 1) * width], "big") & (0x7FFF if wide_index
                       else 0x7F) for i in range(count)]  # fmt: skip
            at += count * width
            if item == primary:
                return [props[index - 1] for index in indices if 0 < index <= len(props)]
    except (struct.error, IndexError):  # a damaged container: no properties, as without the boxes
        return []
    return []


def read(data: bytes, name: str, max_pixels: int | None):
    """The primary image of a HEIF file: a Pillow image with its info, the file's image count, and for a deep file
    its samples, uint16 (H, W, 3 or 4) in the full 16-bit range (None for an 8-bit file).

    The Pillow image of a deep file holds the samples' top 8 bits: it carries the info and the size. Raises
    JcdError, with ``name``, for a file the child refuses or crashes on.
    """

    try:
        import pi_heif  # noqa: F401  only to say what is missing here, not in the child
    except ImportError:
        raise JcdError(f"{name}: a HEIF/HEIC image; reading it needs pi-heif (pip install pi-heif)") from None
    h, body = child.run(CHILD, data, name, max_pixels, "the HEIF decoder", TIMEOUT)
    try:
        mode, width, height, frames = h["mode"], int(h["width"]), int(h["height"]), int(h["frames"])
        lengths = [int(h["info"][k]) for k in INFO_KEYS]
        if mode not in MODES or width <= 0 or height <= 0 or min(lengths) < 0:
            raise ValueError(mode)
        if max_pixels and width * height > max_pixels:
            raise ValueError("size")
        if len(body) != sum(lengths) + width * height * MODES[mode]:
            raise ValueError("length")
    except (ValueError, KeyError, TypeError):  # the child's own output is checked like any input
        raise child.malformed(name, "the HEIF decoder") from None
    im, deep = child.picture(body, INFO_KEYS, lengths, mode, width, height)
    return im, frames, deep


def _child(data: bytes, max_pixels: int, name: str) -> tuple[dict, list[bytes]]:
    """The child's work: a HEIF file's head (mode, size, frames, info lengths), info bytes and pixels."""
    import io

    import pi_heif
    from PIL import Image, UnidentifiedImageError

    from .imageio import _check_size

    pi_heif.register_heif_opener()
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_size(name, im.width, im.height, max_pixels or None)
            frames = getattr(im, "n_frames", 1)
            deep = _deep_samples(data, im) if im.info.get("bit_depth", 8) > 8 and im.mode in ("RGB", "RGBA") else None
            if deep is None:
                im.load()
            im.info["cicp"] = nclx_cicp(im.info.get("nclx_profile"))
            info = {k: bytes(im.info[k]) if isinstance(im.info.get(k), (bytes, bytearray)) else
                    str(im.info[k]).encode() if im.info.get(k) else b"" for k in INFO_KEYS}  # fmt: skip
            if deep is not None:
                mode, pixels = im.mode + ";16", deep
            else:
                if im.mode not in MODES:
                    im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
                mode, pixels = im.mode, im.tobytes()
    except UnidentifiedImageError:
        raise JcdError(f"{name}: cannot read image (a damaged or truncated HEIF file)") from None
    head = {"mode": mode, "width": im.width, "height": im.height, "frames": frames,
            "info": {k: len(v) for k, v in info.items()}}  # fmt: skip
    return head, [*(info[k] for k in INFO_KEYS), pixels]


def _deep_samples(data: bytes, im) -> bytes | None:
    """A deep file's primary image at 16 bits, little-endian, rows packed; None where pi-heif gives it otherwise.

    pi-heif hands 10- and 12-bit samples over shifted to the top of 16 bits (1023 -> 65472); repeating their top
    bits in the low ones stretches them to the full range, so that white stays white.
    """
    import io

    import numpy as np
    import pi_heif

    f = pi_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
    bits, planes = int(f.info.get("bit_depth", 8)), {"RGB;16": 3, "RGBA;16": 4}.get(f.mode)
    if f.size != im.size or planes != len(im.getbands()) or not 8 < bits < 16:
        return None
    width, height = f.size
    if f.stride < width * planes * 2 or len(f.data) < height * f.stride:
        raise ValueError("the HEIF decoder gave fewer samples than the image holds")
    a = np.frombuffer(f.data, np.uint16, count=height * f.stride // 2).reshape(height, -1)[:, : width * planes]
    if (a & ((1 << (16 - bits)) - 1)).any():  # not shifted as expected: taken as they are
        return a.astype("<u2").tobytes()
    return (a | (a >> bits)).astype("<u2").tobytes()


if __name__ == "__main__":
    sys.exit(child.serve(_child))
