"""The model config: every architectural switch of jcd, stored inside each weights file.

Free of torch, so the decode path (which never imports torch) reads a weights file's config too.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

#: MSE lambdas of CompressAI / Cheng et al. for qualities 1..6 (loss = R + lambda*255^2*MSE).
LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)


@dataclass(frozen=True)
class ModelConfig:
    """Every architectural switch of jcd; saved inside the weights file.

    The paper's model is ``ModelConfig(N=128 or 192, qualities=(q,))``; the baseline of
    Cheng et al. 2022 is ``baseline()``; ``denoise=False`` is plain Cheng2020-anchor.
    """

    N: int = 128
    qualities: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    denoise: bool = True
    selfonn: bool = True  # d1 uses Self-ONN units (else convolution units)
    multiscale: bool = True  # dilated multi-scale front in both denoisers
    cbam: bool = True  # CBAM attention in the denoiser trunks
    onn_q: int = 3  # order of the generative neurons
    # A learned per-channel scale on each denoiser's output (LayerScale). Denoisers added to a trained codec
    # start with it at zero, so the codec starts unchanged and the denoisers grow in as far as they help;
    # without it their first, random corrections hurt and training closes their mask gates for good.
    denoiser_scale: bool = False
    lambdas: tuple[float, ...] = field(default=LAMBDAS)

    def __post_init__(self) -> None:
        if self.N < 16 or self.N % 4:
            raise ValueError(f"N must be a multiple of 4 and >= 16, got {self.N}")
        if not self.qualities or any(not 1 <= q <= len(self.lambdas) for q in self.qualities):
            raise ValueError(f"qualities must lie in 1..{len(self.lambdas)}")
        if list(self.qualities) != sorted(set(self.qualities)):
            raise ValueError("qualities must be increasing and unique")

    @property
    def variable_rate(self) -> bool:
        return len(self.qualities) > 1

    @classmethod
    def paper(cls, quality: int) -> ModelConfig:
        """The per-quality model of the paper (N=128 for q1..3, 192 for q4..6)."""
        return cls(N=128 if quality <= 3 else 192, qualities=(quality,))

    @classmethod
    def baseline(cls, **kw: object) -> ModelConfig:
        """Cheng et al. 2022: simplified attention-block denoisers, no Self-ONN/CBAM/multi-scale."""
        return cls(selfonn=False, multiscale=False, cbam=False, **kw)  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        for key in ("qualities", "lambdas"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)
