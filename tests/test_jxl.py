"""JPEG XL input (jcdcodec/jxl.py): libjxl in a child process, the size read from the header first."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jcdcodec import child, jxl
from jcdcodec.errors import JcdError, JcdWarning
from jcdcodec.formats import image_format
from jcdcodec.imageio import GRAY, load_image

pytest.importorskip("pillow_jxl", reason="pillow-jxl-plugin (libjxl) reads JPEG XL; it is not installed")
import pillow_jxl  # noqa: E402,F401  registers JPEG XL with Pillow, to write the tests' files


def _photo(width: int = 96, height: int = 64) -> Image.Image:
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], axis=2)
    return Image.fromarray(rgb.astype(np.uint8))


def _jxl(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JXL", **({"quality": 95, "effort": 3} | kw))
    return buf.getvalue()


@pytest.mark.parametrize("container", [False, True], ids=["codestream", "container"])
def test_the_header_gives_the_size_libjxl_wrote(container):
    """Every kind of SizeHeader: multiples of 8 up to 256 (its short form), each aspect ratio it names, and sizes
    that need each of its four field widths."""
    sizes = [(8, 8), (256, 256), (264, 8), (96, 64), (1000, 750), (120, 100), (1920, 1080), (640, 512), (1002, 501),
             (1001, 77), (77, 1001), (5000, 3), (3, 9000), (300000, 1)]  # fmt: skip
    for width, height in sizes:
        data = _jxl(Image.new("L", (width, height), 128), effort=1, use_container=container)
        assert jxl.is_jxl(data) and image_format(data) == "JPEG XL"
        assert jxl.header(data)[:2] == (width, height)


def test_a_jxl_is_read_with_its_colours_and_metadata():
    exif = Image.Exif()
    exif[0x010F] = "JcdCam"
    src = _photo()
    p = load_image(_jxl(src, exif=exif.tobytes()), name="photo.jxl")
    assert (p.width, p.height, p.depth) == (96, 64, 8) and p.alpha is None
    mse = np.mean((p.rgb * 255 - np.asarray(src, dtype=np.float64)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 35
    tags = Image.Exif()
    tags.load(p.meta.exif)
    assert tags[0x010F] == "JcdCam"


def test_a_lossless_jxl_with_alpha_comes_back_exact():
    rgba = np.asarray(_photo().convert("RGBA")).copy()
    rgba[..., 3] = np.arange(96, dtype=np.uint8)[None, :] * 2
    p = load_image(_jxl(Image.fromarray(rgba), lossless=True), name="alpha.jxl")
    assert np.array_equal(np.round(p.rgb * 255).astype(np.uint8), rgba[..., :3])
    assert np.array_equal(p.alpha, rgba[..., 3])


def test_16_bit_grey_keeps_its_16_bits():
    grey = (np.random.default_rng(0).random((40, 56)) * 65535).astype(np.uint16)
    p = load_image(_jxl(Image.fromarray(grey), lossless=True), name="grey.jxl")
    assert (p.kind, p.depth) == (GRAY, 16)
    assert np.array_equal(np.round(p.rgb[..., 0] * 65535).astype(np.uint16), grey)


FIXTURES = Path(__file__).parent / "data" / "jxl"


def _grey_alpha(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The grey and alpha planes of tests/data/jxl/grey-alpha-*.jxl, in [0, 1] (README.md there)."""
    from conftest import textured

    grey, alpha = textured(48, 64)[:, :, 0].astype(np.float64), np.linspace(0, 1, 64 * 48).reshape(48, 64)
    if scale:
        return np.round(grey * scale) / scale, np.round(alpha * scale) / scale
    return np.clip(np.float32(grey * 1.2 - 0.1), 0, 1), alpha.astype(np.float32)


@pytest.mark.parametrize(("name", "scale"), [("16", 65535), ("12", 4095), ("float", 0)])
def test_grey_with_alpha_above_8_bits_keeps_its_samples(name, scale):
    """libjxl's binding hands grey+alpha above 8 bits over under its 8-bit mode name with 16-bit (or float)
    samples; read as 8-bit they made a picture of noise and a striped alpha, without an error."""
    p = load_image(str(FIXTURES / f"grey-alpha-{name}.jxl"))
    grey, alpha = _grey_alpha(scale)
    assert (p.kind, p.depth, p.width, p.height) == (GRAY, 16, 64, 48) and p.alpha.dtype == np.uint16
    assert np.abs(p.rgb - grey[:, :, None]).max() <= 0.6 / 65535
    assert np.abs(p.alpha / 65535 - alpha).max() <= 0.6 / 65535


def test_grey_with_16_bit_alpha_goes_through_the_codec(tmp_path):
    """Encoded from the file and decoded to PNG in other processes: a 16-bit grey PNG, its alpha exact."""
    from conftest import run_jcd

    src = FIXTURES / "grey-alpha-16.jxl"
    assert run_jcd("encode", str(src), "-q", "6", "-o", str(tmp_path / "a.jcd")).returncode == 0
    assert run_jcd("decode", str(tmp_path / "a.jcd"), "-o", str(tmp_path / "a.png")).returncode == 0
    out = load_image(str(tmp_path / "a.png"))
    grey, alpha = _grey_alpha(65535)
    assert (out.kind, out.depth) == (GRAY, 16)
    assert np.array_equal(out.alpha, np.round(alpha * 65535).astype(np.uint16))
    assert 10 * np.log10(1 / np.mean((out.rgb[:, :, 0] - grey) ** 2)) > 20


