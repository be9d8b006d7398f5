"""Rate calibration: refit only the per-quality gain vectors of a trained, frozen network.

Why: in a variable-rate model one network serves six lambdas, and training shares its steps among
them; the gains drift toward a compromise (the shipped N=64 models' q6 spends too few bits for its
own lambda: scaling its gain by 1.5 lowered its RD cost on Kodak). With every other weight frozen,
each quality's gain and inverse gain can be moved to the optimum of its own
J = R + lambda * 255^2 * MSE cheaply: the analysis runs without gradients, and only 2 x 6 x N
numbers learn. The EntropyBottleneck's quantiles follow their aux loss as in training, so the
rebuilt tables cover the new latents.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..codec import native_bf16
from ..nn.model import JointModel
from .data import PatchSampler
from .losses import bpp


@dataclass
class CalibrationResult:
    steps: int
    seconds: float
    #: Per quality: the running mean of J over the last quarter of the steps, and the gain ratio to before.
    j_end: dict[int, float] = field(default_factory=dict)
    gain_change: dict[int, float] = field(default_factory=dict)


def calibrate_gains(
    model: JointModel,
    sampler: PatchSampler,
    steps: int,
    lr: float = 3e-3,  # decayed linearly to a tenth over the steps
    seed: int = 0,
    bf16: bool | None = None,
    progress: Callable[[int, dict[int, float]], None] | None = None,
) -> CalibrationResult:
    """Train ``model.log_gain`` and ``model.log_inv_gain`` only, in place; everything else stays as it is.

    ``bf16``: autocast; None uses it where the CPU computes bf16 natively (emulated bf16 is slower than fp32)."""
    if bf16 is None:
        bf16 = native_bf16(torch.device("cpu"))
    if model.log_gain is None or model.log_inv_gain is None:
        raise ValueError("calibration needs a variable-rate model (one with per-quality gains)")
    before = model.log_gain.detach().clone()
    for p in model.parameters():
        p.requires_grad_(False)
    gains = [model.log_gain, model.log_inv_gain]
    for p in gains:
        p.requires_grad_(True)
    quantiles = model.entropy_bottleneck.quantiles
    quantiles.requires_grad_(True)
    opt = torch.optim.Adam(gains, lr=lr)
    # Linear decay to a tenth: the batches are noisy, and the last steps should settle, not wander.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - 0.9 * s / max(1, steps))
    aux_opt = torch.optim.Adam([quantiles], lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    qualities = model.config.qualities
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model.train()
    if bf16:
        model.to(memory_format=torch.channels_last)
    tail: dict[int, list[float]] = {q: [] for q in qualities}
    running = {q: math.nan for q in qualities}  # a moving average of J per quality, for progress reports
    t0 = time.perf_counter()
    for step in range(steps):
        q = qualities[int(torch.randint(len(qualities), (1,), generator=gen))]
        b = sampler.sample(gen)
        noisy, clean = b.noisy.contiguous(memory_format=fmt), b.clean
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            _, y1 = model.analysis_noisy(noisy)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model.code_latent(y1.float(), q)
        n, _, h, w = clean.shape
        rate = bpp(out["y_lik"], n * h * w) + bpp(out["z_lik"], n * h * w)
        mse = torch.mean((out["x_hat"].float() - clean) ** 2)
        loss = rate + model.lmbda(q) * 255**2 * mse
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if all(bool(torch.isfinite(p.grad).all()) for p in gains):
            opt.step()
        sched.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        if bool(torch.isfinite(quantiles.grad).all()):
            aux_opt.step()
        j = float(loss.detach())
        running[q] = j if math.isnan(running[q]) else 0.95 * running[q] + 0.05 * j
        if step >= steps * 3 // 4:
            tail[q].append(j)
        if progress is not None and (step + 1) % 50 == 0:
            progress(step + 1, dict(running))
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    change = (model.log_gain.detach() - before).exp().mean(dim=1)
    return CalibrationResult(
        steps=steps,
        seconds=time.perf_counter() - t0,
        j_end={q: (sum(v) / len(v) if v else math.nan) for q, v in tail.items()},
        gain_change={q: float(change[i]) for i, q in enumerate(qualities)},
    )


__all__ = ["CalibrationResult", "calibrate_gains"]
