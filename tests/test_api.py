"""The one-call Python API, pipes, jcd compare, completion: jcd as scripts and shells use it."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import run_jcd, textured
from PIL import Image

import jcdcodec
from jcdcodec import JcdError, StreamInfo


def u8(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (textured(h, w, seed) * 255).astype(np.uint8)


@pytest.fixture()
def w(weights_file):
    return {"weights": str(weights_file), "device": "cpu"}


def test_encode_takes_paths_bytes_pillow_images_and_arrays(tmp_path, w):
    a = u8(40, 56)
    Image.fromarray(a).save(tmp_path / "a.png")
    from_path = jcdcodec.encode(tmp_path / "a.png", 3, **w)
    assert from_path == jcdcodec.encode(str(tmp_path / "a.png"), 3, **w)
    assert from_path == jcdcodec.encode((tmp_path / "a.png").read_bytes(), 3, **w)
    assert from_path == jcdcodec.encode(Image.open(tmp_path / "a.png"), 3, **w)
    assert from_path == jcdcodec.encode(a, 3, **w)
    assert jcdcodec.encode(a.astype(np.float32) / 255, 3, **w) == from_path
    grey = jcdcodec.encode(a[:, :, 0], 3, **w)
    assert jcdcodec.info(grey).colour == "grey"
    with pytest.raises(JcdError, match="shape"):
        jcdcodec.encode(np.zeros((4, 4, 2), np.uint8), **w)
    with pytest.raises(JcdError, match="cannot code a list"):
        jcdcodec.encode([1, 2, 3], **w)
    assert jcdcodec.encode(memoryview((tmp_path / "a.png").read_bytes()), 3, **w) == from_path


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0), (0, 0, 4)])
@pytest.mark.parametrize("chosen", [True, False])
def test_an_empty_array_is_one_error(w, shape, chosen):
    """An empty array is refused by name, by the model the user named and by the default's choice alike: it
    reached the network and raised the runtime's own error (OpenVINO's "Convolution node ... Check 'dim_s...")."""
    with pytest.raises(JcdError, match=r"an empty image, nothing to code"):
        jcdcodec.encode(np.zeros(shape, np.uint8), 2, **(w if chosen else {"device": "cpu"}))


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_settings_of_the_typed_api_are_checked_by_name(tmp_path, w, engine):
    """A negative thread count reached OpenVINO, whose refusal read as damaged weights ("not a readable synthesis
    file"); a grey (H, W) array given to save_image raised Pillow's "Invalid mode for data type"."""
    for opener in (jcdcodec.open_encoder, jcdcodec.open_decoder):
        for bad in (-1, 1.5, "2", True):
            with pytest.raises(JcdError, match="threads must be a whole number, 0 .* or more"):
                opener(w["weights"], "cpu", engine, threads=bad)
    assert jcdcodec.open_decoder(w["weights"], "cpu", engine, threads=np.int64(1)) is not None
    with pytest.raises(JcdError, match=r"expected a float \(H, W, 3\) array, got shape \(4, 4\)"):
        jcdcodec.save_image(tmp_path / "g.png", np.zeros((4, 4), np.float32))
    assert not (tmp_path / "g.png").exists()


def test_float_alpha_that_is_not_a_number_is_transparent(w):
    rgba = np.dstack([u8(16, 24) / 255.0, np.full((16, 24), np.nan)])
    rgba[:8, :, 3] = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NaN cast to uint8 warned, and gave whatever the CPU gives
        im = jcdcodec.decode(jcdcodec.encode(rgba, 2, **w), **w)
    a = np.asarray(im)[:, :, 3]
    assert (a[:8] == 128).all() and (a[8:] == 0).all()


def test_decode_gives_a_pillow_image_in_the_input_mode(tmp_path, w):
    rgba = np.dstack([u8(30, 20), np.full((30, 20), 200, np.uint8)])
    im = jcdcodec.decode(jcdcodec.encode(rgba, 2, **w), **w)
    assert isinstance(im, Image.Image) and im.mode == "RGBA" and im.size == (20, 30)
    assert (np.asarray(im)[:, :, 3] == 200).all()
    grey = jcdcodec.decode(jcdcodec.encode(u8(30, 20)[:, :, 1], 2, **w), **w)
    assert grey.mode == "L"
    (tmp_path / "x.jcd").write_bytes(jcdcodec.encode(u8(30, 20), 2, **w))
    assert jcdcodec.decode(tmp_path / "x.jcd", **w).size == (20, 30)
    view = memoryview((tmp_path / "x.jcd").read_bytes())  # a buffer, as a file mapped with mmap gives
    assert jcdcodec.decode(view, **w).size == (20, 30) and jcdcodec.info(view).width == 20


def test_info_is_a_dataclass_read_from_the_header(w):
    data = jcdcodec.encode(u8(33, 47), 4.5, **w)
    i = jcdcodec.info(data)
    assert isinstance(i, StreamInfo) and (i.width, i.height, i.quality) == (47, 33, 4.5)
    assert i.bytes_total == len(data) and i.bpp == pytest.approx(len(data) * 8 / (47 * 33))
    assert dataclasses.asdict(i)["padded_size"] == (64, 64)


def test_the_weights_load_once_per_weights_and_device(w):
    assert jcdcodec.codec_for(w["weights"], "cpu") is jcdcodec.codec_for(w["weights"], "cpu")


def test_pipes_from_stdin_to_stdout(tmp_path, weights_file):
    src = tmp_path / "a.png"
    Image.fromarray(u8(40, 64)).save(src)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "jcdcodec"]
    enc = subprocess.run([*cmd, "encode", "-", "-q", "2", "-o", "-", "--weights", str(weights_file)],
                         input=src.read_bytes(), capture_output=True, env=env)  # fmt: skip
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout == jcdcodec.encode(src, 2, weights=weights_file, device="cpu")  # only data on stdout
    assert b"bpp" in enc.stderr  # the status line went to stderr
    dec = subprocess.run([*cmd, "decode", "-", "-o", "-", "--weights", str(weights_file)], input=enc.stdout,
                         capture_output=True, env=env)  # fmt: skip
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    expected = np.asarray(jcdcodec.decode(enc.stdout, weights=weights_file, device="cpu"))
    from io import BytesIO

    assert np.array_equal(np.asarray(Image.open(BytesIO(dec.stdout))), expected)
    info = subprocess.run([*cmd, "info", "-", "--json"], input=enc.stdout, capture_output=True, env=env)
    assert json.loads(info.stdout)["width"] == 64
    r = subprocess.run([*cmd, "encode", "-", "--weights", str(weights_file)], input=b"", capture_output=True,
                       env=env)  # fmt: skip
    assert r.returncode == 1 and b"give -o" in r.stderr


