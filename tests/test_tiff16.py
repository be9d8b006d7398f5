"""16-bit colour TIFF, read at full precision by jcdcodec/tiff16.py (Pillow alone reads it at 8 bits)."""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from jcdcodec.errors import JcdError, JcdWarning
from jcdcodec.imageio import load_image


def lzw(data: bytes) -> bytes:
    """TIFF's LZW (codes of 9 to 12 bits, most significant bit first, one code early to widen, a clear code when
    the table is full), written here so that libtiff's decoder is checked against an encoder of its own."""
    out, acc, nbits = bytearray(), 0, 0
    width, table, free = 9, {bytes([i]): i for i in range(256)}, 258

    def put(code: int) -> None:
        nonlocal acc, nbits
        acc, nbits = (acc << width) | code, nbits + width
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)

    def grow() -> None:  # after each new table entry, as libtiff's encoder does
        nonlocal width, table, free
        free += 1
        if free == 4094:
            put(256)
            width, table, free = 9, {bytes([i]): i for i in range(256)}, 258
        elif free > (1 << width) - 1:
            width += 1

    put(256)
    word = b""
    for byte in data:
        longer = word + bytes([byte])
        if longer in table:
            word = longer
            continue
        put(table[word])
        table[longer] = free
        grow()
        word = bytes([byte])
    if word:
        put(table[word])
        grow()
    put(257)
    if nbits:
        out.append((acc << (8 - nbits)) & 0xFF)
    return bytes(out)


def packbits(data: bytes) -> bytes:
    """PackBits as literal runs only (a count byte n, then n + 1 bytes): valid, if no smaller."""
    return b"".join(bytes([len(data[i : i + 128]) - 1]) + data[i : i + 128] for i in range(0, len(data), 128))


def tiff(a: np.ndarray, *, deflate: bool = False, predictor: bool = False, planar: bool = False, big: bool = False,
         rows_per_strip: int = 3, orientation: int | None = None, tiles: int = 0, strip_bytes=None,
         compression: int | None = None, sample_format: int = 1) -> bytes:
    """A baseline TIFF of the (h, w, 3|4) uint16 samples ``a``, in the layouts raw converters and editors write:
    strips or ``tiles`` (square, of that side, the edge ones padded), LZW (``compression=5``) or deflate."""
    h, w, spp = a.shape
    order, dt = (">", ">u2") if big else ("<", "<u2")
    compression = compression or (8 if deflate else 1)
    squeeze = strip_bytes or {1: bytes, 5: lzw, 8: zlib.compress, 32773: packbits}[compression]
    planes = [a[:, :, c : c + 1] for c in range(spp)] if planar else [a]
    if tiles:  # the planes padded to whole tiles, then cut into them
        across, down = -(-w // tiles), -(-h // tiles)
        padded = [np.pad(p, ((0, down * tiles - h), (0, across * tiles - w), (0, 0))) for p in planes]
        blocks = [p[r : r + tiles, c : c + tiles] for p in padded for r in range(0, down * tiles, tiles)
                  for c in range(0, across * tiles, tiles)]  # fmt: skip
    else:
        blocks = [p[r0 : r0 + rows_per_strip] for p in planes for r0 in range(0, h, rows_per_strip)]
    strips = []
    for block in blocks:
        rows = block.astype(np.int64)
        if predictor:  # differences to the left neighbour, modulo 2^16, each row of a strip or tile afresh
            rows = np.concatenate([rows[:, :1], np.diff(rows, axis=1)], axis=1) % 65536
        strips.append(squeeze(rows.astype(dt).tobytes()))
    tags = {256: (3, [w]), 257: (3, [h]), 258: (3, [16] * spp), 259: (3, [compression]), 262: (3, [2]),
            277: (3, [spp]), 284: (3, [2 if planar else 1]), 339: (3, [sample_format] * spp)}  # fmt: skip
    if spp == 4:
        tags[338] = (3, [2])  # unassociated alpha
    if predictor:
        tags[317] = (3, [2])
    if orientation:
        tags[274] = (3, [orientation])
    body, offsets = b"", []
    start = 8
    for s in strips:
        offsets.append(start + len(body))
        body += s + b"\x00" * (len(s) % 2)
    if tiles:
        tags.update({322: (3, [tiles]), 323: (3, [tiles]), 324: (4, offsets), 325: (4, [len(s) for s in strips])})
    else:
        tags.update({273: (4, offsets), 278: (3, [rows_per_strip]), 279: (4, [len(s) for s in strips])})
    ifd_at = start + len(body)
    extra_at = ifd_at + 2 + 12 * len(tags) + 4
    entries, extra = b"", b""
    for tag in sorted(tags):
        kind, values = tags[tag]
        packed = struct.pack(f"{order}{len(values)}{'H' if kind == 3 else 'I'}", *values)
        if len(packed) <= 4:
            entries += struct.pack(f"{order}HHI", tag, kind, len(values)) + packed.ljust(4, b"\x00")
        else:
            entries += struct.pack(f"{order}HHII", tag, kind, len(values), extra_at + len(extra))
            extra += packed
    head = (b"MM\x00*" if big else b"II*\x00") + struct.pack(f"{order}I", ifd_at)
    return head + body + struct.pack(f"{order}H", len(tags)) + entries + b"\x00" * 4 + extra


def samples(h: int = 7, w: int = 5, spp: int = 3) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 65536, (h, w, spp)).astype(np.uint16)


