"""The joint denoising + compression model and the config that travels with its weights.

Cheng2020-anchor (CompressAI layers, entropy models) with the analysis transform split
in two and a feature denoiser after each half (paper section 3)::

    y0 = g_a0(x~) + d0(g_a0(x~))          1/4 resolution
    y1 = g_a1(y0) + d1(g_a1(y0))          1/16 resolution
    y  = y1 * gain[q]                     variable rate (one gain vector per quality)
    z  = h_a(y);  params = h_s(z^)
    (scale, mean) = e(params, context(y^))  5x5 masked context, Gaussian conditional
    x^ = g_s(y^ / gain[q])

The gain vectors (Cui et al. 2021, "asymmetric gained VAE") let one network serve all
six qualities, and fractional ones by interpolating log-gains. A config with a single
quality has no gains and is the per-quality model of the paper.
"""

from __future__ import annotations

import math

import torch
from compressai.layers import (
    MaskedConv2d,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv3x3,
    subpel_conv3x3,
)
from torch import Tensor, nn

from ..config import LAMBDAS, ModelConfig
from .denoiser import Denoiser

__all__ = ["LAMBDAS", "JointModel", "ModelConfig", "scale_table"]


def scale_table(lo: float = 0.11, hi: float = 256.0, levels: int = 64) -> torch.Tensor:
    """The Gaussian scale table of CompressAI's models (64 log-spaced scales, 0.11 .. 256).

    Written here rather than imported from ``compressai.models``, whose import costs ~2 s of start-up.
    """
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), levels))


