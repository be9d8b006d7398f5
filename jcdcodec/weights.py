"""Weights files: safetensors with the model config inside, a manifest, checksums.

A jcd weights file is a safetensors file (loading it cannot execute code) whose metadata
carries ``jcd_config`` (the :class:`ModelConfig` as JSON). Parameters are fp16, buffers fp32;
the quantised CDF tables are stored as computed at export, so every machine entropy-codes
with identical integer tables. ``models/manifest.json`` lists the shipped files with their
sha256, training record and measured figures; the default file is checked against it.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import WeightsError
from .manifest import sha256_file
from .nn.model import JointModel
from .outputs import atomic_write_bytes
from .weightsfile import (
    MAX_N,
    WeightsRef,
    analysis_path_for,
    parse_config,
    read_metadata,
    resolve,
    synthesis_path_for,
    unreadable,
)

__all__ = ["MAX_N", "LoadedWeights", "load_model_file", "load_weights", "save_weights", "write_analysis",
           "write_synthesis"]  # fmt: skip

#: Entropy-model buffers whose size depends on the trained weights.
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


@dataclass
class LoadedWeights:
    model: JointModel
    path: Path
    sha256: str
    name: str
    trained: bool
    manifest_entry: dict | None = None
    ref: WeightsRef | None = None

    @property
    def fingerprint(self) -> bytes:
        """The 4 bytes a .jcd stream stores to name the weights it was made with."""
        return bytes.fromhex(self.sha256[:8])


def save_weights(model: JointModel, path: Path, extra_metadata: dict[str, str] | None = None,
                 synthesis: bool = True) -> str:
    """Export inference weights (fp16) with fresh entropy tables; returns the file's sha256.

    Parameters are rounded to fp16 first and the tables are rebuilt from the rounded values,
    so the tables always belong to exactly the weights a decoder will load. With ``synthesis``,
    g_s also goes to ``NAME.synthesis.onnx`` beside the file, for the decoder without PyTorch, and the
    analysis to ``NAME.analysis.onnx``, for the encoder without it
    (skipped with a warning when the ``onnx`` package is missing).
    """
    model = model.cpu().float()
    # Parameters go to fp16; buffers (bounds such as the 1e-9 likelihood floor, masks, tables) stay as
    # they are: fp16 would round some of them to 0.
    learned = {n for n, _ in model.named_parameters()}
    rounded = {k: v.half().float() for k, v in model.state_dict().items() if k in learned}
    model.load_state_dict(rounded, strict=False)
    model.update_tables()
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        out[k] = v.half() if k in learned else v
    meta = {"jcd_format": "1", "jcd_config": model.config.to_json()}
    meta.update(extra_metadata or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, canonical_header(save(out, metadata=meta)))
    digest = sha256_file(path)
    if synthesis:
        write_synthesis(model, path, digest)
        write_analysis(model, path, digest)
    return digest


def canonical_header(blob: bytes) -> bytes:
    """``blob`` (a safetensors file) with its metadata keys sorted, so an export is byte-reproducible.

    safetensors writes ``__metadata__`` in the order of a per-process random hash, so the same tensors
    and metadata gave another sha256 on every export (and every eval cache keyed by it missed). Only the
    JSON header changes; tensor entries keep their order and offsets, the data buffer is untouched.
    """
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | header
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data buffer stays 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def write_synthesis(model: JointModel, weights_file: Path, digest: str) -> Path | None:
    """g_s of ``model`` (the weights in ``weights_file``, sha256 ``digest``) to its ONNX companion."""
    import importlib.util
    import warnings

    from .errors import JcdWarning
    from .nn.onnx_export import export_synthesis

    if importlib.util.find_spec("onnx") is None:
        warnings.warn("onnx is not installed: no synthesis file written for the decoder without PyTorch "
                      "(pip install onnx)", JcdWarning, stacklevel=2)  # fmt: skip
        return None
    target = synthesis_path_for(Path(weights_file))
    export_synthesis(model.g_s, target, digest)
    return target


def write_analysis(model: JointModel, weights_file: Path, digest: str) -> Path | None:
    """The analysis of ``model`` (the weights in ``weights_file``, sha256 ``digest``) to its ONNX companion."""
    import importlib.util

    from .nn.onnx_export import export_analysis

    if importlib.util.find_spec("onnx") is None:  # write_synthesis has warned already
        return None
    target = analysis_path_for(Path(weights_file))
    export_analysis(model, Path(weights_file), target, digest)
    return target


def load_model_file(path: Path, meta: dict[str, str] | None = None,
                    coding_only: bool = False) -> tuple[JointModel, dict[str, str]]:  # fmt: skip
    """Build the model a weights file describes and load it (fp32, CPU, eval mode).

    ``coding_only``: without CompressAI's entropy models (the codec reads their tables from the file
    itself, :mod:`jcdcodec.entropy`); the model can code but not train.
    """
    meta = read_metadata(path) if meta is None else meta
    config = parse_config(path, meta)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise unreadable(path, e) from None
    entropy = ("entropy_bottleneck.", "gaussian_conditional.")
    if coding_only:
        if any(k not in state or state[k].numel() == 0 for k in (f"{p}_quantized_cdf" for p in entropy)):
            raise WeightsError(f"{path}: weights carry no entropy tables (export them with `jcd export`)")
        state = {k: v for k, v in state.items() if not k.startswith(entropy)}
    model = JointModel(config, entropy_models=not coding_only)
    # Table buffers change size with the weights: assign them instead of copying in.
    for name, module in model.named_modules():
        for buf in _TABLE_BUFFERS + ("scale_table",):
            key = f"{name}.{buf}" if name else buf
            if key in state and hasattr(module, buf):
                setattr(module, buf, state[key])
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise WeightsError(f"{path}: weights do not fit their config ({first})") from None
    if not coding_only and not model.tables_ready():
        raise WeightsError(f"{path}: weights carry no entropy tables (export them with `jcd export`)")
    return model.eval(), meta


def load_weights(path: str | os.PathLike | None = None, coding_only: bool = False) -> LoadedWeights:
    """Load ``path`` (a weights file, or the name of a shipped model), or the manifest's default.

    Shipped models are checked against the manifest's sha256 before they are used. ``coding_only``: see
    :func:`load_model_file`.
    """
    ref = resolve(path)
    model, meta = load_model_file(ref.path, ref.meta, coding_only)
    return LoadedWeights(model, ref.path, ref.sha256, ref.name, ref.trained, ref.entry, ref)
