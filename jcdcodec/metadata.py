"""What a picture carries beside its pixels, and jcd keeps: the ICC colour profile, EXIF, XMP, CICP and text.

Why: the numbers of a wide-gamut photo (Display P3 from a phone, Adobe RGB from a camera) mean other colours
without their profile, and photo libraries sort and caption by EXIF and XMP. jcd codes the pixels; these ride
along verbatim, deflated in the stream's metadata section (docs/bitstream.md), and go back into the decoded
file where its format holds them.

- EXIF orientation is applied to the pixels on load (imageio), and Pillow's ``exif_transpose`` removes the
  orientation from the EXIF and XMP it leaves, so a decoded picture is not turned twice.
- An RGB profile that renders every colour within 1/255 of sRGB is not stored: a file without a profile means
  sRGB, and the common 3 KB sRGB profile would cost about half of a small q1 stream.
- A profile of another colour space than the picture jcd codes is dropped with a warning: it would describe
  other numbers. (A CMYK picture is converted to sRGB through its CMYK profile on load, imageio.)
- CICP (ITU-T H.273 code points: colour primaries, transfer function; what HEIF's nclx box and PNG's cICP chunk
  hold) says what the numbers mean where no ICC profile does, HDR above all: a PQ or HLG photo (10-bit HEIC from
  cameras and phones) shown as sRGB looks flat and grey. It is kept as 4 bytes (primaries, transfer, matrix 0:
  RGB, full range 1) when it says more than sRGB does, and written into decoded PNGs (cICP).
- Text: a PNG's text chunks (Title, Author, Copyright, Description, ...; tEXt, zTXt, iTXt) and a JPEG's or GIF's
  comment, as (keyword, text) pairs: a copyright line or a caption is the user's as much as the pixels are. Back
  into a decoded PNG as text chunks, into a JPEG its comment. ImageMagick's hex copies of the EXIF, XMP and ICC
  profile ("Raw profile type exif", ...) are not kept as text: jcd keeps those kinds themselves.
- Resolution: the dots per inch a file states (PNG's pHYs, JPEG's JFIF density, TIFF's and BMP's resolution): a
  scan's 300 or 2400 dpi is its print size. Back into a decoded PNG, JPEG, TIFF or BMP. 72 and 96 dpi, what
  software states when it knows none, are not kept: a file without a resolution is taken to mean the same.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, replace

from .errors import BitstreamError, JcdError, JcdWarning

#: What can be kept, in the order of their tags in the stream (1, 2, 3, 4, 5, 6).
KINDS = ("icc", "exif", "xmp", "cicp", "text", "dpi")
LABELS = {"icc": "ICC profile", "exif": "EXIF", "xmp": "XMP", "cicp": "CICP colour signal", "text": "text",
          "dpi": "resolution"}  # fmt: skip
#: The most dots per inch a stream records (a file may state anything; no scanner reaches this).
MAX_DPI = 1_000_000
#: The most metadata a stream may hold, inflated: validated before inflating more (a forged section is no
#: zip bomb). JPEG limits EXIF and XMP to 64 KB each; large LUT profiles reach a few MB.
MAX_BYTES = 16 << 20
_EXIF_PREFIX = b"Exif\x00\x00"


@dataclass(frozen=True)
class Metadata:
    """Raw bytes of each kind; empty when absent. ``exif`` is stored with its ``Exif\\0\\0`` prefix; ``cicp``
    is 4 bytes (colour primaries, transfer characteristics, matrix coefficients, full-range flag: H.273); ``text``
    is (keyword, text) pairs, each UTF-8 and ended by a NUL byte (:func:`text_pairs`, :func:`text_bytes`); ``dpi``
    is 8 bytes, the horizontal and vertical dots per inch in thousandths, big-endian (:func:`dpi_of`)."""

    icc: bytes = b""
    exif: bytes = b""
    xmp: bytes = b""
    cicp: bytes = b""
    text: bytes = b""
    dpi: bytes = b""

    def __bool__(self) -> bool:
        return bool(self.icc or self.exif or self.xmp or self.cicp or self.text or self.dpi)

    def kept(self, kinds: frozenset[str]) -> Metadata:
        """Only ``kinds`` (a subset of KINDS)."""
        return replace(self, **{k: b"" for k in KINDS if k not in kinds})

    def sizes(self) -> dict[str, int]:
        """Bytes of each kind present, by name."""
        return {k: len(getattr(self, k)) for k in KINDS if getattr(self, k)}


#: A picture without metadata (a default that is safe to share: Metadata is frozen).
NONE = Metadata()


def parse_keep(spec: str) -> frozenset[str]:
    """``--metadata``: "all", "none", or a comma-separated choice of icc, exif, xmp, cicp, text, dpi.

    "icc" keeps CICP and the resolution too: they say what the numbers mean (the colours, the print size), and
    ``--metadata icc`` is how a user keeps them while leaving out camera, date, place and author; an HDR photo
    without its CICP would look flat."""
    spec = spec.strip().lower()
    if spec == "all":
        return frozenset(KINDS)
    if spec == "none":
        return frozenset()
    kinds = {k.strip() for k in spec.split(",") if k.strip()}
    unknown = sorted(kinds - set(KINDS))
    if unknown or not kinds:
        raise JcdError(f"--metadata takes all, none, or some of {', '.join(KINDS)} (comma-separated), "
                       f"not {spec!r}")  # fmt: skip
    return frozenset(kinds | ({"cicp", "dpi"} if "icc" in kinds else set()))


def _as_bytes(v: object) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v) if isinstance(v, (bytes, bytearray)) else b""


def profile_space(icc: bytes) -> bytes:
    """The data colour space signature of an ICC profile (b"RGB ", b"GRAY", b"CMYK", ...), b"" if too short."""
    return bytes(icc[16:20]) if len(icc) >= 128 else b""


def renders_as_srgb(icc: bytes) -> bool:
    """Whether an RGB profile maps every colour of a 17^3 grid to within 1/255 of the same numbers in sRGB."""
    try:
        import numpy as np
        from PIL import Image, ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(src, ImageCms.createProfile("sRGB"), "RGB", "RGB",
                                            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)  # fmt: skip
        levels = np.round(np.linspace(0, 255, 17)).astype(np.uint8)
        grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(17 * 17, 17, 3)
        out = np.asarray(ImageCms.applyTransform(Image.fromarray(grid, "RGB"), transform))
        return int(np.abs(out.astype(np.int16) - grid.astype(np.int16)).max()) <= 1
    except Exception:  # noqa: BLE001  a profile littlecms cannot use is kept as it is, not judged
        return False


#: H.273 code points that say no more than sRGB (a file without a profile means sRGB): primaries BT.709 or
#: unspecified; transfer BT.709, unspecified, BT.601, sRGB, BT.2020 (the SDR curves that viewers show as sRGB).
_SRGB_PRIMARIES = (1, 2)
_PRIMARIES = frozenset((1, 2, *range(4, 13), 22))  # the code points H.273 defines (3 and 13-21 are reserved)
_TRANSFERS = frozenset((1, 2, *range(4, 19)))
_SDR_TRANSFERS = (1, 2, 6, 13, 14, 15)


#: Names of common H.273 code points, for `jcd info`.
PRIMARY_NAMES = {1: "BT.709", 9: "BT.2020", 11: "DCI-P3", 12: "Display P3"}
TRANSFER_NAMES = {1: "BT.709", 8: "linear", 13: "sRGB", 14: "BT.2020", 15: "BT.2020", 16: "PQ", 18: "HLG"}


def describe_cicp(cicp: bytes) -> str:
    """``9/16/0/1 (BT.2020, PQ)``: the code points, and what the common ones are."""
    names = [PRIMARY_NAMES.get(cicp[0], f"primaries {cicp[0]}"), TRANSFER_NAMES.get(cicp[1], f"transfer {cicp[1]}")]
    return f"{'/'.join(str(b) for b in cicp)} ({', '.join(names)})"


def cicp_bytes(primaries: int, transfer: int) -> bytes:
    """The 4 bytes jcd keeps for an RGB picture's code points (matrix 0: RGB; full range)."""
    return bytes([primaries, transfer, 0, 1])


