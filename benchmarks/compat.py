"""Streams written by another jcd checkout decode with this one: every symbol the same, the latent how close.

A format or entropy-path change must keep old streams decodable. This encodes Kodak images with an older
checkout (its own code, this environment's packages, the weights both ship) and decodes every stream here,
with each engine, in this process:

    git worktree add /tmp/old c35f793          # e.g. jcd 0.1.0, whose entropy path ran in PyTorch
    .venv/bin/python benchmarks/compat.py /tmp/old --qualities 1,2.5,4,6 --weights jcd-n64 --weights jcd-n64-srgb

Decoding checks the symbol checksum the encoder wrote, so a stream that decodes has every symbol the old
encoder coded; the script also reports the largest difference between the old encoder's latent and the one
decoded here. Without ../shared it uses two synthetic pictures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak"

ENCODE = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy as np
import jcdcodec
from jcdcodec import Picture
jobs = json.loads(sys.argv[2]); out = Path(sys.argv[3])
codecs = {}
for i, (image, weights, q) in enumerate(jobs):
    codec = codecs.setdefault(weights, jcdcodec.Codec(weights, device="cpu"))
    if image.startswith("synthetic:"):
        rng = np.random.default_rng(int(image.split(":")[1]))
        pic = Picture.from_array(rng.random((96, 128, 3), dtype=np.float32))
    else:
        pic = jcdcodec.load_image(image)
    enc = codec.encode(pic, q)
    y = enc.y_hat
    y = y.detach().cpu().double().numpy() if hasattr(y, "detach") else np.asarray(y, dtype=np.float64)
    (out / f"{i}.jcd").write_bytes(enc.data)
    np.save(out / f"{i}.npy", y.reshape(y.shape[-3:]))
print(jcdcodec.__file__)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="the other jcd checkout (a git worktree)")
    ap.add_argument("--qualities", default="1,2.5,4,6")
    ap.add_argument("--weights", action="append", default=None, help="shipped models (repeatable) [default: jcd-n64]")
    ap.add_argument("--max-images", type=int, default=0, help="first N Kodak images (0: all 24)")
    ap.add_argument("--engines", default="onnx,torch")
    a = ap.parse_args()
    from jcdcodec import open_decoder

    images = sorted(str(p) for p in KODAK.glob("*.png")) if KODAK.is_dir() else ["synthetic:0", "synthetic:1"]
    images = images[: a.max_images] if a.max_images else images
    qualities = [float(q) for q in a.qualities.split(",")]
    jobs = [(im, w, q) for w in (a.weights or ["jcd-n64"]) for im in images for q in qualities]
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-c", ENCODE, str(a.old.resolve()), json.dumps(jobs), tmp],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            raise SystemExit(f"encoding with {a.old} failed: {r.stderr[-1500:]}")
        if not r.stdout.strip().startswith(str(a.old.resolve())):
            raise SystemExit(f"the encoder ran {r.stdout.strip()}, not {a.old}'s jcd")
        print(f"{len(jobs)} streams encoded by {a.old} ({len(images)} images x q {a.qualities} x "
              f"{', '.join(a.weights or ['jcd-n64'])})")  # fmt: skip
        for engine in a.engines.split(","):
            decoders = {w: open_decoder(w, engine=engine, device="cpu") for w in (a.weights or ["jcd-n64"])}
            worst, failed = 0.0, []
            for i, (image, weights, q) in enumerate(jobs):
                data = (Path(tmp) / f"{i}.jcd").read_bytes()
                try:
                    dec = decoders[weights].decode(data)
                except Exception as e:  # a symbol checksum mismatch or a refused stream: count it, go on
                    failed.append(f"{Path(image).name} {weights} q{q:g}: {e}")
                    continue
                old = np.load(Path(tmp) / f"{i}.npy")
                worst = max(worst, float(np.abs(np.asarray(dec.y_hat, dtype=np.float64) - old).max()))
            ok = len(jobs) - len(failed)
            print(f"engine {engine}: {ok}/{len(jobs)} decode with every symbol the same; largest latent difference "
                  f"{worst:.2e}")  # fmt: skip
            for line in failed:
                print(f"  FAILED {line}")


if __name__ == "__main__":
    main()
