"""Weights files: safetensors with the model config inside, a manifest, checksums.

A jcd weights file is a safetensors file (loading it cannot execute code) whose metadata
carries ``jcd_config`` (the :class:`ModelConfig` as JSON). Parameters are fp16, buffers fp32;
the quantised CDF tables are stored as computed at export, so every machine entropy-codes
with identical integer tables. ``models/manifest.json`` lists the shipped files with their
sha256, training record and measured figures; the default file is checked against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import WeightsError
from .manifest import models_dir, read_manifest, sha256_file
from .nn.model import JointModel, ModelConfig
from .outputs import atomic_target

#: Entropy-model buffers whose size depends on the trained weights.
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")
#: Largest N a weights file may ask for (a bound on what loading may allocate).
MAX_N = 512


@dataclass
class LoadedWeights:
    model: JointModel
    path: Path
    sha256: str
    name: str
    trained: bool
    manifest_entry: dict | None = None

    @property
    def fingerprint(self) -> bytes:
        """The 4 bytes a .jcd stream stores to name the weights it was made with."""
        return bytes.fromhex(self.sha256[:8])


def save_weights(model: JointModel, path: Path, extra_metadata: dict[str, str] | None = None) -> str:
    """Export inference weights (fp16) with fresh entropy tables; returns the file's sha256.

    Parameters are rounded to fp16 first and the tables are rebuilt from the rounded values,
    so the tables always belong to exactly the weights a decoder will load.
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
    with atomic_target(path) as tmp:
        save_file(out, str(tmp), metadata=meta)
    return sha256_file(path)


def load_model_file(path: Path) -> tuple[JointModel, dict[str, str]]:
    """Build the model a weights file describes and load it (fp32, CPU, eval mode)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors weights file ({e})") from None
    if meta.get("jcd_format") != "1" or "jcd_config" not in meta:
        raise WeightsError(f"{path}: not a jcd weights file (no jcd_config metadata)")
    try:
        config = ModelConfig.from_json(meta["jcd_config"])
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: invalid model config ({e})") from None
    if config.N > MAX_N:
        raise WeightsError(f"{path}: N={config.N} exceeds the supported maximum {MAX_N}")
    model = JointModel(config)
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
    if not model.tables_ready():
        raise WeightsError(f"{path}: weights carry no entropy tables (export them with `jcd export`)")
    return model.eval(), meta


def load_weights(path: str | os.PathLike | None = None) -> LoadedWeights:
    """Load ``path`` (a weights file, or the name of a shipped model), or the manifest's default.

    Shipped models are checked against the manifest's sha256 before they are used.
    """
    manifest = read_manifest()
    models = manifest.get("models", {})
    entry = None
    if path is None:
        name = manifest.get("default")
        if not name or name not in models:
            raise WeightsError(f"no default weights in {models_dir() / 'manifest.json'}; pass --weights")
        entry = models[name]
        file, digest = _shipped_file(name, entry)
    elif not Path(path).is_file() and str(path) in models:
        entry = models[str(path)]
        file, digest = _shipped_file(str(path), entry)
    else:
        file = Path(path)
        if not file.is_file():
            names = ", ".join(sorted(models)) or "none"
            raise WeightsError(f"{file}: no such weights file or shipped model (shipped: {names})")
        digest = sha256_file(file)
        for e in models.values():
            if e.get("sha256") == digest:
                entry = e
                break
    model, meta = load_model_file(file)
    name = entry["name"] if entry and "name" in entry else meta.get("name", file.stem)
    trained = meta.get("trained", "true") == "true"
    return LoadedWeights(model, file, digest, name, trained, entry)


def _shipped_file(name: str, entry: dict) -> tuple[Path, str]:
    """The file of a manifest entry and its sha256, refusing a missing or altered file."""
    file = models_dir() / entry["file"]
    if not file.is_file():
        raise WeightsError(f"weights {name!r}: {file} is missing")
    digest = sha256_file(file)
    if digest != entry["sha256"]:
        raise WeightsError(f"{file}: checksum mismatch (expected {entry['sha256'][:12]}, got {digest[:12]})")
    return file, digest
