"""Finding and reading a weights file without PyTorch: which file, its checksum, config and tensors.

Both the full codec (:mod:`.weights`, which builds the PyTorch model) and the torch-free decoder
(:mod:`.decoder`) resolve weights here, so a name, a path and the default mean the same to both.
A weights file may have two companions written by ``jcd export``: ``NAME.synthesis.onnx`` (g_s, for
decoding without PyTorch) and ``NAME.analysis.onnx`` (the analysis, for encoding without it; a graph
whose parameters are read from the weights file itself). Each is found through the manifest entry's
``synthesis`` / ``analysis`` record, else beside the file, and must name the sha256 of the weights it
came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .errors import WeightsError
from .manifest import models_dir, read_manifest, sha256_file

#: Largest N a weights file may ask for (a bound on what loading may allocate).
MAX_N = 512
#: Suffix of the g_s companion file that the torch-free decoder runs.
SYNTHESIS_SUFFIX = ".synthesis.onnx"
#: Suffix of the analysis companion that the torch-free encoder runs.
ANALYSIS_SUFFIX = ".analysis.onnx"


@dataclass
class WeightsRef:
    """A resolved weights file: where it is, what it is, and its manifest entry when it is shipped."""

    path: Path
    sha256: str
    entry: dict | None = None
    meta: dict[str, str] = field(default_factory=dict)
    config: ModelConfig | None = None
    #: The sha256 its g_s companion names, when that is not its own: an earlier version rebuilt from a
    #: delta runs its base's synthesis file (jcdcodec.retired).
    synthesis_of: str | None = None

    @property
    def name(self) -> str:
        if self.entry and "name" in self.entry:
            return str(self.entry["name"])
        return self.meta.get("name", self.path.stem)

    @property
    def trained(self) -> bool:
        return self.meta.get("trained", "true") == "true"

    @property
    def fingerprint(self) -> bytes:
        """The 4 bytes a .jcd stream stores to name the weights it was made with."""
        return bytes.fromhex(self.sha256[:8])

    def synthesis_path(self) -> Path | None:
        """The g_s companion (checked against the manifest's sha256 when listed there), or None; looked up once."""
        if "_synthesis" not in self.__dict__:
            self.__dict__["_synthesis"] = self._find_synthesis()
        return self.__dict__["_synthesis"]

    def share_synthesis(self, path: Path, weights_sha256: str) -> None:
        """Run another file's g_s companion, one that names ``weights_sha256``: an earlier version rebuilt from a
        delta that left g_s as it was runs its base's (jcdcodec.retired)."""
        self.__dict__["_synthesis"] = path
        self.synthesis_of = weights_sha256

    def synthesis_sha256(self) -> str | None:
        """The companion's own sha256 when the manifest lists it (already checked by :meth:`synthesis_path`)."""
        record = (self.entry or {}).get("synthesis")
        return record["sha256"] if record and self.synthesis_of is None and self.synthesis_path() else None

    def analysis_path(self) -> Path | None:
        """The analysis companion (checked against the manifest's sha256 when listed there), or None."""
        if "_analysis" not in self.__dict__:
            self.__dict__["_analysis"] = self._find_companion("analysis", analysis_path_for(self.path))
        return self.__dict__["_analysis"]

    def analysis_sha256(self) -> str | None:
        """The analysis companion's own sha256 when the manifest lists it (checked by :meth:`analysis_path`)."""
        record = (self.entry or {}).get("analysis")
        return record["sha256"] if record and self.analysis_path() else None

    def _find_synthesis(self) -> Path | None:
        return self._find_companion("synthesis", synthesis_path_for(self.path))

    def _find_companion(self, kind: str, beside: Path) -> Path | None:
        record = (self.entry or {}).get(kind)
        if record:
            file = self.path.parent / record["file"]
            _checked(self.name, file, record["sha256"])
            return file
        return beside if beside.is_file() else None


def synthesis_path_for(weights_file: Path) -> Path:
    """Where ``jcd export`` puts the g_s companion of a weights file: ``NAME.synthesis.onnx`` beside it."""
    return weights_file.with_name(weights_file.name.removesuffix(".safetensors") + SYNTHESIS_SUFFIX)


def analysis_path_for(weights_file: Path) -> Path:
    """Where ``jcd export`` puts the analysis companion of a weights file: ``NAME.analysis.onnx`` beside it."""
    return weights_file.with_name(weights_file.name.removesuffix(".safetensors") + ANALYSIS_SUFFIX)


def resolve(path: str | os.PathLike | None = None) -> WeightsRef:
    """``path`` (a weights file, or the name of a shipped model), or the manifest's default; config read.

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
    meta = read_metadata(file)
    return WeightsRef(file, digest, entry, meta, parse_config(file, meta))


def _shipped_file(name: str, entry: dict) -> tuple[Path, str]:
    """The file of a manifest entry and its sha256, refusing a missing or altered file."""
    file = models_dir() / entry["file"]
    return file, _checked(name, file, entry["sha256"])


def _checked(name: str, file: Path, expected: str) -> str:
    """The sha256 of a file the manifest lists for model ``name``, refusing it when missing or altered."""
    if not file.is_file():
        raise WeightsError(f"weights {name!r}: {file} is missing")
    digest = sha256_file(file)
    if digest != expected:
        raise WeightsError(f"{file}: checksum mismatch (expected {expected[:12]}, got {digest[:12]}): damaged or "
                           "changed since it was installed")  # fmt: skip
    return digest


def read_metadata(file: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), "numpy") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise unreadable(file, e) from None


def unreadable(file: Path, e: Exception) -> WeightsError:
    """The error for a file that safetensors cannot read: what it is when that shows (an image passed to
    --weights), else the reader's reason."""
    from .formats import describe

    if what := describe(Path(file)):
        return WeightsError(f"{file}: not a weights file: {what}")
    return WeightsError(f"{file}: not a readable safetensors weights file ({e})")


def parse_config(file: Path, meta: dict[str, str]) -> ModelConfig:
    if meta.get("jcd_format") != "1" or "jcd_config" not in meta:
        raise WeightsError(f"{file}: not a jcd weights file (no jcd_config metadata)")
    try:
        config = ModelConfig.from_json(meta["jcd_config"])
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{file}: invalid model config ({e})") from None
    if config.N > MAX_N:
        raise WeightsError(f"{file}: N={config.N} exceeds the supported maximum {MAX_N}")
    return config


def read_tensors(file: Path, prefixes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The tensors whose names start with one of ``prefixes``, as numpy arrays (fp16 stays fp16)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), "numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefixes)}
    except (SafetensorError, OSError, ValueError) as e:
        raise unreadable(file, e) from None
