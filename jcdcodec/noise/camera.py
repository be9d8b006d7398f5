"""Camera-like noise: unprocess to a raw mosaic, add sensor noise there, develop again.

A user's noisy photo did not get its noise in sRGB, pixel by pixel: the sensor's Poisson-Gaussian noise
was demosaicked (so it is spatially and cross-channel correlated), colour-corrected, tone mapped and
usually JPEG compressed. In the spirit of Brooks et al. 2019 ("Unprocessing Images for Learned Raw
Denoising"), each clean sRGB crop is taken back through an approximate inverse camera pipeline:

    sRGB -> inverse tone curve -> linear (inverse sRGB gamma) -> inverse colour matrix -> inverse white
    balance -> RGGB Bayer mosaic

where noise with variance ``shot * x + read_var`` is added, and developed forward again (bilinear
demosaicking, white balance, colour matrix, sRGB gamma, tone curve). Only the *noise* the pipeline makes
is kept: ``noisy = clean + develop(raw + n) - develop(raw)``, so the clean content is exactly the
training target (bilinear demosaicking of the clean mosaic would otherwise blur it) and the brightness of
the picture does not move. On part of the batches the noisy picture is then JPEG compressed at a random
quality, as cameras and phones deliver it.

Strength: ``shot`` log-uniform over [2e-5, 4e-3] and the read variance on the line real sensors follow
(log read_var = 2.18 log shot + 1.2, with spread); white balance and colour matrix amplify the raw noise
as in a camera. On Kodak crops that puts the noisy pictures about 25-48 dB from the clean ones (median
about 36): the PolyU real pairs (32-41 dB) and beyond on both sides.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .readshot import from_linear, to_linear

#: log(shot) range of the training sampler (variance per unit of signal in the raw domain).
LOG_SHOT = (math.log(2e-5), math.log(4e-3))


def read_variance(shot: float) -> float:
    """The read variance real sensors pair with a shot-noise level (the centre of the sampler's line)."""
    return math.exp(2.18 * math.log(shot) + 1.2)


#: Fixed strengths for ``jcd noise --camera LEVEL`` (shot, read variance): about 40, 35, 30 and 25 dB on Kodak.
CAMERA_LEVELS: dict[int, tuple[float, float]] = {
    k: (shot, read_variance(shot)) for k, shot in ((1, 6e-5), (2, 2e-4), (3, 6e-4), (4, 2e-3))
}


@dataclass
class CameraParams:
    """One camera per image of a batch (all tensors have the batch as first dimension)."""

    shot: Tensor  # (B,) variance per unit of raw signal
    read_var: Tensor  # (B,) signal-independent variance
    ccm: Tensor  # (B, 3, 3) camera RGB -> linear sRGB; rows sum to 1, so grey stays grey
    wb: Tensor  # (B, 3) white-balance gains (red, 1, blue)
    jpeg: Tensor  # (B,) JPEG quality of the delivered picture, 0 for none

    def to(self, device: torch.device | str) -> CameraParams:
        return CameraParams(*(getattr(self, f).to(device) for f in ("shot", "read_var", "ccm", "wb", "jpeg")))


def _colour_matrices(batch: int, g: torch.Generator) -> Tensor:
    """Camera-to-sRGB matrices as real ones look: strong diagonal, negative off-diagonals, rows summing to 1."""
    diag = 1.3 + 0.7 * torch.rand(batch, 3, generator=g)
    split = 0.25 + 0.5 * torch.rand(batch, 3, generator=g)  # how each row's negative part is shared
    m = torch.zeros(batch, 3, 3)
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        neg = diag[:, i] - 1.0
        m[:, i, i] = diag[:, i]
        m[:, i, j] = -neg * split[:, i]
        m[:, i, k] = -neg * (1 - split[:, i])
    return m


def sample_camera_params(batch: int, g: torch.Generator, jpeg_fraction: float = 0.5) -> CameraParams:
    """Random cameras, ISOs and delivery for a batch; every draw comes from ``g``."""
    u = torch.rand(batch, generator=g)
    log_shot = LOG_SHOT[0] + (LOG_SHOT[1] - LOG_SHOT[0]) * u
    log_read = 2.18 * log_shot + 1.2 + 0.26 * torch.randn(batch, generator=g)
    wb = torch.stack([1.8 + 0.6 * torch.rand(batch, generator=g), torch.ones(batch),
                      1.4 + 0.6 * torch.rand(batch, generator=g)], dim=1)  # fmt: skip
    use_jpeg = torch.rand(batch, generator=g) < jpeg_fraction
    quality = torch.randint(70, 96, (batch,), generator=g)
    return CameraParams(log_shot.exp(), log_read.exp(), _colour_matrices(batch, g), wb,
                        torch.where(use_jpeg, quality, torch.zeros_like(quality)))  # fmt: skip


def camera_level_params(level: int, batch: int = 1) -> CameraParams:
    """The fixed strengths of ``CAMERA_LEVELS`` with a typical camera (mean colour matrix and white balance)."""
    shot, read_var = CAMERA_LEVELS[level]
    ccm = torch.tensor([[1.65, -0.4, -0.25], [-0.25, 1.5, -0.25], [-0.1, -0.5, 1.6]])
    return CameraParams(torch.full((batch,), shot), torch.full((batch,), read_var), ccm.expand(batch, 3, 3),
                        torch.tensor([[2.1, 1.0, 1.7]]).expand(batch, 3), torch.zeros(batch, dtype=torch.long))


def _tone(x: Tensor) -> Tensor:
    """The global tone curve of the forward pipeline (a smoothstep)."""
    return 3 * x**2 - 2 * x**3


def _untone(y: Tensor) -> Tensor:
    """Its inverse on [0, 1]."""
    return 0.5 - torch.sin(torch.asin((1 - 2 * y).clamp(-1, 1)) / 3)


def _bayer_masks(h: int, w: int, device: torch.device) -> Tensor:
    """(3, H, W) 0/1 masks of an RGGB mosaic."""
    m = torch.zeros(3, h, w, device=device)
    m[0, 0::2, 0::2] = 1
    m[1, 0::2, 1::2] = 1
    m[1, 1::2, 0::2] = 1
    m[2, 1::2, 1::2] = 1
    return m


def _demosaic(mosaic: Tensor, masks: Tensor) -> Tensor:
    """Bilinear demosaicking of a (B, 1, H, W) RGGB mosaic into (B, 3, H, W)."""
    k_g = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=mosaic.dtype, device=mosaic.device) / 4
    k_rb = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=mosaic.dtype, device=mosaic.device) / 4
    sparse = mosaic * masks[None]  # (B, 3, H, W), zero where a channel was not sampled
    kernels = torch.stack([k_rb, k_g, k_rb])[:, None]  # (3, 1, 3, 3)
    return F.conv2d(F.pad(sparse, (1, 1, 1, 1), mode="reflect"), kernels, groups=3)


