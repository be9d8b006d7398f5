"""Time and peak memory of developing a large camera raw file (a DNG written by tests/test_rawphoto.py).

    python benchmarks/raw_read.py                  # 6000x4000, an RGGB mosaic of 12 bits with read noise
    python benchmarks/raw_read.py --size 8000x6000

`jcdcodec.load_image` runs in a fresh process, which starts LibRaw's child (jcdcodec/rawphoto.py); the line gives
the wall time, the peak resident memory of jcd's process (VmHWM) and of the child (its ru_maxrss; Linux).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tiff_read import child_read  # this folder's: the same fresh-process measurement

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    from test_rawphoto import dng

    child_read(__doc__, "6000x4000", "photo.dng", lambda path, w, h: path.write_bytes(dng(h, w)), "DNG",
               "LibRaw's child")  # fmt: skip


if __name__ == "__main__":
    main()
