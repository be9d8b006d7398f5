"""Odd inputs: every kind of picture Pillow opens, broken files, whole directories, interrupted runs."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import run_jcd, textured
from PIL import Image

from jcdcodec import JcdError, load_image
from jcdcodec.errors import JcdWarning
from jcdcodec.imageio import GRAY, RGB


def u8(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (textured(h, w, seed) * 255).astype(np.uint8)


def test_float_tiff_is_read_as_16_bit_grey(tmp_path):
    a = np.linspace(-0.5, 1.5, 24 * 30, dtype=np.float32).reshape(24, 30)
    Image.fromarray(a, mode="F").save(tmp_path / "f.tif")
    pic = load_image(tmp_path / "f.tif")
    assert (pic.kind, pic.depth, pic.rgb.shape) == (GRAY, 16, (24, 30, 3))
    assert np.allclose(pic.rgb[:, :, 0], np.clip(a, 0, 1))


def test_a_picture_is_written_at_its_source_depth_where_the_format_holds_it(tmp_path):
    from jcdcodec.imageio import Picture, encode_picture, save_picture

    rgb = np.random.default_rng(0).random((9, 11, 3), dtype=np.float32)
    deep = Picture(rgb, RGB, 16, None)
    assert save_picture(tmp_path / "a.png", deep) == 16
    back = load_image(tmp_path / "a.png")
    assert back.depth == 16 and np.abs(back.rgb - rgb).max() < 1 / 65535
    assert save_picture(tmp_path / "a.jpg", deep) == 8 and load_image(tmp_path / "a.jpg").depth == 8
    assert save_picture(tmp_path / "b.png", deep, depth=8) == 8 and load_image(tmp_path / "b.png").depth == 8
    data, bits = encode_picture(Picture(rgb, RGB, 8, None), "PNG")
    assert bits == 8 and data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(JcdError, match="16-bit"):
        save_picture(tmp_path / "c.jpg", deep, depth=16)
    with pytest.raises(JcdError, match="unknown output format"):
        save_picture(tmp_path / "c.xyz", deep)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.jpg", "a.png", "b.png"]  # nothing half-written


def test_cmyk_is_converted_to_rgb(tmp_path, codec):
    rgb = Image.fromarray(u8(32, 48))
    rgb.convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    pic = load_image(tmp_path / "c.jpg")
    assert pic.kind == RGB and pic.rgb.shape == (32, 48, 3)
    assert np.abs(pic.rgb * 255 - np.asarray(rgb, dtype=np.float32)).mean() < 12
    assert codec.decode(codec.encode(pic, 2).data).picture.rgb.shape == (32, 48, 3)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(u8(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "o.jpg", exif=exif)
    pic = load_image(tmp_path / "o.jpg")
    assert pic.rgb.shape == (40, 20, 3)


def test_animated_image_codes_the_first_frame_with_a_warning(tmp_path, weights_file):
    frames = [Image.fromarray(u8(24, 24, seed=s)).convert("P") for s in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pic = load_image(tmp_path / "a.gif")
    assert pic.rgb.shape == (24, 24, 3)
    assert any(issubclass(w.category, JcdWarning) and "3 frames" in str(w.message) for w in caught)
    r = run_jcd("encode", str(tmp_path / "a.gif"), "-o", str(tmp_path / "a.jcd"), "--weights", str(weights_file))
    assert r.returncode == 0 and "jcd: warning:" in r.stderr and "first only" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content,message", [
    (b"", "empty file"), (b"hello, not a picture", "not an image jcd can read: it is text"),
    (b"\x89PNG\r\n\x1a\n" + bytes(30), r"cannot read image \(a damaged PNG file, or a kind of PNG its reader does")
])  # fmt: skip
def test_empty_and_non_image_files(tmp_path, content, message):
    p = tmp_path / "x.png"
    p.write_bytes(content)
    with pytest.raises(JcdError, match=message):
        load_image(p)


def test_a_directory_is_coded_file_by_file_and_a_bad_file_is_skipped(tmp_path, weights_file):
    src, out, back = tmp_path / "photos", tmp_path / "coded", tmp_path / "clean"
    for d in (src, out, back):
        d.mkdir()
    for i in range(2):
        Image.fromarray(u8(20 + i, 30, seed=i)).save(src / f"p{i}.png")
    (src / "notes.txt").write_text("not a photo")
    (src / "broken.jpg").write_text("not a photo either, but named as one")
    r = run_jcd("encode", str(src), "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 1
    assert "broken.jpg: not an image jcd can read: it is text" in r.stderr and "1 of 3 files failed" in r.stderr
    assert "skipped 1 file that is not an image: notes.txt" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["p0.jcd", "p1.jcd"]
    r = run_jcd("decode", str(out), "-o", str(back), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in back.iterdir()) == ["p0.png", "p1.png"]
    r = run_jcd("decode", str(src), "-o", str(back), "--weights", str(weights_file))
    assert r.returncode == 1 and "no .jcd files" in r.stderr


@pytest.mark.parametrize(("head", "said"), [
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "it is a video (MP4 or QuickTime)"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "it is a PDF document"),
    (b"<!DOCTYPE html>\n<html lang=en>", "it is a web page (HTML)"),  # a page saved under the photo's name
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">', "it is an SVG drawing (jcd codes pixels: "
     "export it as PNG first)"),
    ("caf\u00e9 " * 16, "it is text"),  # UTF-8, its last character cut by the 64-byte head
    (b"\x89PNX\x01\x02\x03\xff\xfe", "no format jcd knows starts like this"),
])  # fmt: skip
def test_a_file_that_is_no_image_says_what_it_seems_to_be(tmp_path, head, said):
    """"not an image jcd can read (UnidentifiedImageError)" named Pillow's exception, not the file: a video, a
    document or a web page saved under .jpg now says which. A file with an image's signature that its reader
    refuses is a damaged image, not "no image"."""
    data = head.encode() if isinstance(head, str) else head
    with pytest.raises(JcdError) as e:
        load_image(data, name="x.jpg")
    assert str(e.value) == f"x.jpg: not an image jcd can read: {said}"


def test_a_file_with_an_image_signature_its_reader_refuses_is_a_damaged_image():
    with pytest.raises(JcdError) as e:
        load_image(b"GIF89a\x00", name="x.gif")
    assert str(e.value) == "x.gif: cannot read image (a damaged GIF file, or a kind of GIF its reader does not know)"


def test_a_jcd_stream_given_to_encode_says_it_is_coded_again(codec, monkeypatch):
    """`jcd encode out.jcd` decodes the stream (the Pillow plugin reads it) and codes its picture a second time,
    which loses more: it went without a word."""
    from jcdcodec import Picture, pillow_plugin

    monkeypatch.setattr(pillow_plugin, "_CODEC", codec)
    monkeypatch.setattr(pillow_plugin, "_DECODER", codec)
    data = codec.encode(Picture.from_array(textured(40, 60, seed=4)), 2).data
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_image(data, name="out.jcd")
    said = [str(x.message) for x in w if issubclass(x.category, JcdWarning)]
    assert said == ["out.jcd: a .jcd stream: coding its decoded picture again (each coding loses some: start from "
                    "the original to code it at another quality)"]  # fmt: skip
    decoded = codec.decode(data).picture
    assert (p.width, p.height) == (60, 40) and np.abs(p.rgb - decoded.rgb).max() <= 0.5 / 255 + 1e-6


def test_a_phone_folder_codes_its_photos_and_skips_what_lies_beside_them(tmp_path, weights_file):
    src = tmp_path / "DCIM"
    src.mkdir()
    Image.fromarray(u8(20, 30)).save(src / "IMG_0001.png")
    Image.fromarray(u8(20, 30, seed=1)).save(src / "IMG_0002", format="PNG")  # no extension: known by its bytes
    (src / "IMG_0001.MOV").write_bytes(b"\x00\x00\x00\x14ftypqt  " + bytes(64))  # a live photo's video
    (src / "IMG_0001.AAE").write_text("<?xml version='1.0'?><plist/>")  # the phone's edit sidecar
    r = run_jcd("encode", str(src), "-q", "1", "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert "skipped 2 files that are not images: IMG_0001.AAE, IMG_0001.MOV" in r.stderr, r.stderr
    assert sorted(p.name for p in src.glob("*.jcd")) == ["IMG_0001.jcd", "IMG_0002.jcd"]
    r = run_jcd("encode", str(src / "IMG_0001.MOV"), "--weights", str(weights_file))  # named: tried, and refused
    assert r.returncode == 1 and "IMG_0001.MOV: not an image jcd can read: it is a video (MP4 or QuickTime)" \
        in r.stderr, r.stderr  # fmt: skip
    only = tmp_path / "only-notes"
    only.mkdir()
    (only / "notes.txt").write_text("x")
    r = run_jcd("encode", str(only), "--weights", str(weights_file))
    assert r.returncode == 1 and f"{only}: no images in this directory" in r.stderr, r.stderr


def _tiff_raw(tags: dict[int, object], size=(64, 43)) -> bytes:
    """A TIFF whose first image is a small RGB preview with ``tags``: how DNG, NEF, ARW and PEF files begin."""
    from PIL import TiffImagePlugin

    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, value in {271: "Nikon", 272: "D850", **tags}.items():
        ifd[tag] = value
        if isinstance(value, bytes):
            ifd.tagtype[tag] = 1  # BYTE, as DNGVersion is
    buf = io.BytesIO()
    Image.fromarray(u8(size[1], size[0])).save(buf, "TIFF", tiffinfo=ifd)
    return buf.getvalue()


@pytest.mark.parametrize("data,kind", [
    (_tiff_raw({50706: bytes([1, 4, 0, 0]), 254: 1}), r"\(DNG\)"),
    (_tiff_raw({50706: bytes([1, 6, 0, 0])}), r"\(DNG\)"),
    (_tiff_raw({254: 1}), r"\(a TIFF-based raw format\)"),  # NEF, ARW, ...
    (b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(64), r"\(Canon CR2\)"),
    (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01" + bytes(64), r"\(Canon CR3\)"),
    (b"FUJIFILMCCD-RAW 0201" + bytes(64), r"\(Fujifilm RAF\)"),
    (b"IIRO\x08\x00\x00\x00" + bytes(64), r"\(Olympus ORF\)"),
    (b"IIU\x00\x18\x00\x00\x00" + bytes(64), r"\(Panasonic RW2\)"),
])  # fmt: skip
def test_a_camera_raw_file_is_never_coded_as_its_preview(data, kind):
    """Pillow opens a TIFF-based raw file's first image, a preview: coded as the photo, a 24 Mpx raw became a
    thumbnail without a word. These are no raw files LibRaw can develop (test_rawphoto.py develops one): one line
    that says what the file is, with rawpy installed or without."""
    with pytest.raises(JcdError, match=rf"^x\.raw: a camera raw file {kind}( that LibRaw cannot develop|; developing)"):
        load_image(data, name="x.raw")


def test_a_tiff_whose_first_image_is_the_full_one_still_reads():
    assert load_image(_tiff_raw({254: 0})).width == 64  # NewSubfileType 0: the picture itself
    assert load_image(_tiff_raw({254: 2})).width == 64  # a page of a multi-page document


def test_interrupt_during_a_write_keeps_the_old_file(tmp_path):
    from jcdcodec.outputs import atomic_target

    dst = tmp_path / "out.jcd"
    dst.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt), atomic_target(dst) as tmp:
        tmp.write_bytes(b"half of a new res")
        raise KeyboardInterrupt
    assert dst.read_bytes() == b"previous result" and [p.name for p in tmp_path.iterdir()] == ["out.jcd"]


def test_ctrl_c_in_a_batch_leaves_only_complete_files(tmp_path, weights_file):
    from jcdcodec import bitstream

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for i in range(40):
        Image.fromarray(u8(600, 800, seed=i)).save(src / f"p{i:02d}.png")
    last = out / "p39.jcd"
    last.write_bytes(b"previous result")
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    # The default SIGINT action in the child even when this run was started in the background (a shell starts
    # background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored).
    proc = subprocess.Popen([sys.executable, "-m", "jcdcodec", "encode", str(src), "-o", str(out), "--weights",
                             str(weights_file)], stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(out.glob("p0*.jcd"))) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    names = sorted(p.name for p in out.iterdir())
    assert all(n.endswith(".jcd") and not n.startswith(".") for n in names), names  # no temporary files
    assert last.read_bytes() == b"previous result"
    for p in out.glob("p0*.jcd"):
        bitstream.unpack(p.read_bytes())  # complete, checksummed streams only


def _png_declaring(width: int, height: int, depth: int, colour: int = 2) -> bytes:
    """A PNG whose header declares a huge image, with a few bytes of pixel data: a decompression bomb's shape."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + \
        chunk(b"IEND", b"")


