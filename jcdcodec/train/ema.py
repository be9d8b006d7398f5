"""Exponential moving average of the model's learned parameters.

Why: the weights at any one step carry the noise of the last few hundred batches; their
running average is a better codec at no training cost (Zhang, Duan, Huang, Zhu 2025 report
it cuts learned-codec training time substantially). The trainer validates both, saves the
average in the checkpoint (so a resumed run continues it exactly) and export ships it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ParameterEMA:
    """fp32 shadow copies of ``model``'s parameters, updated after every applied step.

    The effective decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates
    ``n``, so a short run's average is not dominated by its starting point.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow: dict[str, Tensor] = {n: p.detach().float().clone() for n, p in model.named_parameters()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        shadows = list(self.shadow.values())
        values = [params[n].detach().float() for n in self.shadow]
        torch._foreach_lerp_(shadows, values, 1.0 - self.current_decay())
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for n, v in state["shadow"].items():
            if n in self.shadow:
                self.shadow[n].copy_(v)
        self.updates = int(state["updates"])

    def averaged_state(self) -> dict[str, Tensor]:
        """The averaged parameters, named as in the model's state dict."""
        return dict(self.shadow)


__all__ = ["ParameterEMA"]
