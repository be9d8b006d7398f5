"""Feature denoisers d0 (1/4 scale) and d1 (1/16 scale).

Both are the attention-block shape of CompressAI's ``AttentionBlock`` grown by the paper:

    f      = front(x)                      multi-scale: 4 dilated 3x3 convs (d=1..4), N/4 each
    trunk  = Unit, CBAM, Unit, CBAM, Unit  (conv units in d0, Self-ONN units in d1)
    mask   = 3 conv units + 1x1 conv
    d(x)   = trunk(f) * sigmoid(mask(f))   (times a per-channel scale s, with ModelConfig.denoiser_scale)

The model adds the input back (y = f + d(f)), so ``d`` returns only the residual. The trunk's units are
residual, so trunk(f) is far from zero at initialisation: a denoiser added to a trained codec starts by adding
a random correction. With the scale, started at zero (``start_silent``), it adds nothing until training finds a
correction that helps. With multi-scale, CBAM and Self-ONN switched off this is exactly the simplified
attention block of Cheng et al. 2022, the baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .cbam import CBAM
from .selfonn import SelfONN2d


class MultiScaleFront(nn.Module):
    """Four parallel dilated 3x3 convolutions (receptive field 3..9), N/4 channels each."""

    def __init__(self, channels: int, branches: int = 4) -> None:
        super().__init__()
        if channels % branches:
            raise ValueError(f"channels ({channels}) must be divisible by {branches}")
        self.branches = nn.ModuleList(
            nn.Conv2d(channels, channels // branches, 3, padding=d, dilation=d)
            for d in range(1, branches + 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class ConvUnit(nn.Module):
    """Bottleneck residual unit: 1x1 (N->N/2), 3x3, 1x1 (N/2->N), identity, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, half, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


class SelfONNUnit(nn.Module):
    """The same bottleneck with generative neurons; tanh bounds every layer's input."""

    def __init__(self, channels: int, q: int = 3) -> None:
        super().__init__()
        half = channels // 2
        self.l1 = SelfONN2d(channels, half, 1, q=q)
        self.l2 = SelfONN2d(half, half, 3, q=q)
        self.l3 = SelfONN2d(half, channels, 1, q=q)

    def forward(self, x: Tensor) -> Tensor:
        h = self.l1(torch.tanh(x))
        h = self.l2(torch.tanh(h))
        h = self.l3(torch.tanh(h))
        return torch.tanh(x + h)


class Denoiser(nn.Module):
    """Residual feature denoiser; see the module docstring for the shape."""

    def __init__(
        self,
        channels: int,
        selfonn: bool = False,
        multiscale: bool = True,
        cbam: bool = True,
        q: int = 3,
        scale: bool = False,
    ) -> None:
        super().__init__()
        self.front = MultiScaleFront(channels) if multiscale else nn.Identity()

        def unit() -> nn.Module:
            return SelfONNUnit(channels, q) if selfonn else ConvUnit(channels)

        trunk: list[nn.Module] = []
        for i in range(3):
            trunk.append(unit())
            if cbam and i < 2:
                trunk.append(CBAM(channels))
        self.trunk = nn.Sequential(*trunk)
        self.mask = nn.Sequential(
            ConvUnit(channels), ConvUnit(channels), ConvUnit(channels), nn.Conv2d(channels, channels, 1)
        )
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1)) if scale else None

    def forward(self, x: Tensor) -> Tensor:
        f = self.front(x)
        gate = torch.sigmoid(self.mask(f))
        out = self.trunk(f) * gate
        if self.scale is not None:
            out = out * self.scale
        if self.training:  # how much the denoiser does: its mean gate, and its correction relative to its input
            with torch.no_grad():
                self.stats = {"gate": float(gate.float().mean()),
                              "corr": float(out.float().norm() / x.float().norm().clamp_min(1e-12))}  # fmt: skip
        return out

    def open_gate(self, bias: float) -> None:
        """Start the mask gate at sigmoid(bias) everywhere: a denoiser added to a trained codec starts working
        instead of waiting behind a half-closed gate (the N=64 runs ended with d1's gate near 0.02)."""
        last = self.mask[-1]
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.fill_(bias)

    def start_silent(self) -> None:
        """Zero the output scale: the denoiser adds nothing until training grows its scale. The scale's
        gradient is the correction's agreement with the loss gradient, so it grows only where the (open-gated)
        correction helps; the trunk and gate train once it is non-zero."""
        if self.scale is None:
            raise ValueError("start_silent needs a denoiser built with scale=True")
        with torch.no_grad():
            self.scale.zero_()
