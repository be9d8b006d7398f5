"""Do tiles leave seams? Tiled against untiled coding of the same noisy image.

    python benchmarks/seams.py                      # Kodak images 1-4 (or the bundled sample), level 3, q4
    python benchmarks/seams.py --tile 16 --images 8

Tiles are forced small (--tile latent pixels: 16 = 256 image pixels, where jcd's default budget
uses ~165) so that a 768x512 image has several. Prints, per image, PSNR against the clean image
in 16-pixel bands along the tile boundaries and away from them, for tiled and untiled coding,
plus the PSNR between the tiled and untiled decoded images, and the largest difference tiled decoding
alone makes to one stream. A seam would show as a band PSNR
of the tiled coding clearly below the untiled one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def compare(full, tiled, noisy: np.ndarray, clean: np.ndarray, quality: float) -> dict[str, float]:
    """Figures of one image: tiled vs untiled coding, in seam bands and elsewhere."""
    from jcdcodec import Picture
    from jcdcodec.tiling import boundary_mask

    pic = Picture.from_array(noisy)
    enc_full = full.encode(pic, quality)
    out_full = full.decode(enc_full.data).picture.rgb
    synthesis_only = tiled.decode(enc_full.data).picture.rgb  # the same stream, decoded in tiles
    enc = tiled.encode(pic, quality)
    out_tiled = tiled.decode(enc.data).picture.rgb
    mask = boundary_mask(*clean.shape[:2], tiled.tile_side)
    return {
        "seam_tiled": psnr(out_tiled[mask], clean[mask]),
        "seam_untiled": psnr(out_full[mask], clean[mask]),
        "rest_tiled": psnr(out_tiled[~mask], clean[~mask]),
        "rest_untiled": psnr(out_full[~mask], clean[~mask]),
        "tiled_vs_untiled": psnr(out_tiled, out_full),
        "synthesis_max_diff": float(np.abs(synthesis_only - out_full).max()),
        "bytes": len(enc.data),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tile", type=int, default=16, help="Core tile side in latent pixels.")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--quality", type=float, default=4)
    args = ap.parse_args()
    from PIL import Image

    from jcdcodec import Codec
    from jcdcodec.noise import add_level_noise

    full = Codec(device="cpu", max_memory=1 << 40)
    tiled = Codec(device="cpu", max_memory=1 << 40)
    tiled.tile_side = args.tile
    files = sorted(KODAK.glob("*.png"))[: args.images] if KODAK.is_dir() else []
    if not files:
        print("no ../shared/data/kodak: nothing to measure against a clean image")
        return
    print(f"tile {args.tile} latent px ({args.tile * 16} image px), level {args.level}, q{args.quality:g}; "
          "PSNR vs clean (dB) in 16-px bands on tile boundaries / elsewhere")  # fmt: skip
    for f in files:
        clean_u8 = np.asarray(Image.open(f).convert("RGB"))
        clean = torch.from_numpy(clean_u8.copy()).permute(2, 0, 1).float() / 255
        noisy = add_level_noise(clean, args.level, seed=0).permute(1, 2, 0).numpy()
        r = compare(full, tiled, noisy, clean.permute(1, 2, 0).numpy(), args.quality)
        print(f"{f.name}: seams tiled {r['seam_tiled']:.2f} untiled {r['seam_untiled']:.2f} | elsewhere tiled "
              f"{r['rest_tiled']:.2f} untiled {r['rest_untiled']:.2f} | tiled vs untiled {r['tiled_vs_untiled']:.2f} | "
              f"tiled synthesis alone: max diff {r['synthesis_max_diff']:.2g}")


if __name__ == "__main__":
    main()
