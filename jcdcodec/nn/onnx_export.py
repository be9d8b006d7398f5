"""g_s and the analysis as ONNX files, for coding without PyTorch.

The networks are defined once, in PyTorch; at export time each is traced to ONNX (opset 17, dynamic
height and width) with its parameters in fp16 (as in the weights file) and cast to float32 inside the
graph, so it computes with exactly the weights the PyTorch path loads. g_s's file holds its parameters
(half the size of fp32). The analysis file holds only the graph (about 100 KB): its parameters are ONNX
"external data" that point at the tensors' bytes inside the weights file beside it, so shipping it adds
no second copy of the encoder's weights to the repository. Each file's metadata names the sha256 of the
weights it belongs to; the coder refuses a companion that belongs to other weights.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
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


class _Analysis(nn.Module):
    """x (1, 3, H, W) in [0, 1] -> the denoised latent before the quality gain (1, N, H/16, W/16)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.analysis_noisy(x)[1]


def export_analysis(model: nn.Module, weights_file: Path, path: Path, weights_sha256: str) -> None:
    """Write the analysis of ``model`` (g_a with the denoisers) to ``path``, its parameters read from ``weights_file``.

    ``model`` must hold exactly the tensors of ``weights_file`` (loaded from it, or saved to it): every
    parameter is checked byte for byte against the file before the graph points at it, so a companion can
    never compute with other weights than the file it names.
    """
    import onnx

    module = _fp16_parameters(_Analysis(model))
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 3, 64, 64),), buf, input_names=["x"], output_names=["y"],
                          opset_version=OPSET, dynamic_axes={"x": {2: "H", 3: "W"}, "y": {2: "h", 3: "w"}},
                          do_constant_folding=False, dynamo=False)  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {WEIGHTS_KEY: weights_sha256})
    onnx.checker.check_model(proto)  # before the parameters leave the graph: the checker looks for their file
    _point_at_weights(proto, Path(weights_file))
    atomic_write_bytes(Path(path), proto.SerializeToString())


def _point_at_weights(proto, weights_file: Path) -> None:
    """Replace every initializer that is a tensor of ``weights_file`` by a reference to its bytes there."""
    import onnx

    blob = weights_file.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    start = 8 + n
    dtypes = {"F16": onnx.TensorProto.FLOAT16, "F32": onnx.TensorProto.FLOAT}
    for t in proto.graph.initializer:
        entry = header.get(t.name.removeprefix("model.").removesuffix("_fp16"))
        if not entry or dtypes.get(entry["dtype"]) != t.data_type or list(t.dims) != entry["shape"]:
            continue  # a constant of the trace, not a tensor of the file: it stays in the graph
        a, b = entry["data_offsets"]
        if t.raw_data != blob[start + a : start + b]:
            raise WeightsError(f"{weights_file}: tensor {t.name} differs from the model being exported")
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", weights_file.name), ("offset", str(start + a)), ("length", str(b - a))):
            t.external_data.add(key=key, value=value)
