"""The ICC profile, EXIF, XMP and CICP of a picture ride through a stream and back into the decoded file."""

from __future__ import annotations

import io
import json
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import rgb_profile, run_jcd, textured
from PIL import Image, ImageCms, features
from PIL.PngImagePlugin import PngInfo

from jcdcodec import bitstream, metadata, pngtext
from jcdcodec.bitstream import Header, JcdStream
from jcdcodec.errors import BitstreamError, JcdError, JcdWarning
from jcdcodec.imageio import load_image
from jcdcodec.metadata import Metadata

P3 = rgb_profile()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def exif(orientation: int | None = None) -> bytes:
    e = Image.Exif()
    e[0x010F] = "Canon"
    e[0x0132] = "2026:12:03 10:00:00"
    if orientation:
        e[0x0112] = orientation
    return e.tobytes()


def stream(meta: bytes = b"", version: int = 1) -> JcdStream:
    h = Header(width=64, height=48, quality=2.0, fingerprint=b"\x01\x02\x03\x04", version=version)
    return JcdStream(h, z=b"zzzz", y=b"yyyyyyyy", symbol_crc=7, metadata=meta)


def test_the_section_round_trips_and_skips_kinds_a_later_jcd_adds():
    m = Metadata(icc=P3, exif=exif(), xmp=XMP)
    assert metadata.unpack(metadata.pack(m)) == m
    assert metadata.unpack(metadata.pack(Metadata(xmp=XMP))) == Metadata(xmp=XMP)
    later = bytes([9, 3]) + b"new" + bytes([3, len(XMP)]) + XMP  # tag 9 unknown here, then XMP
    assert metadata.unpack(zlib.compress(later)) == Metadata(xmp=XMP)


@pytest.mark.parametrize("raw,why", [(bytes([3, 5]) + XMP[:5] + bytes([3, 5]) + XMP[:5], "two XMP"),
                                     (bytes([1, 100]) + b"short", "longer than its section"),
                                     (bytes([1, 0x80]), "truncated")])  # fmt: skip
def test_damaged_sections_are_refused(raw, why):
    with pytest.raises(BitstreamError, match=why):
        metadata.unpack(zlib.compress(raw))
    with pytest.raises(BitstreamError, match="metadata"):
        metadata.unpack(b"not deflate")


def test_a_section_that_inflates_past_the_limit_is_refused_without_inflating_it_all():
    bomb = zlib.compress(bytes([2]) + b"\xff\xff\xff\x0f" + bytes(metadata.MAX_BYTES + 1000), 9)
    assert len(bomb) < 40_000
    with pytest.raises(BitstreamError, match="larger than a stream may hold"):
        metadata.unpack(bomb)


def test_a_stream_without_metadata_is_version_1_as_before_and_one_with_it_version_2():
    plain = bitstream.pack(stream())
    assert plain[3] == 1 and not plain[4] & 0x20
    section = metadata.pack(Metadata(icc=P3))
    data = bitstream.pack(stream(section, version=2))
    assert data[3] == 2 and data[4] & 0x20
    s = bitstream.unpack(data)
    assert s == stream(section, version=2) and s.unpacked_metadata() == Metadata(icc=P3)
    assert bitstream.unpack(plain).unpacked_metadata() == Metadata()


def _recrc(data: bytearray) -> bytes:
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    return bytes(data)


def test_version_and_flag_combinations_that_no_jcd_writes_are_refused():
    v1 = bytearray(bitstream.pack(stream()))
    v1[4] |= 0x20  # a metadata flag in a version-1 stream
    with pytest.raises(BitstreamError, match="invalid flags"):
        bitstream.unpack(_recrc(v1))
    v3 = bytearray(bitstream.pack(stream(metadata.pack(Metadata(xmp=XMP)), version=2)))
    v3[3] = 3
    with pytest.raises(BitstreamError, match="newer jcd.*upgrade"):
        bitstream.unpack(_recrc(v3))


def test_every_truncation_and_bit_flip_of_a_stream_with_metadata_is_detected():
    data = bitstream.pack(stream(metadata.pack(Metadata(icc=P3[:200], xmp=XMP)), version=2))
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            bitstream.unpack(data[:n])
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x10
        with pytest.raises(BitstreamError):
            bitstream.unpack(bytes(bad))


def test_keep_parses_what_the_option_takes():
    assert metadata.parse_keep("all") == frozenset(metadata.KINDS)
    assert metadata.parse_keep("none") == frozenset()
    assert metadata.parse_keep(" ICC, xmp ") == {"icc", "cicp", "dpi", "xmp"}  # icc: the colours, CICP, dpi too
    assert metadata.parse_keep("exif,cicp") == {"exif", "cicp"}
    for bad in ("gps", "icc,gps", ",", ""):
        with pytest.raises(JcdError, match="--metadata takes"):
            metadata.parse_keep(bad)
    m = Metadata(icc=P3, exif=exif(), xmp=XMP)
    assert m.kept(frozenset({"exif"})) == Metadata(exif=exif())


PQ = bytes([9, 16, 0, 1])  # BT.2020 primaries, PQ transfer, RGB, full range
HEIF = Path(__file__).parent / "data" / "heif"


def test_cicp_round_trips_and_a_reader_that_does_not_know_it_skips_it(monkeypatch):
    m = Metadata(icc=P3, exif=exif(), cicp=PQ)
    section = metadata.pack(m)
    assert metadata.unpack(section) == m
    monkeypatch.setattr(metadata, "KINDS", ("icc", "exif", "xmp"))  # jcd 0.2's reader: tags 1-3
    assert metadata.unpack(section) == Metadata(icc=P3, exif=exif())


@pytest.mark.parametrize("record", [b"\x09\x10\x00", b"\x09\x10\x00\x01\x00", b"\x09\x10\x09\x01",
                                    b"\x09\x10\x00\x02", bytes(1000)])  # fmt: skip
def test_a_cicp_record_that_no_jcd_writes_is_refused(record):
    """It would go into a PNG's cICP chunk as it is: 4 bytes, matrix 0 (RGB), a range flag, or nothing."""
    with pytest.raises(BitstreamError, match="CICP record"):
        metadata.unpack(zlib.compress(bytes([4, len(record)]) + record if len(record) < 128 else
                                      bytes([4, 0xE8, 0x07]) + record))  # fmt: skip


