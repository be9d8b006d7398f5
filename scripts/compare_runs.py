"""Compare training runs that differ in one switch, at equal steps, on the same batches.

    .venv/bin/python scripts/compare_runs.py runs/joint128 runs/joint128-detach [--window 500]

Runs started with the same seed, data and crop size draw the same crops, noise and quality at every step, so
the logged records (one training step every ``log_every`` steps) pair up: the difference of two runs at the
same step is free of the batch-to-batch spread that dwarfs it otherwise. For each window of steps it prints the
mean paired difference (second run minus first, with its standard error) of the rate-distortion cost
J = bpp + lambda_q * 255^2 * MSE (the part of the loss both runs share: guidance and contrastive terms are left
out, since a switch may change them by design), of PSNR and of bpp; then every real-bitstream validation both
runs logged (raw weights and their moving average), side by side. It reads only ``log.jsonl`` and
``config.json``: a comparison can run while both are still training.

Two branches of one checkpoint (``jcd train --resume`` of a copy with one switch changed) share the log up to
the branch point; those records are the same run, not a comparison, so pairing and the windows start after
the last step the two logs record identically.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def read_log(run: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """Training records and validation rows by step (a resumed run re-logs steps: the later line wins)."""
    train: dict[int, dict] = {}
    val: dict[int, dict] = {}
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        if "val" in row:
            val[int(row["step"])] = row
        elif "mse" in row and "quality" in row:
            train[int(row["step"])] = row
    return train, val


def check_pairable(a: Path, b: Path) -> list[float]:
    """Warn where the runs cannot have drawn the same batches; return the lambdas of the qualities."""
    ca, cb = (json.loads((r / "config.json").read_text()) for r in (a, b))
    for key in ("seed", "patch", "batch", "data", "max_images", "noise", "gamma", "wide_noise"):
        if ca["train"].get(key) != cb["train"].get(key):
            print(f"warning: {key} differs ({ca['train'].get(key)!r} vs {cb['train'].get(key)!r}): "
                  "batches do not pair up")  # fmt: skip
    if ca["model"]["lambdas"] != cb["model"]["lambdas"]:
        sys.exit("compare_runs: the runs train different lambdas: their RD costs do not compare")
    return ca["model"]["lambdas"]


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--window", type=int, default=500, help="Steps per row of the paired table.")
    args = ap.parse_args()
    lambdas = check_pairable(args.first, args.second)

    def rd_cost(row: dict) -> float:
        return row["bpp"] + lambdas[int(row["quality"]) - 1] * 255**2 * row["mse"]

    (ta, va), (tb, vb) = read_log(args.first), read_log(args.second)
    steps = sorted(set(ta) & set(tb))
    if not steps:
        sys.exit("compare_runs: the two runs have no logged step in common yet")
    same_q = [s for s in steps if ta[s]["quality"] == tb[s]["quality"]]
    if len(same_q) < len(steps):
        print(f"warning: {len(steps) - len(same_q)} common steps drew different qualities: not the same batches")
    shared = 0  # the common history of two branches: the leading steps both logs record identically
    for s in same_q:
        if any(ta[s][k] != tb[s][k] for k in ("bpp", "mse", "psnr")):
            break
        shared = s
    same_q = [s for s in same_q if s > shared]
    if not same_q:
        sys.exit("compare_runs: the two runs have not parted yet (identical records at every common step)")
    if shared:
        print(f"branches of one run: identical to step {shared}, paired after it")
    print(f"{args.second.name} minus {args.first.name}, paired on {len(same_q)} logged steps (mean +- s.e.)")
    print("| steps | pairs | J (lower is better) | PSNR dB | bpp |")
    print("|---|---|---|---|---|")
    start = shared
    while start < same_q[-1]:
        win = [s for s in same_q if start < s <= start + args.window]
        if win:
            cols = []
            for f in (rd_cost, lambda r: r["psnr"], lambda r: r["bpp"]):
                m, se = mean_se([f(tb[s]) - f(ta[s]) for s in win])
                cols.append(f"{m:+.4f} +- {se:.4f}")
            print(f"| {start + 1}-{start + args.window} | {len(win)} | " + " | ".join(cols) + " |")
        start += args.window
    common = sorted(set(va) & set(vb))
    if common:
        print(f"\nvalidation (held-out crops, real bitstreams): PSNR dB @ bpp, {args.first.name} / {args.second.name}")
        for s in common:
            for kind in ("val", "val_ema"):
                if kind not in va[s] or kind not in vb[s]:
                    continue
                a, b = va[s][kind], vb[s][kind]
                points = sorted({k.rsplit("_", 1)[0] for k in a} & {k.rsplit("_", 1)[0] for k in b})
                cells = [f"{p} {a[p + '_psnr']:.2f} @ {a[p + '_bpp']:.3f} / {b[p + '_psnr']:.2f} @ {b[p + '_bpp']:.3f}"
                         for p in points]  # fmt: skip
                print(f"step {s} {kind}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
