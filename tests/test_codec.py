"""The codec end to end on a small random-initialised model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import KODAK, REPO, needs_kodak, textured

from jcdcodec import Codec, JcdError, Picture, WeightsError, load_image, save_image, stream_info
from jcdcodec.errors import BitstreamError
from jcdcodec.imageio import GRAY, PALETTE, RGB

DECODE_SCRIPT = r"""
import sys, warnings
import numpy as np
warnings.filterwarnings("ignore")
from jcdcodec import open_decoder
decoder = open_decoder(sys.argv[1], device="cpu", engine=sys.argv[4])
dec = decoder.decode(open(sys.argv[2], "rb").read())
np.savez(sys.argv[3], y_hat=dec.y_hat, rgb=dec.picture.rgb, torch=np.array("torch" in sys.modules))
"""


def decode_in_subprocess(weights, stream_path, out_path, env=None, engine="torch"):
    import os

    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(weights), str(stream_path), str(out_path), engine],
                       capture_output=True, text=True, env=e)  # fmt: skip
    assert r.returncode == 0, r.stderr
    with np.load(out_path) as f:
        return {k: f[k] for k in f.files}


def test_decoder_in_another_process_reproduces_the_latent_exactly(codec, weights_file, tmp_path):
    pic = Picture.from_array(textured(100, 140))
    for q in (1, 3.5, 6):
        enc = codec.encode(pic, q)
        assert len(enc.data) > 60, "stream should carry real symbols"
        p = tmp_path / f"s{q}.jcd"
        p.write_bytes(enc.data)
        out = decode_in_subprocess(weights_file, p, tmp_path / "o.npz")
        assert np.array_equal(out["y_hat"], enc.y_hat)
        assert (out["y_hat"] != 0).any()
        local = codec.decode(enc.data)
        assert np.array_equal(local.y_hat, enc.y_hat)
        assert np.array_equal(out["rgb"], local.picture.rgb)


MANY_SCRIPT = r"""
import sys, warnings
import numpy as np
warnings.filterwarnings("ignore")
engine = sys.argv[1].split(":")[0]
threads = int(sys.argv[1].split(":")[1])
if engine == "torch":
    import torch
    torch.set_num_threads(threads)
from jcdcodec import open_decoder
settings = {"threads": threads} if engine == "onnx" else {}
decoder = open_decoder(sys.argv[2], device="cpu", engine=engine, **settings)
out = {}
for k, path in enumerate(sys.argv[4:]):
    out[str(k)] = decoder.decode(open(path, "rb").read()).y_hat
