"""Where a one-image decode's CPU time goes, stage by stage, as the CLI runs them (docs/speed.md).

Each stage's user + system CPU from getrusage, in a fresh process per run (start-up is part of the story):

    .venv/bin/python benchmarks/decode_stages.py                 # kodim01, default weights, q4, one thread
    .venv/bin/python benchmarks/decode_stages.py --flops         # also g_s's arithmetic (needs PyTorch)
    .venv/bin/python benchmarks/decode_stages.py --library       # as a program calling jcdcodec does: no
        OPENBLAS_NUM_THREADS=1, entropy path with and without jcd's one-BLAS-thread limit (run it while
        another process keeps a core busy: that is when BLAS threads cost)

Also prints the PNG written at jcd's zlib level and at Pillow's default (sizes, and the time Pillow's default
level would take), and the model opening with and
without the compiled-network cache (a temporary one, filled by a first run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak" / "kodim01.png"

CHILD = r"""
import contextlib, io, os, resource, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
marks = [("python start-up", cpu())]
if sys.argv[2] == "library":
    import jcdcodec  # noqa: F401  (a program importing jcd: OPENBLAS_NUM_THREADS stays unset)
else:
    import jcdcodec.cli  # noqa: F401  (what `jcd` imports first; it sets OPENBLAS_NUM_THREADS=1)
import numpy as np
marks.append(("imports (jcd, numpy)", cpu()))  # the decoder's own modules count as opening the model
from jcdcodec.decoder import open_decoder
if sys.argv[3] == "nolimit":
    import jcdcodec.entropy.path as p
    p.one_blas_thread = contextlib.nullcontext
d = open_decoder(None, threads=1)
marks.append(("opening the model", cpu()))
dec = d.decode(open(sys.argv[1], "rb").read())
marks.append(("decode (entropy path + g_s)", cpu()))
from jcdcodec.imageio import PNG_COMPRESS_LEVEL, encode_image
png = encode_image(dec.picture.rgb)
marks.append((f"PNG (zlib level {PNG_COMPRESS_LEVEL})", cpu()))
from PIL import Image
pixels = (dec.picture.rgb * 255 + 0.5).astype("uint8")
start = cpu()
buf = io.BytesIO()
Image.fromarray(pixels).save(buf, "PNG")
pillow_png = cpu() - start
print(f"  PNG sizes: level {PNG_COMPRESS_LEVEL} {len(png)} bytes, Pillow's default {len(buf.getvalue())} bytes")
for (_, a), (name, b) in zip(marks, marks[1:]):
    print(f"  {name:32s} {b - a:6.3f} s")
print(f"  {'(PNG at Pillow default level 6)':32s} {pillow_png:6.3f} s  (not part of the decode)")
print(f"  {'total (this process)':32s} {marks[-1][1]:6.3f} s")
print(f"  of the decode, the entropy path took {dec.timings['entropy_coding']:.3f} s of wall time")
"""


def run(stream: Path, env: dict[str, str], mode: str = "cli", limit: str = "limit", quiet: bool = False) -> None:
    subprocess.run([sys.executable, "-c", CHILD, str(stream), mode, limit], env=env, check=True,
                   stdout=subprocess.DEVNULL if quiet else None)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", nargs="?", type=Path, default=KODAK)
    ap.add_argument("-q", "--quality", type=float, default=4)
    ap.add_argument("--flops", action="store_true", help="count g_s's multiply-adds on this picture (PyTorch)")
    ap.add_argument("--library", action="store_true", help="entropy path as inside another program")
    a = ap.parse_args()
    import jcdcodec

    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "a.jcd"
        pic = jcdcodec.load_image(a.image)
        stream.write_bytes(jcdcodec.Codec(device="cpu").encode(pic, a.quality).data)
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "JCD_CACHE_DIR": str(Path(tmp) / "cache")}
        env.pop("OPENBLAS_NUM_THREADS", None)
        if a.library:
            for limit in ("limit", "nolimit"):
                print(f"as a library, {'with' if limit == 'limit' else 'without'} the one-BLAS-thread limit:")
                run(stream, env, "library", limit)
            return
        print("no compiled-network cache (a machine's first decode):")
        run(stream, {**env, "JCD_CACHE_DIR": "off"})
        run(stream, env, quiet=True)  # fills the cache
        print("compiled network from the cache (every later decode):")
        run(stream, env)
    if a.flops:
        import torch

        from jcdcodec.weights import load_weights

        g_s, total = load_weights(None).model.g_s, [0]

        def count(module, _inputs, output) -> None:  # noqa: ANN001
            if isinstance(module, torch.nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                total[0] += 2 * output.numel() * module.in_channels // module.groups * k

        for m in g_s.modules():
            m.register_forward_hook(count)
        n = g_s[0].conv1.in_channels if hasattr(g_s[0], "conv1") else 64
        with torch.no_grad():
            g_s(torch.zeros(1, n, (pic.height + 15) // 16, (pic.width + 15) // 16))
        print(f"g_s on {pic.width}x{pic.height}: {total[0] / 1e9:.1f} GFLOP (convolutions, multiply + add)")


if __name__ == "__main__":
    main()