@pytest.mark.parametrize("cicp,icc,kept", [
    (PQ, b"", PQ), (PQ, P3, PQ),  # HDR: kept, profile or not
    (bytes([9, 18, 9, 0]), b"", bytes([9, 18, 0, 1])),  # HLG; stored as RGB, full range
    (bytes([12, 13, 0, 1]), b"", bytes([12, 13, 0, 1])), (bytes([12, 13, 0, 1]), P3, b""),  # P3 primaries: what
    # a profile says better
    (bytes([1, 13, 6, 1]), b"", b""), (bytes([2, 2, 2, 1]), b"", b""),  # sRGB, unspecified: nothing to say
    (bytes([3, 16, 0, 1]), b"", b""), (bytes([9, 3, 0, 1]), b"", b""), (bytes([9, 19, 0, 1]), b"", b""),  # reserved
    (PQ[:3], b"", b""), ("9,16,0,1", b"", b""),
])  # fmt: skip
def test_cicp_is_kept_where_it_says_more_than_srgb_and_the_profile(cicp, icc, kept):
    assert metadata.from_pillow_info({"cicp": cicp, "icc_profile": icc}, grey=False).cicp == kept
    assert metadata.from_pillow_info({"cicp": cicp}, grey=True).cicp == b""


def test_an_hdr_heic_and_a_png_with_cicp_are_read_with_it():
    p = load_image(HEIF / "pq.heic")
    assert p.depth == 16 and p.meta.cicp == PQ
    assert load_image(HEIF / "deep.heic").meta.cicp == b""  # a profile, no nclx
    buf = io.BytesIO()
    info = PngInfo()
    info.add(b"cICP", PQ)
    Image.fromarray((textured(24, 32) * 255).astype(np.uint8)).save(buf, "PNG", pnginfo=info)
    assert load_image(buf.getvalue()).meta.cicp == PQ


def _avif(mode: str = "RGB", primaries: int = 9, transfer: int = 16) -> bytes:
    """An AVIF whose primary image's nclx box says ``primaries``/``transfer`` (libavif writes sRGB's, 1/13; the
    code points are rewritten in place: its pixels decode the same)."""
    buf = io.BytesIO()
    Image.fromarray((textured(24, 32) * 255).astype(np.uint8)).convert(mode).save(buf, "AVIF", quality=80)
    data = buf.getvalue()
    at = data.index(b"colrnclx") + 8
    assert data[at : at + 4] == b"\x00\x01\x00\x0d"
    return data[:at] + struct.pack(">HH", primaries, transfer) + data[at + 4 :]


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_an_hdr_avif_is_read_with_its_cicp():
    """Pillow's AVIF reader drops the nclx box; jcd reads it from the primary image's properties."""
    from jcdcodec.heif import primary_bits, primary_nclx

    assert load_image(_avif()).meta.cicp == PQ
    assert load_image(_avif("RGBA", 9, 18)).meta.cicp == bytes((9, 18, 0, 1))  # HLG, the alpha item beside it
    assert primary_nclx(_avif(primaries=1, transfer=13)) == bytes((1, 13, 6, 1))
    assert load_image(_avif(primaries=1, transfer=13)).meta.cicp == b""  # sRGB: nothing more to say
    data = _avif()
    assert primary_nclx(data.replace(b"pitm\x00\x00\x00\x00\x00\x01", b"pitm\x00\x00\x00\x00\x00\x07")) == b""
    for cut in range(0, len(data), 7):  # a damaged container gives none, never an error
        assert primary_nclx(data[:cut]) in (b"", primary_nclx(data))
    rng = np.random.default_rng(3)
    for _ in range(2000):  # bytes changed in the boxes (before the pixels)
        damaged = bytearray(data)
        for at in rng.integers(0, data.index(b"mdat"), rng.integers(1, 8)):
            damaged[at] = int(rng.integers(0, 256))
        found = primary_nclx(bytes(damaged))
        assert isinstance(found, bytes) and len(found) in (0, 4)
        assert 1 <= primary_bits(bytes(damaged)) <= 255


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_a_deep_avif_says_it_is_read_at_8_bits():
    """tests/data/avif/deep-10.avif (libavif through imagecodecs, README.md there): Pillow gives its 10 bits as 8,
    and jcd says so, naming the file; an 8-bit AVIF says nothing."""
    from jcdcodec.heif import primary_bits

    deep = (Path(__file__).parent / "data" / "avif" / "deep-10.avif").read_bytes()
    assert primary_bits(deep) == 10 and primary_bits(_avif()) == 8
    with pytest.warns(JcdWarning, match=r"^deep.avif: 10-bit, read at 8 bits \(the AVIF reader gives 8\)$"):
        p = load_image(deep, name="deep.avif")
    assert p.depth == 8 and np.abs(p.rgb - np.round(textured(48, 64) * 1023) / 1023).mean() < 0.02
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(_avif(), name="8.avif")


def _png_chunks(path) -> dict[bytes, bytes]:
    import png

    return dict(png.Reader(filename=str(path)).chunks())


def test_cli_writes_cicp_into_png_and_says_what_a_jpeg_cannot_hold(tmp_path, weights_file):
    w = ("--weights", str(weights_file))
    r = run_jcd("encode", str(HEIF / "pq.heic"), "-q", "1", "-o", str(tmp_path / "pq.jcd"), *w)
    assert r.returncode == 0, r.stderr
    r = run_jcd("info", str(tmp_path / "pq.jcd"), "--json")
    i = json.loads(r.stdout)
    assert i["metadata"] == {"exif": 38, "cicp": 4} and i["cicp"] == "9/16/0/1 (BT.2020, PQ)"
    r = run_jcd("info", str(tmp_path / "pq.jcd"))
    assert "CICP colour signal 9/16/0/1 (BT.2020, PQ)" in r.stdout, r.stdout
    for depth in ("16", "8"):
        r = run_jcd("decode", str(tmp_path / "pq.jcd"), "-o", str(tmp_path / f"{depth}.png"), "--depth", depth, *w)
        assert r.returncode == 0, r.stderr
        chunks = _png_chunks(tmp_path / f"{depth}.png")
        assert chunks[b"cICP"] == PQ and chunks[b"IHDR"][8] == int(depth)
    r = run_jcd("decode", str(tmp_path / "pq.jcd"), "-o", str(tmp_path / "icc.png"), "--metadata", "icc", *w)
    assert r.returncode == 0 and _png_chunks(tmp_path / "icc.png")[b"cICP"] == PQ
    r = run_jcd("decode", str(tmp_path / "pq.jcd"), "-o", str(tmp_path / "exif.png"), "--metadata", "exif", *w)
    assert r.returncode == 0 and b"cICP" not in _png_chunks(tmp_path / "exif.png")
    r = run_jcd("decode", str(tmp_path / "pq.jcd"), "-o", str(tmp_path / "pq.jpg"), *w)
    assert r.returncode == 0 and "JPEG cannot hold the CICP colour signal" in r.stderr, r.stderr


