"""Whole-process ``jcd decode`` of a large photo with each engine: time, CPU, peak memory, and how far apart.

Large photos decode in tiles (jcdcodec.tiling) with either engine; this measures both as a user runs them:

    .venv/bin/python benchmarks/large_decode.py                  # kodim01 upscaled to 4000x3000, q3
    .venv/bin/python benchmarks/large_decode.py --size 6000x4000 --quality 4

The picture is a Kodak photo (a synthetic texture without ../shared) resized with Pillow's bicubic filter and
encoded once with the default weights; each engine's decode is a fresh process (``python -m jcdcodec decode``).
Prints wall and CPU seconds (user + system, all threads), peak RSS, and the PSNR between the engines' PNGs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak" / "kodim01.png"


def run(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one process, which must succeed."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.read().decode()[-500:] if p.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT")
    ap.add_argument("--quality", default="3")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    jcd = [sys.executable, "-m", "jcdcodec"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if KODAK.is_file():
            src = Image.open(KODAK).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
        else:
            rng = np.random.default_rng(0)
            src = Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)).resize((w, h))
        src.save(work / "big.png", compress_level=1)
        stream = work / "big.jcd"
        t0 = time.perf_counter()
        subprocess.run([*jcd, "encode", str(work / "big.png"), "-q", a.quality, "-o", str(stream), "--quiet"],
                       check=True)  # fmt: skip
        bpp = stream.stat().st_size * 8 / (w * h)
        took = time.perf_counter() - t0
        print(f"{w}x{h} ({w * h / 1e6:.1f} Mpx), q{a.quality}: {bpp:.3f} bpp, encoded in {took:.1f} s; "
              f"{os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'engine':8s} {'wall s':>8s} {'CPU s':>8s} {'RSS MB':>8s}")
        outs = {}
        for engine in ("onnx", "torch"):
            outs[engine] = work / f"{engine}.png"
            wall, cpu, rss = run([*jcd, "decode", str(stream), "-o", str(outs[engine]), "--engine", engine, "--quiet"])
            print(f"{engine:8s} {wall:8.2f} {cpu:8.2f} {rss:8.0f}")
        x, y = (np.asarray(Image.open(outs[e]), dtype=np.float64) for e in ("onnx", "torch"))
        mse = float(np.mean((x - y) ** 2))
        largest = int(np.abs(x - y).max())
        print(f"onnx vs torch output: {10 * np.log10(255**2 / mse) if mse else float('inf'):.1f} dB apart, "
              f"largest difference {largest} levels")


if __name__ == "__main__":
    main()
