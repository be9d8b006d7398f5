"""The encoder without PyTorch (engine "onnx"): its streams decode exactly, and code what the torch encoder codes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_jcd, textured

from jcdcodec import Codec, Picture, WeightsError
from jcdcodec.analysis import HyperAnalysis
from jcdcodec.encoder import OnnxCodec, open_encoder
from jcdcodec.errors import JcdError
from jcdcodec.synthesis import available_runtimes
from jcdcodec.weightsfile import analysis_path_for, read_tensors

RUNTIMES = available_runtimes()
needs_runtime = pytest.mark.skipif(not RUNTIMES, reason="no ONNX runtime installed (onnxruntime or openvino)")

NO_TORCH_SCRIPT = r"""
import sys, numpy as np
from jcdcodec import Picture
from jcdcodec.encoder import open_encoder
encoder = open_encoder(sys.argv[1], engine="onnx", precision="fp32")
enc = encoder.encode(Picture.from_array(np.load(sys.argv[4])), float(sys.argv[3]))
open(sys.argv[2], "wb").write(enc.data)
np.save(sys.argv[2] + ".npy", enc.y_hat)
heavy = [m for m in ("torch", "compressai.entropy_models", "compressai.layers", "scipy") if m in sys.modules]
print(encoder.engine, "|", ",".join(heavy))
"""


@needs_runtime
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_onnx_encoder_in_another_process_needs_no_torch_and_its_streams_decode_exactly(weights_file, tmp_path,
                                                                                      runtime):  # fmt: skip
    torch_fp32 = Codec(str(weights_file), device="cpu", precision="fp32")
    pixels = tmp_path / "picture.npy"
    np.save(pixels, textured(90, 150, seed=4))
    for q in (1, 2.75, 6):
        stream = tmp_path / f"s{q}.jcd"
        r = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, str(weights_file), str(stream), str(q), str(pixels)],
                           capture_output=True, text=True, env={**os.environ, "JCD_ONNX_RUNTIME": runtime})  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        engine, heavy = (part.strip() for part in r.stdout.split("|"))
        assert engine == f"onnx ({runtime})"
        assert heavy == "", f"the onnx engine imported {heavy}"
        data = stream.read_bytes()
        decoded = torch_fp32.decode(data)  # another process, the other engine: the encoder's latent exactly
        assert np.array_equal(decoded.y_hat, np.load(str(stream) + ".npy"))
        # The same symbols as the PyTorch encoder but where float rounding tips a value over a half.
        ref = torch_fp32.encode(Picture.from_array(textured(90, 150, seed=4)), q)
        assert decoded.y_hat.shape == ref.y_hat.shape
        assert np.mean(decoded.y_hat == ref.y_hat) > 0.99
        assert abs(len(data) - len(ref.data)) <= 0.02 * len(ref.data) + 4


@needs_runtime
def test_the_analysis_companion_is_a_graph_that_reads_the_weights_file(weights_file):
    import onnx
    from onnx import numpy_helper

    path = analysis_path_for(weights_file)
    bare = onnx.load(str(path), load_external_data=False)
    embedded = sum(len(t.raw_data) for t in bare.graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL)
    assert embedded < 4096  # constants of the trace only: no copy of the parameters
    places = {e.value for t in bare.graph.initializer for e in t.external_data if e.key == "location"}
    assert places == {weights_file.name}
    tensors = read_tensors(weights_file, ("g_a0.", "g_a1.", "d0.", "d1."))
    loaded = onnx.load(str(path))  # the external data, read from the weights file at the recorded offsets
    seen = 0
    for t in loaded.graph.initializer:
        name = t.name.removeprefix("model.").removesuffix("_fp16")
        if name in tensors:
            assert np.array_equal(numpy_helper.to_array(t), tensors[name]), name
            seen += 1
    # Every convolution of the analysis is read from the file (the trace may merge tensors of equal values).
    assert seen >= sum(1 for k in tensors if k.endswith(".weight"))


def test_numpy_h_a_is_the_models_h_a(codec, weights_file):
    state = read_tensors(weights_file, ("h_a.",))
    y = np.random.default_rng(0).normal(0, 3, size=(16, 13, 22)).astype(np.float32)
    with torch.no_grad():
        want = codec.model.h_a(torch.from_numpy(y)[None].float())[0].numpy()
    got = HyperAnalysis(state)(y)
    assert got.shape == want.shape == (16, 4, 6)
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())


@needs_runtime
def test_onnx_encoder_tiles_the_analysis_and_codes_to_a_size(weights_file):
    picture = Picture.from_array(textured(300, 520, seed=5))
    whole = OnnxCodec(weights_file, precision="fp32")
    tiled = OnnxCodec(weights_file, precision="fp32")
    tiled.tile_side = 16
    a, b = whole.encode(picture, 4), tiled.encode(picture, 4)
    assert a.y_hat.shape == b.y_hat.shape and np.mean(a.y_hat == b.y_hat) > 0.99  # the tiles' halo at work
    assert np.array_equal(whole.decode(b.data).y_hat, b.y_hat)
    small = whole.encode_to_size(picture, len(a.data))
    assert len(small.data) <= len(a.data) and small.header.quality >= 4 - 1 / 32


def test_encoder_engine_choices_are_checked(weights_file, tmp_path):
    with pytest.raises(JcdError, match="unknown engine"):
        open_encoder(weights_file, engine="tflite")
    with pytest.raises(JcdError, match="CPU only"):
        open_encoder(weights_file, engine="onnx", device="cuda")
    with pytest.raises(JcdError, match="bf16"):
        open_encoder(weights_file, engine="onnx", precision="bf16")
    assert isinstance(open_encoder(weights_file, engine="torch", device="cpu"), Codec)
    bare = tmp_path / weights_file.name  # weights without their companions
    bare.write_bytes(weights_file.read_bytes())
    assert isinstance(open_encoder(bare, device="cpu"), Codec)  # auto: PyTorch
    if RUNTIMES:
        with pytest.raises(WeightsError, match="no analysis file"):
            open_encoder(bare, engine="onnx")


@needs_runtime
def test_cli_encode_engines_both_make_streams_either_decoder_reads(weights_file, tmp_path):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray((textured(70, 90, seed=6) * 255).round().astype(np.uint8)).save(src)
    outs = {}
    for engine in ("onnx", "torch"):
        stream = tmp_path / f"{engine}.jcd"
        r = run_jcd("encode", str(src), "-o", str(stream), "-q", "3", "--engine", engine, "--weights",
                    str(weights_file), "--device", "cpu")  # fmt: skip
        assert r.returncode == 0, r.stderr
        for dec in ("onnx", "torch"):
            dst = tmp_path / f"{engine}-{dec}.png"
            r = run_jcd("decode", str(stream), "-o", str(dst), "--engine", dec, "--weights", str(weights_file),
                        "--precision", "fp32")  # fmt: skip
            assert r.returncode == 0, r.stderr
            outs[engine, dec] = np.asarray(Image.open(dst)).astype(int)
    for engine in ("onnx", "torch"):
        assert np.abs(outs[engine, "onnx"] - outs[engine, "torch"]).max() <= 1
    r = run_jcd("encode", str(src), "-o", str(tmp_path / "x.jcd"), "--engine", "onnx", "--device", "cuda",
                "--weights", str(weights_file))  # fmt: skip
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "CPU only" in r.stderr
    assert not (tmp_path / "x.jcd").exists()


@needs_runtime
def test_an_analysis_companion_of_other_weights_is_refused(weights_file, other_weights_file, tmp_path):
    import shutil

    for f in (weights_file, other_weights_file):
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(analysis_path_for(other_weights_file), analysis_path_for(tmp_path / weights_file.name))
    shutil.copy(analysis_path_for(other_weights_file), analysis_path_for(tmp_path / other_weights_file.name))
    from jcdcodec.weightsfile import synthesis_path_for

    shutil.copy(synthesis_path_for(weights_file), synthesis_path_for(tmp_path / weights_file.name))
    with pytest.raises(WeightsError, match="belongs to other weights"):
        OnnxCodec(tmp_path / weights_file.name)
    shutil.copy(synthesis_path_for(other_weights_file), synthesis_path_for(tmp_path / other_weights_file.name))
    assert OnnxCodec(tmp_path / other_weights_file.name).engine.startswith("onnx")


@needs_runtime
def test_pillow_plugin_saves_without_torch(weights_file, tmp_path):
    dst = tmp_path / "p.jcd"
    script = ("import sys, numpy as np, jcdcodec, jcdcodec.pillow_plugin as p\n"
              "from PIL import Image\n"
              f"p.use_codec(jcdcodec.open_encoder({str(weights_file)!r}, engine='onnx'))\n"
              "im = Image.fromarray(np.full((40, 60, 3), 120, np.uint8))\n"
              f"im.save({str(dst)!r}, quality=3)\n"
              f"print(Image.open({str(dst)!r}).size, 'torch' in sys.modules)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(60, 40) False"
    assert Codec(str(weights_file), device="cpu").decode(dst.read_bytes()).picture.rgb.shape == (40, 60, 3)


@needs_runtime
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_large_picture_gives_the_networks_memory_back_after_them(weights_file, runtime, monkeypatch):
    import jcdcodec.encoder as encoder

    monkeypatch.setenv("JCD_ONNX_RUNTIME", runtime)
    codec = OnnxCodec(weights_file)
    released = []
    release = codec._g_a.release
    monkeypatch.setattr(codec._g_a, "release", lambda: (released.append(1), release()))
    picture = Picture.from_array(textured(64, 128, seed=2))
    first = codec.encode(picture, 3)
    assert released == []  # small pictures keep it, for the next image of a batch
    monkeypatch.setattr(encoder, "RELEASE_ABOVE", 64 * 64)
    again = codec.encode(picture, 3)
    assert released == [1]
    assert again.data == first.data  # and the network runs as before after it
    assert codec.encode(picture, 3).data == first.data
    # and the decoder gives back g_s's memory after a large picture, decoding the same pixels after it
    import jcdcodec.decoder as decoder
    from jcdcodec.decoder import OnnxDecoder

    dec = OnnxDecoder(weights_file)
    freed = []
    release_g_s = dec._g_s.release
    monkeypatch.setattr(dec._g_s, "release", lambda: (freed.append(1), release_g_s()))
    pixels = dec.decode(first.data).picture.rgb
    assert freed == []
    monkeypatch.setattr(decoder, "RELEASE_ABOVE", 64 * 64)
    assert np.array_equal(dec.decode(first.data).picture.rgb, pixels) and freed == [1]
    assert np.array_equal(dec.decode(first.data).picture.rgb, pixels)
