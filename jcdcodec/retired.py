"""Earlier versions of shipped models, so that the streams they made stay decodable.

A stream names its weights by fingerprint only (4 bytes of the file's sha256), and decoding needs exactly
those weights. When a model is shipped again under the same name, the manifest keeps a record of the version
it replaces (``retired``: name, file, sha256, N, the git commit holding the file, the date).

Where the two versions differ in a few tensors only (a refit of the per-quality gains, ``jcd calibrate``),
the earlier one also ships, as those tensors and its exact safetensors header: a *delta* in
``models/retired/NAME-SHA8.delta.safetensors``, a few kilobytes instead of megabytes. A decoder meeting such a
stream rebuilds the earlier file byte for byte from the current one (checked against its sha256), so the
stream decodes as before, with either engine. Other versions (a retrained network differs everywhere) ship as
the record alone: the decoder then says which commit holds their weights.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import json
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WeightsError
from .manifest import models_dir, read_manifest

if TYPE_CHECKING:
    from .weightsfile import WeightsRef

#: Largest delta shipped; beyond it (a retrained network) only the record is kept.
DELTA_LIMIT = 1 << 20
DELTA_DIR = "retired"
_MAX_CHAIN = 16


def find_retired(fingerprint: bytes, manifest: dict | None = None) -> dict | None:
    """The record of an earlier version of a shipped model with this fingerprint, or None."""
    for entry in (manifest or read_manifest()).get("retired", []):
        if entry.get("sha256", "").startswith(fingerprint.hex()):
            return entry
    return None


def retired_label(entry: dict) -> str:
    """'NAME, replaced DATE': how jcd info and error messages name an earlier version."""
    return f"{entry['name']}, replaced {entry.get('replaced', '(date unknown)')}"


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


def retire(manifest: dict, old: dict, directory: Path, old_bytes: bytes | None = None,
           new_bytes: bytes | None = None) -> None:  # fmt: skip
    """Record a shipped version that is being replaced (``old``, its manifest entry); with both files'
    bytes, also ship it as a delta against the new one when they differ in little."""
    if not old.get("sha256") or any(e.get("sha256") == old["sha256"] for e in manifest.get("retired", [])):
        return
    record = {
        "name": old.get("name"), "file": old.get("file"), "sha256": old["sha256"], "steps": old.get("steps"),
        "config": {k: old.get("config", {}).get(k) for k in ("N", "qualities")},
        "commit": commit_holding(directory, old.get("file", ""), old["sha256"]),
        "replaced": datetime.date.today().isoformat(),
    }  # fmt: skip
    if old_bytes is not None and new_bytes is not None and hashlib.sha256(old_bytes).hexdigest() == old["sha256"]:
        delta = make_delta(old_bytes, new_bytes)
        if delta is not None:
            rel = f"{DELTA_DIR}/{old.get('name')}-{old['sha256'][:8]}.delta.safetensors"
            (directory / DELTA_DIR).mkdir(exist_ok=True)
            from .outputs import atomic_write_bytes

            atomic_write_bytes(directory / rel, delta)
            record["delta"] = {"file": rel, "sha256": hashlib.sha256(delta).hexdigest(),
                               "base_sha256": hashlib.sha256(new_bytes).hexdigest()}  # fmt: skip
    manifest.setdefault("retired", []).append(record)



def retire_model(name: str, directory: Path | None = None, force: bool = False) -> tuple[dict, list[Path]]:
    """Stop shipping model ``name`` without a successor: record it under ``retired`` (with the commit that
    holds its file, so streams it made can name it), drop its manifest entry, delete its files.

    Returns (the record, the files removed). Refuses, changing nothing, what would strand a user's streams or
    leave the manifest inconsistent: an unlisted name, the default model (another must be made the default
    first), a model earlier versions are stored against as deltas, and (unless ``force``) weights that no
    recent commit holds, whose streams could then never be decoded again. The manifest is replaced
    atomically before any file is deleted, so an interruption leaves at worst a file nothing lists.
    """
    from .outputs import atomic_write_bytes

    directory = directory or models_dir()
    manifest = read_manifest(directory)
    entry = manifest.get("models", {}).get(name)
    if entry is None:
        listed = ", ".join(sorted(manifest.get("models", {}))) or "none"
        raise WeightsError(f"{name}: not a model listed in {directory / 'manifest.json'} (listed: {listed})")
    if manifest.get("default") == name:
        raise WeightsError(f"{name} is the default model: make another the default first (jcd export --default)")
    based = [e for e in manifest.get("retired", []) if (e.get("delta") or {}).get("base_sha256") == entry.get("sha256")]
    if based:
        raise WeightsError(f"{name}: {len(based)} earlier versions are stored as deltas against it and would no "
                           "longer decode")  # fmt: skip
    before = len(manifest.get("retired", []))
    retire(manifest, entry, directory)
    record = next(e for e in manifest["retired"] if e.get("sha256") == entry.get("sha256"))
    if len(manifest["retired"]) > before and not record.get("commit") and not force:
        raise WeightsError(f"{name}: {entry.get('file')} is in none of the last 50 commits of {directory}, "
                           "so streams it made could not be decoded once it is gone: commit it first, "
                           "or pass --force")  # fmt: skip
    del manifest["models"][name]
    atomic_write_bytes(directory / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    removed = []
    companions = [(entry.get(kind) or {}).get("file") for kind in ("synthesis", "analysis")]
    for file in (entry.get("file"), *companions):
        path = directory / file if file else None
        if path is not None and path.is_file():
            path.unlink()
            removed.append(path)
    return record, removed

# --- safetensors at the byte level: a header (u64 length + JSON) and one data buffer -------------------------


def _layout(data: bytes, what: str) -> tuple[bytes, dict[str, dict], int]:
    """(header bytes, tensors by name, start of the data buffer) of a safetensors file, bounds checked."""
    if len(data) < 8:
        raise WeightsError(f"{what}: not a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise WeightsError(f"{what}: safetensors header runs past the file")
    header = data[8 : 8 + n]
    try:
        table = json.loads(header)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WeightsError(f"{what}: unreadable safetensors header") from None
    tensors = {k: v for k, v in table.items() if k != "__metadata__"}
    size = len(data) - 8 - n
    for k, v in tensors.items():
        b, e = v.get("data_offsets", (0, -1))
        if not (0 <= b <= e <= size):
            raise WeightsError(f"{what}: tensor {k} lies outside the file")
    return header, tensors, 8 + n


def make_delta(old: bytes, new: bytes) -> bytes | None:
    """The tensors of ``old`` that ``new`` lacks or holds differently, with ``old``'s header: or None when
    that is more than :data:`DELTA_LIMIT` (or either is not a safetensors file)."""
    try:
        old_header, old_t, old_start = _layout(old, "old weights")
        _, new_t, new_start = _layout(new, "new weights")
    except WeightsError:
        return None

    def raw(data: bytes, start: int, info: dict) -> bytes:
        b, e = info["data_offsets"]
        return data[start + b : start + e]

    changed = {k: v for k, v in old_t.items()
               if k not in new_t or raw(old, old_start, v) != raw(new, new_start, new_t[k])}  # fmt: skip
    if sum(v["data_offsets"][1] - v["data_offsets"][0] for v in changed.values()) > DELTA_LIMIT:
        return None
    table: dict[str, dict] = {"__metadata__": {"jcd_delta_header": old_header.decode("utf-8")}}
    chunks, offset = [], 0
    for k, v in changed.items():
        chunk = raw(old, old_start, v)
        table[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [offset, offset + len(chunk)]}
        chunks.append(chunk)
        offset += len(chunk)
    header = json.dumps(table, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"".join(chunks)


def rebuild(record: dict, directory: Path | None = None, _depth: int = 0) -> bytes:
    """The exact bytes of an earlier version shipped as a delta (checked against its sha256)."""
    directory = directory or models_dir()
    delta_rec = record.get("delta")
    if not delta_rec:
        raise WeightsError(f"stream was made with {retired_note(record)}")
    if _depth > _MAX_CHAIN:
        raise WeightsError(f"{record['name']} [{record['sha256'][:8]}]: chain of earlier versions too long")
    path = directory / delta_rec["file"]
    try:
        delta = path.read_bytes()
    except OSError:
        raise WeightsError(f"{path} is missing: cannot rebuild {record['name']} [{record['sha256'][:8]}]") from None
    if hashlib.sha256(delta).hexdigest() != delta_rec["sha256"]:
        raise WeightsError(f"{path}: checksum mismatch")
    base = _base_bytes(delta_rec["base_sha256"], directory, _depth)
    _, delta_t, delta_start = _layout(delta, str(path))
    _, base_t, base_start = _layout(base, "base weights")
    table = json.loads(delta[8 : delta_start])
    old_header = table["__metadata__"]["jcd_delta_header"].encode("utf-8")
    old_t = {k: v for k, v in json.loads(old_header).items() if k != "__metadata__"}
    size = max((v["data_offsets"][1] for v in old_t.values()), default=0)
    if size > len(base) + len(delta):
        raise WeightsError(f"{path}: inconsistent with its base")
    out = bytearray(struct.pack("<Q", len(old_header)) + old_header + bytes(size))
    start = 8 + len(old_header)
    for k, v in old_t.items():
        src, src_start = (delta, delta_start) if k in delta_t else (base, base_start)
        info = delta_t.get(k) or base_t.get(k)
        if info is None:
            raise WeightsError(f"{path}: tensor {k} is in neither the delta nor its base")
        b, e = info["data_offsets"]
        ob, oe = v["data_offsets"]
        if e - b != oe - ob:
            raise WeightsError(f"{path}: tensor {k} has another size in its base")
        out[start + ob : start + oe] = src[src_start + b : src_start + e]
    if hashlib.sha256(out).hexdigest() != record["sha256"]:
        raise WeightsError(f"{path}: rebuilding {record['name']} [{record['sha256'][:8]}] gave other bytes")
    return bytes(out)


def _base_bytes(sha256: str, directory: Path, depth: int) -> bytes:
    manifest = read_manifest(directory)
    for entry in manifest.get("models", {}).values():
        if entry.get("sha256") == sha256:
            data = (directory / entry["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise WeightsError(f"{directory / entry['file']}: checksum mismatch")
            return data
    for entry in manifest.get("retired", []):
        if entry.get("sha256") == sha256:
            return rebuild(entry, directory, depth + 1)
    raise WeightsError(f"the weights [{sha256[:8]}] an earlier version was stored against are gone")


_TEMP: list[Path] = []


def rebuilt_weights(record: dict) -> WeightsRef:
    """The earlier version shipped as a delta, rebuilt and resolved like any weights file; it runs its base's
    synthesis file when the delta leaves g_s as it was (no PyTorch needed)."""
    from .weightsfile import resolve

    ref = resolve(_rebuilt_file(record))
    shared = _base_synthesis(record)
    if shared is not None:
        ref.share_synthesis(*shared)
    return ref


def _rebuilt_file(record: dict) -> Path:
    """The earlier version as a file (in a temporary folder of this process, removed at exit), with the
    g_s companion of its base beside it when the delta leaves g_s as it was."""
    folder = Path(tempfile.mkdtemp(prefix="jcd-retired-"))
    if not _TEMP:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _TEMP])
    _TEMP.append(folder)
    file = folder / f"{record['name']}-{record['sha256'][:8]}.safetensors"
    file.write_bytes(rebuild(record))
    return file


def _base_synthesis(record: dict) -> tuple[Path, str] | None:
    """(g_s companion file, the sha256 it names) of the version a delta was stored against, when the delta
    holds no g_s tensor: the earlier version then runs the same synthesis network."""
    delta_rec = record.get("delta") or {}
    with contextlib.suppress(OSError, WeightsError, KeyError, json.JSONDecodeError):
        path = models_dir() / delta_rec["file"]
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            names = json.loads(f.read(min(n, 1 << 24)))
        if any(k.startswith("g_s.") for k in names):
            return None
        for entry in read_manifest().get("models", {}).values():
            if entry.get("sha256") == delta_rec["base_sha256"] and entry.get("synthesis"):
                return models_dir() / entry["synthesis"]["file"], entry["sha256"]
    return None