def nclx_cicp(profile: object) -> bytes:
    """A HEIF nclx profile as Pillow plugins give it (a dict of H.273 code points) in 4 bytes; b"" for none."""
    keys = ("color_primaries", "transfer_characteristics", "matrix_coefficients", "full_range_flag")
    try:
        return bytes(int(profile[k]) for k in keys)  # type: ignore[index]
    except (TypeError, KeyError, ValueError):  # none, or not what it should be
        return b""


def _kept_cicp(value: object, icc: bytes) -> bytes:
    """The CICP worth keeping: 4 bytes, valid code points, saying more than sRGB and than the ICC profile does.

    A transfer function beyond SDR (PQ, HLG) is kept whatever the profile; other primaries only without a profile
    (the profile says them, and viewers read profiles more widely than CICP)."""
    if not isinstance(value, (bytes, bytearray)) or len(value) != 4:
        return b""
    primaries, transfer = value[0], value[1]
    if primaries not in _PRIMARIES or transfer not in _TRANSFERS:  # reserved: nothing to say
        return b""
    if transfer not in _SDR_TRANSFERS or (primaries not in _SRGB_PRIMARIES and not icc):
        return cicp_bytes(primaries, transfer)
    return b""


def from_pillow_info(info: dict, grey: bool, name: str = "input", text: bytes = b"") -> Metadata:
    """The metadata of an opened Pillow image (after ``exif_transpose``); ``grey``: jcd codes it as grey;
    ``text``: its text (:func:`text_of`, read before the transpose, which keeps no PNG text)."""
    icc = _as_bytes(info.get("icc_profile"))
    if icc:
        space = profile_space(icc)
        if space == b"RGB " and renders_as_srgb(icc):  # no profile means sRGB (also on a grey picture)
            icc = b""
        elif space != (b"GRAY" if grey else b"RGB "):
            what = space.decode("ascii", "replace").strip() or "unreadable"
            warnings.warn(f"{name}: its ICC profile is for {what} data, not the {'grey' if grey else 'RGB'} "
                          "picture jcd codes; the profile is not kept", JcdWarning, stacklevel=3)  # fmt: skip
            icc = b""
    exif = _as_bytes(info.get("exif"))
    if exif and not exif.startswith(_EXIF_PREFIX):
        exif = _EXIF_PREFIX + exif
    exif = without_thumbnail(exif)
    if exif == _EXIF_PREFIX:
        exif = b""
    cicp = b"" if grey else _kept_cicp(info.get("cicp") or nclx_cicp(info.get("nclx_profile")), icc)
    return Metadata(icc, exif, _as_bytes(info.get("xmp")), cicp, text, dpi_bytes(info.get("dpi")))


