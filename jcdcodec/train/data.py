"""Training data: a folder of images decoded once into memory, random noisy/clean crops.

Decoding PNGs every step would cost more than the step itself on a CPU; the shared
training set is ~0.7 GB as uint8, so it is kept in RAM. All randomness comes from one
``torch.Generator`` that the checkpoint saves, so a resumed run draws the same batches.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..errors import JcdError, JcdWarning
from ..noise import add_camera_noise, add_noise, sample_camera_params, sample_training_sigmas

#: Training noise models: read+shot noise in sRGB (the benchmark's), camera-like noise (noise/camera.py),
#: or a batch-by-batch mix of the two.
NOISE_MODELS = ("readshot", "camera", "mix")


def check_noise_model(noise: str) -> None:
    if noise not in NOISE_MODELS:
        raise JcdError(f"noise must be one of {', '.join(NOISE_MODELS)}, got {noise!r}")


def check_upscale(upscale: float) -> None:
    if not 0.0 <= upscale <= 1.0:
        raise JcdError(f"upscale must be a fraction in [0, 1], got {upscale}")


def load_uint8(path: Path, min_side: int = 0) -> Tensor | None:
    """(3, H, W) uint8, or None when smaller than ``min_side``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if min(im.size) < min_side:
            return None
        return torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous()


def readable_uint8(path: Path, min_side: int = 0) -> Tensor | None:
    """``load_uint8``, or None with a warning when the file cannot be decoded: one bad file must not stop a run."""
    try:
        return load_uint8(path, min_side)
    except Exception as e:  # noqa: BLE001  (Pillow raises many kinds for damaged files)
        text = str(e).strip().splitlines()
        reason = text[0][:200] if text else type(e).__name__
        warnings.warn(f"{path}: skipped, not a readable image ({reason})", JcdWarning, stacklevel=2)
        return None


@dataclass
class Batch:
    clean: Tensor  # (B, 3, P, P) float in [0, 1]
    noisy: Tensor
    sigma_read: Tensor
    shot_std: Tensor


#: Largest enlargement of an ``upscale`` crop: a crop of patch/4 blown up to the patch.
MAX_UPSCALE = 4.0


def enlarge(crop: Tensor, size: int) -> Tensor:
    """A (3, h, w) uint8 crop resized (bicubic) to (3, size, size), still uint8.

    Why: the training photos are small (about 0.15 MP: downscaled, dense in texture per pixel) while users'
    photos and the PolyU pairs are crops of 18-24 MP camera frames, smooth at pixel level; enlarged crops show
    the codec such smooth content. The noise is added afterwards, so it stays pixel-sized as in a real camera.
    """
    x = F.interpolate(crop[None].float(), size=(size, size), mode="bicubic", align_corners=False)
    return x[0].round().clamp(0, 255).to(torch.uint8)


class PatchSampler:
    """Random crops with flips, and on-the-fly read+shot noise (one draw per image; none if ``clean_input``).

    ``upscale``: the fraction of crops cut smaller (1/1 to 1/MAX_UPSCALE of the patch, log-uniform) and
    enlarged to the patch (``enlarge``); 0 draws nothing extra, so older runs resume with the same batches.
    """

    def __init__(
        self,
        images: list[Tensor],
        patch: int,
        batch: int,
        wide_noise: bool = False,
        gamma: str = "reference",
        clean_input: bool = False,
        noise: str = "readshot",
        upscale: float = 0.0,
    ) -> None:
        check_noise_model(noise)
        check_upscale(upscale)
        self.images = [im for im in images if min(im.shape[1:]) >= patch]
        if not self.images:
            raise JcdError(f"no training image is at least {patch}x{patch}")
        self.patch, self.batch, self.wide_noise, self.gamma = patch, batch, wide_noise, gamma
        self.clean_input = clean_input
        self.noise = noise
        self.upscale = upscale

    def sample(self, g: torch.Generator, device: torch.device | str = "cpu") -> Batch:
        """One batch on ``device``: crops are cut on the CPU, then the noise is made on the device.

        Why on the device: on a GPU, drawing and shaping the noise of a batch of 16 256x256 crops on the CPU
        takes about as long as the training step itself. All randomness still comes from ``g`` (the noise
        from a device generator seeded from it), so a run is reproducible per seed and device.
        """
        device = torch.device(device)
        p = self.patch
        idx = torch.randint(len(self.images), (self.batch,), generator=g).tolist()
        crops = []
        for i in idx:
            im = self.images[i]
            side = p
            if self.upscale and float(torch.rand(1, generator=g)) < self.upscale:
                side = round(p / MAX_UPSCALE ** float(torch.rand(1, generator=g)))
            top = int(torch.randint(im.shape[1] - side + 1, (1,), generator=g))
            left = int(torch.randint(im.shape[2] - side + 1, (1,), generator=g))
            c = im[:, top : top + side, left : left + side]
            if side != p:
                c = enlarge(c, p)
            flips = torch.rand(2, generator=g)
            if flips[0] < 0.5:
                c = c.flip(2)
            if flips[1] < 0.5:
                c = c.flip(1)
            crops.append(c)
        clean = torch.stack(crops).to(device, non_blocking=True).float() / 255.0
        read, shot = sample_training_sigmas(self.batch, g, wide=self.wide_noise)
        seed = int(torch.randint(1 << 62, (1,), generator=g))
        if self.clean_input:
            return Batch(clean, clean.clone(), read * 0, shot * 0)
        noise_gen = torch.Generator(device).manual_seed(seed)
        camera = self.noise == "camera" or (self.noise == "mix" and bool(torch.rand(1, generator=g) < 0.5))
        if camera:
            params = sample_camera_params(self.batch, g)
            return Batch(clean, add_camera_noise(clean, params, noise_gen), params.read_var.sqrt(), params.shot)
        noisy = add_noise(clean, read.to(device), shot.to(device), generator=noise_gen, gamma=self.gamma)
        return Batch(clean, noisy, read, shot)


def center_crop(im: Tensor, size: int) -> Tensor:
    _, h, w = im.shape
    s = min(size, h, w) // 64 * 64
    top, left = (h - s) // 2, (w - s) // 2
    return im[:, top : top + s, left : left + s]