def _jpeg(icc: bytes | None = P3, orientation: int | None = None, mode: str = "RGB") -> bytes:
    im = Image.fromarray((textured(40, 56) * 255).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    kw = {"icc_profile": icc} if icc else {}
    im.save(buf, "JPEG", quality=95, exif=exif(orientation), xmp=XMP, **kw)
    return buf.getvalue()


def test_loading_keeps_a_wide_gamut_profile_and_leaves_out_an_srgb_one():
    p = load_image(_jpeg())
    assert p.meta.icc == P3
    assert p.meta.xmp == XMP and p.meta.exif.startswith(b"Exif\x00\x00")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert metadata.renders_as_srgb(srgb) and not metadata.renders_as_srgb(P3)
    assert load_image(_jpeg(srgb)).meta.icc == b""  # no profile means sRGB: 3 KB saved on a small stream
    bare = load_image(_jpeg(None)).meta
    assert bare.icc == b"" and bare.xmp == XMP


def test_a_profile_for_other_numbers_than_jcd_codes_is_dropped_with_a_warning():
    cmyk_profile = bytearray(P3)
    cmyk_profile[16:20] = b"CMYK"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = metadata.from_pillow_info({"icc_profile": bytes(cmyk_profile)}, grey=False, name="x.jpg")
    assert m.icc == b""
    assert any(issubclass(w.category, JcdWarning) and "CMYK" in str(w.message) for w in caught)
    grey = bytearray(P3)
    grey[16:20] = b"GRAY"
    assert metadata.from_pillow_info({"icc_profile": bytes(grey)}, grey=True).icc == bytes(grey)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an sRGB profile on a grey picture: harmless, left out without a word
        assert metadata.from_pillow_info({"icc_profile": srgb}, grey=True).icc == b""
    buf = io.BytesIO()  # on a CMYK picture: a CMYK profile littlecms cannot use, so the plain conversion
    Image.new("CMYK", (8, 8)).save(buf, "JPEG", icc_profile=bytes(cmyk_profile))
    with pytest.warns(JcdWarning, match=r"^print.jpg: its CMYK profile cannot be used \(.*\); converted to RGB"):
        assert load_image(buf.getvalue(), name="print.jpg").meta.icc == b""


def camera_exif(orientation: int | None = None) -> bytes:
    """EXIF as cameras write it: make and date, an EXIF directory (exposure, ISO) and a GPS one."""
    e = Image.Exif()
    e.load(exif(orientation))
    e[0x8769] = {0x829A: 0.01, 0x8827: 3200, 0x9003: "2026:12:03 09:59:59"}
    e[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    return e.tobytes()


def test_a_tiffs_camera_data_is_read_as_exif():
    """Pillow keeps a TIFF's tags in the file's own directory, not in info["exif"]: jcd collects them."""
    from jcdcodec.imageio import RGB, encode_image

    tif = encode_image(textured(8, 12), "TIFF", RGB, 8, meta=Metadata(exif=b"Exif\x00\x00" + camera_exif(6), xmp=XMP))
    p = load_image(tif)
    assert (p.width, p.height) == (8, 12) and p.meta.xmp == XMP  # turned upright by the orientation tag
    tags = Image.Exif()
    tags.load(p.meta.exif)
    assert tags[0x010F] == "Canon" and tags[0x0132] == "2026:12:03 10:00:00" and 0x0112 not in tags
    assert tags.get_ifd(0x8769)[0x8827] == 3200 and tags.get_ifd(0x8825)[1] == "N"
    assert 0x0100 not in tags and 0x0111 not in tags  # the TIFF's layout (width, strip offsets) is not EXIF


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_a_cmyk_picture_is_converted_through_its_profile(fmt):
    """conftest.cmyk_profile prints cyan ink as blue: through it, pure cyan loads as blue, not as (0, 255, 255)."""
    from conftest import cmyk_profile

    im = Image.new("CMYK", (16, 8), (255, 0, 0, 0))
    im.paste((0, 0, 0, 0), (8, 0, 16, 8))  # paper white on the right
    buf = io.BytesIO()
    im.save(buf, fmt, icc_profile=cmyk_profile(), exif=exif(), **({"quality": 95} if fmt == "JPEG" else {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = load_image(buf.getvalue(), name="print")
    rgb = np.round(p.rgb * 255)
    assert np.abs(rgb[:, :8] - (0, 0, 255)).max() <= 4 and np.abs(rgb[:, 8:] - 255).max() <= 4
    assert p.meta.icc == b""  # now sRGB numbers: no profile needed
    assert p.meta.exif or fmt == "TIFF"  # the EXIF stays (a TIFF's tags are its own, not an EXIF block)
    buf = io.BytesIO()
    im.save(buf, fmt)  # without a profile: the plain conversion, as before
    assert np.abs(np.round(load_image(buf.getvalue()).rgb[:, :8] * 255) - (0, 255, 255)).max() <= 4


def test_exif_orientation_is_applied_to_the_pixels_and_not_kept():
    p = load_image(_jpeg(orientation=6))  # 56x40 stored, shown turned a quarter: 40x56
    assert (p.width, p.height) == (40, 56)
    kept = Image.Exif()
    kept.load(p.meta.exif)
    assert 0x0112 not in kept and kept[0x010F] == "Canon"


def _read_back(path):
    im = Image.open(path)
    return im.info.get("icc_profile"), dict(im.getexif()), im.info.get("xmp"), im.size


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_16_bit_png_is_turned_upright_like_an_8_bit_one(orientation):
    from jcdcodec.imageio import RGB, encode_image

    rgb = textured(12, 20)
    alpha = (np.arange(12 * 20, dtype=np.uint16).reshape(12, 20) * 250)
    meta = Metadata(exif=b"Exif\x00\x00" + exif(orientation))
    p8 = load_image(encode_image(rgb, "PNG", RGB, 8, (alpha >> 8).astype(np.uint8), meta=meta))
    p16 = load_image(encode_image(rgb, "PNG", RGB, 16, alpha, meta=meta))
    assert p16.depth == 16 and p16.rgb.shape == p8.rgb.shape == ((12, 20, 3) if orientation < 5 else (20, 12, 3))
    assert np.abs(p16.rgb - p8.rgb).max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(p16.alpha >> 8, p8.alpha)
    kept = Image.Exif()
    kept.load(p16.meta.exif)
    assert kept.get(0x0112, 1) == 1 and kept[0x010F] == "Canon"  # upright: no turn left for a viewer to make


def test_cli_keeps_metadata_through_a_stream_in_another_process(tmp_path, weights_file):
    src = tmp_path / "phone.jpg"
    src.write_bytes(_jpeg(orientation=6))
    out = tmp_path / "phone.jcd"
    r = run_jcd("encode", str(src), "-q", "2", "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    i = json.loads(run_jcd("info", str(out), "--json").stdout)
    assert i["format"] == "jcd v2" and i["metadata"] == {"icc": len(P3), "exif": i["metadata"]["exif"],
                                                         "xmp": len(XMP)}  # fmt: skip
    assert 0 < i["bytes_metadata"] < len(P3) + i["metadata"]["exif"] + len(XMP)
    assert "ICC profile" in run_jcd("info", str(out)).stdout
    for name, depth in (("clean.png", "8"), ("clean16.png", "16"), ("clean.jpg", "8"), ("clean.webp", "8"),
                        ("clean.tif", "8"), ("clean.avif", "8")):  # fmt: skip
        r = run_jcd("decode", str(out), "-o", str(tmp_path / name), "--depth", depth, "--weights", str(weights_file))
        assert r.returncode == 0, r.stderr
        icc, tags, xmp, size = _read_back(tmp_path / name)
        assert icc == P3 and xmp == XMP and size == (40, 56), name
        assert tags.get(0x010F) == "Canon" and 0x0112 not in tags, name
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "clean.bmp"), "--weights", str(weights_file),
                env={"PYTHONWARNINGS": "default"})  # fmt: skip
    assert r.returncode == 0 and "BMP cannot hold the ICC profile, EXIF and XMP" in r.stderr, r.stderr
    # stripped when decoding: the colours stay, the camera data goes (and BMP has nothing to warn about)
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "shared.png"), "--metadata", "icc", "--weights",
                str(weights_file))  # fmt: skip
    assert r.returncode == 0, r.stderr
    icc, tags, xmp, _ = _read_back(tmp_path / "shared.png")
    assert icc == P3 and not tags and xmp is None
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "none.bmp"), "--metadata", "none", "--weights",
                str(weights_file), env={"PYTHONWARNINGS": "default"})  # fmt: skip
    assert r.returncode == 0 and "cannot hold" not in r.stderr, r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "none.bmp")), np.asarray(Image.open(tmp_path / "clean.bmp")))
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "y.png"), "--metadata", "gps")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--metadata takes" in r.stderr
    assert not (tmp_path / "y.png").exists()
    bare = tmp_path / "bare.jcd"
    r = run_jcd("encode", str(src), "-q", "2", "-o", str(bare), "--metadata", "none", "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert bare.read_bytes()[3] == 1 and len(bare.read_bytes()) < len(out.read_bytes())
    run_jcd("decode", str(bare), "-o", str(tmp_path / "bare.png"), "--weights", str(weights_file))
    assert _read_back(tmp_path / "bare.png")[0] is None
    r = run_jcd("encode", str(src), "--size", "200", "-o", str(tmp_path / "x.jcd"), "--weights", str(weights_file))
    assert r.returncode != 0 and "bytes of it metadata, which --metadata none leaves out" in r.stderr, r.stderr
    r = run_jcd("encode", str(src), "-o", str(tmp_path / "x.jcd"), "--metadata", "icc,gps")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--metadata takes" in r.stderr


def test_api_and_pillow_plugin_carry_the_profile(weights_file):
    import jcdcodec

    im = Image.open(io.BytesIO(_jpeg()))
    data = jcdcodec.encode(im, 2, weights=weights_file)
    assert jcdcodec.info(data).metadata["icc"] == len(P3)
    assert jcdcodec.decode(data, weights=weights_file).info["icc_profile"] == P3
    shared = jcdcodec.decode(data, weights=weights_file, metadata="icc").info
    assert shared["icc_profile"] == P3 and "exif" not in shared and "xmp" not in shared
    assert not {"icc_profile", "exif", "xmp"} & set(jcdcodec.decode(data, weights=weights_file, metadata="none").info)
    with pytest.raises(JcdError, match="--metadata takes"):
        jcdcodec.decode(data, weights=weights_file, metadata="gps")
    assert Image.open(io.BytesIO(data)).info["icc_profile"] == P3  # header only: no decoding yet
    only_exif = jcdcodec.encode(im, 2, weights=weights_file, metadata="exif")
    assert set(jcdcodec.info(only_exif).metadata) == {"exif"}


def test_the_pillow_plugin_saves_what_pillow_keywords_give(tmp_path, weights_file):
    import jcdcodec
    from jcdcodec.pillow_plugin import use_codec

    use_codec(jcdcodec.open_encoder(weights_file))
    try:
        im = Image.fromarray((textured(24, 40) * 255).astype(np.uint8))
        im.save(tmp_path / "a.jcd", quality=2, icc_profile=P3, exif=exif(), xmp=XMP)
        assert jcdcodec.info(tmp_path / "a.jcd").metadata == {"icc": len(P3), "exif": len(exif()), "xmp": len(XMP)}
        Image.open(io.BytesIO(_jpeg())).save(tmp_path / "b.jcd", quality=2, metadata="icc")
        assert set(jcdcodec.info(tmp_path / "b.jcd").metadata) == {"icc"}
        with pytest.raises(JcdError, match="--metadata takes"):
            im.save(tmp_path / "c.jcd", metadata="gps")
    finally:
        use_codec(None)


def test_what_a_jpeg_cannot_hold_is_left_out_with_a_warning_not_an_error():
    from jcdcodec.imageio import encode_image

    rgb = textured(16, 16)
    long_exif = Image.Exif()
    long_exif[0x010F] = "X" * 70_000
    meta = Metadata(icc=P3, exif=long_exif.tobytes(), xmp=b"<x>" + b"y" * 70_000 + b"</x>")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = encode_image(rgb, "JPEG", meta=meta, name="out.jpg")
    said = " ".join(str(w.message) for w in caught)
    assert "JPEG holds at most 65533 bytes of EXIF" in said and "bytes of XMP" in said
    back = Image.open(io.BytesIO(data))
    assert back.info.get("icc_profile") == P3 and "exif" not in back.info and "xmp" not in back.info
    with pytest.warns(JcdWarning, match="EXIF is not readable"):
        tif = Image.open(io.BytesIO(encode_image(rgb, "TIFF", meta=Metadata(icc=P3, exif=b"Exif\x00\x00junk"))))
    assert tif.info["icc_profile"] == P3
    png = Image.open(io.BytesIO(encode_image(rgb, "PNG", meta=meta)))
    assert png.info["xmp"] == meta.xmp and png.getexif()[0x010F] == "X" * 70_000


TEXT = [("Title", "Harbour at dawn"), ("Copyright", "© 2026 Jo Photographer"), ("Description", "waves " * 400),
        ("Comment", "Ünïcødé ✓ 日本")]  # fmt: skip


def test_text_round_trips_and_a_reader_that_does_not_know_it_skips_it(monkeypatch):
    m = Metadata(xmp=XMP, text=metadata.text_bytes(TEXT))
    assert metadata.unpack(metadata.pack(m)) == m and metadata.text_pairs(m.text) == TEXT
    monkeypatch.setattr(metadata, "KINDS", ("icc", "exif", "xmp", "cicp"))  # jcd before tag 5
    assert metadata.unpack(metadata.pack(m)) == Metadata(xmp=XMP)


def test_text_keeps_what_a_png_holds_and_not_copies_of_other_kinds():
    kept = metadata.text_bytes([("Title", "a\x00b"), ("", "no keyword"), ("k" * 80, "too long"), (" Pad", "x"),
                                ("Tab\there", "x"), ("Raw profile type exif", "\nexif\n 4\n00000000"),
                                ("XML:com.adobe.xmp", "<x/>"), ("Raw profile type iptc", "\niptc\n 2\n1c02"),
                                ("Résumé", "")])  # fmt: skip
    assert metadata.text_pairs(kept) == [("Title", "ab"), ("Raw profile type iptc", "\niptc\n 2\n1c02"),
                                         ("Résumé", "")]  # fmt: skip


@pytest.mark.parametrize("record", [b"Title\x00x", b"Title\x00", b"\x00x\x00", b"k" * 80 + b"\x00x\x00",
                                    b"\xff\xfe\x00x\x00", b"Ti\ntle\x00x\x00", b"Title\x00\xc3\x00"])  # fmt: skip
def test_a_text_record_that_no_jcd_writes_is_refused(record):
    """It goes into PNG chunks as it is: keyword and text pairs, UTF-8, keywords a PNG holds."""
    with pytest.raises(BitstreamError, match="text record"):
        metadata.unpack(zlib.compress(bytes([5, len(record)]) + record))


def _png_with_text(path: Path, depth: int = 8) -> None:
    """A PNG with tEXt, zTXt and iTXt chunks and XMP, and one more tEXt after the pixels (PNG allows it)."""
    rgb = textured(40, 56)
    if depth == 16:
        import png

        rows = np.round(rgb * 65535).astype(np.uint16).reshape(40, -1)
        png.Writer(56, 40, greyscale=False, bitdepth=16).write(buf := io.BytesIO(), rows.tolist())
        info = PngInfo()
        for k, v in TEXT:
            info.add_itxt(k, v, zip=len(v) > 100)
        chunks = [(b"iTXt", c[1]) for c in info.chunks]  # pypng writes none: put Pillow's chunks in
        data = buf.getvalue()
        at = data.index(b"IDAT") - 4
        extra = b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks)
        data = data[:at] + extra + data[at:]
    else:
        info = PngInfo()
        info.add_text(*TEXT[0])
        info.add_text(*TEXT[2], zip=True)
        info.add_itxt(*TEXT[3])
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        Image.fromarray((rgb * 255).astype(np.uint8)).save(buf := io.BytesIO(), "PNG", pnginfo=info)
        data = buf.getvalue()
        t, d = b"tEXt", b"Copyright\x00" + TEXT[1][1].encode("latin-1")
        at = data.index(b"IEND") - 4
        data = data[:at] + struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) + data[at:]
    path.write_bytes(data)


