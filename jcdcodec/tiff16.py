"""16-bit colour TIFF (what raw converters export), which Pillow reads at 8 bits and does not write.

Why: Pillow narrows 16-bit RGB TIFF to 8 bits, and tifffile, which reads it, inflates deflate strips without a
bound and needs imagecodecs for LZW. libtiff, inside Pillow, decodes every compression it knows (LZW, deflate,
PackBits, ...) in strips or tiles, into buffers no larger than the strip or tile the header declares; Pillow only
narrows what libtiff hands it. So :func:`samples` hands libtiff the same strips under a grey view (one 16-bit
sample per pixel, the colour samples side by side) and undoes the horizontal predictor itself, per channel, which
libtiff would apply across channels in that view. :func:`write` makes the 16-bit TIFFs `jcd decode` writes.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import zlib
from collections.abc import Iterator

import numpy as np

from .errors import JcdError

#: Compressions a 16-bit image cannot have (JPEG holds 8 or 12 bits): left to Pillow, which says what is wrong.
_JPEG = (6, 7)


def samples(tags: dict, size: tuple[int, int], big_endian: bool, data: bytes, name: str) -> np.ndarray | None:
    """The (height, width, 3 or 4) uint16 samples of a 16-bit RGB(A) TIFF's first image, from its tags (Pillow's
    ``tag_v2``) and the file's bytes; None for a layout this does not read (other sample formats, the floating
    point predictor). Raises JcdError for damaged strips or tiles."""
    width, height = size
    if width <= 0 or height <= 0:
        return None

    def ints(tag: int, default: int | None = None) -> tuple[int, ...]:
        """A tag's values as integers (Pillow gives one value bare, several as a tuple, a damaged one oddly)."""
        value = tags.get(tag, default)
        try:
            values = tuple(int(v) for v in (value if isinstance(value, tuple) else (value,)))
        except (TypeError, ValueError):
            values = ()
        if not values:
            raise JcdError(f"{name}: cannot read image (a damaged TIFF tag {tag})")
        return values

    def one(tag: int, default: int | None = None) -> int:
        return ints(tag, default)[0]

    bits, spp, compression, predictor = ints(258), one(277, 1), one(259, 1), one(317, 1)
    planar, formats, photometric = one(284, 1), ints(339, 1), one(262, 0)
    if (spp not in (3, 4) or set(bits) != {16} or photometric != 2 or compression in _JPEG
            or predictor not in (1, 2) or planar not in (1, 2) or set(formats) != {1}):  # fmt: skip
        return None
    tiled = 322 in tags
    offsets, counts = ints(324 if tiled else 273), ints(325 if tiled else 279)
    planes, channels = (spp, 1) if planar == 2 else (1, spp)
    if tiled:
        tile = (one(322), one(323, 0))
        if tile[0] <= 0 or tile[1] <= 0:
            raise JcdError(f"{name}: cannot read image (its tiles have no size)")
        pieces = -(-width // tile[0]) * -(-height // tile[1])
        layout = {322: tile[0] * channels, 323: tile[1]}
    else:
        rows = min(one(278, height), height)
        if rows <= 0:
            raise JcdError(f"{name}: cannot read image (its strips do not match its size)")
        pieces = -(-height // rows)
        layout = {278: rows}
    if len(offsets) != planes * pieces or len(counts) != len(offsets):
        raise JcdError(f"{name}: cannot read image (its {'tiles' if tiled else 'strips'} do not match its size)")
    out = np.empty((height, width, spp), np.uint16) if planes > 1 else None
    for plane in range(planes):
        part = slice(plane * pieces, (plane + 1) * pieces)
        view = [_grey_view(data, big_endian, width * channels, height, compression, one(266, 1), tiled, layout,
                           offsets[part], counts[part])]  # fmt: skip
        grey = _decode(view, name, "tile" if tiled else "strip").reshape(height, width, channels)
        if predictor == 2:  # each sample was stored as the difference to its left neighbour, modulo 2^16
            grey = _undo_predictor(grey, tile[0] if tiled else width)
        if out is None:  # chunky: the samples as they come, in this machine's byte order
            out = grey.astype(np.uint16, copy=False)
            break
        out[:, :, plane : plane + channels] = grey
    return _unpremultiplied(out) if spp == 4 and one(338, 0) == 1 else out


def _unpremultiplied(rgba: np.ndarray) -> np.ndarray:
    """Associated alpha (ExtraSamples 1, what GIMP writes) turned into the straight alpha jcd codes: the colour
    samples were stored multiplied by alpha; a fully transparent pixel keeps black."""
    alpha = rgba[:, :, 3:].astype(np.float32)
    straight = rgba[:, :, :3] * np.float32(65535) / np.maximum(alpha, 1)
    colour = np.where(alpha > 0, np.minimum(np.rint(straight), 65535), 0).astype(np.uint16)
    return np.concatenate([colour, rgba[:, :, 3:]], axis=2)


def check_tiles(tags: dict, name: str) -> None:
    """Refuses a tiled TIFF whose tiles are far larger than its image, before libtiff decodes it.

    Why: libtiff allocates a whole tile before it reads one; a 2 KB file declaring one 16384x16384 tile for a
    64x64 image made jcd take 1.6 GB. A writer pads the image to whole tiles, so a tile larger than the image
    only pads it: at most four times its area, or 1 Mpx for small images, is any real file's."""
    if 322 not in tags:
        return
    try:
        tw, tl, width, height = (int(tags.get(tag, 0)) for tag in (322, 323, 256, 257))
    except (TypeError, ValueError):
        raise JcdError(f"{name}: cannot read image (its tile size is not a number)") from None
    if tw <= 0 or tl <= 0 or tw * tl > max(4 * width * height, 1 << 20):
        raise JcdError(f"{name}: cannot read image (tiles of {tw}x{tl} for a {width}x{height} image)")


def _grey_view(data: bytes, big_endian: bool, width: int, height: int, compression: int, fill_order: int,
               tiled: bool, layout: dict[int, int], offsets: tuple, counts: tuple) -> bytes:
    """A TIFF of one 16-bit grey image ``width`` samples wide, whose strips or tiles are the given pieces of
    ``data``, copied after its directory (no predictor: :func:`samples` undoes it per channel)."""
    from PIL import Image

    whole = memoryview(data)  # slices without copies: the view's one copy is the join below
    pieces = [whole[int(o) : int(o) + int(c)] for o, c in zip(offsets, counts, strict=True)]
    tags = Image.Exif()
    tags.endian = ">" if big_endian else "<"
    tags.update({256: width, 257: height, 258: 16, 259: compression, 262: 1, 266: fill_order, 277: 1, 284: 1,
                 317: 1, **layout})  # fmt: skip
    where, sizes = (324, 325) if tiled else (273, 279)
    one = len(pieces) == 1
    tags[sizes] = len(pieces[0]) if one else tuple(len(p) for p in pieces)
    starts = np.cumsum([0, *(len(p) for p in pieces[:-1])]).tolist()  # from the end of the directory
    tags[where] = starts[0] if one else tuple(starts)
    if tiled:  # Pillow moves strip offsets past the directory itself, tile offsets not (a LONG each: same size)
        head = len(tags.tobytes()) - 6
        tags[where] = head if one else tuple(head + s for s in starts)
    return tags.tobytes()[6:] + b"".join(pieces)


def _decode(view: list[bytes], name: str, piece: str) -> np.ndarray:
    """libtiff's samples of a grey view, as (height, width) uint16 in the file's byte order. The view comes in a
    list that this empties: its bytes (as large as the file) are let go once decoded, before the samples are
    copied out of Pillow."""
    from PIL import TiffImagePlugin

    buf = io.BytesIO(view.pop())  # the one reference left to the view's bytes
    try:
        # Not Image.open: its size check would count every sample as a pixel; the image's own size is checked.
        with TiffImagePlugin.TiffImageFile(buf) as im, libtiff_quiet():
            im.load()
            buf.close()
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError):  # Pillow says "decoder error -2": nothing a user can act on
        raise JcdError(f"{name}: cannot read image (a damaged or truncated {piece})") from None


@contextlib.contextmanager
def libtiff_quiet() -> Iterator[None]:
    """Keeps libtiff's own messages about a damaged file ("LZWDecode: Strip 0 not terminated with EOI code") off
    the terminal while it decodes: it writes them to the process's stderr, past Python, and jcd says what is wrong
    in one line of its own. The whole process's stderr goes to nowhere meanwhile; jcd writes nothing then."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to keep quiet (pythonw, a closed descriptor)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _undo_predictor(grey: np.ndarray, run: int) -> np.ndarray:
    """Sums the differences along each row of each channel, restarting every ``run`` pixels (a tile's width)."""
    height, width, channels = grey.shape
    blocks = -(-width // run)
    if blocks * run != width:  # the last tile's padding, so that every tile is a block of the same width
        padded = np.zeros((height, blocks * run, channels), np.uint16)
        padded[:, :width] = grey
        grey = padded
    summed = np.cumsum(grey.reshape(height, blocks, run, channels), axis=2, dtype=np.uint16)
    return summed.reshape(height, blocks * run, channels)[:, :width]


#: TIFF tags that describe the layout of the pixels: the writer sets them; an EXIF block's copies are dropped.
_LAYOUT = (254, 256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 284, 317, 338, 339, 322, 323, 324, 325)


def write(a: np.ndarray, icc: bytes = b"", exif: bytes = b"", xmp: bytes = b"",
          dpi: tuple[float, float] | None = None) -> bytes:  # fmt: skip
    """A 16-bit TIFF of ``a`` (height, width, 1-4 uint16: grey, grey + alpha, RGB, RGBA), one deflate strip with
    the horizontal predictor (what Lightroom's "ZIP" writes), with the ICC profile, the EXIF (camera tags, EXIF
    and GPS directories), the XMP and the resolution (dots per inch, over the EXIF's own). Why: Pillow writes no
    16-bit colour TIFF, and 16-bit workflows (raw converter -> jcd -> editor) keep their bits. Pillow's EXIF
    writer lays out the directories."""
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
    if dpi:
        from PIL.TiffImagePlugin import IFDRational

        tags.update({282: IFDRational(dpi[0]), 283: IFDRational(dpi[1]), 296: 2})  # per inch
    tags.endian = "<"
    head = tags.tobytes()[6:]  # without "Exif\0\0"; the strip offset comes out as the end of the directories
    return head + strip
