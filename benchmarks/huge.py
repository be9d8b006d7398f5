"""Peak memory and time of encoding and decoding a large photo (default 6000x4000, 24 Mpx).

Each phase runs in a fresh process; its peak resident memory (VmHWM, reset after the weights load) is its own:

    python benchmarks/huge.py                          # 6000x4000 at the default memory budget
    python benchmarks/huge.py --size 2048x2048 --max-memory 64G   # untiled, for calibration
    python benchmarks/huge.py --threads 1 --quality 6
    python benchmarks/huge.py --engine torch           # the PyTorch engine [default: auto, as jcd picks]

The image is a Kodak photo (or a synthetic texture without ../shared) resized to the size and given
level-3 reference noise. Prints one line per phase: wall time, peak RSS, RSS above the loaded-model
baseline, and that excess per image pixel and channel (the figure behind jcdcodec.tiling's budget).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak" / "kodim23.png"

CHILD = r"""
import json, sys, time
def rss(field):  # kB figures of /proc/self/status, in bytes
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
from jcdcodec import load_image, open_decoder, open_encoder
from jcdcodec.outputs import atomic_write_bytes
phase, src, dst, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
opener = open_encoder if phase == "encode" else open_decoder
codec = opener(None, device="cpu", engine=sys.argv[7], max_memory=budget, max_pixels=1 << 28,
               threads=int(sys.argv[5]))
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
base = rss("VmRSS:")
t0 = time.perf_counter()
if phase == "encode":
    pic = load_image(src)
    enc = codec.encode(pic, float(sys.argv[6]))
    atomic_write_bytes(dst, enc.data)
    pixels, nbytes = pic.width * pic.height, len(enc.data)
else:
    dec = codec.decode(open(src, "rb").read())
    from jcdcodec.imageio import save_image
    save_image(dst, dec.picture.rgb)
    pixels, nbytes = dec.picture.width * dec.picture.height, 0
wall = time.perf_counter() - t0
peak = rss("VmHWM:")
print(json.dumps({"wall": wall, "peak": peak, "base": base, "pixels": pixels, "bytes": nbytes,
                  "tile": codec.tile_side, "N": codec.ref.config.N, "engine": codec.engine}))
"""


def make_image(path: Path, width: int, height: int) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from jcdcodec.noise import add_level_noise

    if KODAK.is_file():
        im = Image.open(KODAK).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        clean = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
    else:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        clean = torch.from_numpy(np.stack([0.5 + 0.4 * np.sin(xx / (37 + 11 * c)) * np.cos(yy / 53) for c in
                                           range(3)])).float()  # fmt: skip
    noisy = add_level_noise(clean, 3, seed=0).permute(1, 2, 0).numpy()
    Image.fromarray((np.clip(noisy, 0, 1) * 255 + 0.5).astype("uint8")).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT")
    ap.add_argument("--max-memory", default=None, help="Transform budget, e.g. 1.5G [default: jcd's].")
    ap.add_argument("--quality", default="4")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--engine", default="auto", choices=["auto", "onnx", "torch"])
    args = ap.parse_args()
    from jcdcodec.tiling import DEFAULT_BUDGET, parse_bytes

    budget = parse_bytes(args.max_memory) if args.max_memory else DEFAULT_BUDGET
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as d:
        src, jcd, out = Path(d) / "noisy.png", Path(d) / "noisy.jcd", Path(d) / "clean.png"
        make_image(src, w, h)
        for phase, a, b in (("encode", src, jcd), ("decode", jcd, out)):
            r = subprocess.run([sys.executable, "-c", CHILD, phase, str(a), str(b), str(budget), args.threads,
                                args.quality, args.engine], capture_output=True, text=True, cwd=REPO)  # fmt: skip
            if r.returncode:
                sys.exit(f"{phase} failed:\n{r.stderr[-2000:]}")
            m = json.loads(r.stdout.strip().splitlines()[-1])
            excess = m["peak"] - m["base"]
            extra = f", {m['bytes'] * 8 / m['pixels']:.4f} bpp" if m["bytes"] else ""
            print(f"{phase} ({m['engine']}) {w}x{h} budget {budget / 2**30:.2f} GiB tile {m['tile']} (latent px): "
                  f"{m['wall']:.1f} s, peak RSS {m['peak'] / 2**30:.2f} GiB, above model load "
                  f"{excess / 2**30:.2f} GiB = {excess / m['pixels'] / m['N']:.2f} B/px/ch{extra}")


if __name__ == "__main__":
    main()