def _text_of(path: Path) -> dict:
    with Image.open(path) as im:
        return dict(im.text) if im.format == "PNG" else {"Comment": im.info.get("comment", b"").decode()}


@pytest.mark.parametrize("depth", [8, 16])
def test_cli_keeps_png_text_through_a_stream_in_another_process(tmp_path, weights_file, depth):
    """A PNG's text chunks (a title, a copyright line, a caption) were dropped without a word. Now they ride along
    (tag 5) and go back into a decoded PNG; a JPEG takes the comment and says what it leaves."""
    src = tmp_path / "photo.png"
    _png_with_text(src, depth)
    want = dict(TEXT)
    assert {k: v for k, v in _text_of(src).items() if k != "XML:com.adobe.xmp"} == want
    out = tmp_path / "photo.jcd"
    w = ("--weights", str(weights_file))
    r = run_jcd("encode", str(src), "-q", "2", "-o", str(out), *w)
    assert r.returncode == 0, r.stderr
    i = json.loads(run_jcd("info", str(out), "--json").stdout)
    assert sorted(i["text"]) == sorted(want) and i["metadata"]["text"] > len(TEXT[2][1])
    assert "text " in run_jcd("info", str(out)).stdout and "Copyright" in run_jcd("info", str(out)).stdout
    for name in ("clean.png", "clean16.png"):
        r = run_jcd("decode", str(out), "-o", str(tmp_path / name), "--depth", name[5:-4] or "8", *w)
        assert r.returncode == 0, r.stderr
        assert {k: v for k, v in _text_of(tmp_path / name).items() if k != "XML:com.adobe.xmp"} == want, name
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "clean.jpg"), *w, env={"PYTHONWARNINGS": "default"})
    assert r.returncode == 0 and _text_of(tmp_path / "clean.jpg") == {"Comment": want["Comment"]}
    said = re.search(r"JPEG holds a comment only, not the text (.*) the stream carries; written without", r.stderr)
    assert said and sorted(said.group(1).split(", ")) == ["Copyright", "Description", "Title"], r.stderr
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "clean.webp"), *w, env={"PYTHONWARNINGS": "default"})
    assert r.returncode == 0 and "WEBP cannot hold the text the stream carries" in r.stderr, r.stderr
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "shared.png"), "--metadata", "icc", *w)
    assert r.returncode == 0 and not _text_of(tmp_path / "shared.png")
    r = run_jcd("encode", str(src), "-q", "2", "-o", str(tmp_path / "bare.jcd"), "--metadata", "xmp", *w)
    assert r.returncode == 0 and "text" not in json.loads(run_jcd("info", str(tmp_path / "bare.jcd"), "--json").stdout)[
        "metadata"]  # fmt: skip


