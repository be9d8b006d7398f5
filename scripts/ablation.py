"""The paper's ablation (Tables 4/5) at a reduced, equal training budget, with repeats.

    .venv/bin/python scripts/ablation.py --steps 1000 --seeds 0,1 -o runs/ablation --report docs/ablation.md \
        --results docs/ablation-results.json

Every row trains the same fixed-rate model size (-N) on the same data and steps, then codes the first
--images Kodak images with level-4 noise (seed 0) at that quality with the real codec. The table gives the mean
PSNR / bpp over images for each seed and the spread between seeds, so a difference between rows can be told
from run-to-run noise. Runs are resumable: a finished row (its weights file exists) is not trained again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jcdcodec.nn.model import ModelConfig  # noqa: E402

# name -> (model switches, contrastive)
ROWS = {
    "baseline (Cheng 2022)": (dict(selfonn=False, multiscale=False, cbam=False), False),
    "+ contrastive": (dict(selfonn=False, multiscale=False, cbam=False), True),
    "+ Self-ONN": (dict(selfonn=True, multiscale=False, cbam=False), False),
    "+ contrastive + Self-ONN": (dict(selfonn=True, multiscale=False, cbam=False), True),
    "+ contrastive + Self-ONN + multi-scale/CBAM (jcd)": (dict(selfonn=True, multiscale=True, cbam=True), True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("-N", type=int, default=32)
    ap.add_argument("--quality", type=int, default=6)
    ap.add_argument("--level", type=int, default=4)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--images", type=int, default=8, help="Kodak images to evaluate on")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--kodak", default=str(REPO.parent / "shared" / "data" / "kodak"))
    ap.add_argument("-o", "--out", default="runs/ablation")
    ap.add_argument("--report", default=None)
    ap.add_argument("--results", default=None, help="JSON of finished rows [default: OUT/results.json]")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from jcdcodec.train.loop import TrainConfig, Trainer, export_checkpoint

    out = Path(a.out)
    store = Path(a.results) if a.results else out / "results.json"
    settings = {k: getattr(a, k) for k in ("steps", "N", "quality", "level", "patch", "batch", "lr", "images")}
    saved = json.loads(store.read_text()) if store.is_file() else {}
    if saved.get("settings") != settings:
        saved = {"settings": settings, "rows": {}}
    results: dict[str, dict[int, dict]] = {n: {int(s): v for s, v in r.items()} for n, r in saved["rows"].items()}
    seeds = [int(s) for s in a.seeds.split(",")]
    for name, (switches, contrastive) in ROWS.items():
        for seed in seeds:
            if seed in results.get(name, {}):
                continue
            slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")[:40] + f"-s{seed}"
            run = out / slug
            weights = run / "weights.safetensors"
            if not weights.is_file():
                mc = dataclasses.replace(ModelConfig(N=a.N, qualities=(a.quality,)), **switches)
                tc = TrainConfig(data=a.data, out=str(run), patch=a.patch, batch=a.batch, steps=a.steps, lr=a.lr,
                                 contrastive=contrastive, seed=seed, val_every=0, ckpt_every=500, threads=a.threads)
                resume = run / "last.ckpt"
                t0 = time.time()
                tr = Trainer(mc, tc, resume=resume if resume.is_file() else None)
                tr.run(progress=False)
                export_checkpoint(run / "last.ckpt", weights, name=slug)
                print(f"{name} seed {seed}: trained {a.steps} steps in {time.time() - t0:.0f} s", flush=True)
            results.setdefault(name, {})[seed] = evaluate(weights, a)
            print(name, seed, results[name][seed], flush=True)
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps({"settings": settings, "rows": results}, indent=2) + "\n")
            if a.report:
                Path(a.report).write_text(report(results, a, seeds))
    if a.report:
        Path(a.report).write_text(report(results, a, seeds))


def evaluate(weights: Path, a) -> dict:
    from PIL import Image

    from jcdcodec import Codec, Picture
    from jcdcodec.eval.metrics import psnr, to_uint8
    from jcdcodec.noise import add_level_noise

    codec = Codec(str(weights), device="cpu")
    files = sorted(Path(a.kodak).glob("*.png"))[: a.images]
    ps, bpps, mses = [], [], []
    for f in files:
        clean8 = np.asarray(Image.open(f).convert("RGB"))
        x = torch.from_numpy(clean8).permute(2, 0, 1).float() / 255
        noisy = to_uint8(add_level_noise(x, a.level, seed=0).permute(1, 2, 0).numpy()).astype(np.float32) / 255
        enc = codec.encode(Picture.from_array(noisy), a.quality)
        out8 = to_uint8(codec.decode(enc.data).picture.rgb)
        ps.append(psnr(out8, clean8))
        mses.append(float(np.mean((out8 / 255.0 - clean8 / 255.0) ** 2)))
        bpps.append(len(enc.data) * 8 / (clean8.shape[0] * clean8.shape[1]))
    lam = ModelConfig().lambdas[a.quality - 1]
    return {"psnr": float(np.mean(ps)), "bpp": float(np.mean(bpps)),
            "J": float(np.mean(bpps) + lam * 255**2 * np.mean(mses))}  # fmt: skip


def report(results: dict, a, planned: list[int]) -> str:
    seeds = sorted({s for r in results.values() for s in r})
    done = sum(len(r) for r in results.values())
    lines = [
        "# Ablation at a reduced, equal budget",
        "",
        f"Generated by `python scripts/ablation.py --steps {a.steps} --seeds {a.seeds} -N {a.N} --quality {a.quality}"
        f" --level {a.level} --patch {a.patch} --batch {a.batch} --images {a.images}`; do not edit by hand.",
        "",
        f"Each row: fixed-rate model, N={a.N}, quality {a.quality} (lambda of q{a.quality}), {a.steps} steps of batch "
        f"{a.batch} x {a.patch}px on ../shared/data/train, guidance on, paper noise range; evaluated with real "
        f"bitstreams on the first {a.images} Kodak images at noise level {a.level} (seed 0, 8-bit noisy input). "
        "Spread = max - min over seeds. J = bpp + lambda * 255^2 * MSE of the real streams (lower is better).",
        "",
        f"Rows finished: {done} of {len(ROWS) * len(planned)}.",
        "",
        "| configuration | " + " | ".join(f"seed {s} PSNR / bpp" for s in seeds) + " | mean PSNR | PSNR spread |"
        " mean bpp | mean J | J spread | J vs baseline |",
        "|---|" + "---|" * (len(seeds) + 6),
    ]
    base = results.get(next(iter(ROWS)), {})
    base_j = [base[s]["J"] for s in seeds if s in base]
    for name, r in results.items():
        ps = [r[s]["psnr"] for s in seeds if s in r]
        bs = [r[s]["bpp"] for s in seeds if s in r]
        js = [r[s]["J"] for s in seeds if s in r]
        cells = " | ".join(f"{r[s]['psnr']:.2f} / {r[s]['bpp']:.4f}" if s in r else "-" for s in seeds)
        lines.append(f"| {name} | {cells} | {np.mean(ps):.2f} | {max(ps) - min(ps):.2f} | {np.mean(bs):.4f} | "
                     f"{np.mean(js):.4f} | {max(js) - min(js):.4f} | "
                     f"{'(reference)' if name == next(iter(ROWS)) else _verdict(js, base_j)} |")
    lines += ["", "J vs baseline: the difference of mean J, called better or worse only when it exceeds the larger "
              "of the two rows' seed spreads; otherwise it is within run-to-run noise at this budget. With two seeds a "
              "spread is a rough yardstick: more seeds and steps would sharpen it."]
    lines += ["", "Paper (Table 4, Kodak level 4, q6, full training): baseline 28.40 dB / 0.8189 bpp; "
              "+CL 28.43 / 0.7935; +Self-ONN 28.33 / 0.8372; +CL+Self-ONN 28.53 / 0.7946; all 28.59 / 0.7812.", ""]
    return "\n".join(lines)


def _verdict(js: list[float], base: list[float]) -> str:
    if not js or not base:
        return "-"
    d = float(np.mean(js) - np.mean(base))
    noise = max(max(js) - min(js), max(base) - min(base))
    if len(js) < 2 or len(base) < 2:
        return f"{d:+.3f} (one seed: no spread)"
    if abs(d) <= noise:
        return f"{d:+.3f}: within noise ({noise:.3f})"
    return f"{d:+.3f}: {'better' if d < 0 else 'worse'}"


if __name__ == "__main__":
    main()
