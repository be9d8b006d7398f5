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
from tiff_read import child_line, measure, noisy_picture  # this folder's: the same measurement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT")
    args = ap.parse_args()
    import pillow_jxl  # noqa: F401  registers JPEG XL with Pillow, to write the file

    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jxl"
        Image.fromarray((noisy_picture(w, h) * 255).astype(np.uint8)).save(path, "JXL", quality=90, effort=3)
        print(child_line(f"JPEG XL {w}x{h}", path, measure(path), "the decoder's child"))


if __name__ == "__main__":
    main()
