"""Time and peak memory of reading a large 16-bit colour TIFF, in the layouts editors and raw converters write.

    python benchmarks/tiff_read.py                 # 4000x3000: LZW + predictor in strips of 16 rows, one deflate
                                                   # strip (what `jcd decode` writes), LZW in tiles of 256
    python benchmarks/tiff_read.py --size 6000x4000

Each file is read by `jcdcodec.load_image` in a fresh process; the line gives its wall time, its peak resident
memory (VmHWM, the interpreter and jcd's imports included; Linux) and whether every sample came back exactly. The
picture is smooth colour with noise (compresses like a photo); LZW strips and tiles are compressed by Pillow's
libtiff as 16-bit grey and laid out as RGB by tests/test_tiff16.py's writer, which is also what the tests use.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

CHILD = r"""
import json, resource, sys, time
import numpy as np
from jcdcodec.imageio import load_image
t = time.perf_counter()
p = load_image(sys.argv[1])
seconds = time.perf_counter() - t
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
exact = bool(np.array_equal(np.round(p.rgb * 65535).astype(np.uint16), np.load(sys.argv[2]))) if sys.argv[2:] else None
print(json.dumps({"seconds": seconds, "peak": peak, "depth": p.depth, "exact": exact, "size": [p.width, p.height],
                  "child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def measure(path: Path, truth: Path | None = None) -> dict:
    """``load_image`` of ``path`` in a fresh process: seconds, peak bytes (VmHWM; ``child``: the peak of a decoder
    child it started), depth, size, and whether every sample equals the uint16 array saved in ``truth``."""
    cmd = [sys.executable, "-c", CHILD, str(path), *([str(truth)] if truth else [])]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def noisy_picture(width: int, height: int) -> np.ndarray:
    """A smooth colour picture with noise, float (H, W, 3) in [0, 1]: what the read benchmarks write."""
    yy, xx = np.mgrid[0:height, 0:width] / width
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=2) * 0.35 + 0.5
    return np.clip(base + np.random.default_rng(0).normal(0, 0.03, (height, width, 3)), 0, 1)


def child_read(doc: str, default_size: str, filename: str, write, label: str, child: str) -> None:
    """The whole of a benchmark that reads one file through a decoder's child process (raw_read.py, jxl_read.py):
    --size, ``write(path, width, height)`` makes the file, one line with the fresh-process measurement."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default=default_size, help="WIDTHxHEIGHT")
    w, h = (int(v) for v in ap.parse_args().size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        write(path, w, h)
        m = measure(path)
        print(f"{label} {w}x{h} {path.stat().st_size / 1e6:.1f} MB: {m['seconds']:.2f} s, jcd's process "
              f"{m['peak'] / 2**20:.0f} MiB, {child} {m['child'] / 2**20:.0f} MiB, {m['size'][0]}x{m['size'][1]} at "
              f"{m['depth']} bits")  # fmt: skip


def pillow_lzw(raw: bytes, samples_per_row: int) -> bytes:
    """``raw`` (rows of 16-bit samples) LZW-compressed by libtiff, through Pillow's 16-bit grey writer."""
    rows = len(raw) // (2 * samples_per_row)
    buf = io.BytesIO()
    Image.frombytes("I;16", (samples_per_row, rows), raw).save(buf, "TIFF", compression="tiff_lzw",
                                                                 strip_size=1 << 30)  # fmt: skip
    with Image.open(buf) as im:
        start, count = im.tag_v2[273][0], im.tag_v2[279][0]
    return buf.getvalue()[start : start + count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT")
    args = ap.parse_args()
    from test_tiff16 import tiff

    from jcdcodec import tiff16

    w, h = (int(v) for v in args.size.split("x"))
    a = (noisy_picture(w, h) * 65535).astype(np.uint16)
    files = {
        "LZW + predictor, strips of 16 rows": lambda: tiff(
            a, compression=5, predictor=True, rows_per_strip=16,
            strip_bytes=lambda raw: pillow_lzw(raw, w * 3)),  # fmt: skip
        "deflate + predictor, one strip (jcd decode's)": lambda: tiff16.write(a),
        "LZW, tiles of 256": lambda: tiff(a, compression=5, tiles=256,
                                          strip_bytes=lambda raw: pillow_lzw(raw, 256 * 3)),  # fmt: skip
    }
    with tempfile.TemporaryDirectory() as tmp:
        truth = Path(tmp) / "samples.npy"
        np.save(truth, a)
        for label, make in files.items():
            path = Path(tmp) / "image.tif"
            path.write_bytes(make())
            m = measure(path, truth)
            print(f"{label:46s} {w}x{h} {path.stat().st_size / 1e6:6.1f} MB  {m['seconds']:5.2f} s  "
                  f"peak {m['peak'] / 2**20:5.0f} MiB  {m['depth']}-bit  exact {m['exact']}")


if __name__ == "__main__":
    main()
