"""The decoder without PyTorch (engine "onnx"): same latent as the encoder, pixels as the torch engine."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_jcd, textured

from jcdcodec import Codec, Picture, WeightsError, open_decoder
from jcdcodec.decoder import OnnxDecoder
from jcdcodec.errors import JcdError
from jcdcodec.synthesis import available_runtimes
from jcdcodec.weightsfile import analysis_path_for, synthesis_path_for

RUNTIMES = available_runtimes()
needs_runtime = pytest.mark.skipif(not RUNTIMES, reason="no ONNX runtime installed (onnxruntime or openvino)")

NO_TORCH_SCRIPT = r"""
import sys, numpy as np
from jcdcodec import open_decoder
decoder = open_decoder(sys.argv[1], engine="onnx", precision="fp32")
dec = decoder.decode(open(sys.argv[2], "rb").read())
np.savez(sys.argv[3], y_hat=dec.y_hat, rgb=dec.picture.rgb)
heavy = [m for m in ("torch", "compressai.entropy_models", "compressai.layers", "scipy") if m in sys.modules]
print(decoder.engine, "|", ",".join(heavy))
"""


@needs_runtime
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_onnx_engine_in_another_process_needs_no_torch_and_reproduces_the_latent(codec, weights_file, tmp_path,
                                                                                 runtime, monkeypatch):  # fmt: skip
    import os

    torch_fp32 = Codec(str(weights_file), device="cpu", precision="fp32")
    for q in (1, 2.75, 6):
        enc = codec.encode(Picture.from_array(textured(90, 150, seed=4)), q)
        stream = tmp_path / "s.jcd"
        stream.write_bytes(enc.data)
        out = tmp_path / "o.npz"
        r = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, str(weights_file), str(stream), str(out)],
                           capture_output=True, text=True, env={**os.environ, "JCD_ONNX_RUNTIME": runtime})  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        engine, heavy = (part.strip() for part in r.stdout.split("|"))
        assert engine == f"onnx ({runtime})"
        assert heavy == "", f"the onnx engine imported {heavy}"
        with np.load(out) as f:
            assert np.array_equal(f["y_hat"], enc.y_hat)
            ref = torch_fp32.decode(enc.data).picture.rgb
            assert f["rgb"].shape == ref.shape
            assert np.abs(f["rgb"] - ref).max() < 1e-4  # float rounding of g_s only


@needs_runtime
def test_onnx_tiles_match_the_whole_image(codec, weights_file):
    enc = codec.encode(Picture.from_array(textured(300, 520, seed=5)), 4)
    whole = OnnxDecoder(weights_file, precision="fp32").decode(enc.data)
    tiled = OnnxDecoder(weights_file, precision="fp32")
    tiled.tile_side = 16
    out = tiled.decode(enc.data)
    assert np.array_equal(out.y_hat, whole.y_hat)
    assert np.abs(out.picture.rgb - whole.picture.rgb).max() < 1e-5


def test_streams_of_jcd_0_1_0_decode_to_the_same_latent():
    """Streams written by the release before the numpy entropy path (PyTorch float64) decode unchanged.

    Every symbol is the same (the stream's symbol checksum is verified on decode); the latent is
    symbol + mean, and the means of two float64 implementations differ by ~1e-14 (measured on all 24
    Kodak images x 4 qualities x both models: at most 4.6e-14), so it is compared rounded to float32.
    """
    folder = REPO / "tests" / "data" / "streams-0.1.0"
    expected = json.loads((folder / "latents.json").read_text())
    decoders = {}
    for name, digest in expected.items():
        model = name.rsplit("-q", 1)[0]
        if model not in decoders:
            decoders[model] = open_decoder(model, device="cpu")
        dec = decoders[model].decode((folder / name).read_bytes())
        assert hashlib.sha256(dec.y_hat.astype("<f4").tobytes()).hexdigest() == digest, name
        assert dec.picture.rgb.shape == (80, 120, 3)


@pytest.fixture
def isolated(weights_file, other_weights_file, tmp_path):
    """Copies of the tiny weights (with their ONNX companions) in a models folder of their own."""
    folder = tmp_path / "models"
    folder.mkdir()
    for f in (weights_file, other_weights_file):
        shutil.copy(f, folder / f.name)
        for companion in (synthesis_path_for(f), analysis_path_for(f)):
            if companion.is_file():
                shutil.copy(companion, folder / companion.name)
    return folder


@needs_runtime
def test_export_writes_the_companion_and_the_manifest_checks_it(isolated, monkeypatch):
    from jcdcodec.manifest import sha256_file

    weights = isolated / "tiny.safetensors"
    companion = synthesis_path_for(weights)
    companion.unlink()
    digest = sha256_file(weights)
    manifest = {"default": "tiny-test", "models": {"tiny-test": {"name": "tiny-test", "file": weights.name,
                                                                 "sha256": digest}}}  # fmt: skip
    (isolated / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("JCD_MODELS", str(isolated))
    assert open_decoder(engine="auto", device="cpu").engine == "torch"  # no companion yet: PyTorch
    with pytest.raises(WeightsError, match="no synthesis file"):
        open_decoder(engine="onnx")
    analysis = analysis_path_for(weights)
    analysis.unlink()
    r = run_jcd("export-synthesis", "tiny-test", env={"JCD_MODELS": str(isolated)})
    assert r.returncode == 0, r.stderr
    assert companion.is_file() and analysis.is_file()
    entry = json.loads((isolated / "manifest.json").read_text())["models"]["tiny-test"]
    assert entry["synthesis"] == {"file": companion.name, "sha256": sha256_file(companion)}
    assert entry["analysis"] == {"file": analysis.name, "sha256": sha256_file(analysis)}
    assert open_decoder(device="cpu").engine.startswith("onnx")
    data = bytearray(companion.read_bytes())
    data[-1] ^= 1
    companion.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        open_decoder(engine="onnx")


@needs_runtime
def test_a_companion_of_other_weights_is_refused(isolated):
    own = synthesis_path_for(isolated / "tiny.safetensors")
    shutil.copy(synthesis_path_for(isolated / "other.safetensors"), own)
    with pytest.raises(WeightsError, match="belongs to other weights"):
        OnnxDecoder(isolated / "tiny.safetensors")


def test_engine_choices_are_checked(weights_file):
    with pytest.raises(JcdError, match="unknown engine"):
        open_decoder(weights_file, engine="tflite")
    with pytest.raises(JcdError, match="CPU only"):
        open_decoder(weights_file, engine="onnx", device="cuda")
    with pytest.raises(JcdError, match="bf16"):
        open_decoder(weights_file, engine="onnx", precision="bf16")
    assert open_decoder(weights_file, engine="torch", device="cpu").engine == "torch"


@needs_runtime
def test_cli_decode_engines_agree(codec, weights_file, tmp_path):
    src = tmp_path / "s.jcd"
    src.write_bytes(codec.encode(Picture.from_array(textured(70, 90, seed=6)), 3).data)
    outs = {}
    for engine in ("onnx", "torch"):
        dst = tmp_path / f"{engine}.png"
        r = run_jcd("decode", str(src), "-o", str(dst), "--engine", engine, "--precision", "fp32", "--weights",
                    str(weights_file), "--device", "cpu")  # fmt: skip
        assert r.returncode == 0, r.stderr
        from PIL import Image

        outs[engine] = np.asarray(Image.open(dst)).astype(int)
    assert np.abs(outs["onnx"] - outs["torch"]).max() <= 1  # 8-bit rounding of float-rounding differences
    r = run_jcd("decode", str(src), "-o", str(tmp_path / "x.png"), "--engine", "onnx", "--device", "cuda")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "CPU only" in r.stderr


@needs_runtime
def test_pillow_plugin_opens_without_torch(codec, weights_file, tmp_path):
    src = tmp_path / "s.jcd"
    src.write_bytes(codec.encode(Picture.from_array(textured(40, 60, seed=7)), 2).data)
    script = ("import sys, jcdcodec, jcdcodec.pillow_plugin as p\n"
              "from PIL import Image\n"
              f"p.use_codec(jcdcodec.open_decoder({str(weights_file)!r}, engine='onnx'))\n"
              f"im = Image.open({str(src)!r}); im.load()\n"
              "print(im.size, 'torch' in sys.modules)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(60, 40) False"


BLOCKED_TORCH = r"""
import sys
for name in ("torch", "torchvision"):
    sys.modules[name] = None  # as in a decode-only install: importing them fails
from jcdcodec.cli import main
sys.argv = ["jcd", *sys.argv[1:]]
main()
"""


@needs_runtime
def test_an_install_without_torch_codes_and_says_what_else_needs_torch(codec, weights_file, tmp_path):
    src = tmp_path / "s.jcd"
    src.write_bytes(codec.encode(Picture.from_array(textured(40, 60, seed=8)), 2).data)

    def jcd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", BLOCKED_TORCH, *args], capture_output=True, text=True)

    r = jcd("decode", str(src), "-o", str(tmp_path / "out.png"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.png").is_file()
    assert jcd("info", str(src)).returncode == 0
    r = jcd("encode", str(tmp_path / "out.png"), "-o", str(tmp_path / "again.jcd"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr  # the analysis runs from its ONNX companion
    assert (tmp_path / "again.jcd").is_file()
    r = jcd("encode", str(tmp_path / "out.png"), "-o", str(tmp_path / "t.jcd"), "--weights", str(weights_file),
            "--engine", "torch")  # fmt: skip
    assert r.returncode == 1 and not (tmp_path / "t.jcd").exists()
    assert r.stderr.strip().count("\n") == 0 and "needs PyTorch" in r.stderr


def test_encoding_does_not_load_compressais_entropy_models(weights_file, tmp_path):
    """The codec codes with jcdcodec.entropy: CompressAI's entropy models (and scipy.stats) stay unloaded."""
    script = ("import sys, numpy as np\n"
              "from jcdcodec import Codec, Picture\n"
              f"c = Codec({str(weights_file)!r}, device='cpu')\n"
              "data = c.encode(Picture.from_array(np.full((40, 50, 3), 0.5, np.float32)), 3).data\n"
              "c.decode(data)\n"
              "print(sorted(m for m in ('scipy', 'compressai.entropy_models') if m in sys.modules))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


@needs_runtime
def test_streams_of_another_shipped_model_follow_the_engine_asked_for(isolated, monkeypatch):
    from jcdcodec.manifest import sha256_file

    entries = {}
    for name, file in (("tiny-test", "tiny.safetensors"), ("other-test", "other.safetensors")):
        entries[name] = {"name": name, "file": file, "sha256": sha256_file(isolated / file)}
    synthesis_path_for(isolated / "other.safetensors").unlink()  # the other model decodes with PyTorch only
    (isolated / "manifest.json").write_text(json.dumps({"default": "tiny-test", "models": entries}))
    monkeypatch.setenv("JCD_MODELS", str(isolated))
    data = Codec("other-test", device="cpu").encode(Picture.from_array(textured(40, 50, seed=9)), 3).data
    auto = open_decoder(device="cpu")
    assert auto.engine.startswith("onnx")
    assert auto.decode(data).picture.rgb.shape == (40, 50, 3)  # via PyTorch for that stream
    with pytest.raises(WeightsError, match="other-test have no synthesis file"):
        open_decoder(engine="onnx").decode(data)