def test_the_orientation_is_applied_once():
    """libjxl turns the pixels by the codestream's orientation; an EXIF orientation left beside it would turn
    them again, so it is taken out (the picture here is stored as seen: its EXIF tag is stale)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "JcdCam"
    p = load_image(_jxl(_photo(), exif=exif.tobytes()), name="turned.jxl")
    assert (p.width, p.height) == (96, 64)
    tags = Image.Exif()
    tags.load(p.meta.exif)
    assert 0x0112 not in tags and tags[0x010F] == "JcdCam"


def _header(width: int, height: int) -> bytes:
    """A codestream's signature and SizeHeader for a large picture (30-bit size fields), then nothing."""
    bits = [0]  # not the short form
    for value in (height - 1, None, width - 1):
        if value is None:
            bits += [0, 0, 0]  # ratio 0: the width follows
            continue
        bits += [1, 1] + [(value >> i) & 1 for i in range(30)]  # selector 3: 30 bits
    packed = sum(b << i for i, b in enumerate(bits)).to_bytes((len(bits) + 7) // 8 + 8, "little")
    return b"\xff\x0a" + packed


def test_the_size_is_checked_before_anything_is_decoded(monkeypatch):
    def no_child(*a, **kw):
        raise AssertionError("decoded before the size was checked")

    monkeypatch.setattr(child, "run", no_child)
    data = _header(60000, 60000)
    assert jxl.header(data)[:2] == (60000, 60000)
    with pytest.raises(JcdError, match=r"^huge.jxl: image is 60000x60000 = 3600000000 pixels, above the limit"):
        load_image(data, name="huge.jxl")


def test_damaged_files_are_one_line_errors():
    data = _jxl(_photo())
    with pytest.raises(JcdError, match=r"^cut.jxl: cannot read image \(a damaged or truncated JPEG XL file\)$"):
        load_image(data[: len(data) // 2], name="cut.jxl")
    with pytest.raises(JcdError, match=r"^tiny.jxl: cannot read image \(a damaged or truncated JPEG XL file\)$"):
        load_image(data[:3], name="tiny.jxl")
    rng = np.random.default_rng(1)
    for _ in range(12):
        damaged = bytearray(data)
        for at in rng.integers(2, len(data), 3):
            damaged[at] ^= 1 << int(rng.integers(8))
        try:
            load_image(bytes(damaged), name="damaged.jxl")
        except JcdError as e:
            assert str(e).startswith("damaged.jxl: ") and "\n" not in str(e)


def test_a_child_that_decodes_another_size_than_declared_is_not_trusted(monkeypatch):
    real = child.run

    def other_size(cmd, data, name, *rest):
        return real(cmd, _jxl(_photo(48, 64)), name, *rest)

    monkeypatch.setattr(child, "run", other_size)
    with pytest.raises(JcdError, match=r"^photo.jxl: cannot read image \(the JPEG XL decoder's output is malformed\)"):
        load_image(_jxl(_photo()), name="photo.jxl")


def test_without_the_plugin_the_error_says_what_reads_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "pillow_jxl" else real(n, *a))
    with pytest.raises(JcdError, match=r"^a.jxl: a JPEG XL image; reading it needs pillow-jxl-plugin"):
        load_image(_jxl(_photo()), name="a.jxl")


def test_a_jxl_handed_to_the_decoder_is_named():
    from jcdcodec import bitstream

    for container in (False, True):
        with pytest.raises(bitstream.BitstreamError, match=r"^not a .jcd file: it is a JPEG XL image"):
            bitstream.unpack(_jxl(_photo(), use_container=container))


def test_the_header_reader_never_raises_on_damaged_starts():
    """Bytes changed anywhere in the first few hundred (signature, boxes, header), or cut short: a size or None."""
    rng = np.random.default_rng(3)
    for container in (False, True):
        base = _jxl(_photo(640, 480), effort=1, use_container=container)
        for _ in range(1000):
            data = bytearray(base)
            for at in rng.integers(0, min(len(data), 300), rng.integers(1, 8)):
                data[at] = int(rng.integers(0, 256))
            if rng.random() < 0.2:
                data = data[: int(rng.integers(0, len(data)))]
            head = jxl.header(bytes(data))
            assert head is None or (min(head.width, head.height) >= 1 and (head.bits is None or 1 <= head.bits <= 64))


def test_the_header_gives_the_sample_depth_and_says_what_is_lost():
    """The BitDepth of ImageMetadata after the size (and after an AnimationHeader); a colour file above 8 bits
    and an animation are read with a warning naming the file, grey above 8 bits and an 8-bit photo without."""
    def head(name):
        return jxl.header((FIXTURES / name).read_bytes())

    assert head("grey-alpha-16.jxl").bits == 16 and head("grey-alpha-12.jxl").bits == 12
    assert head("grey-alpha-float.jxl")[2:] == (32, True, False)
    assert head("colour-16.jxl") == (32, 24, 16, False, False)
    assert head("animation.jxl") == (32, 24, 8, False, True)
    for container in (False, True):
        assert jxl.header(_jxl(_photo(), use_container=container)) == (96, 64, 8, False, False)
    with pytest.warns(JcdWarning, match=r"^c.jxl: 16-bit colour, read at 8 bits \(the JPEG XL reader gives colour "
                                        r"at 8\)$"):  # fmt: skip
        assert load_image((FIXTURES / "colour-16.jxl").read_bytes(), name="c.jxl").depth == 8
    with pytest.warns(JcdWarning, match=r"^a.jxl: an animation; coding its first frame only$"):
        load_image((FIXTURES / "animation.jxl").read_bytes(), name="a.jxl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(str(FIXTURES / "grey-alpha-16.jxl"))
        load_image(_jxl(_photo()), name="photo.jxl")
