"""The loss terms of the paper (eq. 5, 6, 10), each small and separately testable.

    L = R(y) + R(z) + lambda_d * 255^2 * MSE(x^, x) + lambda_g * G + lambda_c * L_CL

G: L1 between noisy-branch and clean-branch features at both scales. The clean branch is
*not* detached, as in the reference code: the guidance shapes the shared encoder from
both sides. L_CL: NT-Xent between projected noisy features and projected features of an
augmented clean view; the other images of the batch are the negatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def bpp(likelihoods: Tensor, num_pixels: int) -> Tensor:
    """Estimated bits per pixel of a likelihood tensor (fp32 for an exact rate)."""
    return torch.log(likelihoods.float()).sum() / (-math.log(2) * num_pixels)


def guidance_l1(pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Sum over scales of the mean absolute difference (nn.L1Loss, mean reduction)."""
    return sum(F.l1_loss(a.float(), b.float()) for a, b in pairs)  # type: ignore[return-value]


def nt_xent(a: Tensor, b: Tensor, temperature: float = 0.1) -> Tensor:
    """SimCLR's NT-Xent over 2B samples: views a[i] and b[i] are positives.

    For anchor k of the 2B stacked embeddings, with cosine similarities s:
    l_k = -log( exp(s(k, pos(k))/t) / sum_{j != k} exp(s(k, j)/t) ), averaged over k.
    """
    z = F.normalize(torch.cat([a, b], dim=0).float(), dim=1)
    n = a.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
    return F.cross_entropy(sim, target)


class ProjectionHead(nn.Module):
    """Global-average-pooled features -> MLP (training only, never exported)."""

    def __init__(self, channels: int, hidden: int = 256, out: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, feats: Tensor) -> Tensor:
        return self.mlp(feats.float().mean(dim=(2, 3)))


def augment_clean(x: Tensor, g: torch.Generator, crop: float = 0.75) -> Tensor:
    """The contrastive clean view: random flip, colour jitter, random crop (per image)."""
    b, _, h, w = x.shape
    ch, cw = int(h * crop) // 4 * 4, int(w * crop) // 4 * 4
    out = []
    r = torch.rand(b, 7, generator=g)
    for i in range(b):
        v = x[i]
        if r[i, 0] < 0.5:
            v = v.flip(2)
        bright = 0.6 + 0.8 * r[i, 1]
        contrast = 0.6 + 0.8 * r[i, 2]
        sat = 0.6 + 0.8 * r[i, 3]
        v = v * bright
        mean = v.mean()
        v = (v - mean) * contrast + mean
        grey = v.mean(dim=0, keepdim=True)
        v = (v - grey) * sat + grey
        top = int(r[i, 4] * (h - ch + 1))
        left = int(r[i, 5] * (w - cw + 1))
        out.append(v[:, top : top + ch, left : left + cw].clamp(0, 1))
    return torch.stack(out)