def test_a_jpeg_comment_rides_along_into_a_jpeg_and_a_png(tmp_path, weights_file):
    src = tmp_path / "c.jpg"
    Image.fromarray((textured(40, 56) * 255).astype(np.uint8)).save(src, comment=TEXT[1][1].encode())
    w = ("--weights", str(weights_file))
    assert run_jcd("encode", str(src), "-q", "2", "-o", str(tmp_path / "c.jcd"), *w).returncode == 0
    for name in ("back.jpg", "back.png"):
        r = run_jcd("decode", str(tmp_path / "c.jcd"), "-o", str(tmp_path / name), *w)
        assert r.returncode == 0 and _text_of(tmp_path / name) == {"Comment": TEXT[1][1]}, r.stderr


def test_api_and_pillow_plugin_carry_the_text(weights_file):
    import jcdcodec
    from jcdcodec.pillow_plugin import use_codec

    buf = io.BytesIO()
    info = PngInfo()
    info.add_text("Title", "Harbour")
    Image.fromarray((textured(24, 40) * 255).astype(np.uint8)).save(buf, "PNG", pnginfo=info)
    data = jcdcodec.encode(Image.open(io.BytesIO(buf.getvalue())), 2, weights=weights_file)
    assert jcdcodec.decode(data, weights=weights_file).info["Title"] == "Harbour"
    use_codec(jcdcodec.open_encoder(weights_file))
    try:
        out = io.BytesIO()
        Image.open(io.BytesIO(buf.getvalue())).save(out, "JCD", quality=2, comment="by Jo")
        info = jcdcodec.decode(out.getvalue(), weights=weights_file).info
        assert info["Title"] == "Harbour" and info["comment"] == b"by Jo"
    finally:
        use_codec(None)


