"""Shared fixtures: a small random-initialised model, so tests stay fast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"
TRAIN = SHARED / "data" / "train"

needs_kodak = pytest.mark.skipif(not KODAK.is_dir(), reason=f"{KODAK} not present (shared data sets absent)")
needs_train = pytest.mark.skipif(not TRAIN.is_dir(), reason=f"{TRAIN} not present (shared data sets absent)")


@pytest.fixture(scope="session", autouse=True)
def _private_user_cache(tmp_path_factory):
    """Compiled networks go to a cache of the test session (its processes too), never the user's."""
    before = os.environ.get("JCD_CACHE_DIR")
    os.environ["JCD_CACHE_DIR"] = str(tmp_path_factory.mktemp("usercache"))
    yield
    if before is None:
        os.environ.pop("JCD_CACHE_DIR", None)
    else:
        os.environ["JCD_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    from jcdcodec.nn.model import JointModel, ModelConfig
    from jcdcodec.weights import save_weights

    torch.manual_seed(0)
    model = JointModel(ModelConfig(N=16))
    # Random init codes almost nothing; widen the latent so streams carry real symbols.
    with torch.no_grad():
        model.g_a1[-1].weight.mul_(30)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(model, path, {"name": "tiny-test", "trained": "false"})
    return path


@pytest.fixture(scope="session")
def other_weights_file(tmp_path_factory) -> Path:
    from jcdcodec.nn.model import JointModel, ModelConfig
    from jcdcodec.weights import save_weights

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w2") / "other.safetensors"
    save_weights(JointModel(ModelConfig(N=16)), path, {"name": "other-test", "trained": "false"})
    return path


@pytest.fixture(scope="session")
def codec(weights_file):
    from jcdcodec import Codec

    return Codec(str(weights_file), device="cpu")


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-noise test picture, float RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w, 1)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=2) * 0.35 + 0.5
    return np.clip(base + rng.normal(0, 0.08, size=(h, w, 3)), 0, 1).astype(np.float32)


def run_jcd(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONWARNINGS"] = "ignore"
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "jcdcodec", *args], capture_output=True, text=True, env=e,
                          cwd=cwd)  # fmt: skip


@pytest.fixture()
def two_models(tmp_path, monkeypatch, weights_file, other_weights_file):
    """A models folder with a default ('tiny-test') and a second model ('other-test', sRGB-trained)."""
    from jcdcodec.manifest import sha256_file

    models = tmp_path / "models"
    models.mkdir()
    entries = {}
    for name, src, gamma in (("tiny-test", weights_file, "reference"), ("other-test", other_weights_file, "srgb")):
        shutil.copy(src, models / src.name)
        entries[name] = {"name": name, "file": src.name, "sha256": sha256_file(src), "steps": 0,
                         "config": {"N": 16, "qualities": [1, 2, 3, 4, 5, 6]},
                         "train_config": {"gamma": gamma}}  # fmt: skip
    (models / "manifest.json").write_text(json.dumps({"default": "tiny-test", "models": entries}))
    monkeypatch.setenv("JCD_MODELS", str(models))
    return models


def rgb_profile(primaries: tuple[tuple[float, float], ...] = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),
                gamma: float = 2.2, white: tuple[float, float] = (0.3127, 0.3290)) -> bytes:
    """A minimal ICC v2 matrix/TRC RGB profile (default: Display P3's primaries and D65 white, gamma 2.2),
    for tests of a picture whose numbers are not sRGB. Colorants are D65-relative, not Bradford-adapted to
    D50 as a real profile's are: littlecms reads it, and it renders far from sRGB, which is what tests need."""
    import struct

    def xyz(x: float, y: float, lum: float = 1.0) -> tuple[float, float, float]:
        return x / y * lum, lum, (1 - x - y) / y * lum

    p = np.array([xyz(*c) for c in primaries]).T
    s = np.linalg.solve(p, np.array(xyz(*white)))
    cols = (p * s).T  # the XYZ of full red, green, blue
    xyz_tag = lambda v: b"XYZ \0\0\0\0" + b"".join(_s15(c) for c in v)  # noqa: E731
    curv = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    desc_text = b"jcd test RGB\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(desc_text)) + desc_text + b"\0" * 12 + b"\0" * 67
    tags = [(b"desc", desc), (b"wtpt", xyz_tag(D50)), (b"rXYZ", xyz_tag(cols[0])),
            (b"gXYZ", xyz_tag(cols[1])), (b"bXYZ", xyz_tag(cols[2])), (b"rTRC", curv), (b"gTRC", curv),
            (b"bTRC", curv), (b"cprt", b"text\0\0\0\0public domain\0")]  # fmt: skip
    return _icc(b"mntr", b"RGB ", b"XYZ ", tags)


D50 = (0.9642, 1.0, 0.8249)


def _s15(v: float) -> bytes:
    import struct

    return struct.pack(">i", round(v * 65536))


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 profile: header, tag table, tags (each padded to 4 bytes)."""
    import struct

    table, body, offset = b"", b"", 128 + 4 + 12 * len(tags)
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, device_class, space, pcs) + b"\0" * 12
    header += b"acsp" + b"\0" * 24 + b"".join(_s15(c) for c in D50)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def cmyk_profile() -> bytes:
    """A minimal ICC v2 CMYK printer profile whose cyan ink prints blue: (1-c)(1-k), (1-c)(1-m)(1-k),
    (1-y)(1-k) in sRGB at the 16 corners of a 2-point lut8 (A2B0, Lab PCS). A plain CMYK -> RGB conversion
    turns pure cyan into (0, 255, 255); through this profile it is (0, 0, 255): tests see which was used."""
    import itertools
    import struct

    m = np.array([[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169],
                  [0.0139322, 0.0971045, 0.7141733]])  # linear sRGB -> XYZ, adapted to D50 (Bradford)  # fmt: skip

    def lab8(rgb: np.ndarray) -> bytes:
        f = lambda t: np.cbrt(t) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29  # noqa: E731
        x, y, z = (f(v / w) for v, w in zip(m @ rgb, D50, strict=True))  # linear rgb in: the corners are 0 or 1
        lab = (116 * y - 16, 500 * (x - y), 200 * (y - z))
        return bytes([round(lab[0] * 255 / 100), round(lab[1]) + 128, round(lab[2]) + 128])

    clut = b""
    for c, mg, y, k in itertools.product((0, 1), repeat=4):  # the first input channel varies slowest
        clut += lab8(np.array([(1 - c) * (1 - k), (1 - c) * (1 - mg) * (1 - k), (1 - y) * (1 - k)], float))
    ramp = bytes(range(256))
    lut = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut += ramp * 4 + clut + ramp * 3
    desc_text = b"jcd test CMYK\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(desc_text)) + desc_text + b"\0" * 12 + b"\0" * 67
    wtpt = b"XYZ \0\0\0\0" + b"".join(_s15(c) for c in D50)
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"A2B0", lut), (b"cprt", b"text\0\0\0\0public domain\0")]
    return _icc(b"prtr", b"CMYK", b"Lab ", tags)
