"""Time and peak memory of developing a large camera raw file (a DNG written by tests/test_rawphoto.py).

    python benchmarks/raw_read.py                  # 6000x4000, an RGGB mosaic of 12 bits with read noise
    python benchmarks/raw_read.py --size 8000x6000

`jcdcodec.load_image` runs in a fresh process, which starts LibRaw's child (jcdcodec/rawphoto.py); the line gives
the wall time, the peak resident memory of jcd's process (VmHWM) and of the child (its ru_maxrss; Linux).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tiff_read import child_line, measure  # this folder's: the same fresh-process measurement

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT (even)")
    args = ap.parse_args()
    from test_rawphoto import dng

    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.dng"
        path.write_bytes(dng(h, w))
        print(child_line(f"DNG {w}x{h}", path, measure(path), "LibRaw's child"))


if __name__ == "__main__":
    main()