#: What of a JPEG's XMP points at data behind the picture (Google's container of an Ultra HDR gain map or a motion
#: photo's video: Container:Directory with its items' lengths, hdrgm:Version, GCamera:MotionPhoto/MicroVideo*),
#: as attributes and as simple elements. Each pattern stops at the next tag, so that a hostile packet costs
#: linear time (a packet of 60 KB of openings took 5 s with patterns that searched on to its end).
_FIELD = rb"(?:[\w.-]+:(?:MotionPhoto|MicroVideo)\w*|hdrgm:\w+)"
_APPENDED = (
    re.compile(rb"""\s""" + _FIELD + rb"""\s*=\s*(?:"[^"<]*"|'[^'<]*')"""),
    re.compile(rb"<(" + _FIELD + rb")\b[^<>]*(?:/>|>[^<]*</\1\s*>)"),
)
_MOTION = re.compile(rb"""[\w.-]+:(?:MotionPhoto|MicroVideo)(?:\s*=\s*["']\s*|>\s*)1\b""")


def motion_photo(data: bytes, xmp: bytes) -> bool:
    """A motion photo: a picture with a video behind it (Google's, whose XMP says MotionPhoto or MicroVideo = 1;
    Samsung's JPEGs, whose trailer holds MotionPhoto_Data; a HEIC's mpvd box is heif.motion_video's)."""
    return bool(_MOTION.search(xmp)) or b"MotionPhoto_Data" in data


