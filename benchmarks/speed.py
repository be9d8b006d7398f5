"""Encode/decode speed of jcd beside CompressAI's serial autoregressive loop on the same network.

    .venv/bin/python benchmarks/speed.py [--weights FILE] [--image PNG] [--threads 2] [--json out.json]

For every quality of the weights it prints: jcd encode and decode seconds (median of --repeats),
their entropy-coding part, CompressAI's serial ``_compress_ar`` / ``_decompress_ar`` on the very same
model and latent, the AR speed-up, the decode "network floor" (g_s + h_s + one full-plane context and
entropy-parameter pass) and decode / floor, and the process's peak RSS. A benchmark, not a test: it
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")

from compressai.models.google import JointAutoregressiveHierarchicalPriors as CAIJoint  # noqa: E402

from jcdcodec import Codec, Picture, load_image  # noqa: E402
from jcdcodec.bitstream import padded_size  # noqa: E402

KODIM = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim01.png"


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--image", default=str(KODIM) if KODIM.is_file() else None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--qualities", default=None, help="e.g. 1,3,6 [default: all of the weights]")
    ap.add_argument("--skip-serial", action="store_true", help="do not run CompressAI's serial loop")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    codec = Codec(a.weights, device="cpu")
    m = codec.model
    if a.image:
        pic = load_image(a.image)
    else:  # no shared data: a synthetic Kodak-sized picture
        rng = np.random.default_rng(0)
        pic = Picture.from_array(rng.random((512, 768, 3), dtype=np.float32))
    qs = [float(q) for q in a.qualities.split(",")] if a.qualities else [float(q) for q in m.config.qualities]
    hp, wp = padded_size(pic.height, pic.width)
    print(f"weights {codec.weights.name} (N={m.config.N}), image {pic.width}x{pic.height}, {a.threads} threads, "
          f"transforms in {'bf16' if codec.bf16 else 'fp32'}, median of {a.repeats}")  # fmt: skip
    rows = []
    for q in qs:
        t_enc, enc = timed(lambda q=q: codec.encode(pic, q), a.repeats)
        t_dec, dec = timed(lambda enc=enc: codec.decode(enc.data), a.repeats)
        assert np.array_equal(dec.y_hat, enc.y_hat)
        # Network floor of decoding: g_s (in the codec's own precision and layout) + h_s + one
        # full-plane context/parameter pass.
        with torch.no_grad():
            y_hat = torch.from_numpy(enc.y_hat)[None].float()
            z_hat = torch.zeros(1, m.config.N, hp // 64, wp // 64)
            y_cl = y_hat.contiguous(memory_format=codec._fmt)

            def synth(y=y_cl, q=q):
                with codec._transforms():
                    return m.synthesis(y, q)

            t_gs, _ = timed(synth, a.repeats)
            t_hs, params = timed(lambda z=z_hat: m.h_s(z), a.repeats)
            t_ctx, _ = timed(lambda p=params, y=y_hat: m.entropy_parameters(torch.cat([p, m.context_prediction(y)], 1)),
                             a.repeats)  # fmt: skip
        floor = t_gs + t_hs + t_ctx
        row = {"quality": q, "bpp": len(enc.data) * 8 / (pic.width * pic.height), "encode_s": t_enc,
               "decode_s": t_dec, "encode_entropy_s": enc.timings["entropy_coding"],
               "decode_entropy_s": dec.timings["entropy_coding"], "floor_s": floor, "decode_over_floor": t_dec / floor}
        if not a.skip_serial:
            with torch.no_grad():
                y_hat_pad = F.pad(y_hat, (2, 2, 2, 2))
                h, w = y_hat.shape[-2:]
                params = m.h_s(z_hat)
                t0 = time.perf_counter()
                s = CAIJoint._compress_ar(m, y_hat_pad.clone(), params, h, w, 5, 2)
                t_sc = time.perf_counter() - t0
                out = torch.zeros_like(y_hat_pad)
                t0 = time.perf_counter()
                CAIJoint._decompress_ar(m, s, out, params, h, w, 5, 2)
                t_sd = time.perf_counter() - t0
            row.update({"serial_ar_encode_s": t_sc, "serial_ar_decode_s": t_sd,
                        "ar_speedup_encode": t_sc / row["encode_entropy_s"],
                        "ar_speedup_decode": t_sd / row["decode_entropy_s"]})  # fmt: skip
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(row)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"weights": codec.weights.name, "threads": a.threads, "rows": rows},
                                           indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