class _SubsampledSkip(nn.Module):
    """``x[..., ::2, ::2]`` then a stride-1 1x1 conv: the same function as a stride-2 1x1 conv.

    Works around a PyTorch 2.14 CPU crash (heap corruption in the backward of a stride-2
    1x1 convolution from 3 channels in channels_last) with identical weights.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, 1)
        self.conv.load_state_dict(conv.state_dict())

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x[:, :, ::2, ::2])


def _first_block(n: int) -> ResidualBlockWithStride:
    block = ResidualBlockWithStride(3, n, stride=2)
    block.skip = _SubsampledSkip(block.skip)
    return block


class JointModel(nn.Module):
    """Joint denoise + compress network. Training uses :meth:`forward`; coding uses the parts.

    ``entropy_models=False`` builds it without CompressAI's entropy models (the coder codes with
    :mod:`jcdcodec.entropy` from the weights file's tables): importing those models imports scipy.stats,
    about a second of every ``jcd encode``'s start-up.
    """

    def __init__(self, config: ModelConfig, entropy_models: bool = True) -> None:
        super().__init__()
        self.config = config
        n = config.N
        self.g_a0 = nn.Sequential(_first_block(n), ResidualBlock(n, n), ResidualBlockWithStride(n, n, 2))
        self.g_a1 = nn.Sequential(
            ResidualBlock(n, n),
            ResidualBlockWithStride(n, n, 2),
            ResidualBlock(n, n),
            conv3x3(n, n, stride=2),
        )
        if config.denoise:
            self.d0: nn.Module | None = Denoiser(n, False, config.multiscale, config.cbam,
                                                 scale=config.denoiser_scale)  # fmt: skip
            self.d1: nn.Module | None = Denoiser(
                n, config.selfonn, config.multiscale, config.cbam, config.onn_q, scale=config.denoiser_scale
            )
        else:
            self.d0 = self.d1 = None
        self.h_a = nn.Sequential(
            conv3x3(n, n), nn.LeakyReLU(inplace=True),
            conv3x3(n, n), nn.LeakyReLU(inplace=True),
            conv3x3(n, n, stride=2), nn.LeakyReLU(inplace=True),
            conv3x3(n, n), nn.LeakyReLU(inplace=True),
            conv3x3(n, n, stride=2),
        )  # fmt: skip
        self.h_s = nn.Sequential(
            conv3x3(n, n), nn.LeakyReLU(inplace=True),
            subpel_conv3x3(n, n, 2), nn.LeakyReLU(inplace=True),
            conv3x3(n, n * 3 // 2), nn.LeakyReLU(inplace=True),
            subpel_conv3x3(n * 3 // 2, n * 3 // 2, 2), nn.LeakyReLU(inplace=True),
            conv3x3(n * 3 // 2, n * 2),
        )  # fmt: skip
        self.g_s = nn.Sequential(
            ResidualBlock(n, n), ResidualBlockUpsample(n, n, 2),
            ResidualBlock(n, n), ResidualBlockUpsample(n, n, 2),
            ResidualBlock(n, n), ResidualBlockUpsample(n, n, 2),
            ResidualBlock(n, n), subpel_conv3x3(n, 3, 2),
        )  # fmt: skip
        self.context_prediction = MaskedConv2d(n, 2 * n, kernel_size=5, padding=2, stride=1)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(n * 12 // 3, n * 10 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(n * 10 // 3, n * 8 // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(n * 8 // 3, n * 6 // 3, 1),
        )  # fmt: skip
        if entropy_models:
            from compressai.entropy_models import EntropyBottleneck, GaussianConditional

            self.entropy_bottleneck = EntropyBottleneck(n)
            self.gaussian_conditional = GaussianConditional(None)
        else:
            self.entropy_bottleneck = self.gaussian_conditional = None
        if config.variable_rate:
            lam = torch.tensor([config.lambdas[q - 1] for q in config.qualities])
            # Start the gains spread like the step sizes the lambdas call for (~lambda^0.5
            # in a high-rate model), relative to the middle quality; training refines them.
            log_g = 0.5 * torch.log(lam / lam[len(lam) // 2])
            self.log_gain = nn.Parameter(log_g[:, None].repeat(1, n))
            self.log_inv_gain = nn.Parameter(-log_g[:, None].repeat(1, n))
        else:
            self.log_gain = self.log_inv_gain = None

    # -- rate control -------------------------------------------------------------
    def quality_range(self) -> tuple[float, float]:
        return float(self.config.qualities[0]), float(self.config.qualities[-1])

    def _interp(self, table: Tensor, quality: float) -> Tensor:
        qs = self.config.qualities
        pos = min(max(quality, qs[0]), qs[-1])
        lo = max(i for i, q in enumerate(qs) if q <= pos)
        hi = min(lo + 1, len(qs) - 1)
        t = 0.0 if hi == lo else (pos - qs[lo]) / (qs[hi] - qs[lo])
        return torch.exp(table[lo] * (1 - t) + table[hi] * t).view(1, -1, 1, 1)

    def gain(self, quality: float) -> Tensor | None:
        return None if self.log_gain is None else self._interp(self.log_gain, quality)

    def inv_gain(self, quality: float) -> Tensor | None:
        return None if self.log_inv_gain is None else self._interp(self.log_inv_gain, quality)

    def lmbda(self, quality: int) -> float:
        return self.config.lambdas[quality - 1]

    # -- transforms -----------------------------------------------------------------
    def analysis_clean(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Guidance branch: the shared encoder without the denoisers (training only)."""
        f0 = self.g_a0(x)
        return f0, self.g_a1(f0)

    def analysis_noisy(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Denoising branch: returns (y0, y1) before the gain."""
        y0 = self.g_a0(x)
        if self.d0 is not None:
            y0 = y0 + self.d0(y0)
        y1 = self.g_a1(y0)
        if self.d1 is not None:
            y1 = y1 + self.d1(y1)
        return y0, y1

    def analysis(self, x: Tensor, quality: float) -> Tensor:
        """The latent that is entropy coded: denoised features times the quality's gain."""
        y = self.analysis_noisy(x)[1]
        g = self.gain(quality)
        return y if g is None else y * g.to(y.dtype)

    def synthesis(self, y_hat: Tensor, quality: float) -> Tensor:
        g = self.inv_gain(quality)
        if g is not None:
            y_hat = y_hat * g.to(y_hat.dtype)
        return self.g_s(y_hat)

    # -- training forward -------------------------------------------------------------
    def forward(self, x_noisy: Tensor, quality: int) -> dict[str, Tensor]:
        """Noisy branch end to end with uniform-noise quantisation (training).

        Transforms may run under bf16 autocast; the entropy models always run in fp32
        so the rate terms are those of the real coder.
        """
        y0, y1 = self.analysis_noisy(x_noisy)
        out = self.code_latent(y1, quality)
        out.update(y0=y0, y1=y1)
        return out

    def code_latent(self, y1: Tensor, quality: int) -> dict[str, Tensor]:
        """From the denoised latent (before the gain) to the reconstruction and both likelihoods (training).

        Split from :meth:`forward` so that calibration can run the frozen analysis without gradients.
        """
        g = self.gain(quality)
        y = (y1 if g is None else y1 * g).float()
        with torch.autocast(device_type=y.device.type, enabled=False):
            z = self.h_a(y)
            z_hat, z_lik = self.entropy_bottleneck(z)
            params = self.h_s(z_hat)
            y_tilde = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
            ctx = self.context_prediction(y_tilde)
            scales, means = self.entropy_parameters(torch.cat([params, ctx], dim=1)).chunk(2, 1)
            _, y_lik = self.gaussian_conditional(y, scales, means=means)
            # The decoder sees round(y - mean) + mean: give g_s exactly that, with a
            # straight-through gradient, so training matches what decoding does.
            y_hat = y + (torch.round(y - means) + means - y).detach()
        x_hat = self.synthesis(y_hat, quality)
        return {"x_hat": x_hat, "y_lik": y_lik, "z_lik": z_lik}

    def aux_loss(self) -> Tensor:
        return self.entropy_bottleneck.loss()

    # -- entropy tables ----------------------------------------------------------------
    def update_tables(self) -> None:
        """(Re)build the quantised CDF tables from the current weights.

        They are stored in the weights file so every machine codes with the very same
        integer tables instead of recomputing them in floating point.
        """
        self.entropy_bottleneck.update(force=True)
        self.gaussian_conditional.update_scale_table(scale_table(), force=True)

    def tables_ready(self) -> bool:
        return self.entropy_bottleneck._offset.numel() > 0 and self.gaussian_conditional._offset.numel() > 0

