"""Decoders of C and C++ code that damaged files crash (libheif, LibRaw, libjxl), run in a child process.

Why: a segmentation fault in jcd's own process ends `jcd encode photos/` at the first such file without a word
about which one, and memory corrupted by a hostile file is worse than a crash. The child reads one file from
stdin and writes one JSON line (what the bytes after it hold) and the bytes; the parent checks that output like
any input. A refusal (exit status 3, its reason as the last line of stderr), a crash or a hang becomes one
JcdError naming the file, and a batch goes on. The price is a Python start-up per file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import JcdError

#: Where a child starts: the folder that holds this jcdcodec. ``python -m`` puts its working folder first on the
#: import path, so a child started in the user's folder would import a ``jcdcodec`` lying there instead.
HOME = Path(__file__).resolve().parent.parent
#: Exit status of a child that refused the file with a message of its own (not a crash).
REFUSED = 3


def command(module: str) -> list[str]:
    """The command line of a child that runs ``module`` (its arguments follow: the pixel limit and the name)."""
    return [sys.executable, "-m", module]


def run(cmd: list[str], data: bytes, name: str, max_pixels: int | None, decoder: str, timeout: float,
        *extra: str) -> tuple[dict, memoryview]:  # fmt: skip
    """The child's JSON head and the bytes after it (not copied). ``decoder`` names it in messages ("the HEIF
    decoder"); ``extra`` arguments go to the child's work after the name. Raises JcdError for a refusal, a crash,
    a hang past ``timeout`` seconds or output without a head."""
    try:
        r = subprocess.run([*cmd, str(max_pixels or 0), name, *extra], input=data, capture_output=True, check=False,
                           timeout=timeout, cwd=HOME)  # fmt: skip
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise JcdError(f"{name}: cannot read image ({decoder} did not finish in {timeout:g} s)") from None
    said = r.stderr.decode("utf-8", "replace").strip().splitlines()
    if r.returncode == REFUSED and said:
        raise JcdError(said[-1])
    if r.returncode != 0:
        why = f"signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
        raise JcdError(f"{name}: cannot read image ({decoder} crashed on it, {why}: a damaged file)")
    end = r.stdout.find(b"\n")
    try:
        head = json.loads(r.stdout[: max(end, 0)])
        if not isinstance(head, dict):
            raise ValueError(head)
    except ValueError:
        raise malformed(name, decoder) from None
    return head, memoryview(r.stdout)[end + 1 :]


def picture(body: memoryview, keys: tuple[str, ...], lengths: list[int], mode: str, width: int, height: int):
    """A child's checked output as a Pillow image with its info bytes (``keys``, ``lengths`` long, first in
    ``body``), and for a 16-bit mode that Pillow has not ("LA;16", "RGB;16", "RGBA;16": little-endian samples)
    those samples, uint16 (H, W, C), else None; the Pillow image of such a mode holds their top 8 bits and carries
    the info and the size."""
    import numpy as np
    from PIL import Image

    info, pos = {}, 0
    for key, n in zip(keys, lengths, strict=True):
        if n:
            info[key] = bytes(body[pos : pos + n])
        pos += n
    if mode in ("LA;16", "RGB;16", "RGBA;16"):
        deep = np.frombuffer(body[pos:], dtype="<u2").reshape(height, width, -1).astype(np.uint16)
        im = Image.fromarray((deep >> 8).astype(np.uint8))  # (H, W, 2, 3 or 4): LA, RGB, RGBA
    else:
        deep, im = None, Image.frombytes(mode, (width, height), body[pos:])
    im.info.update(info)
    return im, deep


def malformed(name: str, decoder: str) -> JcdError:
    """The error for a child's output that does not add up."""
    return JcdError(f"{name}: cannot read image ({decoder}'s output is malformed)")


def serve(work: Callable[..., tuple[dict, list[bytes]]]) -> int:
    """The child's side: ``work(data, max_pixels, name, *extra)`` gives the head and the byte strings after it.

    A JcdError is the refusal's message; any other exception (decoders raise many kinds on damaged files) is
    said in one line too."""
    max_pixels, name, extra = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    data = sys.stdin.buffer.read()
    try:
        head, parts = work(data, max_pixels, name, *extra)
    except JcdError as e:
        print(str(e), file=sys.stderr)
        return REFUSED
    except Exception as e:  # noqa: BLE001
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        print(f"{name}: cannot read image ({detail})", file=sys.stderr)
        return REFUSED
    out = sys.stdout.buffer
    out.write(json.dumps(head).encode() + b"\n")
    for part in parts:
        out.write(part)
    out.flush()
    return 0