def _jpeg_declaring(width: int, height: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(u8(16, 16)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _bmp_declaring(width: int, height: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(u8(8, 8)).save(buf, format="BMP")
    data = bytearray(buf.getvalue())
    data[18:26] = width.to_bytes(4, "little") + height.to_bytes(4, "little", signed=True)
    return bytes(data)


@pytest.mark.parametrize("name,data", [
    ("bomb16.png", _png_declaring(30000, 30000, 16)),  # 16-bit RGB: read by pypng, around Pillow's own limit
    ("bomb16a.png", _png_declaring(60000, 60000, 16, 6)),
    ("big8.png", _png_declaring(13000, 13000, 8)),  # under Pillow's bomb error, above jcd's limit
    ("wide.jpg", _jpeg_declaring(65000, 65000)),
    ("wide.bmp", _bmp_declaring(10000, 7000)),
])  # fmt: skip
def test_the_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, weights_file, name, data):
    from jcdcodec.imageio import load_image

    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(JcdError, match="above the limit"):
        load_image(src)
    r = run_jcd("encode", str(src), "-o", str(tmp_path / "x.jcd"), "--weights", str(weights_file))
    assert r.returncode == 1 and "above the limit of 64000000" in r.stderr, r.stderr
    r = run_jcd("encode", str(src), "-o", str(tmp_path / "x.jcd"), "--weights", str(weights_file),
                "--max-pixels", "1000")  # fmt: skip
    assert r.returncode == 1 and "above the limit of 1000" in r.stderr
    # The same through stdin.
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "jcdcodec", "encode", "-", "-o", str(tmp_path / "y.jcd"), "--weights",
                        str(weights_file)], input=data, capture_output=True,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))  # fmt: skip
    assert r.returncode == 1 and b"above the limit" in r.stderr


