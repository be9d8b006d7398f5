"""The shipped-weights manifest: where models live, what they are, their checksums.

Kept free of torch so ``jcd info`` and ``jcd --help`` start instantly.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import WeightsError


def models_dir() -> Path:
    """Where shipped weights live: $JCD_MODELS, else the repository's ``models/``."""
    env = os.environ.get("JCD_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: What jcd keeps at the top of a manifest.
KEYS = {"default", "models", "retired"}


def read_manifest(directory: Path | None = None) -> dict:
    """The manifest in ``directory`` (default: :func:`models_dir`), its shape checked: every reader may index it
    without care, and ``jcd export`` never adds models to another program's manifest.json (a web app's), which it
    did, nor fails with an internal error after writing the weights when the file is a list."""
    path = (directory or models_dir()) / "manifest.json"
    if not path.is_file():
        return {"default": None, "models": {}}
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: manifest is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise WeightsError(f"{path}: not a jcd model manifest (a JSON {type(manifest).__name__}, not an object)")
    if manifest and "models" not in manifest and not set(manifest) <= KEYS:
        keys = ", ".join(sorted(map(str, manifest))[:5])
        raise WeightsError(f"{path}: not a jcd model manifest (no \"models\"; it holds {keys}): "
                           "keep jcd's weights in a folder of their own")  # fmt: skip
    models, default, retired = manifest.get("models", {}), manifest.get("default"), manifest.get("retired", [])
    if not (isinstance(models, dict) and all(isinstance(e, dict) for e in models.values())
            and (default is None or isinstance(default, str))
            and isinstance(retired, list) and all(isinstance(e, dict) for e in retired)):  # fmt: skip
        raise WeightsError(f"{path}: damaged model manifest (\"models\" must map names to objects, \"default\" "
                           "name one, \"retired\" list objects)")  # fmt: skip
    manifest.setdefault("models", {})
    return manifest


def find_by_fingerprint(fingerprint: bytes, manifest: dict | None = None) -> tuple[str, dict] | None:
    """The manifest entry whose sha256 starts with a stream's 4-byte fingerprint (``manifest``: one already
    read, so that a caller looking in several places reads the file once)."""
    for name, entry in (manifest or read_manifest()).get("models", {}).items():
        if entry.get("sha256", "").startswith(fingerprint.hex()):
            return name, entry
    return None


def intended_use(entry: dict) -> str:
    """What a shipped model is for, from its training record (or an explicit ``purpose`` in its entry).

    The noise convention decides it: the reference gamma pair brightens images, so a model trained on it
    darkens clean photos, right for the published benchmark and wrong for users' pictures.
    """
    if entry.get("purpose"):
        return str(entry["purpose"])
    if entry.get("train_config", {}).get("noise") in ("camera", "mix"):
        return "camera photos (also trained on camera-like noise: demosaicked, tone-mapped, JPEG'd)"
    if entry.get("train_config", {}).get("gamma", "reference") == "srgb":
        return "photos (neutral brightness, sRGB noise)"
    return "the published benchmark (reference noise gamma; darkens clean photos)"