np.savez(sys.argv[3], **out)
"""


@pytest.mark.parametrize("engine", ["torch", "onnx"])
@pytest.mark.parametrize("enc_threads,dec_threads", [(2, 1), (1, 2)])
def test_thread_counts_and_cpu_kernels_do_not_change_the_decode(weights_file, tmp_path, enc_threads, dec_threads,
                                                                engine):  # fmt: skip
    """Many images x every quality, decoded in other processes with other threads and CPU kernels.

    The entropy path is numpy float64 on both sides. Other thread counts (PyTorch's, OpenBLAS's) give the
    encoder's latent bit for bit. Other CPU kernels (PyTorch's ISA switches, and OpenBLAS's AVX2 kernels
    instead of AVX512 ones via OPENBLAS_CORETYPE, as on another CPU) give every symbol the same (the
    decoder verifies the stream's symbol checksum), and the latent (symbol + predicted mean) within
    float64 rounding of the mean: BLAS kernels of different vector widths sum in different orders.
    """
    import os

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(enc_threads)
        codec = Codec(str(weights_file), device="cpu")
        streams = {}
        for k, (h, w) in enumerate([(128, 192), (64, 64), (96, 160)]):
            pic = Picture.from_array(textured(h, w, seed=10 + k))
            for q in range(1, 7):
                enc = codec.encode(pic, q)
                p = tmp_path / f"s{k}-{q}.jcd"
                p.write_bytes(enc.data)
                streams[str(p)] = enc
    finally:
        torch.set_num_threads(threads)
    same_kernels = {"OPENBLAS_NUM_THREADS": str(dec_threads)}
    other_kernels = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
                     "OPENBLAS_NUM_THREADS": str(3 - dec_threads)}  # fmt: skip
    for env in (same_kernels, other_kernels):
        out_path = tmp_path / "out.npz"
        r = subprocess.run([sys.executable, "-c", MANY_SCRIPT, f"{engine}:{dec_threads}", str(weights_file),
                            str(out_path), *streams], capture_output=True, text=True,
                           env={**os.environ, **env})  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]  # a symbol checksum mismatch would fail the decode
        with np.load(out_path) as out:
            for k, (path, enc) in enumerate(streams.items()):
                if env is same_kernels:
                    assert np.array_equal(out[str(k)], enc.y_hat), (env, path)
                else:
                    assert np.abs(out[str(k)] - enc.y_hat).max() < 1e-12, (env, path)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "WEBP", "BMP"])
def test_other_input_formats(codec, tmp_path, fmt):
    from PIL import Image

    p = tmp_path / f"in.{fmt.lower()}"
    Image.fromarray((textured(30, 40) * 255).astype(np.uint8)).save(p, format=fmt)
    dec = codec.decode(codec.encode(load_image(p), 2).data)
    assert dec.picture.rgb.shape == (30, 40, 3)


@pytest.mark.parametrize("size", [(1, 1), (1, 97), (97, 1), (7, 13), (13, 7), (31, 37), (64, 64), (65, 129)])
def test_any_size_round_trips_to_the_same_size(codec, size):
    h, w = size
    dec = codec.decode(codec.encode(Picture.from_array(textured(h, w)), 2).data)
    assert dec.picture.rgb.shape == (h, w, 3)
    assert dec.picture.rgb.min() >= 0 and dec.picture.rgb.max() <= 1


def _roundtrip_file(codec, tmp_path, im, depth=8):
    from PIL import Image

    src = tmp_path / "in.png"
    if isinstance(im, Image.Image):
        im.save(src)
    else:
        import png

        h, w, c = im.shape
        png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16).write(open(src, "wb"), im.reshape(h, -1))
    pic = load_image(src)
    dec = codec.decode(codec.encode(pic, 3).data)
    out = tmp_path / "out.png"
    p = dec.picture
    save_image(out, p.rgb, p.kind, depth, p.alpha)
    return pic, Image.open(out)


def test_grey_input_decodes_to_grey(codec, tmp_path):
    from PIL import Image

    im = Image.fromarray((textured(20, 30)[:, :, 0] * 255).astype(np.uint8), "L")
    pic, out = _roundtrip_file(codec, tmp_path, im)
    assert pic.kind == GRAY and out.mode == "L" and out.size == (30, 20)


def test_alpha_is_kept_losslessly(codec, tmp_path):
    from PIL import Image

    rgb = (textured(21, 17) * 255).astype(np.uint8)
    alpha = np.random.default_rng(0).integers(0, 256, size=(21, 17), dtype=np.uint8)
    im = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    pic, out = _roundtrip_file(codec, tmp_path, im)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[:, :, 3], alpha)
    la = Image.fromarray(np.dstack([rgb[:, :, 0], alpha]), "LA")
    _, out = _roundtrip_file(codec, tmp_path, la)
    assert out.mode == "LA" and np.array_equal(np.asarray(out)[:, :, 1], alpha)


@pytest.mark.parametrize(("greyscale", "bitdepth"), [(False, 8), (True, 8), (False, 16), (True, 16), (True, 4),
                                                        (True, 2), (True, 1)])
def test_a_transparent_key_colour_is_kept_as_alpha(codec, greyscale, bitdepth):
    """A grey or RGB PNG's tRNS chunk (one colour that is transparent; GIFs and old web graphics have it): that
    colour's pixels were coded opaque. Now they are alpha 0 and the rest opaque, after coding too."""
    import io

    import png

    top = (1 << bitdepth) - 1
    planes = 1 if greyscale else 3
    a = np.zeros((12, 10, planes), dtype=np.uint16 if bitdepth == 16 else np.uint8)
    a[:5], a[5:, :, 0] = top, top // 3  # the key colour on top, another below
    key = top if greyscale else (top, top, top)
    buf = io.BytesIO()
    png.Writer(10, 12, greyscale=greyscale, bitdepth=bitdepth, transparent=key).write(buf, a.reshape(12, -1))
    pic = load_image(buf.getvalue())
    opaque = 65535 if bitdepth == 16 else 255
    expected = np.where(np.arange(12)[:, None] < 5, 0, opaque) * np.ones((1, 10), dtype=int)
    assert pic.alpha is not None and np.array_equal(pic.alpha, expected)
    assert pic.kind == (GRAY if greyscale else RGB)
    assert np.array_equal(codec.decode(codec.encode(pic, 3).data).picture.alpha, pic.alpha)


def test_opaque_alpha_costs_no_bytes(codec):
    pic = Picture.from_array(textured(16, 16))
    pic.alpha = np.full((16, 16), 255, np.uint8)
    enc = codec.encode(pic, 3)
    assert stream_info(enc.data).bytes_alpha == 0
    assert (codec.decode(enc.data).picture.alpha == 255).all()


def test_palette_input_decodes_to_palette(codec, tmp_path):
    from PIL import Image

    im = Image.fromarray((textured(12, 12) * 255).astype(np.uint8), "RGB").quantize(16)
    pic, out = _roundtrip_file(codec, tmp_path, im)
    assert pic.kind == PALETTE and out.mode == "P"


def test_16_bit_input_is_read_at_full_precision_and_can_be_written_back(codec, tmp_path):
    arr = (textured(9, 11) * 65535).astype(np.uint16)
    pic, out = _roundtrip_file(codec, tmp_path, arr, depth=16)
    assert pic.depth == 16 and pic.kind == RGB
    assert np.allclose(pic.rgb, arr / 65535.0, atol=1e-6)  # not truncated to 8 bits
    import png

    w, h, rows, info = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    assert info["bitdepth"] == 16 and (w, h) == (11, 9)


def test_16_bit_grey_with_alpha_keeps_grey_depth_and_alpha(codec, tmp_path):
    import png

    la = (np.random.default_rng(3).random((9, 11, 2)) * 65535).astype(np.uint16)
    png.Writer(11, 9, greyscale=True, alpha=True, bitdepth=16).write(open(tmp_path / "la.png", "wb"), la.reshape(9, -1))
    pic = load_image(tmp_path / "la.png")
    assert pic.kind == GRAY and pic.depth == 16 and np.array_equal(pic.alpha, la[:, :, 1])
    p = codec.decode(codec.encode(pic, 3).data).picture
    assert np.array_equal(p.alpha, la[:, :, 1])


def test_16_bit_grey_round_trip(codec, tmp_path):
    from PIL import Image

    a = (textured(20, 30)[:, :, 0] * 65535).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    pic = load_image(tmp_path / "g16.png")
    assert pic.kind == GRAY and pic.depth == 16
    assert np.allclose(pic.rgb[:, :, 0], a / 65535.0, atol=1e-6)
    p = codec.decode(codec.encode(pic, 3).data).picture
    save_image(tmp_path / "o.png", p.rgb, p.kind, 16, p.alpha)
    out = Image.open(tmp_path / "o.png")
    assert out.mode.startswith("I") and out.size == (30, 20)


def test_quality_out_of_range_is_refused(codec):
    pic = Picture.from_array(textured(8, 8))
    for q in (0, 0.5, 6.5, 7):
        with pytest.raises(JcdError, match="out of range"):
            codec.encode(pic, q)


def test_fractional_quality_lies_between_its_neighbours(codec):
    pic = Picture.from_array(textured(128, 128, seed=5))
    sizes = [len(codec.encode(pic, q).data) for q in (2, 2.5, 3)]
    assert sizes[0] <= sizes[1] <= sizes[2]


def test_stream_from_other_weights_is_refused_naming_both(codec, other_weights_file):
    other = Codec(str(other_weights_file), device="cpu")
    data = other.encode(Picture.from_array(textured(8, 8)), 3).data
    with pytest.raises(WeightsError, match="made with weights .* loaded weights are tiny-test"):
        codec.decode(data)


def test_symbol_checksum_catches_a_latent_that_decodes_differently(codec):
    from jcdcodec import bitstream

    enc = codec.encode(Picture.from_array(textured(64, 64)), 4)
    s = bitstream.unpack(enc.data)
    forged = bitstream.pack(bitstream.JcdStream(s.header, s.z, s.y, s.alpha, s.symbol_crc ^ 1))
    with pytest.raises(BitstreamError, match="symbol checksum"):
        codec.decode(forged)


def test_info_reports_real_file_size(codec):
    enc = codec.encode(Picture.from_array(textured(50, 70)), 4)
    i = stream_info(enc.data, n_channels=16)
    assert i.bytes_total == len(enc.data)
    assert i.bpp == pytest.approx(len(enc.data) * 8 / (50 * 70))
    assert i.padded_size == (128, 64) and i.y_shape == (16, 4, 8)


FUZZ_SCRIPT = r"""
import sys, warnings, random
warnings.filterwarnings("ignore")
from jcdcodec import Codec, JcdError
from jcdcodec import bitstream
codec = Codec(sys.argv[1], device="cpu")
good = bitstream.unpack(open(sys.argv[2], "rb").read())
rng = random.Random(0)
outcomes = {"error": 0, "decoded": 0}
for k in range(40):
    kind = k % 4
    n = rng.choice([0, 1, 5, 64, len(good.y), 3 * len(good.y)])
    junk = bytes([0xFF]) * n if kind == 0 else bytes(rng.getrandbits(8) for _ in range(n))
    z = good.z if kind < 2 else junk[: len(good.z)]
    y = junk if kind != 3 else good.y[: len(good.y) // 2]
    data = bitstream.pack(bitstream.JcdStream(good.header, z, y, b"", rng.getrandbits(32)))
    try:
        codec.decode(data)
        outcomes["decoded"] += 1
    except JcdError:
        outcomes["error"] += 1
print(outcomes)
"""


def test_hostile_payloads_with_valid_checksums_never_crash_the_decoder(codec, weights_file, tmp_path):
    """A crafted stream passes the file CRC and reaches rANS, which has no bounds checks: no crash, one error.

    (Over-reads of a few bytes rarely crash, so this does not prove the zero padding necessary; the bound
    in ``padded_for_decoding`` is argued from the decoder's source.)
    """
    p = tmp_path / "good.jcd"
    p.write_bytes(codec.encode(Picture.from_array(textured(64, 96)), 6).data)
    r = subprocess.run([sys.executable, "-c", FUZZ_SCRIPT, str(weights_file), str(p)], capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, f"decoder crashed (exit {r.returncode}): {r.stderr[-1500:]}"
    assert "'error': 40" in r.stdout, r.stdout  # the symbol checksum rejects every forged latent


def test_pillow_plugin_opens_and_saves_jcd(codec, tmp_path):
    from PIL import Image

    from jcdcodec import pillow_plugin

    pillow_plugin.use_codec(codec)
    src = Image.fromarray((textured(40, 52) * 255).astype(np.uint8), "RGB")
    p = tmp_path / "x.jcd"
    src.save(p, quality=3)
    with Image.open(p) as im:
        assert im.format == "JCD" and im.size == (52, 40) and im.mode == "RGB"
        assert im.info["jcd_quality"] == 3
        px = np.asarray(im)
    expected = codec.decode(p.read_bytes()).picture.rgb
    assert np.array_equal(px, np.round(expected * 255).astype(np.uint8))
    grey = Image.fromarray((textured(20, 20)[:, :, 0] * 255).astype(np.uint8), "L")
    grey.save(tmp_path / "g.jcd")
    with Image.open(tmp_path / "g.jcd") as im:
        assert im.mode == "L" and np.asarray(im).shape == (20, 20)


def test_pillow_plugin_reads_within_a_bound_and_saves_what_a_stream_holds(codec, tmp_path, monkeypatch):
    """Image.open read a file that starts like a stream whole (a 20 GB one until memory ran out), where jcd's own
    readers stop at the bound of inputs.py; saving metadata past the 16 MiB a stream holds failed in the encoder,
    where jcd encode and jcdcodec.encode leave the largest kinds out with a warning."""
    import io
    import warnings

    from PIL import Image

    from jcdcodec import bitstream, pillow_plugin
    from jcdcodec.errors import JcdWarning

    big = tmp_path / "big.jcd"
    with open(big, "wb") as f:  # sparse: 2 GiB on paper, nothing on the disk
        f.write(bitstream.MAGIC + b"\x01")
        f.truncate(2 << 30)
    with pytest.raises(JcdError, match="2.0 GiB, larger than any image of at most 64000000 pixels"):
        Image.open(big)
    monkeypatch.setattr(pillow_plugin, "MAX_PIXELS", 1000)  # a pipe-like source is read in chunks up to it
    with pytest.raises(JcdError, match="over 64.0 MiB"):
        Image.open(io.BytesIO(bitstream.MAGIC + b"\x01" + bytes(80 << 20)))
    monkeypatch.undo()
    pillow_plugin.use_codec(codec)
    src = Image.fromarray((textured(24, 32) * 255).astype(np.uint8), "RGB")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        src.save(tmp_path / "m.jcd", quality=2, xmp=os.urandom(17 << 20), exif=b"Exif\x00\x00II*\x00")
    assert any(issubclass(w.category, JcdWarning) and "XMP" in str(w.message) for w in said), said
    with Image.open(tmp_path / "m.jcd") as im:
        assert "xmp" not in im.info and im.size == (32, 24)


@needs_kodak
def test_shipped_weights_code_every_quality_and_denoise():
    """The default weights, as a fresh install has them: q1..q6 give growing rates and cleaner pictures than
    the noisy input (the bundled sample is kodim23 rows 96..351, columns 240..495 with level-3 noise)."""
    from PIL import Image

    from jcdcodec.eval.metrics import psnr, to_uint8

    codec = Codec(device="cpu")
    noisy = load_image(REPO / "samples" / "kodim23-crop-noisy-l3.png")
    clean = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))[96:352, 240:496]
    noisy_psnr = psnr(to_uint8(noisy.rgb), clean)
    sizes = []
    for q in range(1, 7):
        enc = codec.encode(noisy, q)
        out = to_uint8(codec.decode(enc.data).picture.rgb)
        sizes.append(len(enc.data))
        assert psnr(out, clean) > noisy_psnr + 3, f"q{q}: {psnr(out, clean):.2f} dB vs noisy {noisy_psnr:.2f} dB"
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes


