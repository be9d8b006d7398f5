"""Camera raw files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, ...), developed by LibRaw (rawpy) in a child process.

Why develop them: a raw file is the noisiest form of a photo, straight from the sensor, and what a denoising codec
is for; refusing it sent the user to a raw converter first. Why a child (child.py): LibRaw is C code that parses
hundreds of camera formats, and a damaged file must not take jcd's process down with it.

The development is a plain one, the camera's own choices where the file has them: the camera's white balance,
LibRaw's AHD demosaicking, the camera's colour matrix to sRGB, the sRGB tone curve, LibRaw's automatic
brightness (as cameras expose their JPEGs), the orientation the camera recorded, and no noise reduction (that is
jcd's work). It comes out at 16 bits, so a decoded file keeps what the sensor gave. The camera data of
TIFF-based raw files (DNG, NEF, ARW, CR2, ...) ride along as EXIF (imageio._developed).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from . import child
from .errors import JcdError

if TYPE_CHECKING:
    import numpy as np

#: The child's command line (its arguments follow: the pixel limit, 0 for none, and the file's name).
CHILD = child.command("jcdcodec.rawphoto")
#: Seconds the child may take: a 24 Mpx raw develops in 3-5 s (benchmarks/raw_read.py); a hostile file must not
#: hang a batch.
TIMEOUT = 300.0
DECODER = "the raw developer (LibRaw)"


def available() -> bool:
    """Whether rawpy (LibRaw) is installed, so that raw files can be developed here."""
    from importlib.util import find_spec

    return find_spec("rawpy") is not None  # without importing it (and LibRaw) here: the child does


def develop(data: bytes, name: str, kind: str, max_pixels: int | None) -> np.ndarray:
    """The developed photo of a raw file: 16-bit (H, W, 3) sRGB samples, upright, or (H, W, 1) from a monochrome
    sensor. ``kind`` ("DNG") names the format in messages. Raises JcdError for a file LibRaw cannot develop, or
    one above ``max_pixels``."""
    import numpy as np

    if not available():
        raise JcdError(f"{name}: a camera raw file ({kind}); developing it needs rawpy (pip install rawpy), or "
                       "develop it first (a raw converter's 16-bit TIFF or PNG keeps all its bits)")  # fmt: skip
    head, body = child.run(CHILD, data, name, max_pixels, DECODER, TIMEOUT, kind)
    try:
        width, height, channels = int(head["width"]), int(head["height"]), int(head["channels"])
        if width <= 0 or height <= 0 or (max_pixels and width * height > max_pixels) or channels not in (1, 3):
            raise ValueError("size")
        if len(body) != width * height * channels * 2:
            raise ValueError("length")
    except (ValueError, KeyError, TypeError):
        raise child.malformed(name, DECODER) from None
    return np.frombuffer(body, "<u2").reshape(height, width, channels)  # a read-only view of the child's output


def _child(data: bytes, max_pixels: int, name: str, kind: str) -> tuple[dict, list[bytes]]:
    """The child's work: the size before anything is developed, then the photo at 16 bits; ``kind`` ("DNG")
    names the format in its refusal."""
    import io

    import rawpy

    from .imageio import _check_size

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            turned = sizes.flip in (5, 6)  # a quarter turn: the developed photo is taller than wide, or wider
            width, height = (sizes.iheight, sizes.iwidth) if turned else (sizes.iwidth, sizes.iheight)
            _check_size(name, width, height, max_pixels or None)
            _check_size(name, sizes.raw_width, sizes.raw_height, 4 * max_pixels or None)  # the sensor's buffer
            rgb = raw.postprocess(use_camera_wb=True, output_bps=16, gamma=(2.4, 12.92),
                                  output_color=rawpy.ColorSpace.sRGB)  # fmt: skip
    except (rawpy.LibRawError, ValueError) as e:  # reading or developing
        said = e.args[0] if e.args else ""  # LibRaw's own words come as bytes
        why = (said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)).strip() or type(e).__name__
        raise JcdError(f"{name}: a camera raw file ({kind}) that LibRaw cannot develop ({why}); develop it with a raw "
                       "converter first (its 16-bit TIFF or PNG keeps all its bits)") from None  # fmt: skip
    height, width, channels = rgb.shape  # one channel from a monochrome sensor (or a linear DNG of one)
    return {"width": width, "height": height, "channels": channels}, [rgb.astype("<u2").tobytes()]


if __name__ == "__main__":
    sys.exit(child.serve(_child))
