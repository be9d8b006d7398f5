"""What a lossy output file costs a decoded picture: PSNR against the clean original and bytes, per format and quality.

    python benchmarks/output_quality.py                    # kodim01, level 2, q6, the default model
    python benchmarks/output_quality.py --image kodim23 --level 4 --quality 3

Why: `jcd decode -o clean.jpg` writes the decoded picture again in a lossy format. At Pillow's own defaults
(JPEG 75 with its colour at half resolution, WebP 80, AVIF 75) that second coding took a visible part of what
the denoising gained; jcd writes them at `--output-quality` (default imageio.OUTPUT_QUALITY). This codes one
Kodak image with the reference noise as `jcd noise` and `jcd encode` do (16-bit noisy input), decodes it,
rounds it to 8 bits as `jcd decode` does for those formats, and writes it in each format at Pillow's default and
at jcd's settings (imageio.encode_image), printing each file's PSNR against the clean original.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="kodim01", help="Kodak image name")
    ap.add_argument("--level", type=int, default=2, help="reference noise level 1..4")
    ap.add_argument("--quality", type=float, default=6, help="jcd quality 1..6")
    ap.add_argument("--weights", default=None, help="weights file or shipped model (default: the default model)")
    ap.add_argument("--qualities", default="75,80,90,95", help="output qualities to try besides Pillow's defaults")
    args = ap.parse_args()

    import io

    import torch
    from PIL import Image

    from jcdcodec import Codec, Picture
    from jcdcodec.eval.metrics import psnr
    from jcdcodec.imageio import OUTPUT_QUALITY, encode_image, load_image
    from jcdcodec.noise import add_level_noise

    clean = load_image(KODAK / f"{args.image}.png")
    x = torch.from_numpy(np.require(clean.rgb, requirements=["C", "W"])).permute(2, 0, 1)
    noisy = add_level_noise(x, args.level, seed=0).permute(1, 2, 0).numpy()
    noisy16 = np.round(np.clip(noisy, 0, 1) * 65535) / 65535  # as `jcd noise` writes it (16 bits)
    codec = Codec(args.weights)
    enc = codec.encode(Picture.from_array(noisy16.astype(np.float32)), args.quality)
    rgb = codec.decode(enc.data).picture.rgb
    ref = np.round(clean.rgb * 255).astype(np.uint8)
    png8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    print(f"{args.image}, level {args.level}, q{args.quality:g}: {len(enc.data)} bytes of .jcd; "
          f"decoded, as an 8-bit PNG: {psnr(png8, ref):.2f} dB against the clean original")
    im = Image.fromarray(png8)
    defaults = {"JPEG": 75, "WEBP": 80, "AVIF": 75}
    print("| format | quality | bytes | PSNR dB | lost dB |\n|---|---|---|---|---|")
    for fmt, pillow_default in defaults.items():
        rows = [("Pillow's default", None)] + [(f"{q}" + (" (jcd's default)" if q == OUTPUT_QUALITY else ""), q)
                                               for q in map(int, args.qualities.split(","))]  # fmt: skip
        for label, q in rows:
            if q is None:
                buf = io.BytesIO()
                im.save(buf, fmt)
                data = buf.getvalue()
                label = f"{pillow_default} (Pillow's default)"
            else:
                data = encode_image(rgb, fmt, quality=q)
            got = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            print(f"| {fmt} | {label} | {len(data)} | {psnr(got, ref):.2f} | {psnr(png8, ref) - psnr(got, ref):.2f} |")


if __name__ == "__main__":
    main()