@needs_kodak
def test_default_weights_keep_a_clean_photos_brightness():
    """A photo whose noise never went through the reference gamma pair must not come out darker: the
    benchmark model (jcd-n64) darkens a clean Kodak image by ~4.5 of 255 levels, the default must not."""
    from PIL import Image

    from jcdcodec.eval.metrics import to_uint8

    clean = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))[96:352, 240:496]
    codec = Codec(device="cpu")
    for q in (1, 6):
        out = to_uint8(codec.decode(codec.encode(Picture.from_array(clean / 255.0), q).data).picture.rgb)
        shift = out.astype(np.float64).mean() - clean.astype(np.float64).mean()
        assert abs(shift) < 2.0, f"q{q}: mean level moved by {shift:+.2f}"


def test_encode_to_size_picks_the_best_quality_that_fits(codec):
    from jcdcodec.bitstream import QUALITY_SCALE

    pic = Picture.from_array(textured(96, 128, seed=4))
    sizes = {q: len(codec.encode(pic, q).data) for q in (1, 6)}
    target = (sizes[1] + sizes[6]) // 2
    enc = codec.encode_to_size(pic, target)
    assert len(enc.data) <= target and 1 < enc.header.quality < 6
    above = codec.encode(pic, enc.header.quality + 1 / QUALITY_SCALE)
    assert len(above.data) > target  # one 1/32 step more would not fit
    assert codec.decode(enc.data).picture.rgb.shape == (96, 128, 3)
    assert codec.encode_to_size(pic, 10**9).header.quality == 6
    with pytest.raises(JcdError, match="even quality 1 needs"):
        codec.encode_to_size(pic, 10)
