"""jcd: a learned image codec that compresses and denoises in one step.

Typed API (the ``jcd`` command is a thin layer over it)::

    from jcdcodec import Codec, load_image, save_image
    codec = Codec()                      # shipped default weights, CUDA when available
    enc = codec.encode(load_image("noisy.png"), quality=4)
    dec = codec.decode(enc.data)         # dec.picture.rgb: clean float RGB
"""

import warnings

# CompressAI 1.2.8 calls the deprecated torch.jit.script at import; that is not the user's concern.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

from .codec import Codec, Decoded, Encoded, stream_info  # noqa: E402
from .errors import BitstreamError, JcdError, WeightsError  # noqa: E402
from .imageio import Picture, load_image, save_image  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BitstreamError",
    "Codec",
    "Decoded",
    "Encoded",
    "JcdError",
    "Picture",
    "WeightsError",
    "__version__",
    "load_image",
    "save_image",
    "stream_info",
]