def test_an_image_declaring_no_pixels_is_refused(tmp_path):
    from jcdcodec.imageio import load_image

    src = tmp_path / "empty.bmp"
    src.write_bytes(_bmp_declaring(0, 5))
    with pytest.raises(JcdError):
        load_image(src)


@pytest.mark.parametrize("depth", [8, 16])
def test_pngs_are_written_losslessly_at_the_fast_zlib_level(depth):
    import png

    from jcdcodec.imageio import PNG_COMPRESS_LEVEL, encode_image

    rgb = textured(40, 56, seed=2).astype(np.float32)
    data = encode_image(rgb, "PNG", RGB, depth)
    w, h, rows, _ = png.Reader(bytes=data).asDirect()
    back = np.vstack(list(rows)).reshape(h, w, 3) / (255 if depth == 8 else 65535)
    assert np.abs(back - rgb).max() <= 0.5 / (255 if depth == 8 else 65535) + 1e-6
    # The zlib header of the first IDAT names the level class: 1 for levels 2-5 (zlib's own rule).
    idat = data.index(b"IDAT") + 4
    assert (data[idat + 1] >> 6) == 1 and 2 <= PNG_COMPRESS_LEVEL <= 5
    assert (data[idat] & 0x0F) == 8 and (data[idat] * 256 + data[idat + 1]) % 31 == 0  # a zlib header indeed


