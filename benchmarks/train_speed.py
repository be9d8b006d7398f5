"""Seconds per training step in bf16 autocast and in fp32 on this machine, to see what `jcd train`'s default picks.

    .venv/bin/python benchmarks/train_speed.py --data ../shared/data/train -N 128 --patch 256 --batch 4 --threads 2

On a GPU, several batch sizes in one call show whether a larger batch buys pixels per second (the step is mostly
fixed overhead while the GPU is not full): `... --batch 16,32,64 --only bf16 --steps 10`.

bf16 pays only where the hardware computes it (CUDA, CPUs with AVX512-BF16 or AMX); elsewhere PyTorch emulates it
and a step is slower than in fp32, so `jcd train` picks fp32 there unless told otherwise (--bf16/--fp32). Prints one
line per arithmetic: the median of --steps timed steps after one untimed step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from jcdcodec.codec import native_bf16
from jcdcodec.nn.model import ModelConfig
from jcdcodec.train.loop import TrainConfig, Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a folder of training photos (the first 8 are used)")
    ap.add_argument("-N", type=int, default=128)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--batch", default="4", help="crops per step; several, comma-separated, are timed in turn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per arithmetic")
    ap.add_argument("--only", choices=["bf16", "fp32"], help="time one arithmetic only")
    ap.add_argument("--denoiser-scale", action="store_true", help="the denoisers' learnt scale, as jcd-n128 has")
    ap.add_argument("--channels-last", action="store_true", help="channels_last in fp32 too (jcd train: bf16 only)")
    ap.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) first")
    ap.add_argument("--no-onednn", action="store_true", help="torch.backends.mkldnn.enabled = False")
    ap.add_argument("--profile", action="store_true", help="after timing, the operators of one more step")
    a = ap.parse_args()
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    if a.no_onednn:
        torch.backends.mkldnn.enabled = False
    batches = [int(b) for b in a.batch.split(",")]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, {a.threads} threads, native bf16: {native_bf16(device)}; N={a.N}, crops of {a.patch} "
          f"in batches of {a.batch}")  # fmt: skip
    for arith in [a.only] if a.only else ["bf16", "fp32"]:
        for batch in batches:
            with tempfile.TemporaryDirectory() as out:
                tc = TrainConfig(data=a.data, out=out, patch=a.patch, batch=batch, max_images=8, val_every=0,
                                 bf16=arith == "bf16", threads=a.threads, contrastive=False)  # fmt: skip
                tr = Trainer(ModelConfig(N=a.N, denoiser_scale=a.denoiser_scale), tc)
                if a.channels_last:
                    tr.module.to(memory_format=torch.channels_last)
                tr.load_data(progress=False)
                tr.train_step()
                times = []
                for _ in range(a.steps):
                    t0 = time.perf_counter()
                    tr.train_step()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                if a.profile:
                    from torch.profiler import profile

                    with profile() as prof:
                        tr.train_step()
                    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
            med = statistics.median(times)
            print(f"{arith}, batch {batch}: {med:.3f} s/step, {batch * a.patch**2 / med / 1e6:.2f} Mpixel/s "
                  f"(min {min(times):.3f}, max {max(times):.3f}, {a.steps} steps)")  # fmt: skip


if __name__ == "__main__":
    main()
