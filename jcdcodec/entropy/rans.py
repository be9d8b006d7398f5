"""CompressAI's compiled rANS coder, reached without importing torch.

The extension (``compressai.ans``) links only the C++ runtime; what pulls in torch is CompressAI's
package ``__init__``, which :mod:`jcdcodec._compressai` replaces with a lazy stand-in. Importing the
coder through here therefore costs milliseconds, and a decode-only install needs no torch.
"""

from __future__ import annotations

import importlib

from .. import _compressai  # noqa: F401  (installs the lazy CompressAI package before the import below)

_ans = importlib.import_module("compressai.ans")
BufferedRansEncoder = _ans.BufferedRansEncoder
RansDecoder = _ans.RansDecoder
RansEncoder = _ans.RansEncoder

__all__ = ["BufferedRansEncoder", "RansDecoder", "RansEncoder"]
