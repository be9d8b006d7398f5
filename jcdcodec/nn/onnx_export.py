"""g_s as an ONNX file, for the decoder that runs without PyTorch.

The networks are defined once, in PyTorch; at export time g_s is traced to ONNX (opset 17, dynamic
height and width) with its parameters stored in fp16 (as in the weights file) and cast to float32
inside the graph, so the file is half the size and computes with exactly the weights the PyTorch path
loads. The file's metadata names the sha256 of the weights it belongs to; the decoder refuses a
companion that belongs to other weights.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from ..outputs import atomic_write_bytes
from ..synthesis import WEIGHTS_KEY

OPSET = 17


def _fp16_parameters(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters are fp16 buffers, cast to float32 at each call (traced as Cast)."""
    module = copy.deepcopy(module).float().eval()

    def cast(mod: nn.Module, _args: tuple) -> None:
        for name in mod._jcd_fp16:
            setattr(mod, name, getattr(mod, name + "_fp16").float())

    for mod in list(module.modules()):
        names = [n for n, _ in mod.named_parameters(recurse=False)]
        if not names:
            continue
        for n in names:
            p = getattr(mod, n).detach()
            delattr(mod, n)
            mod.register_buffer(n + "_fp16", p.half())
            setattr(mod, n, p)
        mod._jcd_fp16 = names
        mod.register_forward_pre_hook(cast)
    return module


def export_synthesis(g_s: nn.Module, path: Path, weights_sha256: str) -> None:
    """Write g_s (input ``y``: the latent times the quality's inverse gain, (1, N, h, w) float32) to ``path``."""
    import onnx

    module = _fp16_parameters(g_s)
    n = next(m for m in module.modules() if isinstance(m, nn.Conv2d)).in_channels
    example = torch.zeros(1, n, 4, 6)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, input_names=["y"], output_names=["x"], opset_version=OPSET,
                          dynamic_axes={"y": {2: "h", 3: "w"}, "x": {2: "height", 3: "width"}},
                          do_constant_folding=False, dynamo=False)  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {WEIGHTS_KEY: weights_sha256})
    onnx.checker.check_model(proto)
    atomic_write_bytes(Path(path), proto.SerializeToString())
