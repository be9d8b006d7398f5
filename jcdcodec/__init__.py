"""jcd: a learned image codec that compresses and denoises in one step.

Typed API (the ``jcd`` command is a thin layer over it)::

    import jcdcodec
    data = jcdcodec.encode("noisy.png", quality=4)    # bytes of a .jcd file (path, PIL image or array in)
    clean = jcdcodec.decode(data)                     # PIL.Image.Image
    jcdcodec.info(data).bpp                           # StreamInfo, from the header alone

    codec = jcdcodec.Codec()             # explicit weights/device; Encoded/Decoded carry latents, timings
    dec = codec.decode(codec.encode(jcdcodec.load_image("noisy.png"), 4).data)

Names are imported lazily, so ``jcd --help`` and ``jcd info`` never load torch.
"""

from __future__ import annotations

import importlib
import warnings

# CompressAI 1.2.8 calls the deprecated torch.jit.script at import; that is not the user's concern.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

__version__ = "0.2.0"

from . import _compressai  # noqa: E402, F401  (lazy CompressAI package: ~2.5 s less start-up)
from . import pillow_plugin as _pillow_plugin  # noqa: E402  (no torch: decoding loads it on demand)

_pillow_plugin.register()

_EXPORTS = {
    "encode": "api",
    "decode": "api",
    "info": "api",
    "codec_for": "api",
    "decoder_for": "api",
    "open_decoder": "decoder",
    "open_encoder": "encoder",
    "OnnxDecoder": "decoder",
    "OnnxCodec": "encoder",
    "StreamInfo": "streaminfo",
    "Codec": "codec",
    "Decoded": "decoder",
    "Encoded": "encoder",
    "stream_info": "streaminfo",
    "BitstreamError": "errors",
    "JcdError": "errors",
    "WeightsError": "errors",
    "Picture": "imageio",
    "load_image": "imageio",
    "save_image": "imageio",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'jcdcodec' has no attribute {name!r}")