def _camera_exif(order: str = "<", thumb_last: bool = True) -> tuple[bytes, bytes]:
    """EXIF as cameras write it: IFD0 (Make, a pointer to the EXIF directory: DateTimeOriginal, a MakerNote) and a
    thumbnail directory (IFD1) pointing to a 160x120 JPEG, behind everything else or, ``thumb_last`` False, before
    the EXIF directory."""
    buf = io.BytesIO()
    Image.fromarray((textured(120, 160, seed=5) * 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    thumb, make, date, maker = buf.getvalue(), b"Canon\x00", b"2026:12:07 10:00:00\x00", b"MAKERNOTE" * 50

    def ifd(at: int, entries: list, following: int) -> bytes:  # entries: (tag, type, count, value bytes)
        head, data, spill = struct.pack(order + "H", len(entries)), b"", at + 2 + 12 * len(entries) + 4
        for tag, kind, count, value in entries:
            if len(value) <= 4:
                head += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\x00")
            else:
                head += struct.pack(order + "HHII", tag, kind, count, spill + len(data))
                data += value
        return head + struct.pack(order + "I", following) + data

    sizes = {"ifd0": 30 + len(make), "exif": 30 + len(date) + len(maker), "ifd1": 42, "thumb": len(thumb)}
    places = ("ifd0", "exif", "ifd1", "thumb") if thumb_last else ("ifd0", "ifd1", "thumb", "exif")
    at, offsets = 8, {}
    for name in places:
        offsets[name], at = at, at + sizes[name]
    long = lambda v: struct.pack(order + "I", v)  # noqa: E731
    parts = {"ifd0": ifd(offsets["ifd0"], [(0x010F, 2, len(make), make), (0x8769, 4, 1, long(offsets["exif"]))],
                         offsets["ifd1"]),
             "exif": ifd(offsets["exif"], [(0x9003, 2, len(date), date), (0x927C, 7, len(maker), maker)], 0),
             "ifd1": ifd(offsets["ifd1"], [(0x0103, 3, 1, struct.pack(order + "H", 6)),
                                           (0x0201, 4, 1, long(offsets["thumb"])), (0x0202, 4, 1, long(len(thumb)))],
                         0),
             "thumb": thumb}  # fmt: skip
    tiff = (b"II*\x00" if order == "<" else b"MM\x00*") + long(8) + b"".join(parts[n] for n in places)
    return b"Exif\x00\x00" + tiff, thumb


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("thumb_last", [True, False])
def test_the_exif_thumbnail_is_left_out_and_the_rest_kept(order, thumb_last):
    """A camera's EXIF thumbnail (up to 64 KB of JPEG: as much as a small photo's q1 stream) shows the noisy
    picture; it is unlinked, and cut off where it lies behind everything else. The tags stay as they were."""
    from PIL import ExifTags

    blob, thumb = _camera_exif(order, thumb_last)
    before = Image.Exif()
    before.load(blob[6:])
    assert before.get_ifd(ExifTags.IFD.IFD1)[0x0202] == len(thumb)
    out = metadata.without_thumbnail(blob)
    assert len(out) <= len(blob) - len(thumb) if thumb_last else len(out) == len(blob)
    after = Image.Exif()
    after.load(out[6:])
    assert dict(after) == dict(before) and not after.get_ifd(ExifTags.IFD.IFD1)
    assert after.get_ifd(ExifTags.IFD.Exif) == before.get_ifd(ExifTags.IFD.Exif)  # the maker note too
    assert metadata.without_thumbnail(out) == out and metadata.without_thumbnail(exif()) == exif()


def test_a_damaged_exif_with_a_thumbnail_is_kept_as_it_came_or_read():
    blob, _ = _camera_exif()
    rng = np.random.default_rng(4)
    for end in range(0, 700, 3):
        assert metadata.without_thumbnail(blob[:end]) == blob[:end]  # cut short: kept as it came
    for _ in range(400):
        damaged = bytearray(blob)
        for at in rng.integers(6, 560, 2):
            damaged[at] = int(rng.integers(256))
        out = metadata.without_thumbnail(bytes(damaged))
        assert out == bytes(damaged) or (len(out) <= len(damaged) and out[:6] == b"Exif\x00\x00")


def test_cli_leaves_the_exif_thumbnail_out_of_the_stream(tmp_path, weights_file):
    blob, thumb = _camera_exif()
    src = tmp_path / "camera.jpg"
    Image.fromarray((textured(40, 56) * 255).astype(np.uint8)).save(src, exif=blob)
    w = ("--weights", str(weights_file))
    assert run_jcd("encode", str(src), "-q", "2", "-o", str(tmp_path / "c.jcd"), *w).returncode == 0
    i = json.loads(run_jcd("info", str(tmp_path / "c.jcd"), "--json").stdout)
    assert i["metadata"]["exif"] < len(blob) - len(thumb) and i["bytes_total"] < len(thumb)
    r = run_jcd("decode", str(tmp_path / "c.jcd"), "-o", str(tmp_path / "c.jpg"), *w)
    assert r.returncode == 0, r.stderr
    tags = Image.open(tmp_path / "c.jpg").getexif()
    assert tags[0x010F] == "Canon" and tags.get_ifd(0x8769)[0x927C] == b"MAKERNOTE" * 50


@pytest.mark.parametrize("fmt", ["HEIC", "PNG", "JPEG"])
def test_a_damaged_exif_costs_the_exif_not_the_photo(fmt):
    """Pillow raises on an EXIF header it cannot parse wherever it reads it, and the photo was refused for it
    ("cannot read image (not a TIFF file ...)"; 3 of 200 byte-mutated copies of a HEIC did so). Now the EXIF is
    left out with a warning and the pixels are coded as stored."""
    if fmt == "HEIC":
        good = (HEIF / "phone.heic").read_bytes()
        at = good.index(b"MM\x00*")  # the EXIF item's TIFF header
        bad = good[:at] + b"XX" + good[at + 2 :]
    else:
        picture = Image.fromarray((textured(24, 32) * 255).astype(np.uint8))
        files = []
        for tags in (exif(), exif()[:6] + b"XX" + exif()[8:]):  # "MM" of the TIFF header made "XX"
            buf = io.BytesIO()
            picture.save(buf, fmt, exif=tags)
            files.append(buf.getvalue())
        good, bad = files
    with pytest.warns(JcdWarning, match=r"^photo: its EXIF is damaged and is not kept \(nor its orientation: the "
                                        r"picture is coded as stored\)$"):  # fmt: skip
        p = load_image(bad, name="photo")
    q = load_image(good)
    assert not p.meta.exif and q.meta.exif and np.array_equal(p.rgb, q.rgb)


def test_a_resolution_round_trips_and_a_reader_that_does_not_know_it_skips_it(monkeypatch):
    m = Metadata(xmp=XMP, dpi=metadata.dpi_bytes((2400, 1200.5)))
    assert metadata.unpack(metadata.pack(m)) == m and metadata.dpi_of(m.dpi) == (2400.0, 1200.5)
    monkeypatch.setattr(metadata, "KINDS", ("icc", "exif", "xmp", "cicp", "text"))  # jcd before tag 6
    assert metadata.unpack(metadata.pack(m)) == Metadata(xmp=XMP)


@pytest.mark.parametrize("dpi", [None, (72, 72), (96, 96.004), (0, 300), (300, float("nan")), (300,), "300",
                                 (2e6, 300)])  # fmt: skip
def test_no_resolution_is_kept_where_none_is_said(dpi):
    """Nothing, what software states when it knows none (72, 96: a file without one means the same), and what no
    print size can be."""
    assert metadata.dpi_bytes(dpi) == b""


@pytest.mark.parametrize("record", [b"\x00" * 8, b"\x00\x00\x01\x00", bytes(4) + b"\x00\x00\x01\x00",
                                    b"\xff" * 8, b"\x00\x04\x93\xe0" * 3])  # fmt: skip
def test_a_resolution_record_that_no_jcd_writes_is_refused(record):
    with pytest.raises(BitstreamError, match="resolution record"):
        metadata.unpack(zlib.compress(bytes([6, len(record)]) + record))


@pytest.mark.parametrize("src,dpi", [("scan.png", (300, 300)), ("scan.jpg", (2400, 1200)), ("scan.tif", (600, 600)),
                                     ("scan.bmp", (150, 150)), ("scan16.tif", (1200, 1200))])  # fmt: skip
def test_cli_keeps_a_scans_resolution(tmp_path, weights_file, src, dpi):
    """A scan's dpi is its print size: it was dropped, and a 300-dpi scan came back as 72 dpi (or none)."""
    from jcdcodec import tiff16

    picture = (textured(40, 56) * 255).astype(np.uint8)
    if src.startswith("scan16"):
        (tmp_path / src).write_bytes(tiff16.write(picture.astype(np.uint16) * 257, dpi=dpi))
    else:
        Image.fromarray(picture).save(tmp_path / src, dpi=dpi)
    w = ("--weights", str(weights_file))
    assert run_jcd("encode", str(tmp_path / src), "-q", "2", "-o", str(tmp_path / "s.jcd"), *w).returncode == 0
    assert json.loads(run_jcd("info", str(tmp_path / "s.jcd"), "--json").stdout)["dpi"] == pytest.approx(dpi, 1e-4)
    for out, depth in (("o.png", "8"), ("o16.png", "16"), ("o.jpg", "8"), ("o.tif", "8"), ("o16.tif", "16"),
                       ("o.bmp", "8")):  # fmt: skip
        r = run_jcd("decode", str(tmp_path / "s.jcd"), "-o", str(tmp_path / out), "--depth", depth, *w)
        assert r.returncode == 0, r.stderr
        assert Image.open(tmp_path / out).info["dpi"] == pytest.approx(dpi, rel=2e-4), out  # pixels per metre: rounded
    r = run_jcd("decode", str(tmp_path / "s.jcd"), "-o", str(tmp_path / "o.webp"), *w,
                env={"PYTHONWARNINGS": "default"})  # fmt: skip
    assert r.returncode == 0 and "WEBP cannot hold the resolution the stream carries" in r.stderr, r.stderr
    r = run_jcd("decode", str(tmp_path / "s.jcd"), "-o", str(tmp_path / "none.png"), "--metadata", "none", *w)
    assert r.returncode == 0 and "dpi" not in Image.open(tmp_path / "none.png").info


def _with_chunks(data: bytes, chunks: list[tuple[bytes, bytes]], before: bytes = b"IDAT") -> bytes:
    """PNG ``data`` with ``chunks`` (type, body) put in before its first ``before`` chunk."""
    at = data.index(before) - 4
    extra = b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks)
    return data[:at] + extra + data[at:]


def _deflated(size: int) -> bytes:
    c = zlib.compressobj(9)
    return b"".join(c.compress(bytes(1 << 20)) for _ in range(size >> 20)) + c.compress(bytes(size % (1 << 20))) \
        + c.flush()  # fmt: skip


def _loaded(data: bytes, name: str):
    """load_image's picture and the JcdWarnings it gave."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_image(data, name=name)
    return p, [str(x.message) for x in w if issubclass(x.category, JcdWarning)]


def _png(depth: int = 8) -> bytes:
    if depth == 16:
        import png

        rows = np.round(textured(24, 32) * 65535).astype(np.uint16).reshape(24, -1)
        png.Writer(32, 24, greyscale=False, bitdepth=16).write(buf := io.BytesIO(), rows.tolist())
        return buf.getvalue()
    Image.fromarray((textured(24, 32) * 255).astype(np.uint8)).save(buf := io.BytesIO(), "PNG")
    return buf.getvalue()


def test_a_png_whose_compressed_xmp_and_profile_unpack_past_1_mib_is_read_with_them():
    """Pillow refuses a whole PNG whose compressed chunk unpacks past 1 MiB; large LUT profiles and Photoshop's
    grown XMP do. jcd reads them up to the 16 MiB a stream holds, and puts Pillow's bound back after."""
    from PIL import PngImagePlugin

    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<!-- history -->" * (3 << 16) + b"</x:xmpmeta>"
    icc = bytearray(rgb_profile())
    body = bytes(icc) + bytes(2 << 20)  # the profile's own size field says more: a reader takes its header
    icc[:4] = struct.pack(">I", len(body))
    icc = bytes(icc[:128]) + body[128:]
    data = _with_chunks(_png(), [(b"iCCP", b"P3 LUT\0\0" + zlib.compress(icc, 9)),
                                 (b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(xmp, 9))])  # fmt: skip
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):
        Image.open(io.BytesIO(data))  # what refused it: Pillow alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = load_image(data, name="big.png")
    assert p.meta.xmp == xmp and p.meta.icc == icc and p.width == 32
    assert PngImagePlugin.MAX_TEXT_CHUNK == 1 << 20