HEIC = Path(__file__).parent / "data" / "heif" / "phone.heic"
DEEP_HEIC = HEIC.with_name("deep.heic")
GAIN_MAPS = {  # made by tests/data/heif/add_gain_map.py from phone.heic and deep-10.avif (README.md there)
    "gain-apple.heic": ("Apple", HEIC),
    "gain-iso.heic": ("ISO 21496-1", HEIC),
    "gain-iso.avif": ("ISO 21496-1", HEIC.parent.parent / "avif" / "deep-10.avif"),
}


def _gain_map_file(name: str) -> Path:
    return (HEIC.parent if name.endswith(".heic") else HEIC.parent.parent / "avif") / name


@pytest.mark.parametrize("name", sorted(GAIN_MAPS))
def test_an_hdr_phone_photo_says_its_gain_map_is_not_kept(name):
    """An iPhone's HDR HEIC holds a gain map beside its picture (an auxiliary image, auxC ...:aux:hdrgainmap; since
    iOS 18 also an ISO 21496-1 tmap item), as AVIF may; jcd codes the standard picture, the primary, and names
    what it leaves, as for an Ultra HDR JPEG. The picture is the one of the file without the gain map."""
    from PIL import features

    from jcdcodec import heif

    if name.endswith(".avif") and not features.check("avif"):
        pytest.skip("this Pillow reads no AVIF")
    kind, base = GAIN_MAPS[name]
    data = _gain_map_file(name).read_bytes()
    assert heif.gain_map(data) == kind and heif.gain_map(base.read_bytes()) == ""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_image(data, name=name)
        q = load_image(base)
    said = [str(x.message) for x in w if issubclass(x.category, JcdWarning) and "gain map" in str(x.message)]
    assert said == [f"{name}: an HDR photo: its gain map ({kind}; the HDR rendition) is not kept; coding the "
                    "standard picture"]  # fmt: skip
    assert (p.width, p.height) == (q.width, q.height) and np.array_equal(p.rgb, q.rgb)


def test_the_gain_map_reader_takes_damaged_containers():
    """heif.gain_map reads boxes of untrusted files in jcd's own process: cut or damaged, it says "" or a kind,
    never raises."""
    from jcdcodec import heif

    rng = np.random.default_rng(3)
    for name in GAIN_MAPS:
        data = _gain_map_file(name).read_bytes()
        meta = data.index(b"meta")
        for end in range(0, meta + 1200, 7):
            assert heif.gain_map(data[:end]) in ("", GAIN_MAPS[name][0])
        for _ in range(300):
            damaged = bytearray(data)
            for at in rng.integers(meta - 4, meta + 900, 3):
                damaged[at] = int(rng.integers(256))
            assert heif.gain_map(bytes(damaged)) in ("", "Apple", "ISO 21496-1")


PORTRAIT = HEIC.with_name("portrait.heic")  # phone.heic with an Apple gain map, a depth map and three mattes


