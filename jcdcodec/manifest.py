"""The shipped-weights manifest: where models live, what they are, their checksums.

Kept free of torch so ``jcd info`` and ``jcd --help`` start instantly.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
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


def find_by_fingerprint(fingerprint: bytes) -> tuple[str, dict] | None:
    """The manifest entry whose sha256 starts with a stream's 4-byte fingerprint."""
    for name, entry in read_manifest().get("models", {}).items():
        if entry.get("sha256", "").startswith(fingerprint.hex()):
            return name, entry
    return None


def find_retired(fingerprint: bytes) -> dict | None:
    """The record of an earlier version of a shipped model (``retired`` in the manifest) with this fingerprint."""
    for entry in read_manifest().get("retired", []):
        if entry.get("sha256", "").startswith(fingerprint.hex()):
            return entry
    return None


def retired_note(entry: dict) -> str:
    """How a user gets an earlier version's weights back, to decode the streams it made."""
    name, fp = entry["name"], entry["sha256"][:8]
    what = f"{name} weights [{fp}] of an earlier jcd"
    if "replaced" in entry:
        what += f" (replaced {entry['replaced']})"
    if not entry.get("commit"):
        return f"{what}, which this jcd no longer ships: decode it with the jcd that made it"
    saved = f"{name}-{fp}.safetensors"
    commit = entry["commit"]
    return (f"{what}, which this jcd no longer ships; they are in jcd's repository at commit {commit}: "
            f"`git show {commit}:models/{entry['file']} > {saved}`, then decode with --weights {saved}")  # fmt: skip


def commit_holding(directory: Path, file_name: str, sha256: str, depth: int = 50) -> str | None:
    """The newest of the last ``depth`` commits of the git checkout around ``directory`` whose ``file_name``
    (in ``directory``) has this sha256; None outside git or when none has."""
    try:
        log = subprocess.run(["git", "-C", str(directory), "log", f"-n{depth}", "--format=%H", "--", file_name],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        for commit in log.stdout.split() if log.returncode == 0 else []:
            blob = subprocess.run(["git", "-C", str(directory), "show", f"{commit}:./{file_name}"],
                                  capture_output=True, timeout=60)  # fmt: skip
            if blob.returncode == 0 and hashlib.sha256(blob.stdout).hexdigest() == sha256:
                return commit[:12]
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def retire(manifest: dict, old: dict, directory: Path) -> None:
    """Record a shipped version that is being replaced, so that its streams stay decodable: a stream names
    its weights only by fingerprint, and a user who upgrades jcd must learn where those weights are."""
    if not old.get("sha256") or any(e.get("sha256") == old["sha256"] for e in manifest.get("retired", [])):
        return
    manifest.setdefault("retired", []).append({
        "name": old.get("name"), "file": old.get("file"), "sha256": old["sha256"], "steps": old.get("steps"),
        "config": {k: old.get("config", {}).get(k) for k in ("N", "qualities")},
        "commit": commit_holding(directory, old.get("file", ""), old["sha256"]),
        "replaced": datetime.date.today().isoformat(),
    })  # fmt: skip


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
