"""Writing outputs so that nothing is lost: atomic files, no clobbering, no orphans, checked stdout.

- Every file is written to a temporary beside its target and renamed into place, so a failed or
  killed run never leaves a partial target.
- ``clobber=False`` makes the final step a hard link, which fails when the target exists: the
  check and the write are one atomic step, so a file that appears in between is never replaced.
- Temporaries are named ``.NAME.jcd-tmp-PID-XXXX.EXT``. A process killed at the wrong moment
  (kill -9 between the write and the rename) leaves one behind; the next write to the same target
  removes those whose process is gone.
- Standard output is written with ``os.write`` until every byte is out; a failed or short write
  (disk full behind a redirection, a closed pipe) is an error, never a silent truncation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

from .errors import JcdError

TMP_TAG = ".jcd-tmp-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def temporary_name(path: Path) -> Path:
    """A fresh temporary path beside ``path`` that names this process and keeps the extension."""
    return path.with_name(f".{path.name}{TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


#: Per directory (first write there in this process): target name -> temporaries found for it.
_TEMPORARIES: dict[Path, dict[str, list[Path]]] = {}


def _temporaries_in(parent: Path) -> dict[str, list[Path]]:
    """The jcd temporaries of a directory by target name, listed once per process and directory.

    A batch writing N files into one directory would otherwise list it N times (quadratic in N); what
    is left by writers that die while this process runs is found by the next process.
    """
    key = parent.resolve()
    if key not in _TEMPORARIES:
        index: dict[str, list[Path]] = {}
        with contextlib.suppress(OSError):
            for p in parent.iterdir():
                name = p.name
                if name.startswith(".") and TMP_TAG in name:
                    index.setdefault(name[1 : name.index(TMP_TAG)], []).append(p)
        _TEMPORARIES[key] = index
    return _TEMPORARIES[key]


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` left by processes that no longer run; returns them."""
    parent = path.parent if str(path.parent) else Path(".")
    removed = []
    prefix = f".{path.name}{TMP_TAG}"
    for p in _temporaries_in(parent).pop(path.name, []):
        pid_text = p.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def check_target(path: Path) -> None:
    """A one-line error for targets that cannot be written, before any work is done for them."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise JcdError(f"{path}: is a directory")
    if not parent.is_dir():
        raise JcdError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise JcdError(f"{path}: directory {parent} is not writable")


def _exists_error(path: Path) -> JcdError:
    return JcdError(f"{path}: exists (not replaced: -n/--no-clobber, or a name jcd chose itself)")


@contextlib.contextmanager
def atomic_target(path: Path, clobber: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it to ``path``, on failure remove it.

    With ``clobber=False`` an existing ``path`` is never replaced (JcdError instead). The file gets
    the permissions a plain open() would give (mkstemp-style temporaries are 0600).
    """
    path = Path(path)
    check_target(path)
    if not clobber and (path.exists() or path.is_symlink()):
        raise _exists_error(path)
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        yield tmp
        # After the write: some writers (safetensors) recreate the file with their own mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if clobber:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except JcdError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise JcdError(f"{path}: cannot write ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _link_no_clobber(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # A file system without hard links: check, then rename (a narrow race, but never a partial file).
        if path.exists():
            raise _exists_error(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, clobber: bool = True) -> None:
    with atomic_target(Path(path), clobber) as tmp:
        tmp.write_bytes(data)


def write_stdout(data: bytes) -> None:
    """Every byte of ``data`` to standard output, or a JcdError: never a silent short write."""
    stream = sys.stdout
    if stream is None:
        raise JcdError("no standard output to write to")
    with contextlib.suppress(Exception):
        stream.flush()
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured in a test harness)
        stream.buffer.write(data)
        stream.buffer.flush()
        return
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise JcdError(f"stdout: write stopped after {len(data) - len(view)} of {len(data)} bytes")
            view = view[n:]
    except BrokenPipeError:
        raise JcdError(f"stdout: closed by the reader after {len(data) - len(view)} of {len(data)} bytes") from None
    except OSError as e:
        raise JcdError(
            f"stdout: cannot write ({e.strerror or e}) after {len(data) - len(view)} of {len(data)} bytes"
        ) from None


__all__ = [
    "TMP_TAG",
    "atomic_target",
    "atomic_write_bytes",
    "check_target",
    "remove_stale_temporaries",
    "temporary_name",
    "write_stdout",
]
