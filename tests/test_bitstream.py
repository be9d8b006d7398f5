import pytest

from jcdcodec import bitstream
from jcdcodec.bitstream import Header, JcdStream
from jcdcodec.errors import BitstreamError


def make(**kw) -> JcdStream:
    h = Header(width=kw.pop("width", 768), height=kw.pop("height", 512), quality=kw.pop("quality", 3.5),
               fingerprint=b"\x01\x02\x03\x04", kind=kw.pop("kind", 1), depth=kw.pop("depth", 8),
               has_alpha=kw.pop("has_alpha", False))
    return JcdStream(h, z=b"zzzz", y=b"yyyyyyyy", alpha=kw.pop("alpha", b""), symbol_crc=0xDEADBEEF)


@pytest.mark.parametrize("kw", [{}, {"width": 1, "height": 1}, {"kind": 0, "depth": 16},
                                {"has_alpha": True, "alpha": b"AAA"}, {"has_alpha": True}, {"quality": 6.0}])
def test_round_trip(kw):
    s = make(**kw)
    assert bitstream.unpack(bitstream.pack(s)) == s


def test_overhead_smaller_than_compressai_example():
    s = make()
    data = bitstream.pack(s)
    overhead = len(data) - len(s.z) - len(s.y)
    assert overhead < 31
    assert overhead == 23  # 10 fixed + 2+2 size varints + 1 z length + 8 checksums (docs/bitstream.md)


def test_bad_magic_and_version():
    data = bytearray(bitstream.pack(make()))
    with pytest.raises(BitstreamError, match="not a .jcd"):
        bitstream.unpack(b"PNG" + bytes(data[3:]))
    data[3] = 9
    with pytest.raises(BitstreamError, match="version"):
        bitstream.unpack(bytes(data))


@pytest.mark.parametrize("fmt,name", [("PNG", "PNG"), ("JPEG", "JPEG"), ("GIF", "GIF"), ("TIFF", "TIFF"),
                                      ("WEBP", "WebP"), ("BMP", "BMP")])  # fmt: skip
def test_an_image_given_as_a_stream_is_named(fmt, name):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, fmt)
    with pytest.raises(BitstreamError, match=f"not a .jcd file: it is a {name} image"):
        bitstream.unpack(buf.getvalue())
    with pytest.raises(BitstreamError, match=r"not a .jcd file \(bad magic\)"):
        bitstream.unpack(b"\x00" * 64)


@pytest.mark.parametrize(("data", "said"), [(b"\x00\x00\x00\x14ftypqt  " + bytes(64), "a video (MP4 or QuickTime)"),
                                            (b"%PDF-1.4\n" + bytes(64), "a PDF document"),
                                            (b"notes about the shoot\n", "text")])  # fmt: skip
def test_what_is_no_stream_nor_image_is_named_too(data, said):
    with pytest.raises(BitstreamError) as e:
        bitstream.unpack(data)
    assert str(e.value) == f"not a .jcd file: it is {said}"


def test_every_truncation_and_every_bit_flip_is_detected():
    data = bitstream.pack(make())
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            bitstream.unpack(data[:n])
    for i in range(len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                bitstream.unpack(bytes(bad))


def test_size_limits_are_checked_before_allocation():
    s = make(width=bitstream.MAX_SIDE, height=bitstream.MAX_SIDE)
    with pytest.raises(BitstreamError, match="out of range"):
        bitstream.unpack(bitstream.pack(s))


def test_fractional_quality_is_stored_in_32nds():
    assert bitstream.quantize_quality(3.51) == 3.5
    s = make(quality=bitstream.quantize_quality(2.25))
    assert bitstream.unpack(bitstream.pack(s)).header.quality == 2.25
