"""Time and peak memory of reading a large JPEG XL photo (libjxl in jcd's child process, jcdcodec/jxl.py).

    python benchmarks/jxl_read.py                  # 6000x4000, a smooth picture with noise, lossy (quality 90)
    python benchmarks/jxl_read.py --size 8000x6000

`jcdcodec.load_image` runs in a fresh process, which starts the decoder's child; the line gives the wall time,
the peak resident memory of jcd's process (VmHWM) and of the child (its ru_maxrss; Linux).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from tiff_read import measure  # this folder's: the same fresh-process measurement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT")
    args = ap.parse_args()
    import pillow_jxl  # noqa: F401  registers JPEG XL with Pillow, to write the file

    w, h = (int(v) for v in args.size.split("x"))
    yy, xx = np.mgrid[0:h, 0:w] / w
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=2) * 0.35 + 0.5
    noisy = np.clip(base + np.random.default_rng(0).normal(0, 0.03, (h, w, 3)), 0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jxl"
        Image.fromarray((noisy * 255).astype(np.uint8)).save(path, "JXL", quality=90, effort=3)
        del base, noisy, yy, xx
        m = measure(path)
        print(f"JPEG XL {w}x{h} {path.stat().st_size / 1e6:.1f} MB: {m['seconds']:.2f} s, jcd's process "
              f"{m['peak'] / 2**20:.0f} MiB, the decoder's child {m['child'] / 2**20:.0f} MiB, "
              f"{m['size'][0]}x{m['size'][1]} at {m['depth']} bits")


if __name__ == "__main__":
    main()