def test_a_portrait_heic_names_its_depth_map_and_mattes():
    """An iPhone's portrait photo holds its depth map and segmentation mattes as auxiliary images (auxC URNs);
    jcd codes the picture and names each kind it leaves behind, once, beside the gain map's own warning. libheif
    (pi-heif) sees the same images in the fixture; the picture is phone.heic's."""
    from pi_heif import open_heif

    from jcdcodec import heif

    data = PORTRAIT.read_bytes()
    h = open_heif(PORTRAIT)
    assert len(h.info["depth_images"]) == 1 and len(h.info["aux"]) == 4  # the gain map and three mattes
    assert heif.auxiliary_images(data) == ["depth map", "portrait matte", "skin matte", "hair matte"]
    assert heif.auxiliary_images(HEIC.read_bytes()) == []
    assert heif.auxiliary_images(_gain_map_file("gain-apple.heic").read_bytes()) == []  # the gain map: its own
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_image(data, name="IMG_0001.HEIC")
    said = [str(x.message) for x in w if issubclass(x.category, JcdWarning)]
    assert said == ["IMG_0001.HEIC: an HDR photo: its gain map (Apple; the HDR rendition) is not kept; coding the "
                    "standard picture",
                    "IMG_0001.HEIC: its depth map, portrait matte, skin matte and hair matte (images beside the "
                    "picture) are not kept; coding the picture"]  # fmt: skip
    assert np.array_equal(p.rgb, load_image(HEIC).rgb)