LAYOUTS = [{}, {"deflate": True}, {"deflate": True, "predictor": True}, {"planar": True},
           {"planar": True, "deflate": True, "predictor": True}, {"big": True},
           {"big": True, "deflate": True, "predictor": True}, {"rows_per_strip": 7},
           {"compression": 5}, {"compression": 5, "predictor": True},
           {"compression": 5, "predictor": True, "big": True},
           {"compression": 5, "planar": True, "predictor": True}, {"compression": 32773, "tiles": 16},
           {"tiles": 16}, {"tiles": 16, "big": True},
           {"tiles": 16, "compression": 5, "predictor": True}, {"tiles": 16, "deflate": True, "planar": True},
           {"tiles": 16, "predictor": True, "planar": True, "big": True}]  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_sample_is_read_at_16_bits(layout):
    a = samples(37, 21) if layout.get("tiles") else samples()  # tiles of 16: the edge ones padded both ways
    with Image.open(io.BytesIO(tiff(a, **layout))) as im:  # what Pillow alone makes of it
        assert im.mode == "RGB" and np.asarray(im).dtype == np.uint8
    p = load_image(tiff(a, **layout), name="raw.tif")
    assert p.depth == 16 and p.alpha is None
    assert np.array_equal(np.round(p.rgb * 65535).astype(np.uint16), a)


def test_associated_alpha_is_undone_to_the_straight_alpha_jcd_codes():
    """GIMP writes RGBA TIFF with associated alpha (ExtraSamples 1): its colours are stored multiplied by alpha.
    Taken as straight, half-transparent pixels came out twice as dark."""
    straight = samples(16, 16, 4)
    straight[:, :, 3] = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    stored = straight.copy()
    stored[:, :, :3] = np.rint(straight[:, :, :3] * (straight[:, :, 3:] / 65535)).astype(np.uint16)
    data = tiff(stored, compression=5)
    data = data.replace(struct.pack("<HHIHH", 338, 3, 1, 2, 0), struct.pack("<HHIHH", 338, 3, 1, 1, 0), 1)
    p = load_image(data, name="gimp.tif")
    rgb = np.round(p.rgb * 65535)
    assert np.array_equal(p.alpha, straight[:, :, 3])
    seen = straight[:, :, 3] >= 4096  # where alpha keeps the colour's precision
    assert np.abs(rgb[seen] - straight[:, :, :3][seen]).max() <= 65535 / 4096
    assert not rgb[straight[:, :, 3] == 0].any()
    plain = load_image(tiff(stored, compression=5), name="plain.tif")  # ExtraSamples 2: taken as they are
    assert np.array_equal(np.round(plain.rgb * 65535), stored[:, :, :3])