def _develop(raw: Tensor, p: CameraParams, masks: Tensor) -> Tensor:
    """Mosaic (B, 1, H, W) -> sRGB (B, 3, H, W) in [0, 1]."""
    rgb = _demosaic(raw, masks) * p.wb[:, :, None, None]
    rgb = torch.einsum("bij,bjhw->bihw", p.ccm, rgb).clamp(0, 1)
    return _tone(from_linear(rgb, "srgb").clamp(0, 1))


def _jpeg(x: Tensor, quality: Tensor) -> Tensor:
    """JPEG round trip (Pillow, 4:2:0 as cameras use) of the images whose quality is non-zero."""
    from PIL import Image

    out = x.clone()
    for i in torch.nonzero(quality).flatten().tolist():
        a = (x[i].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=int(quality[i]))
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            back = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
        out[i] = back.to(x.device, x.dtype) / 255.0
    return out


def add_camera_noise(clean: Tensor, params: CameraParams, generator: torch.Generator | None = None) -> Tensor:
    """Camera-like noisy version of ``clean`` (B, 3, H, W) sRGB in [0, 1] (see the module docstring)."""
    b, _, h, w = clean.shape
    p = params.to(clean.device)
    pad_h, pad_w = h % 2, w % 2  # the mosaic needs even sides
    x = F.pad(clean.float(), (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else clean.float()
    masks = _bayer_masks(x.shape[2], x.shape[3], x.device)
    lin = to_linear(_untone(x.clamp(0, 1)), "srgb")
    cam = torch.einsum("bij,bjhw->bihw", torch.linalg.inv(p.ccm), lin) / p.wb[:, :, None, None]
    raw = (cam * masks[None]).sum(dim=1, keepdim=True)
    var = p.shot[:, None, None, None] * raw.clamp_min(0) + p.read_var[:, None, None, None]
    where = generator.device if generator is not None else raw.device
    n = torch.randn(raw.shape, generator=generator, dtype=raw.dtype, device=where).to(raw.device)
    noise = _develop(raw + var.sqrt() * n, p, masks) - _develop(raw, p, masks)
    noisy = (x + noise)[:, :, :h, :w].clamp(0, 1)
    if bool((p.jpeg > 0).any()):
        noisy = _jpeg(noisy, p.jpeg)
    return noisy


__all__ = ["CAMERA_LEVELS", "CameraParams", "add_camera_noise", "camera_level_params", "sample_camera_params"]
