"""Synthetic camera noise: the reference test levels and the training sampler.

The reference pipeline (Cheng et al. 2022, reused by the paper) is: inverse gamma ->
heteroscedastic Gaussian read+shot noise in linear light -> gamma -> clamp to [0, 1]::

    noisy_lin ~ Normal(lin, sqrt(sigma_read^2 + lin * shot_std^2))

Its gamma pair is not a true inverse (0.5 -> 0.519 with no noise at all); ``gamma="reference"``
reproduces it so figures compare with the published tables, ``gamma="srgb"`` uses the
standard sRGB curves.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: (sigma_read, shot_std) of test levels 1..4 (KPN test set gains 1, 2, 4, 8).
LEVELS: dict[int, tuple[float, float]] = {
    1: (0.0068354, 0.05200081),
    2: (0.01572141, 0.07886314),
    3: (0.03615925, 0.11960187),
    4: (0.08316627, 0.18138522),
}
#: log10 ranges of the training sampler (paper / reference code).
TRAIN_LOG_READ = (-3.0, -1.5)
TRAIN_LOG_SHOT = (-2.0, -1.0)
GAMMAS = ("reference", "srgb")


def to_linear(x: Tensor, gamma: str = "reference") -> Tensor:
    if gamma == "reference":
        # Reference quirk: threshold in the sRGB domain at 0.0031308, and (x+0.055)^2.4/1.055.
        return torch.where(x > 0.0031308, (x + 0.055) ** 2.4 / 1.055, x / 12.92)
    if gamma == "srgb":
        return torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    raise ValueError(f"unknown gamma {gamma!r}")


def from_linear(x: Tensor, gamma: str = "reference") -> Tensor:
    if gamma == "reference":
        return torch.where(x > 0.0031308, 1.055 * (x.clamp_min(0) + 0.001) ** (1 / 2.4) - 0.055, 12.92 * x)
    if gamma == "srgb":
        return torch.where(x > 0.0031308, 1.055 * x.clamp_min(0) ** (1 / 2.4) - 0.055, 12.92 * x)
    raise ValueError(f"unknown gamma {gamma!r}")


def add_noise(
    clean: Tensor,
    sigma_read: float | Tensor,
    shot_std: float | Tensor,
    generator: torch.Generator | None = None,
    gamma: str = "reference",
) -> Tensor:
    """Noisy version of ``clean`` (…, 3, H, W) in [0, 1]; per-image sigmas broadcast from (B,)."""
    lin = to_linear(clean.float(), gamma)
    read = torch.as_tensor(sigma_read, dtype=lin.dtype, device=lin.device)
    shot = torch.as_tensor(shot_std, dtype=lin.dtype, device=lin.device)
    if read.ndim == 1:
        read = read.view(-1, *([1] * (lin.ndim - 1)))
        shot = shot.view(-1, *([1] * (lin.ndim - 1)))
    std = torch.sqrt(read**2 + lin.clamp_min(0) * shot**2)
    # Drawn where the generator lives (a CPU generator gives the same noise on any device), then moved.
    where = generator.device if generator is not None else lin.device
    noise = torch.randn(lin.shape, generator=generator, dtype=lin.dtype, device=where).to(lin.device)
    return from_linear(lin + std * noise, gamma).clamp(0.0, 1.0)


def add_level_noise(clean: Tensor, level: int, seed: int = 0, gamma: str = "reference") -> Tensor:
    """Deterministic test noise: level 1..4, a fresh generator seeded with ``seed``."""
    if level not in LEVELS:
        raise ValueError(f"noise level must be 1..4, got {level}")
    g = torch.Generator().manual_seed(seed)
    return add_noise(clean, *LEVELS[level], generator=g, gamma=gamma)


def sample_training_sigmas(batch: int, generator: torch.Generator, wide: bool = False) -> tuple[Tensor, Tensor]:
    """One (sigma_read, shot_std) per image, log-uniform over the paper's ranges.

    ``wide`` stretches both ranges up to test level 4 so very noisy photos are in-range.
    """
    lr, ls = TRAIN_LOG_READ, TRAIN_LOG_SHOT
    if wide:
        lr, ls = (lr[0], -1.0), (ls[0], -0.7)
    u = torch.rand(2, batch, generator=generator)
    read = 10 ** (lr[0] + (lr[1] - lr[0]) * u[0])
    shot = 10 ** (ls[0] + (ls[1] - ls[0]) * u[1])
    return read, shot