@pytest.mark.parametrize("depth", [8, 16])
def test_a_png_with_a_zip_bomb_chunk_is_coded_without_it(depth):
    """A compressed chunk that unpacks past the 16 MiB a stream holds (a zip bomb: 20 MiB of zeros in 20 KB) is
    left out and named; the picture and the other text are read (they were refused with the whole file)."""
    bomb = _deflated(20 << 20)
    data = _with_chunks(_png(depth), [(b"tEXt", b"Author\0Ada"), (b"zTXt", b"Comment\0\0" + bomb),
                                      (b"iCCP", b"icc\0\0" + bomb)])  # fmt: skip
    p, said = _loaded(data, "bomb.png")
    assert said == [
        "bomb.png: the text chunk 'Comment' and the ICC profile are more than the 16 MiB of metadata a stream holds "
        "(a zip bomb, or text past that in all): not kept; coding the picture"]  # fmt: skip
    assert metadata.text_pairs(p.meta.text) == [("Author", "Ada")] and p.meta.icc == b""
    assert p.depth == depth and np.array_equal(p.rgb, load_image(_png(depth)).rgb)


def test_many_zip_bombs_are_not_all_unpacked():
    """Past 64 MiB unpacked in all, the further compressed chunks are left out unread: a file of bombs costs a
    bounded time. Each is named up to three; beyond, two and a count."""
    bomb = b"Comment\0\0" + _deflated(17 << 20)
    data = _with_chunks(_png(), [(b"zTXt", bomb)] * 12)
    seen = []
    real = zlib.decompressobj

    def counting():
        seen.append(1)
        return real()

    import unittest.mock

    with unittest.mock.patch.object(pngtext.zlib, "decompressobj", counting):
        rest, left = pngtext.without_oversized(data)
    assert len(left) == 12 and len(seen) == 4 and rest == _png()
    _, said = _loaded(data, "bombs.png")
    assert said == [
        "bombs.png: the text chunk 'Comment', the text chunk 'Comment' and 10 more chunks are more than the 16 MiB "
        "of metadata a stream holds (a zip bomb, or text past that in all): not kept; coding the picture"]  # fmt: skip


