"""A per-user cache of derived files that are costly to rebuild at every start (compiled networks).

Compiling g_s for OpenVINO takes about a tenth of a one-image decode's CPU time; importing the compiled
network from this cache takes half as long. An entry is only ever a speed-up: whatever goes wrong (no
home directory, a read-only disk, a damaged or foreign file) makes jcd rebuild, never fail.

- Where: ``$JCD_CACHE_DIR``, else ``$XDG_CACHE_HOME/jcd``, else ``~/.cache/jcd``. ``JCD_CACHE_DIR=off``
  (or empty) turns the cache off.
- Entries are named by a key the caller derives from everything the content depends on (input file
  contents, runtime version, settings, CPU); a changed input makes a new key, so nothing goes stale in
  place. Each file starts with the sha256 of its payload, checked on every read, and is written
  atomically; at most :data:`MAX_ENTRIES` are kept (the least recently used go first).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

from .outputs import atomic_write_bytes

MAX_ENTRIES = 8
SUFFIX = ".jcd-cache"
#: What jcd's entries are named; pruning touches nothing else, whatever folder JCD_CACHE_DIR names.
_ENTRY = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*-[0-9a-f]{32}" + re.escape(SUFFIX))
_OFF = {"", "0", "off", "no", "none"}


def cache_dir() -> Path | None:
    """The cache folder (not created here), or None when ``JCD_CACHE_DIR`` turns the cache off."""
    chosen = os.environ.get("JCD_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in _OFF else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jcd"


def make_key(kind: str, **parts: object) -> str:
    """A file-name-safe key: ``kind`` and the sha256 of ``parts`` (JSON with sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return f"{kind}-{hashlib.sha256(blob).hexdigest()[:32]}"


def read(key: str) -> bytes | None:
    """The payload stored under ``key``, or None (absent, off, unreadable, or damaged: then removed)."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / (key + SUFFIX)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, payload = data[:32], data[32:]
    if hashlib.sha256(payload).digest() != digest:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    return payload


def write(key: str, payload: bytes) -> bool:
    """Store ``payload`` under ``key`` (atomically) and prune to :data:`MAX_ENTRIES`; False if it could not."""
    folder = cache_dir()
    if folder is None:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / (key + SUFFIX), hashlib.sha256(payload).digest() + payload)
    except Exception:  # a cache write is never worth an error: no space, no permission, a read-only disk
        return False
    _prune(folder)
    return True


def _prune(folder: Path) -> None:
    entries = []
    for p in folder.glob("*" + SUFFIX):
        if not _ENTRY.fullmatch(p.name):
            continue
        with contextlib.suppress(OSError):
            entries.append((p.stat().st_mtime, p))
    entries.sort(reverse=True)
    for _, p in entries[MAX_ENTRIES:]:
        with contextlib.suppress(OSError):
            p.unlink()
