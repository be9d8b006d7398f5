"""16-bit colour TIFF, read at full precision by jcdcodec/tiff16.py (Pillow alone reads it at 8 bits)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from jcdcodec.errors import JcdError, JcdWarning
from jcdcodec.imageio import load_image


def tiff(a: np.ndarray, *, deflate: bool = False, predictor: bool = False, planar: bool = False, big: bool = False,
         rows_per_strip: int = 3, orientation: int | None = None, tiles: bool = False, strip_bytes=None) -> bytes:
    """A baseline TIFF of the (h, w, 3|4) uint16 samples ``a``, in the layouts raw converters write."""
    h, w, spp = a.shape
    order, dt = (">", ">u2") if big else ("<", "<u2")
    planes = [a[:, :, c : c + 1] for c in range(spp)] if planar else [a]
    strips = []
    for plane in planes:
        if tiles:  # one tile holding the whole plane
            strips.append(plane.astype(dt).tobytes())
            continue
        for r0 in range(0, h, rows_per_strip):
            rows = plane[r0 : r0 + rows_per_strip].astype(np.int64)
            if predictor:  # differences to the left neighbour, modulo 2^16
                rows = np.concatenate([rows[:, :1], np.diff(rows, axis=1)], axis=1) % 65536
            raw = rows.astype(dt).tobytes()
            strips.append(strip_bytes(raw) if strip_bytes else zlib.compress(raw) if deflate else raw)
    tags = {256: (3, [w]), 257: (3, [h]), 258: (3, [16] * spp), 259: (3, [8 if deflate else 1]), 262: (3, [2]),
            277: (3, [spp]), 284: (3, [2 if planar else 1]), 339: (3, [1] * spp)}  # fmt: skip
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
        tags.update({322: (3, [w]), 323: (3, [h]), 324: (4, offsets), 325: (4, [len(s) for s in strips])})
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
           {"big": True, "deflate": True, "predictor": True}, {"rows_per_strip": 7}]  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_sample_is_read_at_16_bits(layout):
    a = samples()
    with Image.open(io.BytesIO(tiff(a, **layout))) as im:  # what Pillow alone makes of it
        assert im.mode == "RGB" and np.asarray(im).dtype == np.uint8
    p = load_image(tiff(a, **layout), name="raw.tif")
    assert p.depth == 16 and p.alpha is None
    assert np.array_equal(np.round(p.rgb * 65535).astype(np.uint16), a)


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
    with pytest.raises(JcdError, match=r"^short.tif: cannot read image \(image file is truncated\)"):
        load_image(short, name="short.tif")


def test_a_layout_it_does_not_read_is_left_to_pillow_at_8_bits_with_a_warning():
    a = samples(16, 16)
    with pytest.warns(JcdWarning, match=r"^tiled.tif: a 16-bit colour TIFF in a layout jcd reads at 8 bits only"):
        p = load_image(tiff(a, tiles=True), name="tiled.tif")
    assert p.depth == 8
    assert np.abs(np.round(p.rgb * 255) - (a >> 8)).max() <= 1


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