def test_a_png_past_pillows_64_mib_of_text_is_coded_with_the_text_a_stream_holds():
    """Five compressed text chunks of 15 MiB each (none a bomb alone) pass the 64 MiB of text Pillow reads in all,
    and it refuses the file: the first is kept, the text past 16 MiB left out and named, the picture coded."""
    chunks = [(b"zTXt", b"Part%d\0\0" % i + _deflated(15 << 20)) for i in range(5)]
    data = _with_chunks(_png(), chunks)
    with pytest.raises(ValueError, match="Too much memory used in text chunks"), pngtext.raised_bound():
        Image.open(io.BytesIO(data)).load()
    p, said = _loaded(data, "parts.png")
    assert said == [
        "parts.png: the text chunk 'Part1', the text chunk 'Part2' and 2 more chunks are more than the 16 MiB of "
        "metadata a stream holds (a zip bomb, or text past that in all): not kept; coding the picture"]  # fmt: skip
    assert [k for k, _ in metadata.text_pairs(p.meta.text)] == ["Part0"]


def test_metadata_past_what_a_stream_holds_leaves_out_its_largest_kind_not_the_picture(tmp_path, weights_file):
    """Two text chunks of 9 MiB each (PNG allows 64 MiB of text; none compressed, so none is a bomb) are more
    than the 16 MiB a stream holds: encoding refused the picture; now the largest kind goes, with a warning, and
    the rest is kept."""
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b" " * (9 << 20) + b"</x:xmpmeta>"
    data = _with_chunks(_png(), [(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp), (b"tEXt", b"Notes\0" + b"n" *
                                                                                    (8 << 20)), (b"tEXt", b"A\0b")])
    (tmp_path / "big.png").write_bytes(data)
    r = run_jcd("encode", str(tmp_path / "big.png"), "-q", "1", "-o", str(tmp_path / "big.jcd"), "--weights",
                str(weights_file))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (f"jcd: warning: {tmp_path / 'big.png'}: its XMP (9.0 MiB) does not fit the 16 MiB "
                                "of metadata a stream holds: not kept")  # fmt: skip
    r = run_jcd("info", str(tmp_path / "big.jcd"), "--json")
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)["metadata"]
    assert "xmp" not in meta and "text" in meta, meta
    r = run_jcd("encode", str(tmp_path / "big.png"), "-q", "1", "-o", str(tmp_path / "none.jcd"), "--weights",
                str(weights_file), "--metadata", "none")  # fmt: skip
    assert r.returncode == 0 and r.stderr == "", r.stderr  # nothing of it asked for: nothing to leave out
    import jcdcodec

    with pytest.warns(JcdWarning, match=r"big.png: its XMP \(9.0 MiB\) does not fit"):
        data = jcdcodec.encode(tmp_path / "big.png", 1, weights=weights_file, device="cpu")
    assert "xmp" not in jcdcodec.info(data).to_dict()["metadata"]


def test_encode_says_when_metadata_is_most_of_the_stream(tmp_path, weights_file):
    """Photoshop's XMP keeps the ids of every document pasted in (photoshop:DocumentAncestors): megabytes on a
    small picture. The stream keeps it (--metadata all), and jcd says that it is most of the file and how to
    leave it out; with --metadata icc the stream is the picture's size again."""
    rng = np.random.default_rng(3)
    ids = b"".join(b"<rdf:li>xmp.did:%s</rdf:li>" % rng.bytes(16).hex().encode() for _ in range(5000))
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/">'
           b"<photoshop:DocumentAncestors><rdf:Bag>" + ids + b"</rdf:Bag></photoshop:DocumentAncestors>"
           b"</rdf:Description></rdf:RDF></x:xmpmeta>")  # fmt: skip
    src = tmp_path / "export.png"
    src.write_bytes(_with_chunks(_png(), [(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(xmp))]))
    r = run_jcd("encode", str(src), "-q", "1", "-o", str(tmp_path / "a.jcd"), "--weights", str(weights_file))
    size = (tmp_path / "a.jcd").stat().st_size
    held = len(metadata.pack(load_image(src).meta))
    assert r.returncode == 0 and held > 64 << 10 and 2 * held > size, r.stderr
    assert r.stderr.strip() == (f"jcd: warning: {src}: metadata takes {held} of the stream's {size} bytes, most of "
                                f"it the XMP ({len(xmp)} bytes unpacked); --metadata icc keeps the colour and "
                                "leaves the rest out")  # fmt: skip
    r = run_jcd("encode", str(src), "-q", "1", "-o", str(tmp_path / "b.jcd"), "--weights", str(weights_file),
                "--metadata", "icc")  # fmt: skip
    assert r.returncode == 0 and r.stderr == "" and (tmp_path / "b.jcd").stat().st_size < 2000, r.stderr