@pytest.mark.parametrize(("urns", "words"), [
    ([b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1"], []),  # alpha: kept
    ([b"urn:mpeg:mpegB:cicp:systems:auxiliary:depth"], ["depth map"]),
    ([b"urn:mpeg:hevc:2015:auxid:2", b"urn:mpeg:mpegB:cicp:systems:auxiliary:depth"], ["depth map"]),  # once
    ([b"tag:apple.com,2026:photo:aux:semanticskinmattev2", b"urn:com:apple:photo:2020:aux:semanticskymatte"],
     ["skin matte", "sky matte"]),
    ([b"tag:apple.com,2023:photo:aux:styledeltamap"], ["auxiliary image"]),
])  # fmt: skip
def test_auxiliary_images_are_named_by_their_kind(urns, words, monkeypatch):
    from jcdcodec import heif

    monkeypatch.setattr(heif, "_aux_types", lambda data: urns)
    assert heif.auxiliary_images(b"") == words


def test_the_auxiliary_image_reader_takes_damaged_containers():
    """heif._aux_types reads boxes of untrusted files in jcd's own process: cut or damaged, it never raises."""
    from jcdcodec import heif

    data = PORTRAIT.read_bytes()
    rng, meta = np.random.default_rng(5), data.index(b"meta")
    for end in range(0, len(data), 5):
        assert set(heif.auxiliary_images(data[:end])) <= {"depth map", "portrait matte", "skin matte", "hair matte"}
    for _ in range(300):
        damaged = bytearray(data)
        for at in rng.integers(meta - 4, meta + 1100, 3):
            damaged[at] = int(rng.integers(256))
        assert isinstance(heif.auxiliary_images(bytes(damaged)), list)


def test_the_cli_says_a_heic_gain_map_is_not_kept(tmp_path, weights_file):
    src = _gain_map_file("gain-apple.heic")
    r = run_jcd("encode", str(src), "-q", "1", "-o", str(tmp_path / "g.jcd"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (f"jcd: warning: {src}: an HDR photo: its gain map (Apple; the HDR rendition) is not "
                                "kept; coding the standard picture")  # fmt: skip


def test_a_phone_heic_is_read_upright_with_its_profile_exif_and_xmp():
    """tests/data/heif/phone.heic: 64x48 pixels stored with a quarter-turn transform, a Display P3 profile,
    EXIF and XMP (made with pillow-heif's HEVC encoder from conftest.textured; tests/data/heif/README.md)."""
    from conftest import rgb_profile

    p = load_image(HEIC)
    assert (p.width, p.height) == (48, 64)
    assert p.meta.icc == rgb_profile() and p.meta.xmp.startswith(b"<x:xmpmeta")
    tags = Image.Exif()
    tags.load(p.meta.exif)
    assert tags[0x010F] == "Canon" and tags.get(0x0112, 1) == 1
    assert 0.2 < float(p.rgb.mean()) < 0.8


def test_a_10_bit_heic_is_read_with_all_its_bits_and_decodes_to_16():
    """tests/data/heif/deep.heic: conftest.textured(48, 64) at 10 bits, coded near-losslessly (4:4:4) with EXIF
    orientation 6 turned into the HEIF rotation, the profile, EXIF and XMP (tests/data/heif/README.md)."""
    from conftest import rgb_profile

    p = load_image(DEEP_HEIC)
    want = np.rot90(np.round(textured(48, 64) * 1023) / 1023, -1)
    assert p.depth == 16 and p.rgb.shape == want.shape == (64, 48, 3)
    # Within one 10-bit step (the 4:4:4 coding rounds its colour transform); 8 bits cannot come this close
    # (half an 8-bit step is two 10-bit ones): pi-heif's Pillow plugin gave 3.9 steps.
    assert np.abs(p.rgb - want).max() < 1.5 / 1023
    assert p.meta.icc == rgb_profile() and p.meta.xmp.startswith(b"<x:xmpmeta")
    tags = Image.Exif()
    tags.load(p.meta.exif)
    assert tags[0x010F] == "Sony" and tags.get(0x0112, 1) == 1


def test_a_10_bit_heic_codes_to_a_16_bit_png(tmp_path, weights_file):
    r = run_jcd("encode", str(DEEP_HEIC), "-q", "1", "-o", str(tmp_path / "d.jcd"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    r = run_jcd("decode", str(tmp_path / "d.jcd"), "-o", str(tmp_path / "d.png"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "d.png") as im:
        assert im.size == (48, 64) and im.info.get("icc_profile")
    assert (tmp_path / "d.png").read_bytes()[24] == 16  # the PNG header's bit depth


def test_without_pi_heif_a_heic_is_named_with_what_reads_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pi_heif", None)  # import fails as if not installed
    with pytest.raises(JcdError, match=r"phone.heic: a HEIF/HEIC image; reading it needs pi-heif"):
        load_image(HEIC)


def damaged_heic() -> bytes:
    """phone.heic with one byte of its item boxes changed: pi-heif 1.4.0's libheif crashes (SIGSEGV) on it."""
    data = bytearray(HEIC.read_bytes())
    data[235] = 161  # was 43; found by byte-mutating the file, 3 crashes in 400 copies
    return bytes(data)


def test_a_heic_that_crashes_its_decoder_is_one_error_line_not_a_crash(tmp_path, weights_file):
    with pytest.raises(JcdError, match=r"^damaged.heic: cannot read image \("):
        load_image(damaged_heic(), name="damaged.heic")
    (tmp_path / "damaged.heic").write_bytes(damaged_heic())
    Image.fromarray((textured(24, 40) * 255).astype(np.uint8)).save(tmp_path / "good.png")
    r = run_jcd("encode", str(tmp_path / "damaged.heic"), str(tmp_path / "good.png"), "-q", "1", "-o",
                str(tmp_path / "out"), "--weights", str(weights_file))  # fmt: skip
    assert r.returncode == 1, r.stderr  # the batch goes on past the bad file, and says which one it was
    named = [ln for ln in r.stderr.splitlines() if "damaged.heic" in ln]
    assert len(named) == 1 and named[0].startswith(f"jcd: error: {tmp_path / 'damaged.heic'}: cannot read image (")
    assert "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "out" / "good.jcd").is_file() and not (tmp_path / "out" / "damaged.jcd").exists()


def test_the_heif_reader_child_does_not_import_code_from_the_working_folder(tmp_path, monkeypatch):
    """`python -m` puts the working folder first on the import path: a `jcdcodec` lying there must not run."""
    fake = tmp_path / "jcdcodec"
    fake.mkdir()
    marker = tmp_path / "ran"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    (fake / "heif.py").write_text("")
    monkeypatch.chdir(tmp_path)
    p = load_image(HEIC.read_bytes(), name="phone.heic")
    assert (p.width, p.height) == (48, 64) and not marker.exists()


def test_the_heif_reader_child_is_not_trusted(monkeypatch):
    """A child that crashes, fails or hands back output that does not add up: one JcdError each."""
    from jcdcodec import heif

    for code, error in (("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "crashed on it, signal 11"),
                        ("raise SystemExit(1)", "crashed on it, exit status 1"),
                        ("print('{\"mode\": \"RGB\", \"width\": 2, \"height\": 2, \"frames\": 1, "
                         "\"info\": {\"icc_profile\": 0, \"exif\": 0, \"xmp\": 0}}'); print('x')",
                         "output is malformed"),
                        ("print('{\"mode\": \"P;4\"}')", "output is malformed")):  # fmt: skip
        monkeypatch.setattr(heif, "CHILD", [sys.executable, "-c", code])
        with pytest.raises(JcdError, match=f"^x.heic: cannot read image .*{error}"):
            load_image(HEIC.read_bytes(), name="x.heic")
    monkeypatch.setattr(heif, "CHILD", [sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(heif, "TIMEOUT", 0.5)
    with pytest.raises(JcdError, match=r"^x.heic: cannot read image \(the HEIF decoder did not finish in 0.5 s\)"):
        load_image(HEIC.read_bytes(), name="x.heic")


def test_avif_is_read_by_pillow_itself():
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    buf = io.BytesIO()
    Image.fromarray((textured(24, 40) * 255).astype(np.uint8)).save(buf, "AVIF", quality=90)
    p = load_image(buf.getvalue(), name="x.avif")
    assert (p.width, p.height) == (40, 24)


def test_jcd_encode_codes_a_heic_and_the_decoded_png_keeps_its_profile(tmp_path, weights_file):
    from conftest import rgb_profile

    r = run_jcd("encode", str(HEIC), "-q", "2", "-o", str(tmp_path / "p.jcd"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    r = run_jcd("decode", str(tmp_path / "p.jcd"), "-o", str(tmp_path / "p.png"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / "p.png")
    assert out.size == (48, 64) and out.info["icc_profile"] == rgb_profile()


def test_a_multi_picture_jpeg_says_what_is_left_out():
    """Phones write JPEGs with more pictures behind the first (MPF): an Ultra HDR gain map, a depth map. jcd codes
    the first and names what it leaves: the gain map of an Ultra HDR JPEG (its XMP's hdrgm fields) by name."""
    photo = Image.fromarray((textured(48, 64) * 255).astype(np.uint8))
    second = photo.convert("L").resize((32, 24)).convert("RGB")
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0"/></rdf:RDF>'
           b"</x:xmpmeta>")  # fmt: skip
    said = {}
    for label, extra in (("mpo", {}), ("ultrahdr", {"xmp": xmp})):
        buf = io.BytesIO()
        photo.save(buf, "MPO", save_all=True, append_images=[second], **extra)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            p = load_image(buf.getvalue(), name="phone.jpg")
        assert (p.width, p.height) == (64, 48)
        said[label] = [str(x.message) for x in w if issubclass(x.category, JcdWarning)]
    assert said["mpo"] == ["phone.jpg: 2 pictures in a multi-picture JPEG; coding the first only"]
    assert said["ultrahdr"] == ["phone.jpg: an Ultra HDR JPEG: its gain map (the HDR rendition) is not kept; coding "
                                "the standard picture"]  # fmt: skip
    assert b"hdrgm:Version" not in p.meta.xmp and b"xmlns:hdrgm" in p.meta.xmp  # no claim of a gain map kept


MOTION_XMP = (  # what a Pixel writes (Google's Motion Photo format 1.0), with a field of the user's beside it
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
    b'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
    b'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" GCamera:MotionPhotoPresentationTimestampUs="968644" '
    b'xmp:Rating="4"><Container:Directory><rdf:Seq>'
    b'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" '
    b'Item:Length="0" Item:Padding="0"/></rdf:li>'
    b'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" '
    b'Item:Length="2000" Item:Padding="0"/></rdf:li>'
    b"</rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>"
)


@pytest.mark.parametrize("kind", ["google", "google-old", "samsung", "still"])
def test_a_motion_photo_says_its_video_is_not_kept(kind):
    """A phone's motion photo is a JPEG with its video appended, found by its XMP (Google: MotionPhoto or the
    older MicroVideo = 1, and a Container:Directory giving the video's length from the file's end) or by Samsung's
    trailer. jcd codes the still picture and says so; the XMP's pointers to the video go (a decoded JPEG would
    send a viewer to its own last bytes for a video), the rest of the XMP stays."""
    from xml.dom import minidom

    xmp = MOTION_XMP
    if kind == "google-old":
        xmp = xmp.replace(b'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1"',
                          b'GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" GCamera:MicroVideoOffset="2000"')
    elif kind in ("samsung", "still"):
        xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-' \
              b'ns#"><rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/>' \
              b"</rdf:RDF></x:xmpmeta>"  # fmt: skip
    buf = io.BytesIO()
    Image.fromarray((textured(48, 64) * 255).astype(np.uint8)).save(buf, "JPEG", xmp=xmp)
    video = b"\0\0\0\x18ftypmp42" + bytes(1990)
    data = buf.getvalue() + (b"MotionPhoto_Data" + video if kind == "samsung" else b"" if kind == "still" else video)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_image(data, name="PXL_1.MP.jpg")
    said = [str(x.message) for x in w if issubclass(x.category, JcdWarning)]
    if kind == "still":
        assert said == [] and p.meta.xmp == xmp
        return
    assert said == ["PXL_1.MP.jpg: a motion photo: its video is not kept; coding the still picture"]
    for gone in (b"MotionPhoto", b"MicroVideo", b"Container:Directory", b"video/mp4"):
        assert gone not in p.meta.xmp
    assert b'xmp:Rating="4"' in p.meta.xmp
    minidom.parseString(p.meta.xmp)  # still well-formed XML


def _heic_with_xmp(xmp: bytes) -> bytes:
    """phone.heic with another XMP packet: its XMP item is the last of its mdat, so the packet is replaced at the
    file's end and its length set in iloc (item 3: a 4-byte base offset, one extent) and in the mdat box."""
    import struct

    data = HEIC.read_bytes()
    old = load_image(HEIC).meta.xmp
    start = data.rindex(old)
    assert start + len(old) == len(data)
    at = data.index(struct.pack(">HHI", 3, 0, start))  # item 3, data reference 0, its base offset
    assert data[at + 8 : at + 18] == struct.pack(">HII", 1, 0, len(old))  # one extent, offset 0, its length
    mdat = data.rindex(b"mdat", 0, start) - 4
    out = bytearray(data[:start] + xmp)
    out[at + 14 : at + 18] = struct.pack(">I", len(xmp))
    out[mdat : mdat + 4] = struct.pack(">I", len(out) - mdat)
    return bytes(out)


@pytest.mark.parametrize("kind", ["samsung", "google", "box-only", "box-in-meta", "still"])
def test_a_heic_motion_photo_says_its_video_is_not_kept(kind):
    """A HEIC motion photo (Samsung's phones, Google's format for HEIC) holds its video in an mpvd box behind the
    picture's data, which libheif skips, and says so in its XMP as a JPEG's does: jcd names the video it leaves
    behind, and the XMP loses its pointers to it, the rest staying."""
    import struct

    from jcdcodec import heif

    video = b"\0\0\0\x18ftypmp42" + bytes(1990)
    mpvd = struct.pack(">I4s", 8 + len(video), b"mpvd") + video
    if kind in ("samsung", "google"):
        data = _heic_with_xmp(MOTION_XMP) + (mpvd if kind == "samsung" else b"")
    elif kind == "box-in-meta":  # the box as the meta box's last child (the offsets into mdat not moved: only
        data = HEIC.read_bytes()  # the box is looked at, not the picture)
        meta = data.index(b"meta") - 4
        end = meta + int.from_bytes(data[meta : meta + 4], "big")
        data = data[:meta] + struct.pack(">I", end - meta + len(mpvd)) + data[meta + 4 : end] + mpvd + data[end:]
    else:
        data = HEIC.read_bytes() + (mpvd if kind == "box-only" else b"")
    assert heif.motion_video(data) == (kind in ("samsung", "box-only", "box-in-meta"))
    if kind == "box-in-meta":
        return
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_image(data, name="20261207_1.heic")
    said = [str(x.message) for x in w if issubclass(x.category, JcdWarning)]
    if kind == "still":
        assert said == []
        return
    assert said == ["20261207_1.heic: a motion photo: its video is not kept; coding the still picture"]
    assert np.array_equal(p.rgb, load_image(HEIC).rgb)
    if kind != "box-only":
        for gone in (b"MotionPhoto", b"Container:Directory", b"video/mp4"):
            assert gone not in p.meta.xmp
        assert b'xmp:Rating="4"' in p.meta.xmp


def test_the_motion_video_finder_takes_damaged_containers():
    """heif.motion_video reads the boxes of untrusted files in jcd's own process: cut or damaged, it never raises."""
    import struct

    from jcdcodec import heif

    data = HEIC.read_bytes() + struct.pack(">I4s", 16, b"mpvd") + bytes(8)
    rng = np.random.default_rng(7)
    for end in range(0, len(data), 3):
        assert heif.motion_video(data[:end]) == (end == len(data))
    for _ in range(300):
        damaged = bytearray(data)
        for at in rng.integers(0, 1100, 3):
            damaged[at] = int(rng.integers(256))
        assert isinstance(heif.motion_video(bytes(damaged)), bool)


def test_a_decoded_motion_photo_claims_no_video(tmp_path, weights_file):
    buf = io.BytesIO()
    Image.fromarray((textured(48, 64) * 255).astype(np.uint8)).save(buf, "JPEG", xmp=MOTION_XMP)
    (tmp_path / "PXL.MP.jpg").write_bytes(buf.getvalue() + b"\0\0\0\x18ftypmp42" + bytes(1990))
    r = run_jcd("encode", str(tmp_path / "PXL.MP.jpg"), "-q", "1", "-o", str(tmp_path / "p.jcd"), "--weights",
                str(weights_file))  # fmt: skip
    assert r.returncode == 0 and "a motion photo: its video is not kept" in r.stderr, r.stderr
    r = run_jcd("decode", str(tmp_path / "p.jcd"), "-o", str(tmp_path / "out.jpg"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    xmp = Image.open(tmp_path / "out.jpg").info["xmp"]
    assert b'xmp:Rating="4"' in xmp and b"MotionPhoto" not in xmp and b"Container:Directory" not in xmp
