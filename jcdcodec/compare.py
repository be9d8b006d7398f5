"""Score pictures against a reference (PSNR, MS-SSIM) and draw them side by side.

What ``jcd compare`` does, for users checking a result and for figures in docs and issues.
Scores are computed on 8-bit values, as the published tables and ``jcd eval`` do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import JcdError
from .eval.metrics import ms_ssim, psnr, to_uint8


@dataclass(frozen=True)
class Score:
    label: str
    psnr: float  # dB against the reference; inf when identical
    ms_ssim: float  # NaN for images under 161 pixels on a side (5 scales do not fit)
    bpp: float | None = None  # for decoded .jcd inputs: the stream's rate


def score(reference: np.ndarray, image: np.ndarray, label: str, bpp: float | None = None) -> Score:
    """``reference`` and ``image``: float RGB (H, W, 3) in [0, 1] of the same size."""
    if reference.shape != image.shape:
        h, w = reference.shape[:2]
        raise JcdError(f"{label}: size {image.shape[1]}x{image.shape[0]} differs from the reference's {w}x{h}")
    a, b = to_uint8(reference), to_uint8(image)
    return Score(label, psnr(b, a), ms_ssim(b, a), bpp)


def parse_crop(text: str | None, width: int, height: int) -> tuple[int, int, int, int]:
    """'X,Y,W,H', or 'S' for a centred S x S square, or None for the whole picture -> (x, y, w, h)."""
    if text is None:
        return 0, 0, width, height
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        raise JcdError(f"--crop {text!r}: expected X,Y,W,H or a size S") from None
    if len(parts) == 1:
        s = parts[0]
        x, y, w, h = (width - s) // 2, (height - s) // 2, s, s
    elif len(parts) == 4:
        x, y, w, h = parts
    else:
        raise JcdError(f"--crop {text!r}: expected X,Y,W,H or a size S")
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise JcdError(f"--crop {text!r} does not fit in the {width}x{height} picture")
    return x, y, w, h


def side_by_side(
    images: list[np.ndarray], captions: list[str], crop: tuple[int, int, int, int], zoom: int = 1
) -> Image.Image:
    """The same crop of every image in a row, each captioned below; nearest-neighbour ``zoom``."""
    x, y, w, h = crop
    gap, pad = 8, 6
    font = ImageFont.load_default(size=max(12, min(20, w * zoom // 14)))
    lines = [c.split("\n") for c in captions]
    line_h = font.getbbox("Hg")[3] + 4
    text_h = pad * 2 + line_h * max(len(v) for v in lines)
    cw, ch = w * zoom, h * zoom
    canvas = Image.new("RGB", (len(images) * cw + (len(images) - 1) * gap, ch + text_h), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (im, cap) in enumerate(zip(images, lines, strict=True)):
        tile = Image.fromarray(to_uint8(im[y : y + h, x : x + w]))
        if zoom != 1:
            tile = tile.resize((cw, ch), Image.Resampling.NEAREST)
        left = k * (cw + gap)
        canvas.paste(tile, (left, 0))
        for i, line in enumerate(cap):
            tw = draw.textlength(line, font=font)
            draw.text((left + (cw - tw) / 2, ch + pad + i * line_h), line, fill="black", font=font)
    return canvas
