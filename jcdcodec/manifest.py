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


def read_manifest(directory: Path | None = None) -> dict:
    path = (directory or models_dir()) / "manifest.json"
    if not path.is_file():
        return {"default": None, "models": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path}: manifest is not valid JSON ({e})") from None


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
