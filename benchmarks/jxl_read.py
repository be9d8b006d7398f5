"""Time and peak memory of reading a large JPEG XL photo (libjxl in jcd's child process, jcdcodec/jxl.py).

    python benchmarks/jxl_read.py                  # 6000x4000, a smooth picture with noise, lossy (quality 90)
    python benchmarks/jxl_read.py --size 8000x6000

`jcdcodec.load_image` runs in a fresh process, which starts the decoder's child; the line gives the wall time,
the peak resident memory of jcd's process (VmHWM) and of the child (its ru_maxrss; Linux).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from tiff_read import child_read, noisy_picture  # this folder's: the same fresh-process measurement


def main() -> None:
    import pillow_jxl  # noqa: F401  registers JPEG XL with Pillow, to write the file

    def write(path, w, h):
        Image.fromarray((noisy_picture(w, h) * 255).astype(np.uint8)).save(path, "JXL", quality=90, effort=3)

    child_read(__doc__, "6000x4000", "photo.jxl", write, "JPEG XL", "the decoder's child")


if __name__ == "__main__":
    main()
