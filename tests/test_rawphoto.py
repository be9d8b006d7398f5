"""Camera raw files, developed by LibRaw (rawpy) in a child process (jcdcodec/rawphoto.py)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from PIL import Image

from jcdcodec.errors import JcdError
from jcdcodec.imageio import GRAY, load_image

pytest.importorskip("rawpy", reason="rawpy (LibRaw) develops camera raw files; it is not installed")

#: TIFF field types: BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL
_FORMATS = {1: "B", 2: "s", 3: "H", 4: "I", 5: "II", 10: "ii"}


def _tiff(entries: dict[int, tuple[int, object]], body: bytes) -> bytes:
    """A little-endian TIFF of one directory (``entries``: tag -> (type, values)) whose data ``body`` starts at 8."""
    ifd_at = 8 + len(body) + len(body) % 2
    extra_at = ifd_at + 2 + 12 * len(entries) + 4
    packed_entries, extra = b"", b""
    for tag in sorted(entries):
        kind, values = entries[tag]
        if kind == 2:
            packed = str(values).encode() + b"\0"
        elif kind in (5, 10):
            packed = b"".join(struct.pack("<" + _FORMATS[kind], *v) for v in values)
        else:
            packed = struct.pack(f"<{len(values)}{_FORMATS[kind]}", *values)
        count = len(packed) if kind == 2 else len(values)
        if len(packed) <= 4:
            packed_entries += struct.pack("<HHI", tag, kind, count) + packed.ljust(4, b"\0")
        else:
            packed_entries += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
            extra += packed + b"\0" * (len(packed) % 2)
    return (b"II*\0" + struct.pack("<I", ifd_at) + body + b"\0" * (len(body) % 2) + struct.pack("<H", len(entries))
            + packed_entries + b"\0" * 4 + extra)  # fmt: skip


def dng(height: int = 64, width: int = 96, orientation: int = 1, seed: int = 0) -> bytes:
    """A DNG whose only image is the sensor's RGGB mosaic, 12 bits in 16, black at 256: a red left half and a
    blue right half, with read noise. What a phone's or camera's raw file holds, without the preview."""
    scene = np.empty((height, width, 3))
    scene[:, : width // 2] = (0.6, 0.25, 0.1)
    scene[:, width // 2 :] = (0.1, 0.25, 0.6)
    mosaic = np.empty((height, width))
    mosaic[0::2, 0::2], mosaic[1::2, 1::2] = scene[0::2, 0::2, 0], scene[1::2, 1::2, 2]
    mosaic[0::2, 1::2], mosaic[1::2, 0::2] = scene[0::2, 1::2, 1], scene[1::2, 0::2, 1]
    noise = np.random.default_rng(seed).normal(0, 20, (height, width))
    data = (mosaic * 3000 + 256 + noise).clip(0, 4095).astype("<u2").tobytes()
    identity = [(10000 if i == j else 0, 10000) for i in range(3) for j in range(3)]  # camera = XYZ
    return _tiff({254: (4, [0]), 256: (4, [width]), 257: (4, [height]), 258: (3, [16]), 259: (3, [1]),
                  262: (3, [32803]), 271: (2, "JcdTest"), 272: (2, "Mosaic"), 273: (4, [8]), 274: (3, [orientation]),
                  277: (3, [1]), 278: (4, [height]), 279: (4, [len(data)]), 284: (3, [1]), 33421: (3, [2, 2]),
                  33422: (1, [0, 1, 1, 2]), 50706: (1, [1, 4, 0, 0]), 50708: (2, "JcdTest Mosaic"),
                  50714: (4, [256]), 50717: (4, [4095]), 50721: (10, identity), 50778: (3, [21]),
                  50728: (5, [(1, 2), (1, 1), (1, 2)])}, data)  # fmt: skip


def camera_dng(srgb: np.ndarray, light=(1.0, 0.85, 0.6)) -> bytes:
    """What a camera would record of the sRGB picture ``srgb`` (float, H x W x 3, even sides) lit by a warm
    ``light`` (linear RGB): linear light through colour filters that see some of each other's colours, exposed so
    that white reaches the sensor's white level, an RGGB mosaic of 12 bits over a black level of 256, without
    noise. Its colour matrix maps XYZ to those filters; AsShotNeutral says what white looked like in that light."""
    filters = np.array([[0.45, 0.12, 0.03], [0.15, 0.8, 0.15], [0.02, 0.18, 0.55]])  # linear sRGB -> camera
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4) * np.asarray(light)
    neutral = filters @ np.asarray(light)
    cam = lin @ filters.T / neutral.max()
    neutral /= neutral.max()
    height, width = cam.shape[:2]
    mosaic = np.empty((height, width))
    mosaic[0::2, 0::2], mosaic[1::2, 1::2] = cam[0::2, 0::2, 0], cam[1::2, 1::2, 2]
    mosaic[0::2, 1::2], mosaic[1::2, 0::2] = cam[0::2, 1::2, 1], cam[1::2, 0::2, 1]
    data = (mosaic * 3800 + 256).round().clip(0, 4095).astype("<u2").tobytes()
    srgb_to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    matrix = filters @ np.linalg.inv(srgb_to_xyz)
    matrix /= matrix.sum(axis=1).max()
    return _tiff({254: (4, [0]), 256: (4, [width]), 257: (4, [height]), 258: (3, [16]), 259: (3, [1]),
                  262: (3, [32803]), 271: (2, "JcdTest"), 272: (2, "Filters"), 273: (4, [8]), 277: (3, [1]),
                  278: (4, [height]), 279: (4, [len(data)]), 284: (3, [1]), 33421: (3, [2, 2]),
                  33422: (1, [0, 1, 1, 2]), 50706: (1, [1, 4, 0, 0]), 50708: (2, "JcdTest Filters"),
                  50714: (4, [256]), 50717: (4, [4095]), 50778: (3, [21]),
                  50721: (10, [(round(v * 10000), 10000) for v in matrix.ravel()]),
                  50728: (5, [(round(v * 10000), 10000) for v in neutral])}, data)  # fmt: skip


def test_the_development_undoes_what_the_camera_did():
    """White balance, colour matrix and tone curve, each chosen right, give back the picture the camera saw under
    a warm light: a mistake in any of them (LibRaw's default BT.709 curve, a daylight balance, no colour matrix)
    moves the colours or the tones by far more than demosaicking does."""
    yy, xx = np.mgrid[0:128, 0:192] / 192  # smooth colours: what a mosaic keeps (noise it cannot)
    scene = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=2) * 0.45 + 0.5
    scene[100:124, 160:184] = 1.0  # a white patch at the sensor's white level: LibRaw's automatic brightness and
    # its own white point (both from the picture's brightest pixels) then change nothing
    p = load_image(camera_dng(scene), name="camera.dng")
    inner = (slice(4, -4), slice(4, -4))  # the mosaic's borders demosaic worst
    psnr = 10 * np.log10(1 / np.mean((p.rgb[inner] - scene[inner]) ** 2))
    assert psnr > 30, psnr  # 32.9 dB; 25.9 with the BT.709 curve, 25.9 in daylight balance, 22.2 without the matrix
    assert np.abs(p.rgb[inner].mean(axis=(0, 1)) - scene[inner].mean(axis=(0, 1))).max() < 0.02  # ~0.011: the
    # balance is made on the camera's colours (as raw converters do), exact only for filters without crosstalk


def test_a_dng_is_developed_at_16_bits_in_its_colours():
    p = load_image(dng(), name="photo.dng")
    assert (p.width, p.height, p.depth) == (96, 64, 16) and p.alpha is None
    left, right = p.rgb[8:56, 8:40].mean(axis=(0, 1)), p.rgb[8:56, 56:88].mean(axis=(0, 1))
    assert left[0] > left[2] + 0.2 and right[2] > right[0] + 0.2, (left, right)
    assert len(np.unique(np.round(p.rgb * 65535))) > 256  # more than 8 bits' worth of levels
    tags = Image.Exif()
    tags.load(p.meta.exif)  # the camera data ride along
    assert (tags[271], tags[272]) == ("JcdTest", "Mosaic")


def test_the_orientation_the_camera_recorded_is_applied():
    p = load_image(dng(orientation=6), name="turned.dng")  # 6: turn a quarter clockwise to display
    assert (p.width, p.height) == (64, 96)
    top, bottom = p.rgb[8:40].mean(axis=(0, 1)), p.rgb[56:88].mean(axis=(0, 1))
    assert top[0] > top[2] and bottom[2] > bottom[0]  # the red left half of the sensor is at the top
    tags = Image.Exif()
    tags.load(p.meta.exif)
    assert tags[271] == "JcdTest" and 274 not in tags  # applied to the pixels: not to be applied again


def test_the_size_is_checked_before_anything_is_developed():
    with pytest.raises(JcdError, match=r"^big.dng: image is 96x64 = 6144 pixels, above the limit of 1000"):
        load_image(dng(), name="big.dng", max_pixels=1000)


def test_a_monochrome_raw_comes_out_grey():
    """One sample a pixel (LinearRaw here, as a monochrome sensor gives): LibRaw develops one channel."""
    data = dng().replace(struct.pack("<HHIH", 262, 3, 1, 32803), struct.pack("<HHIH", 262, 3, 1, 34892), 1)
    p = load_image(data, name="mono.dng")
    assert (p.width, p.height, p.depth, p.kind) == (96, 64, 16, GRAY)
    assert np.array_equal(p.rgb[:, :, 0], p.rgb[:, :, 2])


def test_raw_files_libraw_cannot_develop_are_one_line_naming_what_they_are():
    from test_images import _tiff_raw

    for data, kind in ((_tiff_raw({50706: bytes([1, 4, 0, 0]), 254: 1}), r"\(DNG\)"),
                       (_tiff_raw({254: 1}), r"\(a TIFF-based raw format\)"),  # NEF, ARW, ... with only a preview
                       (b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(64), r"\(Canon CR2\)"),
                       (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01" + bytes(64), r"\(Canon CR3\)"),
                       (b"FUJIFILMCCD-RAW 0201" + bytes(64), r"\(Fujifilm RAF\)")):  # fmt: skip
        with pytest.raises(JcdError, match=rf"^x\.raw: a camera raw file {kind} that LibRaw cannot develop "
                           r"\(Unsupported file format or not RAW file\); develop it with a raw converter first"):
            load_image(data, name="x.raw")


def test_without_rawpy_the_error_says_what_develops_it(monkeypatch):
    from jcdcodec import rawphoto

    monkeypatch.setattr(rawphoto, "available", lambda: False)
    with pytest.raises(JcdError, match=r"^photo.dng: a camera raw file \(DNG\); developing it needs rawpy"):
        load_image(dng(), name="photo.dng")


def test_a_folder_develops_its_raw_files_but_not_those_beside_their_jpeg(tmp_path, weights_file):
    """RAW+JPEG, as cameras shoot it: the camera's picture is coded and its raw file named once; a raw file alone
    is developed and coded; a sidecar of the same name is no picture."""
    from conftest import run_jcd
    from test_images import _tiff_raw, u8

    src = tmp_path / "card"
    src.mkdir()
    Image.fromarray(u8(20, 30)).save(src / "DSC_0001.JPG")
    (src / "DSC_0001.NEF").write_bytes(_tiff_raw({254: 1}))
    (src / "DSC_0002.dng").write_bytes(dng())
    (src / "DSC_0002.xmp").write_text("<x:xmpmeta/>")
    r = run_jcd("encode", str(src), "-q", "1", "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert "skipped 1 camera raw file (a picture of the same name is beside each (RAW+JPEG): that is coded " \
           "instead): DSC_0001.NEF" in r.stderr, r.stderr
    assert sorted(p.name for p in src.glob("*.jcd")) == ["DSC_0001.jcd", "DSC_0002.jcd"]
    info = json.loads(run_jcd("info", "--json", str(src / "DSC_0002.jcd")).stdout)
    assert (info["width"], info["height"], info["bit_depth"], info["colour"]) == (96, 64, 16, "RGB")


def test_the_raw_developer_child_is_not_trusted(monkeypatch):
    """A child that crashes or hands back samples that do not add up: one JcdError each."""
    import sys

    from jcdcodec import rawphoto

    for code, error in (("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "crashed on it, signal 11"),
                        ("print('{\"width\": 2, \"height\": 2, \"channels\": 3}'); print('x')", "output is malformed"),
                        ("print('{\"width\": 2, \"height\": 2, \"channels\": 4}')", "output is malformed"),
                        ("print('[2, 2]')", "output is malformed")):  # fmt: skip
        monkeypatch.setattr(rawphoto, "CHILD", [sys.executable, "-c", code])
        with pytest.raises(JcdError, match=rf"^x.dng: cannot read image \(the raw developer \(LibRaw\).*{error}"):
            load_image(dng(), name="x.dng")