def without_appended(xmp: bytes) -> bytes:
    """``xmp`` without what points at data appended behind a JPEG's picture (a gain map, a video).

    Why: jcd keeps the picture only, and a decoded JPEG whose XMP still says "a gain map / a video of N bytes
    follows" would send a viewer to read the picture's own last bytes as that data. Everything else in the packet
    stays as it came (no XML parser rewrites it).
    """
    for pattern in _APPENDED:
        xmp = pattern.sub(b"", xmp)
    for name in (b"Container:Directory", b"GContainer:Directory"):  # its items nest: cut from tag to end tag
        at = 0
        while (start := xmp.find(b"<" + name, at)) >= 0:
            end = xmp.find(b"</" + name, start)
            close = xmp.find(b">", end)
            if end < 0 or close < 0:
                break
            xmp, at = xmp[:start] + xmp[close + 1 :], start
    return xmp


#: Resolutions that software states when it knows none (72: Mac, cameras, Pillow's readers' default; 96:
#: Windows): a file without one is taken to mean the same, so they are not kept.
_DEFAULT_DPI = (72, 96)


def dpi_bytes(dpi: object) -> bytes:
    """The ``dpi`` record of Pillow's ``info["dpi"]`` (x, y); b"" for none, a default (72 or 96 both ways), or
    what no print size can be."""
    import math
    try:
        x, y = (float(v) for v in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return b""
    if not all(math.isfinite(v) and 0 < v <= MAX_DPI for v in (x, y)):
        return b""
    if any(abs(x - d) < 0.01 and abs(y - d) < 0.01 for d in _DEFAULT_DPI):
        return b""
    return struct.pack(">II", max(1, round(x * 1000)), max(1, round(y * 1000)))


def dpi_of(record: bytes) -> tuple[float, float] | None:
    """Inverse of :func:`dpi_bytes`: (x, y) dots per inch; None for no record; ValueError for one no jcd writes."""
    if not record:
        return None
    if len(record) != 8:
        raise ValueError(f"{len(record)} bytes")
    x, y = struct.unpack(">II", record)
    if not (0 < x <= MAX_DPI * 1000 and 0 < y <= MAX_DPI * 1000):
        raise ValueError("out of range")
    return x / 1000, y / 1000


#: Bytes per value of the TIFF field types (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED, SSHORT, SLONG,
#: SRATIONAL, FLOAT, DOUBLE, IFD); other types are not followed.
_FIELD_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
#: Tags of an IFD that point to another: the EXIF, GPS and interoperability directories.
_SUB_IFDS = (0x8769, 0x8825, 0xA005)


def without_thumbnail(exif: bytes) -> bytes:
    """``exif`` (with its ``Exif\\0\\0`` prefix) without its thumbnail: the second directory (IFD1) and the small
    JPEG it points to, unlinked, and cut off where nothing else lies behind them (where writers put them).

    Why: a camera's or phone's thumbnail is up to 64 KB of JPEG that deflate cannot shrink, as much as a whole q1
    stream of a small photo, and it shows the noisy picture: stale once jcd's clean one is decoded, and viewers
    make their own. (Pillow's ``exif_transpose`` already drops it from a turned photo's EXIF.) A damaged EXIF
    is left as it is.
    """
    t = exif[len(_EXIF_PREFIX) :]
    order = {b"II": "<", b"MM": ">"}.get(t[:2])
    try:
        if order is None or len(t) < 8:
            return exif
        first = struct.unpack_from(order + "I", t, 4)[0]
        link = first + 2 + 12 * struct.unpack_from(order + "H", t, first)[0]
        second = struct.unpack_from(order + "I", t, link)[0]
        if second == 0:
            return exif
        used, _ = _ifd_extent(t, order, first, set())
        end, spans = _ifd_extent(t, order, second, set(), follow=False)
        thumb_at = min([second, *spans])
        kept = t[:link] + bytes(4) + t[link + 4 :]
        if end <= len(t) and thumb_at >= used:  # IFD1 and its data behind everything else: cut them off
            kept = kept[:thumb_at]
        return _EXIF_PREFIX + kept
    except (struct.error, ValueError):  # a damaged EXIF: kept as it came
        return exif


def _ifd_extent(t: bytes, order: str, at: int, seen: set[int], follow: bool = True) -> tuple[int, list[int]]:
    """Where the directory at ``at`` and all it refers to end (with the EXIF, GPS and interoperability
    directories when ``follow``), and where its values stored apart start (and a thumbnail's JPEG, tag 0x0201).
    ValueError for what runs past the data or loops."""
    if at in seen or len(seen) > 16:
        raise ValueError("directories that loop")
    seen.add(at)
    count = struct.unpack_from(order + "H", t, at)[0]
    end, starts = at + 2 + 12 * count + 4, []
    for i in range(count):
        tag, kind, n, value = struct.unpack_from(order + "HHII", t, at + 2 + 12 * i)
        size = _FIELD_SIZES.get(kind, 1) * n
        if size > 4:
            end, starts = max(end, value + size), [*starts, value]
        if tag == 0x0201:  # JPEGInterchangeFormat; its length is tag 0x0202
            length = next((struct.unpack_from(order + "HHII", t, at + 2 + 12 * j)[3] for j in range(count)
                           if struct.unpack_from(order + "H", t, at + 2 + 12 * j)[0] == 0x0202), 0)  # fmt: skip
            end, starts = max(end, value + length), [*starts, value]
        if follow and tag in _SUB_IFDS:
            end = max(end, _ifd_extent(t, order, value, seen)[0])
    if end > len(t):
        raise ValueError("past the data")
    return end, starts


#: Keywords whose text is a copy of a kind jcd keeps itself (ImageMagick writes hex copies of the EXIF, XMP and
#: ICC profile into PNG text; Pillow lists the XMP among the text chunks too), case-folded.
_COPIES = frozenset(("xml:com.adobe.xmp", "raw profile type exif", "raw profile type xmp", "raw profile type icc",
                     "raw profile type icm", "raw profile type app1"))  # fmt: skip


def _keyword_ok(key: str) -> bool:
    """A keyword as PNG allows it: 1 to 79 Latin-1 letters (no control characters), no spaces at either end."""
    return 0 < len(key) <= 79 and key == key.strip() and all(" " <= c <= "~" or "\xa1" <= c <= "\xff" for c in key)


def text_bytes(pairs) -> bytes:
    """The ``text`` record of (keyword, text) pairs. Pairs no PNG could hold (a keyword that is not one) and copies
    of other kinds are left out; NUL bytes, which no text chunk holds, are dropped from the text."""
    out = bytearray()
    for key, value in pairs:
        if _keyword_ok(key) and key.casefold() not in _COPIES:
            out += key.encode("utf-8") + b"\0" + value.replace("\0", "").encode("utf-8", "replace") + b"\0"
    return bytes(out)


def text_pairs(record: bytes) -> list[tuple[str, str]]:
    """Inverse of :func:`text_bytes`; ValueError for a record no jcd writes."""
    if not record:
        return []
    fields = record[:-1].split(b"\0")
    if not record.endswith(b"\0") or len(fields) % 2:
        raise ValueError("not keyword and text pairs")
    pairs = [(k.decode("utf-8"), v.decode("utf-8")) for k, v in zip(fields[::2], fields[1::2], strict=True)]
    if not all(_keyword_ok(k) for k, _ in pairs):
        raise ValueError("a keyword no PNG holds")
    return pairs


def _text_str(value: bytes) -> str:
    """A comment's bytes as text: UTF-8 where they are, else Latin-1 (what older writers mean)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def text_of(im) -> bytes:
    """The ``text`` record of a Pillow image as opened: a PNG's text chunks, a JPEG's or GIF's comment."""
    if im.format == "PNG":
        chunks = im.text  # all of them, also those after the pixels (Pillow reads the file to its end for them)
        return text_bytes((k, str(v)) for k, v in chunks.items() if isinstance(v, str))
    comment = im.info.get("comment")
    return text_bytes([("Comment", _text_str(bytes(comment)))]) if isinstance(comment, (bytes, bytearray)) \
        and comment else b""  # fmt: skip


def png_text_before_pixels(info: dict) -> bytes:
    """The ``text`` record of the text chunks before a PNG's pixels, from Pillow's ``info`` without loading the
    pixels (the 16-bit reader: Pillow would decode them at 8 bits): they are its str values (XMP aside)."""
    return text_bytes((k, str(v)) for k, v in info.items() if isinstance(v, str) and k != "xmp")


def png_text_chunks(record: bytes) -> list[tuple[bytes, bytes]]:
    """PNG chunks (type, data) that carry a ``text`` record: tEXt where Latin-1 holds the text (zTXt above 1 KiB),
    else iTXt (UTF-8; compressed above 1 KiB)."""
    chunks = []
    for key, value in text_pairs(record):
        head = key.encode("latin-1") + b"\0"
        try:
            latin = value.encode("latin-1")
        except UnicodeEncodeError:
            raw = value.encode("utf-8")
            big = len(raw) > 1024
            chunks.append((b"iTXt", head + bytes([big, 0]) + b"\0\0" + (zlib.compress(raw, 9) if big else raw)))
            continue
        if len(latin) > 1024:
            chunks.append((b"zTXt", head + b"\0" + zlib.compress(latin, 9)))
        else:
            chunks.append((b"tEXt", head + latin))
    return chunks


def within_stream(meta: Metadata, name: str) -> Metadata:
    """``meta`` with its largest kinds left out, each with a warning, until the rest fits the MAX_BYTES a stream
    holds. Why: a picture is not refused for its metadata (a PNG can carry 64 MiB of text, Photoshop's XMP grows
    with every save); it is coded with what fits, and the user hears what did not."""
    sizes = meta.sizes()
    while sum(sizes.values()) > MAX_BYTES:
        kind = max(sizes, key=sizes.__getitem__)
        warnings.warn(f"{name}: its {LABELS[kind]} ({sizes.pop(kind) / (1 << 20):.1f} MiB) does not fit the "
                      f"{MAX_BYTES >> 20} MiB of metadata a stream holds: not kept", JcdWarning, stacklevel=3)
        meta = replace(meta, **{kind: b""})
    return meta


@functools.lru_cache(maxsize=1)  # `jcd encode --size` codes one picture at several qualities: deflate it once
def pack(meta: Metadata) -> bytes:
    """The stream's metadata section: deflate of records ``tag (1 byte), varint length, bytes``."""
    from .bitstream import varint

    total = sum(meta.sizes().values())
    if total > MAX_BYTES:
        raise JcdError(f"the picture's metadata is {total} bytes, above the {MAX_BYTES >> 20} MiB a stream "
                       "holds (--metadata none or icc leaves it out)")  # fmt: skip
    records = bytearray()
    for tag, kind in enumerate(KINDS, start=1):
        value = getattr(meta, kind)
        if value:
            records += bytes([tag]) + varint(len(value)) + value
    return zlib.compress(bytes(records), 9)


def unpack(section: bytes) -> Metadata:
    """Inverse of :func:`pack`; inflates at most MAX_BYTES. Unknown tags are skipped (kinds a later jcd adds)."""
    from .bitstream import read_varint

    try:
        d = zlib.decompressobj()
        raw = d.decompress(section, MAX_BYTES + 1)
    except zlib.error as e:
        raise BitstreamError(f"corrupted stream (metadata: {e})") from None
    if len(raw) > MAX_BYTES or d.unconsumed_tail or not d.eof:
        raise BitstreamError("corrupted stream (metadata larger than a stream may hold, or cut short)")
    found: dict[str, bytes] = {}
    pos = 0
    while pos < len(raw):
        tag = raw[pos]
        size, pos = read_varint(raw, pos + 1, "metadata length")
        if pos + size > len(raw):
            raise BitstreamError("corrupted stream (metadata record longer than its section)")
        if 1 <= tag <= len(KINDS):
            kind = KINDS[tag - 1]
            if kind in found:
                raise BitstreamError(f"corrupted stream (two {LABELS[kind]} records)")
            found[kind] = raw[pos : pos + size]
        pos += size
    cicp = found.get("cicp")
    if cicp is not None and (len(cicp) != 4 or cicp[2] != 0 or cicp[3] > 1):  # what PNG's cICP holds for RGB
        raise BitstreamError(f"corrupted stream (a CICP record of {len(cicp)} bytes that no jcd writes)")
    try:
        text_pairs(found.get("text", b""))
    except ValueError as e:
        raise BitstreamError(f"corrupted stream (a text record that no jcd writes: {e})") from None
    try:
        dpi_of(found.get("dpi", b""))
    except ValueError as e:
        raise BitstreamError(f"corrupted stream (a resolution record that no jcd writes: {e})") from None
    return Metadata(**found)


def pillow_info(meta: Metadata) -> dict[str, bytes | str | tuple]:
    """``meta`` under the keys of a Pillow image's ``info`` (``icc_profile``, ``exif``, ``xmp``, ``cicp``), its text
    as Pillow's PNG reader gives it (keyword -> text, where no other key has that name) and a comment as its
    JPEG reader does (``comment``, bytes: Pillow writes it back into a JPEG)."""
    keys = {"icc": "icc_profile", "exif": "exif", "xmp": "xmp", "cicp": "cicp"}
    info: dict[str, bytes | str | tuple] = {keys[k]: getattr(meta, k) for k in meta.sizes() if k in keys}
    if meta.dpi:
        info["dpi"] = dpi_of(meta.dpi)  # type: ignore[assignment]
    for key, value in text_pairs(meta.text):
        if key == "Comment":
            info["comment"] = value.encode("utf-8")
        info.setdefault(key, value)
    return info


#: Pillow formats and the kinds their files hold (PPM holds none, BMP only a resolution; of these only PNG has
#: CICP, its cICP: AVIF's would be its nclx box, which Pillow does not write; text goes into PNG's chunks and, a
#: comment only, a JPEG's COM segment; WebP and AVIF have no resolution).
_NO_CICP = frozenset(KINDS) - {"cicp", "text", "dpi"}
HOLDS = {"PNG": frozenset(KINDS), "JPEG": _NO_CICP | {"text", "dpi"}, "WEBP": _NO_CICP, "TIFF": _NO_CICP | {"dpi"},
         "AVIF": _NO_CICP, "BMP": frozenset({"dpi"})}  # fmt: skip


#: The most bytes of a kind a format's file holds, where that is less than a stream carries: JPEG's 64 KB
#: segments (Pillow splits an ICC profile over at most 255 of them, and refuses longer EXIF or XMP).
LIMITS = {"JPEG": {"exif": 65533, "xmp": 65533 - 29, "icc": 255 * (65533 - 14)}}


def pillow_save_args(meta: Metadata, fmt: str, name: str = "output") -> dict:
    """Keyword arguments for Pillow's ``save`` in ``fmt`` that write ``meta``; warns about what ``fmt`` drops."""
    warn_dropped(meta, fmt, name)
    limits = LIMITS.get(fmt, {})
    too_long = [k for k, n in meta.sizes().items() if n > limits.get(k, n)]
    for k in too_long:
        warnings.warn(f"{name}: {fmt} holds at most {limits[k]} bytes of {LABELS[k]}, the stream carries "
                      f"{len(getattr(meta, k))}; written without it (write .png to keep it)", JcdWarning,
                      stacklevel=2)  # fmt: skip
    meta = meta.kept(frozenset(KINDS) - set(too_long))
    args: dict = {}
    if meta.icc and "icc" in HOLDS.get(fmt, ()):
        args["icc_profile"] = meta.icc
    if meta.dpi and "dpi" in HOLDS.get(fmt, ()):
        args["dpi"] = dpi_of(meta.dpi)
    if fmt == "TIFF":  # Pillow writes EXIF tags into the TIFF's own directory; XMP is its tag 700 there
        if meta.exif or meta.xmp:
            from PIL import Image

            tags = Image.Exif()
            try:
                tags.load(meta.exif)
            except Exception:  # noqa: BLE001  bytes a JPEG or PNG carries as they are; TIFF needs them parsed
                tags = Image.Exif()
                warnings.warn(f"{name}: the stream's EXIF is not readable as tags; the TIFF is written without it",
                              JcdWarning, stacklevel=2)  # fmt: skip
            if meta.xmp:
                tags[700] = meta.xmp
            args["exif"] = tags
        return args
    if meta.exif and "exif" in HOLDS.get(fmt, ()):
        args["exif"] = meta.exif
    if meta.xmp and fmt in ("JPEG", "WEBP", "AVIF"):
        args["xmp"] = meta.xmp
    if meta.text and fmt == "JPEG":  # a JPEG has one comment; the other text goes with a warning
        pairs = text_pairs(meta.text)
        args["comment"] = next((v.encode("utf-8") for k, v in pairs if k == "Comment"), b"")
        others = [k for k, _ in pairs if k != "Comment"]
        if others:
            warnings.warn(f"{name}: JPEG holds a comment only, not the text {', '.join(others)} the stream carries; "
                          "written without (write .png to keep it)", JcdWarning, stacklevel=2)  # fmt: skip
    elif (meta.xmp or meta.cicp or meta.text) and fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        args["pnginfo"] = PngInfo()
        if meta.cicp:  # Pillow writes it before the palette and the pixels, where it belongs
            args["pnginfo"].add(b"cICP", meta.cicp)
        if meta.xmp:
            args["pnginfo"].add_itxt("XML:com.adobe.xmp", meta.xmp.decode("utf-8", "replace"), zip=True)
        for kind, data in png_text_chunks(meta.text):
            args["pnginfo"].add(kind, data)
    return args


def warn_dropped(meta: Metadata, fmt: str, name: str) -> None:
    """Warn about the kinds of ``meta`` that a ``fmt`` file cannot hold (HOLDS)."""
    dropped = [LABELS[k] for k in meta.sizes() if k not in HOLDS.get(fmt, frozenset())]
    if dropped:
        listed = dropped[0] if len(dropped) == 1 else f"{', '.join(dropped[:-1])} and {dropped[-1]}"
        warnings.warn(f"{name}: {fmt} cannot hold the {listed} the stream carries; written "
                      "without (write .png to keep it)", JcdWarning, stacklevel=3)  # fmt: skip


def png_chunks(meta: Metadata) -> list[tuple[bytes, bytes]]:
    """PNG chunks (type, data) that carry ``meta``, for the 16-bit writer (pypng writes none of them)."""
    chunks = []
    if meta.cicp:
        chunks.append((b"cICP", meta.cicp))
    if meta.icc:
        chunks.append((b"iCCP", b"icc\x00\x00" + zlib.compress(meta.icc, 9)))
    if meta.exif:
        chunks.append((b"eXIf", meta.exif[len(_EXIF_PREFIX) :]))
    if meta.xmp:  # iTXt: keyword, compressed, method, language, translated keyword, text
        chunks.append((b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(meta.xmp, 9)))
    if meta.dpi:  # pHYs: pixels per metre, the unit metre
        x, y = dpi_of(meta.dpi)  # type: ignore[misc]
        chunks.append((b"pHYs", struct.pack(">IIB", round(x / 0.0254), round(y / 0.0254), 1)))
    return chunks + png_text_chunks(meta.text)
