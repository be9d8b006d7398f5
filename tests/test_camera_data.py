"""The camera data (EXIF) of raw files in every container that keeps them (rawphoto.camera_data).

The containers are built here from the formats' descriptions (ORF and RW2: TIFF under their own magic; RW2's
full EXIF in the JPEG of tag 0x2E; RAF: a header pointing at a preview JPEG; CR3: ISO base media boxes with
Canon's CMT1/CMT2/CMT4 TIFFs); the TIFFs and JPEGs inside are Pillow's. No rawpy needed: nothing is developed.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from jcdcodec import rawphoto
from jcdcodec.imageio import load_image

MAKE, MODEL, DATE, SHOT, ISO = "JcdCam", "Model X", "2026:12:07 10:00:00", "2026:12:07 09:59:58", 800
EXIF_IFD, GPS_IFD = 0x8769, 0x8825


def _tiff(tags: dict, little: bool = False) -> bytes:
    """A TIFF of one directory holding ``tags`` (a dict value is a sub-directory), as Pillow writes EXIF."""
    exif = Image.Exif()
    exif.endian = "<" if little else ">"
    for tag, value in tags.items():
        exif[tag] = value
    return exif.tobytes()[6:]  # without "Exif\0\0": a TIFF with no image


def _camera(little: bool = False, **extra) -> bytes:
    """The first directory a camera writes: what it is, when, turned how, and the EXIF and GPS directories."""
    return _tiff({271: MAKE, 272: MODEL, 306: DATE, 274: 6, EXIF_IFD: {0x9003: SHOT, 0x8827: ISO},
                  GPS_IFD: {0: b"\x02\x02\x00\x00", 1: "N"}, **extra}, little)  # fmt: skip


def _jpeg(exif: bytes) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), (90, 120, 150)).save(buf, "JPEG", exif=b"Exif\0\0" + exif)
    return buf.getvalue()


def _box(kind: bytes, payload: bytes, wide: bool = False) -> bytes:
    """An ISO base media box (``wide``: with a 64-bit size)."""
    if wide:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def orf(little: bool = True) -> bytes:
    tiff = _camera(little)
    return (b"IIRO" if little else b"MMOR") + tiff[4:]


def rw2(embedded: bool = True) -> bytes:
    """Panasonic's IFD0 holds a few tags; the JPEG it embeds holds the camera's full EXIF."""
    tags = {271: "Panasonic", 0x2E: _jpeg(_camera())} if embedded else {271: MAKE, 272: MODEL, 306: DATE}
    return b"IIU\x00" + _tiff(tags, little=True)[4:]


def raf() -> bytes:
    jpeg = _jpeg(_camera())
    head = b"FUJIFILMCCD-RAW 0201FF383501" + b"X-T5".ljust(32, b"\0")
    head = head.ljust(0x54, b"\0") + struct.pack(">II", 0x100, len(jpeg))
    return head.ljust(0x100, b"\0") + jpeg + b"\0" * 64  # the CFA data would follow


def cr3() -> bytes:
    canon = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    ifd0 = _tiff({271: MAKE, 272: MODEL, 306: DATE, 274: 6}, little=True)
    exif = _tiff({0x9003: SHOT, 0x8827: ISO}, little=True)
    gps = _tiff({0: b"\x02\x02\x00\x00", 1: "N"}, little=True)
    notes = b"II*\x00\x08\x00\x00\x00\x00\x00"  # Canon's maker notes: not kept
    meta = _box(b"uuid", canon + _box(b"CNCV", b"CanonCR3_001/00.09.00/00.00.00") + _box(b"CMT1", ifd0)
                + _box(b"CMT2", exif) + _box(b"CMT3", notes) + _box(b"CMT4", gps))  # fmt: skip
    return (_box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + _box(b"moov", _box(b"mvhd", bytes(100)) + meta)
            + _box(b"mdat", bytes(64), wide=True))  # fmt: skip


def _said(exif: bytes) -> Image.Exif:
    assert exif.startswith(b"Exif\0\0")
    tags = Image.Exif()
    tags.load(exif)
    return tags


def _all_there(exif: bytes) -> None:
    tags = _said(exif)
    assert (tags[271], tags[272], tags[306]) == (MAKE, MODEL, DATE)
    assert 274 not in tags  # the development turns the pixels: not to be applied again
    assert tags.get_ifd(EXIF_IFD)[0x9003] == SHOT and tags.get_ifd(EXIF_IFD)[0x8827] == ISO
    assert tags.get_ifd(GPS_IFD)[1] == "N"


@pytest.mark.parametrize("make", [orf, lambda: orf(little=False), rw2, raf, cr3],
                         ids=["ORF", "ORF big-endian", "RW2", "RAF", "CR3"])  # fmt: skip
def test_each_container_gives_the_camera_data(make):
    _all_there(rawphoto.camera_data(make()))


def test_a_tiff_based_raw_keeps_its_camera_data_as_before():
    _all_there(rawphoto.camera_data(_camera(little=True)))  # what DNG, NEF, ARW, CR2 are


def test_rw2_without_its_jpeg_gives_its_first_directory():
    tags = _said(rawphoto.camera_data(rw2(embedded=False)))
    assert (tags[271], tags[272], tags[306]) == (MAKE, MODEL, DATE)


@pytest.mark.parametrize("make", [orf, rw2, raf, cr3], ids=["ORF", "RW2", "RAF", "CR3"])
def test_damaged_containers_cost_the_camera_data_not_the_photo(make):
    """Cut short, or with bytes overwritten anywhere, a container gives its camera data or none, never an error."""
    data = make()
    rng = np.random.default_rng(0)
    for cut in range(0, len(data), max(1, len(data) // 60)):
        assert isinstance(rawphoto.camera_data(data[:cut]), bytes)
    for _ in range(200):
        damaged = bytearray(data)
        for at in rng.integers(0, len(data), 4):
            damaged[at] = int(rng.integers(0, 256))
        assert isinstance(rawphoto.camera_data(bytes(damaged)), bytes)


def test_a_box_larger_than_its_file_is_not_followed():
    data = cr3()
    moov = data.index(b"moov") - 4
    huge = data[:moov] + struct.pack(">I", 0xFFFFFFF0) + data[moov + 4 :]
    assert rawphoto.camera_data(huge) == b""


def test_a_developed_raw_carries_its_camera_data(monkeypatch):
    """load_image hands what the camera_data found to the picture's metadata, for a CR3 as for a DNG."""
    monkeypatch.setattr(rawphoto, "develop", lambda data, name, kind, max_pixels: np.zeros((6, 4, 3), "<u2"))
    p = load_image(cr3(), name="photo.cr3")
    assert (p.width, p.height, p.depth) == (4, 6, 16)
    _all_there(p.meta.exif)