def test_compare_scores_and_draws(tmp_path, weights_file):
    clean = u8(200, 240)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(clean).save(tmp_path / "clean.png")
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    (tmp_path / "n.jcd").write_bytes(jcdcodec.encode(noisy, 3, weights=weights_file, device="cpu"))
    r = run_jcd("compare", str(tmp_path / "clean.png"), str(tmp_path / "noisy.png"), str(tmp_path / "n.jcd"),
                "--json", "--weights", str(weights_file), "--visual", str(tmp_path / "side.png"), "--crop", "64",
                "--zoom", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    mse = np.mean((noisy.astype(float) - clean) ** 2)
    assert rows[0]["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-6) and rows[0]["bpp"] is None
    assert 0 < rows[0]["ms_ssim"] < 1 and rows[1]["bpp"] > 0
    side = Image.open(tmp_path / "side.png")
    assert side.width == 3 * 128 + 2 * 8 and side.height > 128
    r = run_jcd("compare", str(tmp_path / "clean.png"), str(tmp_path / "noisy.png"), "--crop", "500",
                "--visual", str(tmp_path / "x.png"))  # fmt: skip
    assert r.returncode == 1 and "does not fit" in r.stderr
    Image.fromarray(clean[:100]).save(tmp_path / "small.png")
    r = run_jcd("compare", str(tmp_path / "clean.png"), str(tmp_path / "small.png"))
    assert r.returncode == 1 and "differs from the reference" in r.stderr


def test_compare_says_which_scores_are_not_defined(tmp_path):
    """A picture under 161 pixels a side has no MS-SSIM (5 scales do not fit) and an identical one no finite PSNR:
    the text said "MS-SSIM nan", and --json wrote NaN and Infinity, which JSON does not have (JavaScript's
    JSON.parse and jq refuse them). Now words, and null."""
    clean = u8(100, 120)
    Image.fromarray(clean).save(tmp_path / "clean.png")
    Image.fromarray(np.clip(clean.astype(int) + 9, 0, 255).astype(np.uint8)).save(tmp_path / "brighter.png")
    args = ("compare", str(tmp_path / "clean.png"), str(tmp_path / "brighter.png"), str(tmp_path / "clean.png"))
    r = run_jcd(*args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("brighter.png: PSNR ") and lines[0].endswith(" dB  MS-SSIM n/a (needs 161 pixels a "
                                                                            "side)")  # fmt: skip
    assert lines[1] == "clean.png: PSNR inf (identical)  MS-SSIM n/a (needs 161 pixels a side)"
    r = run_jcd(*args, "--json")
    assert r.returncode == 0 and "NaN" not in r.stdout and "Infinity" not in r.stdout, r.stdout
    rows = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert rows[0]["psnr"] > 20 and rows[0]["ms_ssim"] is None and rows[1]["psnr"] is None


def test_python_m_and_shell_completion():
    r = run_jcd("--help")
    assert r.returncode == 0 and "Usage: jcd " in r.stdout
    r = run_jcd(env={"_JCD_COMPLETE": "bash_source"})
    assert r.returncode == 0 and "complete" in r.stdout and "_JCD_COMPLETE" in r.stdout
    r = run_jcd(env={"_JCD_COMPLETE": "bash_complete", "COMP_WORDS": "jcd enc", "COMP_CWORD": "1"})
    assert "encode" in r.stdout
