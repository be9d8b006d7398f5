"""RD cost J = bpp + lambda_q * 255^2 * MSE per method, level and quality, from a `jcd eval` output folder.

    jcd calibrate jcd-n64 -o /tmp/cal/jcd-n64-cal.safetensors --name jcd-n64-cal --steps 1500
    jcd eval ../shared/data/kodak --weights /tmp/cal/jcd-n64-cal.safetensors --weights jcd-n64 \\
        --levels 1,4 --anchors none --max-images 6 -o /tmp/cal/eval
    python benchmarks/rd_cost.py /tmp/cal/eval

MSE is on [0, 1] pixel values, averaged over the images (from each image's PSNR); bpp is averaged too. This is
the loss training minimises, with the lambda of each integer quality (jcdcodec.nn.model.LAMBDAS).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

from jcdcodec.nn.model import LAMBDAS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="A `jcd eval -o` folder (holds per_image.csv).")
    args = ap.parse_args()
    groups: dict[tuple[str, str, int], list[tuple[float, float]]] = defaultdict(list)
    with open(args.results / "per_image.csv", newline="") as f:
        for row in csv.DictReader(f):
            if not row["method"].startswith("jcd:") or not float(row["setting"]).is_integer():
                continue
            groups[(row["method"], row["level"], int(float(row["setting"])))].append(
                (float(row["bpp"]), 10 ** (-float(row["psnr"]) / 10)))
    print("method                level  q     bpp     PSNR        J")
    for (method, level, q), vals in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        bpp = sum(b for b, _ in vals) / len(vals)
        mse = sum(m for _, m in vals) / len(vals)
        psnr = sum(-10 * math.log10(m) for _, m in vals) / len(vals)
        print(f"{method:20s} {level:>6s} {q:2d} {bpp:7.4f} {psnr:8.2f} {bpp + LAMBDAS[q - 1] * 255**2 * mse:8.4f}")


if __name__ == "__main__":
    main()
