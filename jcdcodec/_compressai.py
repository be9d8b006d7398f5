"""Import CompressAI's parts without its package ``__init__`` (2-3 s of start-up saved per command).

``import compressai`` eagerly imports every subpackage, including point-cloud datasets that pull in
torch_geometric, torch._dynamo and scipy.stats: ~2.9 s of a ~4.5 s ``jcd encode`` on this machine,
for code jcd never runs. When nothing has imported CompressAI yet, this installs a lazy stand-in for
the package: submodules (``compressai.ans``, ``compressai.layers``, ...) import normally from the
real package directory on first use, attribute access such as ``compressai.zoo`` imports that
subpackage, and the three entropy-coder functions of the real ``__init__`` are provided. Set
``JCD_EAGER_COMPRESSAI=1`` to import CompressAI the ordinary way.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

_SUBPACKAGES = {"datasets", "entropy_models", "latent_codecs", "layers", "losses", "models", "ops", "optimizers",
                "registry", "transforms", "typing", "zoo"}  # fmt: skip


class _LazyCompressAI(types.ModuleType):
    _entropy_coder = "ans"

    def get_entropy_coder(self) -> str:
        return self._entropy_coder

    def available_entropy_coders(self) -> list[str]:
        return ["ans"]

    def set_entropy_coder(self, name: str) -> None:
        if name != "ans":
            raise ValueError(f'Invalid entropy coder "{name}", choose from (ans).')
        type(self)._entropy_coder = name

    def __getattr__(self, name: str):
        if name in _SUBPACKAGES or name in ("ans", "_CXX"):
            return importlib.import_module(f"compressai.{name}")
        if name == "__version__":
            return importlib.import_module("compressai.version").__version__
        raise AttributeError(f"module 'compressai' has no attribute {name!r}")


def install() -> None:
    if "compressai" in sys.modules or os.environ.get("JCD_EAGER_COMPRESSAI"):
        return
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: the real import error will follow
    module = _LazyCompressAI("compressai")
    module.__spec__ = spec
    module.__path__ = list(spec.submodule_search_locations)
    module.__file__ = spec.origin
    module.__package__ = "compressai"
    sys.modules["compressai"] = module


install()
