"""Does jcd shift brightness? Mean output level against the clean image, per input kind.

    python benchmarks/tone.py                        # Kodak images 1-4, q1 and q6
    python benchmarks/tone.py --images 8 --qualities 1,4,6 --threads 2

Why: the reference noise model (reference.md 1.3) applies a gamma pair that is not a true
inverse, so its noisy images are brighter than the clean ones even at zero noise, and the
clamp to [0, 1] adds a further bias in dark areas. A model trained on it learns to darken.
That is right on the benchmark and wrong for a user's photo, whose noise was never put through
that gamma pair. This prints, per input kind (clean; reference-gamma noise at levels 1-4;
standard sRGB-gamma noise at levels 1-4) and quality, the mean level of input and output
minus the clean image's (in 8-bit steps, averaged over images and channels) and the PSNR of
the output. A neutral codec shows a shift near 0 for clean and sRGB inputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4, help="first N Kodak images")
    ap.add_argument("--qualities", default="1,6")
    ap.add_argument("--weights", default=None, help="weights file (default: shipped)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from PIL import Image

    from jcdcodec import Picture
    from jcdcodec.codec import Codec
    from jcdcodec.eval.metrics import psnr, to_uint8
    from jcdcodec.noise import add_level_noise

    files = sorted(KODAK.glob("*.png"))[: args.images]
    if not files:
        raise SystemExit(f"no images in {KODAK}")
    codec = Codec(args.weights, device="cpu")
    qualities = [float(q) for q in args.qualities.split(",")]
    kinds = [("clean", 0, "")] + [(f"L{n} reference", n, "reference") for n in (1, 2, 3, 4)]
    kinds += [(f"L{n} sRGB", n, "srgb") for n in (1, 2, 3, 4)]

    print(f"{len(files)} Kodak images; shifts in 8-bit steps (mean of input/output minus mean of clean)")
    print(f"{'input':<14} {'q':>4} {'input shift':>12} {'output shift':>13} {'PSNR':>7} {'bpp':>6}")
    cleans = []
    for f in files:
        with Image.open(f) as im:
            cleans.append(np.asarray(im.convert("RGB")))
    for label, level, gamma in kinds:
        for q in qualities:
            sin, sout, ps, bpp = [], [], [], []
            for clean8 in cleans:
                if level == 0:
                    noisy8 = clean8
                else:
                    t = torch.from_numpy(clean8.copy()).permute(2, 0, 1).float() / 255
                    noisy = add_level_noise(t, level, seed=0, gamma=gamma).permute(1, 2, 0).numpy()
                    noisy8 = to_uint8(noisy)
                enc = codec.encode(Picture.from_array(noisy8 / 255.0), q)
                out8 = to_uint8(codec.decode(enc.data).picture.rgb)
                ref = clean8.astype(np.float64).mean()
                sin.append(noisy8.astype(np.float64).mean() - ref)
                sout.append(out8.astype(np.float64).mean() - ref)
                ps.append(psnr(out8, clean8))
                bpp.append(len(enc.data) * 8 / (clean8.shape[0] * clean8.shape[1]))
            print(
                f"{label:<14} {q:>4g} {np.mean(sin):>+12.2f} {np.mean(sout):>+13.2f} "
                f"{np.mean(ps):>7.2f} {np.mean(bpp):>6.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