def test_alpha_and_orientation_come_through_at_16_bits():
    a = samples(spp=4)
    p = load_image(tiff(a, deflate=True, orientation=6), name="raw.tif")
    upright = np.rot90(a, -1)  # orientation 6: turn a quarter clockwise to display
    assert (p.width, p.height) == (7, 5) and p.depth == 16
    assert np.array_equal(np.round(p.rgb * 65535).astype(np.uint16), upright[:, :, :3])
    assert np.array_equal(p.alpha, upright[:, :, 3])


def test_a_deflate_strip_inflates_to_no_more_than_it_holds_and_a_short_one_is_an_error():
    a = np.zeros((6, 4, 3), np.uint16)  # one strip of 144 bytes, stored as a deflate stream of 50 MB of zeros
    bomb = tiff(a, rows_per_strip=6, deflate=True, strip_bytes=lambda raw: zlib.compress(raw + bytes(50_000_000)))
    assert len(bomb) < 100_000
    p = load_image(bomb, name="bomb.tif")
    assert p.depth == 16 and not p.rgb.any()
    short = tiff(samples(), deflate=True, strip_bytes=lambda raw: zlib.compress(raw[: len(raw) // 2]))
    with pytest.raises(JcdError, match=r"^short.tif: cannot read image \(a damaged or truncated strip\)$"):
        load_image(short, name="short.tif")
    cut = tiff(samples(37, 21), tiles=16, compression=5, strip_bytes=lambda raw: lzw(raw)[:20])
    with pytest.raises(JcdError, match=r"^cut.tif: cannot read image \(a damaged or truncated tile\)$"):
        load_image(cut, name="cut.tif")


@pytest.mark.parametrize("eight", [False, True])
def test_a_damaged_lzw_file_is_one_line_without_libtiffs_own(tmp_path, eight):
    """libtiff writes "LZWDecode: ... not terminated with EOI code" to the process's stderr, past Python: a jcd
    user saw it above jcd's own error line (16 bits through tiff16.py, 8 bits through Pillow)."""
    from conftest import run_jcd

    a = samples(37, 21) if not eight else np.random.default_rng(5).integers(0, 256, (37, 21, 3)).astype(np.uint16)
    data = tiff(a, rows_per_strip=37, compression=5, strip_bytes=lambda raw: lzw(raw)[: len(raw) // 4])
    (tmp_path / "cut.tif").write_bytes(_eight_bit(data) if eight else data)
    r = run_jcd("encode", str(tmp_path / "cut.tif"), "-o", str(tmp_path / "cut.jcd"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("jcd: error: ") and "cannot read image" in r.stderr
    assert not (tmp_path / "cut.jcd").exists()


@pytest.mark.parametrize("damage", ["torn", "samples"])
def test_damaged_tags_are_one_line_without_pillows_remarks(tmp_path, damage):
    """Pillow remarks on damaged tags through warnings ("Tag data larger than file. Skipping tag 324", two lines
    each, with a path into site-packages) and logging ("More samples per pixel than can be decoded: 83"); libtiff
    adds its own ("TIFFReadDirectory: IO error ..."). jcd's user gets one line, which names the damage."""
    from conftest import run_jcd

    data = tiff(samples(37, 21), tiles=16, compression=5)
    if damage == "torn":  # the tile offsets and sizes lie past the end
        data, why = data[:-40], r"cannot read image \(a damaged TIFF tag 32[45]\)"
    else:
        data = data.replace(struct.pack("<HHIHH", 277, 3, 1, 3, 0), struct.pack("<HHIHH", 277, 3, 1, 83, 0), 1)
        why = r"cannot read image \(a damaged TIFF file, or a kind of TIFF its reader does not know\)"
    (tmp_path / "bad.tif").write_bytes(data)
    r = run_jcd("encode", str(tmp_path / "bad.tif"), "-o", str(tmp_path / "bad.jcd"), env={"PYTHONWARNINGS": ""})
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert re.match(rf"jcd: error: .*bad.tif: {why}", r.stderr), r.stderr


@pytest.mark.parametrize("eight", [False, True])
def test_tiles_far_larger_than_the_image_are_refused_before_libtiff_allocates_one(eight):
    """libtiff allocates a whole tile before it reads it: this 2 KB file made jcd take 1.6 GB (8 and 16 bits)."""
    data = tiff(samples(64, 64), tiles=64, compression=5)
    data = _eight_bit(data) if eight else data
    for tag in (322, 323):  # one tile of 16384 x 16384
        data = data.replace(struct.pack("<HHIHH", tag, 3, 1, 64, 0), struct.pack("<HHIHH", tag, 3, 1, 16384, 0), 1)
    assert len(data) < 50_000
    with pytest.raises(JcdError, match=r"^huge.tif: cannot read image \(tiles of 16384x16384 for a 64x64 image\)$"):
        load_image(data, name="huge.tif")
    ok = tiff(samples(20, 20), tiles=256)  # a small image in one ordinary tile is no such file
    assert load_image(ok, name="ok.tif").depth == 16


def test_the_lzw_of_these_tests_is_the_lzw_libtiff_reads():
    """8-bit RGB, which Pillow (libtiff) reads whole: the test's encoder, long enough to widen the codes to 12 bits
    and to clear the table, against the decoder jcd relies on."""
    a = np.random.default_rng(5).integers(0, 4, (96, 96, 3)).astype(np.uint8)  # repeats: long table entries
    a[40:] = np.random.default_rng(6).integers(0, 256, (56, 96, 3))  # then noise: a full table, cleared
    raw = lzw(a.tobytes())
    assert len(raw) > 2 * 4096
    data = tiff(a.astype(np.uint16), rows_per_strip=96, strip_bytes=lambda _: raw)
    with Image.open(io.BytesIO(_eight_bit(data))) as im:
        assert np.array_equal(np.asarray(im), a)


def _eight_bit(data: bytes) -> bytes:
    """The TIFF of :func:`tiff` (little-endian, three samples) relabelled as 8 bits a sample, LZW-compressed."""
    at = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[at : at + 2])[0]
    out = bytearray(data)
    for k in range(count):
        entry = at + 2 + 12 * k
        tag, kind, n = struct.unpack("<HHI", data[entry : entry + 8])
        if tag == 258:  # three SHORTs stored elsewhere
            where = struct.unpack("<I", data[entry + 8 : entry + 12])[0]
            out[where : where + 6] = struct.pack("<3H", 8, 8, 8)
        if tag == 259:
            out[entry + 8 : entry + 10] = struct.pack("<H", 5)
    return bytes(out)


def test_a_kind_it_does_not_read_is_left_to_pillow_at_8_bits_with_a_warning():
    data = tiff(samples(16, 16), predictor=True)  # relabelled with the floating-point predictor (3)
    data = data.replace(struct.pack("<HHIHH", 317, 3, 1, 2, 0), struct.pack("<HHIHH", 317, 3, 1, 3, 0), 1)
    with pytest.warns(JcdWarning, match=r"^odd.tif: a 16-bit colour TIFF of a kind jcd reads at 8 bits only"):
        p = load_image(data, name="odd.tif")
    assert p.depth == 8


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_what_jcd_writes_at_16_bits_it_reads_back_with_its_metadata(channels):
    """jcd decode --depth 16 to .tif: grey, RGB, RGBA, with the profile, the camera's EXIF and the XMP."""
    from conftest import rgb_profile
    from test_metadata import XMP, camera_exif

    from jcdcodec import tiff16

    a = np.random.default_rng(4).integers(0, 65536, (7, 5, channels)).astype(np.uint16)
    icc = rgb_profile() if channels > 1 else b""
    data = tiff16.write(a, icc, b"Exif\x00\x00" + camera_exif(orientation=6), XMP)
    p = load_image(data, name="out.tif")
    assert p.depth == 16 and p.rgb.shape == (7, 5, 3)
    assert np.array_equal(np.round(p.rgb * 65535).astype(np.uint16), a[:, :, :3] if channels > 1 else a.repeat(3, 2))
    assert (p.alpha is None) == (channels != 4) and (p.alpha is None or np.array_equal(p.alpha, a[:, :, 3]))
    assert p.meta.icc == icc and p.meta.xmp == XMP
    tags = Image.Exif()
    tags.load(p.meta.exif)
    assert tags[0x010F] == "Canon" and 0x0112 not in tags  # written upright: no orientation to apply again
    assert tags.get_ifd(0x8769)[0x8827] == 3200 and tags.get_ifd(0x8825)[1] == "N"
